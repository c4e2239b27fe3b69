//! The [`Backend`] trait: the few engine operations the pipeline and agent
//! start need, in anvyl's own types. Docker and Podman differ in error codes,
//! image naming and filter semantics; each backend absorbs those differences
//! so that nothing engine-specific reaches the pipeline.

mod error;
mod kind;
mod races;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::pull::{PullProgressSink, RegistryCredential};

pub use error::{root_cause, BackendError};
pub use kind::{engine_name, BackendKind, UnknownBackend};
pub use races::retry_build_races;
pub use types::*;

/// Labels of a container or image.
pub type Labels = BTreeMap<String, String>;

/// A backend used as a trait object.
pub type DynBackend = Arc<dyn Backend>;

/// Result of a backend operation.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// A container engine. Implementations: `anvyl-docker`, `anvyl-podman`, and
/// for tests the in-memory `anvyl_core::memory::MemoryBackend`.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The engine product this is; `None` for anvyl's own stand-ins (the
    /// in-memory engine of tests, [`crate::no_engine::NoEngine`]).
    fn kind(&self) -> Option<BackendKind>;

    /// The engine's own command for removing what anvyl leaves alone
    /// (dangling images, build cache); `None` when it has none.
    fn prune_hint(&self) -> Option<&'static str> {
        None
    }

    /// Checks that the engine answers: by default by asking its version; an
    /// engine with a cheaper probe (Docker's and libpod's `/_ping`) says so.
    async fn ping(&self) -> Result<()> {
        self.version().await.map(drop)
    }

    /// Engine and API versions.
    async fn version(&self) -> Result<EngineInfo>;

    /// The volume `name`; [`BackendError::NotFound`] when there is none.
    async fn volume(&self, name: &str) -> Result<Volume>;

    /// Creates the volume `name` with `labels`. One that exists already is
    /// a [`BackendError::Conflict`], or — as Docker answers — success
    /// without a change.
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()>;

    /// All containers (running or not) that match `query`.
    async fn list_containers(&self, query: &Query) -> Result<Vec<ContainerSummary>>;

    /// One container by id or exact name.
    async fn inspect_container(&self, id: &str) -> Result<ContainerSummary>;

    /// Creates a container; returns its id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;

    /// Starts a container; starting a running one is not an error.
    async fn start_container(&self, id: &str) -> Result<()>;

    /// Stops a container, killing it after `timeout`; stopping a stopped one
    /// is not an error.
    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()>;

    /// Removes a container, running or not, waiting at most `stop_timeout`
    /// for it to stop.
    async fn remove_container(&self, id: &str, stop_timeout: Duration) -> Result<()>;

    /// One attempt at building an image from `spec.context_dir`, removing
    /// intermediate containers even when a step fails.
    async fn build_once(
        &self,
        spec: &BuildSpec,
        progress: BuildProgress<'_>,
    ) -> Result<BuildOutput>;

    /// What the engine says when a concurrent image removal broke a build
    /// (see [`retry_build_races`]); none by default.
    fn build_races(&self) -> &'static [&'static str] {
        &[]
    }

    /// Builds an image: [`Backend::build_once`], tried again while the
    /// engine's own race with another client breaks it.
    async fn build_image(
        &self,
        spec: &BuildSpec,
        progress: BuildProgress<'_>,
    ) -> Result<BuildOutput> {
        retry_build_races(self, &spec.tag, self.build_races(), || {
            self.build_once(spec, progress)
        })
        .await
    }

    /// Pulls `reference` from its registry, with `credential` for it when
    /// the user has one, telling `progress` how far it has got. A registry
    /// that refuses, lacks the image or is not trusted is
    /// [`BackendError::Pull`].
    async fn pull_image(
        &self,
        reference: &str,
        credential: Option<&RegistryCredential>,
        progress: PullProgressSink<'_>,
    ) -> Result<()>;

    /// Adds the tag `target` (`repo:tag`) to the image `source`.
    async fn tag_image(&self, source: &str, target: &str) -> Result<()>;

    /// All images that match `query` (tagged or dangling).
    async fn list_images(&self, query: &Query) -> Result<Vec<ImageSummary>>;

    /// Every image, build steps' intermediates included, with its parent:
    /// what an owned build cache is judged by (see `pipeline::steps`). By
    /// default the tagged and dangling images of [`Backend::list_images`].
    async fn list_image_tree(&self) -> Result<Vec<ImageSummary>> {
        self.list_images(&Query::default()).await
    }

    /// One image by reference or id.
    async fn inspect_image(&self, reference: &str) -> Result<ImageSummary>;

    /// Removes one tag, or an untagged image by id, never forcing: an image
    /// used by a container, or still tagged elsewhere when named by id, is a
    /// [`BackendError::Conflict`].
    async fn remove_image(&self, reference: &str) -> Result<()>;

    /// Number of dangling (`<none>`) images, for the prune hint.
    async fn count_dangling_images(&self) -> Result<usize>;

    /// The events of containers whose labels `query` selects, from now on,
    /// until the connection ends (an engine that restarts ends it; the
    /// caller connects again). A watcher looks again at what is true on
    /// each event; one lost costs only the wait for its next resync. The
    /// default sends none: such an engine is watched by resync alone.
    fn container_events(&self, query: &Query) -> EventStream<'_> {
        let _ = query;
        Box::pin(futures::stream::pending())
    }

    /// Sends a container's logs to `sink`: the last `tail` lines (all when
    /// `None`), then, with `follow`, new output until the container stops.
    async fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
        sink: LogSink<'_>,
    ) -> Result<()>;
}
