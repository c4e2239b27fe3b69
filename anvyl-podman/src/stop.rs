//! Stopping a container by signals. libpod's stop reads `timeout` while
//! podman-api sends `Timeout`, so libpod would wait the container's own stop
//! timeout (10 s) whatever was asked: anvyl sends the stop signal and the
//! SIGKILL itself, and waits for the engine to say the container stopped.

use std::time::Duration;

use anvyl_core::backend::Result;
use anvyl_core::{Backend, BackendError, ContainerState};

use crate::PodmanBackend;

impl PodmanBackend {
    /// Stops a container the way `docker stop -t` does: its stop signal,
    /// then SIGKILL once `timeout` has passed (at once for a zero one).
    pub(crate) async fn stop(&self, id: &str, timeout: Duration) -> Result<()> {
        let what = format!("container {id}");
        if !timeout.is_zero() {
            // libpod's stop reads `timeout`, podman-api sends `Timeout`:
            // libpod would wait the container's own stop timeout (10 s)
            // whatever was asked. So a stop is done here the way
            // `docker stop -t` does it: the container's stop signal, then
            // SIGKILL once `timeout` has passed.
            let container = self.client.containers().get(id);
            let config = self
                .read("inspect container", &what, || container.inspect())
                .await?
                .config;
            let signal = config
                .and_then(|c| c.stop_signal)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "SIGTERM".into());
            if !self.signal(id, &what, &signal).await? {
                return Ok(());
            }
            let deadline = tokio::time::Instant::now() + timeout;
            while tokio::time::Instant::now() < deadline {
                if self.inspect_container(id).await?.state != ContainerState::Running {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // A zero timeout, or one that has passed, is a kill.
        if !self.signal(id, &what, "SIGKILL").await? {
            return Ok(());
        }
        // The kill is asynchronous: wait until the engine says so.
        for _ in 0..100 {
            if self.inspect_container(id).await?.state != ContainerState::Running {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BackendError::Engine {
            operation: "stop container",
            status: None,
            message: format!("{what} still runs 5 s after SIGKILL"),
        })
    }

    /// Sends `signal` to a container's main process: `Ok(true)` when it was
    /// delivered, `Ok(false)` when the container was not running (signalling
    /// a stopped container is a 500 in Podman 4.3, so its state decides).
    pub(crate) async fn signal(&self, id: &str, what: &str, signal: &str) -> Result<bool> {
        let container = self.client.containers().get(id);
        match self
            .call("stop container", what, container.send_signal(signal))
            .await
        {
            Ok(()) => Ok(true),
            Err(e)
                if e.is_not_found()
                    || self.inspect_container(id).await?.state == ContainerState::Running =>
            {
                Err(e)
            }
            Err(_) => Ok(false),
        }
    }
}
