//! anvyl's [`Backend`](anvyl_core::Backend) for the Docker Engine API,
//! through `bollard`. The endpoint comes from configuration, else
//! `DOCKER_HOST`, else `/var/run/docker.sock`. The API version is agreed
//! with each engine and carried in every request's path (see [`version`]).

#![warn(missing_docs)]

mod backend;
mod build;
mod client;
mod errors;
mod image_store;
mod pull;
mod resources;
pub mod version;

pub use backend::{DockerBackend, BUILD_RACES};
pub use client::{default_endpoint, Tls};
