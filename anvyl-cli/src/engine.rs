//! Connecting engines: the configured one, or a registered host's. A host
//! that names no backend or endpoint (the local host) follows the
//! configuration, so changing `backend` moves it too. Each host's route —
//! socket, TLS, plain TCP, SSH, a Docker context or Podman connection — is
//! decided by [`crate::remote`]; an SSH host's tunnel is opened once and
//! serves every connection to it for as long as the connector lives (a
//! watcher connects on every pass), and is opened again if its ssh ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anvyl_core::Connector;
use anvyl_core::{BackendError, DynBackend, HostRecord};
use async_trait::async_trait;

use anvyl_core::BackendKind;

use crate::config::Config;
use crate::remote::ssh::Tunnel;
use crate::remote::stores::{self, TlsFiles};
use crate::remote::{Access, Route};

/// Connects hosts from the registry with this configuration, and keeps
/// their SSH tunnels open until it is dropped.
pub struct HostConnector<'a> {
    config: &'a Config,
    /// A slot per place a tunnel leads (the target and the identity): one
    /// connect at a time opens it, the others wait and use it.
    tunnels: Mutex<HashMap<String, TunnelSlot>>,
}

type TunnelSlot = Arc<tokio::sync::Mutex<Option<Tunnel>>>;

impl<'a> HostConnector<'a> {
    /// A connector of `config`'s hosts.
    pub fn new(config: &'a Config) -> Self {
        Self {
            config,
            tunnels: Mutex::new(HashMap::new()),
        }
    }

    /// The slot of the tunnel that `key` names.
    fn slot(&self, key: &str) -> TunnelSlot {
        let mut slots = self
            .tunnels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(key.to_string()).or_default().clone()
    }
}

#[async_trait]
impl Connector for HostConnector<'_> {
    async fn connect(&self, host: &HostRecord) -> Result<DynBackend, BackendError> {
        let local = |message: String| BackendError::Local {
            operation: "connect host",
            message: format!("host '{}': {message}", host.name),
        };
        let (backend, route) = route(self.config, host).map_err(local)?;
        let config = self.config;
        let timeout = config.request_timeout();
        let endpoint = match &route {
            Route::Ssh { target, identity } => {
                let words: Vec<String> = config
                    .ssh_command
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                let slot = self.slot(&format!("{target} {identity:?}"));
                let mut tunnel = slot.lock().await;
                // One whose ssh ended is closed (its directory goes with it)
                // and opened again.
                if !tunnel.as_mut().is_some_and(Tunnel::is_open) {
                    *tunnel = None;
                    let wait = timeout.min(Duration::from_secs(30));
                    let opened = Tunnel::open(target, &words, identity.as_deref(), wait)
                        .await
                        .map_err(|message| BackendError::Unreachable {
                            engine: Some(backend),
                            endpoint: target.to_string(),
                            message,
                        })?;
                    *tunnel = Some(opened);
                }
                tunnel.as_ref().expect("a tunnel is open").endpoint()
            }
            Route::Socket(endpoint) | Route::Plain(endpoint) | Route::Tls { endpoint, .. } => {
                endpoint.clone()
            }
        };
        Ok(match (backend, &route) {
            (BackendKind::Docker, Route::Tls { files, .. }) => {
                let tls = anvyl_docker::Tls {
                    ca: &files.ca,
                    cert: &files.cert,
                    key: &files.key,
                };
                Arc::new(anvyl_docker::DockerBackend::connect_tls(&endpoint, tls, timeout).await?)
            }
            (BackendKind::Docker, _) => {
                Arc::new(anvyl_docker::DockerBackend::connect(&endpoint, timeout).await?)
            }
            (BackendKind::Podman, _) => {
                let limits = anvyl_podman::Limits {
                    nofile: config.podman.nofile,
                    nproc: config.podman.nproc,
                };
                Arc::new(anvyl_podman::PodmanBackend::connect(&endpoint, timeout, limits).await?)
            }
        })
    }
}

/// The backend a host is of: its own, or the configuration's; an error for
/// a host whose recorded backend this anvyl does not know.
pub fn backend_of(config: &Config, host: &HostRecord) -> Result<BackendKind, String> {
    match &host.unusable {
        Some(why) => Err(why.clone()),
        None => Ok(host.backend.unwrap_or(config.backend)),
    }
}

/// How `host` is reached now. A host naming a Docker context or Podman
/// connection is read from that store each time, so it follows the user's
/// changes there.
pub fn route(config: &Config, host: &HostRecord) -> Result<(BackendKind, Route), String> {
    let backend = backend_of(config, host)?;
    let mut access = Access {
        tls: host
            .access
            .tls_dir
            .as_deref()
            .map(|dir| TlsFiles::in_dir(dir.as_ref()))
            .transpose()?,
        insecure: host.access.insecure,
        identity: None,
    };
    let endpoint = match (&host.access.named, backend) {
        (Some(name), BackendKind::Docker) => {
            let dir = stores::docker_config_dir()
                .ok_or("no home directory to find the Docker CLI's contexts in")?;
            let context = stores::docker_context(&dir, name)?;
            access.tls = access.tls.or(context.tls);
            context.host
        }
        (Some(name), BackendKind::Podman) => {
            let dir = stores::podman_config_dir()
                .ok_or("no home directory to find Podman's connections in")?;
            let connection = stores::podman_connection(&dir, name)?;
            access.identity = connection.identity;
            connection.uri
        }
        (None, _) => match &host.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => return Ok((backend, config.route_of(backend)?)),
        },
    };
    Ok((backend, Route::decide(backend, &endpoint, access)?))
}

/// The backend and endpoint a host resolves to, for display.
pub fn effective(config: &Config, host: &HostRecord) -> (Option<BackendKind>, String) {
    let Ok(backend) = backend_of(config, host) else {
        return (None, host.endpoint.clone().unwrap_or_default());
    };
    let endpoint = match (&host.access.named, &host.endpoint, backend) {
        (Some(name), _, BackendKind::Docker) => format!("docker context {name}"),
        (Some(name), _, BackendKind::Podman) => format!("podman connection {name}"),
        (None, Some(endpoint), _) => endpoint.clone(),
        (None, None, _) => config.endpoint_of(backend),
    };
    (Some(backend), endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_with_a_backend_this_anvyl_does_not_know_is_never_routed() {
        let config = Config::default();
        let mut host = HostRecord {
            name: "odd".into(),
            backend: None,
            unusable: Some("unknown backend \"lxc\": expected docker or podman".into()),
            endpoint: Some("unix:///run/odd.sock".into()),
            enabled: true,
            created: 0,
            access: Default::default(),
        };
        // Not the configuration's engine: that would judge its agents by
        // an engine that is not theirs.
        let err = route(&config, &host).unwrap_err();
        assert!(err.contains("lxc"), "{err}");
        assert_eq!(effective(&config, &host).0, None);
        host.unusable = None;
        assert_eq!(backend_of(&config, &host), Ok(config.backend));
    }
}
