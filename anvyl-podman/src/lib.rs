//! anvyl's [`Backend`](anvyl_core::Backend) for Podman's libpod API, through
//! `podman-api`.

use std::time::Duration;

use anvyl_core::BackendError;

/// Container limits Podman 4 does not apply by itself through its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `nofile`.
    pub nofile: u64,
    /// `nproc`.
    pub nproc: u64,
}

/// The endpoint when configuration names none.
pub fn default_endpoint() -> String {
    if let Some(host) = std::env::var("CONTAINER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
    {
        return host;
    }
    if let Some(dir) = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .filter(|d| !d.is_empty())
    {
        let rootless = std::path::Path::new(&dir).join("podman/podman.sock");
        if rootless.exists() {
            return format!("unix://{}", rootless.display());
        }
    }
    "unix:///run/podman/podman.sock".to_string()
}

/// A Podman engine.
#[derive(Debug)]
pub struct PodmanBackend;

impl PodmanBackend {
    /// Connects to `endpoint`.
    pub async fn connect(
        endpoint: &str,
        _timeout: Duration,
        _limits: Limits,
    ) -> Result<std::sync::Arc<dyn anvyl_core::Backend>, BackendError> {
        Err(BackendError::Unreachable {
            engine: "Podman",
            endpoint: endpoint.to_string(),
            message: "the Podman backend is not built yet".into(),
        })
    }
}
