//! anvyl's [`Backend`](anvyl_core::Backend) for the Docker Engine API,
//! through `bollard`. The endpoint comes from configuration, else
//! `DOCKER_HOST`, else `/var/run/docker.sock`; the API version is negotiated
//! so that Docker 20.10 (API 1.41) and newer engines both answer.

mod backend;
mod context;
mod errors;

pub use backend::{default_endpoint, DockerBackend, Tls};
pub use context::pack_context;
