//! anvyl's [`Backend`](anvyl_core::Backend) for the Docker Engine API,
//! through `bollard`. The endpoint comes from configuration, else
//! `DOCKER_HOST`, else `/var/run/docker.sock`. The client is pinned to API
//! 1.41 (Docker 20.10's) and does not negotiate; bollard 0.21.1 sends its
//! requests without the `/v1.41` prefix, so newer engines answer them at
//! their own version. Correct version handling is the next piece of work.

mod backend;
mod context;
mod errors;
pub mod version;

pub use backend::{default_endpoint, DockerBackend, Tls};
pub use context::pack_context;
