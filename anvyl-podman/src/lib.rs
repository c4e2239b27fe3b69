//! anvyl's [`Backend`](anvyl_core::Backend) for Podman's libpod API, through
//! `podman-api`. The endpoint comes from configuration, else
//! `CONTAINER_HOST`, else the rootless socket, else the rootful one. Podman's
//! differences from Docker — ulimits, removal timeouts, `localhost/` image
//! names, a build context it must pack itself, loose reference filters, status codes — stay inside this crate.

#![warn(missing_docs)]

mod backend;
mod build;
mod client;
mod errors;
mod pull;
mod resources;
mod stop;
mod stream;

pub use backend::{default_endpoint, Limits, PodmanBackend, BUILD_RACES};
