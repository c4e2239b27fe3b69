//! Connecting engines: the configured one, or a registered host's. A host
//! that names no backend or endpoint (the local host) follows the
//! configuration, so changing `backend` moves it too.

use std::sync::Arc;

use anvyl_core::lifecycle::Connector;
use anvyl_core::{BackendError, DynBackend, HostRecord};
use async_trait::async_trait;

use crate::config::{BackendChoice, Config};

async fn connect_engine(
    config: &Config,
    backend: BackendChoice,
    endpoint: Option<&str>,
) -> Result<DynBackend, BackendError> {
    let timeout = config.request_timeout();
    Ok(match backend {
        BackendChoice::Docker => {
            let endpoint = endpoint
                .map(str::to_string)
                .or_else(|| config.docker.endpoint.clone())
                .unwrap_or_else(anvyl_docker::default_endpoint);
            Arc::new(anvyl_docker::DockerBackend::connect(&endpoint, timeout).await?)
        }
        BackendChoice::Podman => {
            let endpoint = endpoint
                .map(str::to_string)
                .or_else(|| config.podman.endpoint.clone())
                .unwrap_or_else(anvyl_podman::default_endpoint);
            let limits = anvyl_podman::Limits {
                nofile: config.podman.nofile,
                nproc: config.podman.nproc,
            };
            Arc::new(anvyl_podman::PodmanBackend::connect(&endpoint, timeout, limits).await?)
        }
    })
}

/// Connects hosts from the registry with this configuration.
pub struct HostConnector<'a>(pub &'a Config);

#[async_trait]
impl Connector for HostConnector<'_> {
    async fn connect(&self, host: &HostRecord) -> Result<DynBackend, BackendError> {
        let backend = match host.backend.as_deref() {
            None => self.0.backend,
            Some("docker") => BackendChoice::Docker,
            Some("podman") => BackendChoice::Podman,
            Some(other) => {
                return Err(BackendError::Local {
                    operation: "connect host",
                    message: format!("host '{}' has unknown backend {other:?}", host.name),
                })
            }
        };
        connect_engine(self.0, backend, host.endpoint.as_deref()).await
    }
}

/// The backend and endpoint a host resolves to, for display.
pub fn effective(config: &Config, host: &HostRecord) -> (String, String) {
    let backend = host
        .backend
        .clone()
        .unwrap_or_else(|| match config.backend {
            BackendChoice::Docker => "docker".into(),
            BackendChoice::Podman => "podman".into(),
        });
    let endpoint = host
        .endpoint
        .clone()
        .unwrap_or_else(|| match backend.as_str() {
            "podman" => config
                .podman
                .endpoint
                .clone()
                .unwrap_or_else(anvyl_podman::default_endpoint),
            _ => config
                .docker
                .endpoint
                .clone()
                .unwrap_or_else(anvyl_docker::default_endpoint),
        });
    (backend, endpoint)
}
