//! [`Connector`]: how core gets a client of a registered host's engine.
//! The lifecycle (a start, a stop, the watcher) and the fleet cleanup both
//! ask for one; the CLI builds Docker and Podman clients behind it. Its own
//! module, so that neither of them depends on the other for it.

use async_trait::async_trait;

use crate::backend::{BackendError, DynBackend};
use crate::state::HostRecord;

/// Connects the engine of a registered host. The CLI knows how to build
/// Docker and Podman clients; core only asks for one.
#[async_trait]
pub trait Connector: Send + Sync {
    /// A client of the engine behind `host`. Making it may send nothing
    /// (Podman's client connects lazily); the first request, or
    /// asking its identity ([`crate::identity`]), is what proves the engine
    /// answers.
    async fn connect(&self, host: &HostRecord) -> Result<DynBackend, BackendError>;
}
