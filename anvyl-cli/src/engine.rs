//! Connects the engine the configuration names.

use std::sync::Arc;

use anvyl_core::DynBackend;

use crate::config::{BackendChoice, Config};
use crate::error::CliError;

/// The configured engine, connected and answering.
pub async fn connect(config: &Config) -> Result<DynBackend, CliError> {
    let timeout = config.request_timeout();
    let backend: DynBackend = match config.backend {
        BackendChoice::Docker => {
            let endpoint = config
                .docker
                .endpoint
                .clone()
                .unwrap_or_else(anvyl_docker::default_endpoint);
            Arc::new(anvyl_docker::DockerBackend::connect(&endpoint, timeout).await?)
        }
        BackendChoice::Podman => {
            let endpoint = config
                .podman
                .endpoint
                .clone()
                .unwrap_or_else(anvyl_podman::default_endpoint);
            let limits = anvyl_podman::Limits {
                nofile: config.podman.nofile,
                nproc: config.podman.nproc,
            };
            Arc::new(anvyl_podman::PodmanBackend::connect(&endpoint, timeout, limits).await?)
        }
    };
    Ok(backend)
}
