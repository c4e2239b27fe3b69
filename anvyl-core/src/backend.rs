//! The [`Backend`] trait: the few engine operations the pipeline and agent
//! start need, in anvyl's own types. Docker and Podman differ in error codes,
//! image naming and filter semantics; each backend absorbs those differences
//! so that nothing engine-specific reaches the pipeline.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Labels of a container or image.
pub type Labels = BTreeMap<String, String>;

/// A backend used as a trait object.
pub type DynBackend = Arc<dyn Backend>;

/// Which engine product a host runs: the one kind the command line
/// (`--backend`), the configuration (`backend = "podman"`) and the hosts
/// registry all use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Docker Engine API.
    Docker,
    /// Podman libpod API.
    Podman,
}

impl BackendKind {
    /// Every kind, in the order help lists them.
    pub const ALL: [Self; 2] = [Self::Docker, Self::Podman];

    /// The name users type and the registry stores: `docker`, `podman`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }

    /// The engine's product name, as users know it.
    pub fn engine_name(self) -> &'static str {
        match self {
            Self::Docker => "Docker",
            Self::Podman => "Podman",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend name that is not `docker` or `podman`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: expected docker or podman")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

impl rusqlite::ToSql for BackendKind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for BackendKind {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

/// What the engine says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineInfo {
    /// Engine version, e.g. `20.10.24`.
    pub version: String,
    /// API version in use, e.g. `1.41`.
    pub api_version: String,
}

/// A selection of resources. Every listed label must match. A backend
/// lets the engine filter where that is cheap, or matches the labels
/// itself (Docker's images: the containerd store's label filter is slow).
/// `name` narrows containers by name and images by reference, but engines
/// match loosely (substrings, every tag of a matching image): callers
/// compare exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Labels that must be present with these values.
    pub labels: Labels,
    /// A name (containers) or reference (images) hint.
    pub name: Option<String>,
}

impl Query {
    /// Selects by labels only.
    pub fn labelled(labels: Labels) -> Self {
        Self { labels, name: None }
    }

    /// Selects by name (or image reference) only.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            labels: Labels::new(),
            name: Some(name.into()),
        }
    }
}

/// A container's lifecycle state, as far as anvyl cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running (or paused, or restarting: its process exists).
    Running,
    /// Exited or dead.
    Exited,
    /// Anything the engine reports that anvyl does not distinguish.
    Other,
}

/// A container as listed or inspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSummary {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Id of the image the container runs.
    pub image_id: String,
    /// Labels.
    pub labels: Labels,
    /// Lifecycle state.
    pub state: ContainerState,
    /// The main process's exit code, when it has exited and the answer
    /// says (an inspection does; a listing does not).
    pub exit_code: Option<i64>,
    /// When its main process last exited (seconds since the epoch), when
    /// it has and an inspection says.
    pub finished: Option<i64>,
}

/// One tag of an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ImageTag {
    /// The reference as the engine spells it (`localhost/anvyl-agent-x:latest`
    /// on Podman); used to remove the tag.
    pub reference: String,
    /// The repository with engine-added prefixes removed (`anvyl-agent-x`);
    /// used for exact comparison with anvyl's names.
    pub repository: String,
    /// The tag (`latest`).
    pub tag: String,
}

impl ImageTag {
    /// Splits `reference` into repository and tag as written.
    pub fn parse(reference: &str) -> Self {
        Self::parse_on("", reference)
    }

    /// Splits `reference` as an engine lists it, dropping only
    /// `implicit_prefix`, the prefix that engine adds on its own to a name
    /// without a registry (each backend crate names its own: Docker's
    /// `docker.io/library/`, Podman's `localhost/`). Any other prefix is
    /// another repository — a user's.
    pub fn parse_on(implicit_prefix: &str, reference: &str) -> Self {
        let (repo, tag) = match reference.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (reference, "latest"),
        };
        let repository = repo.strip_prefix(implicit_prefix).unwrap_or(repo);
        Self {
            reference: reference.to_string(),
            repository: repository.to_string(),
            tag: tag.to_string(),
        }
    }

    /// The tags of an engine listing, without the `<none>:<none>` that
    /// Docker 20.10 and Podman list for a dangling image.
    pub fn parse_listing<S: AsRef<str>>(implicit_prefix: &str, repo_tags: &[S]) -> Vec<Self> {
        repo_tags
            .iter()
            .map(AsRef::as_ref)
            .filter(|t| !t.starts_with("<none>"))
            .map(|t| Self::parse_on(implicit_prefix, t))
            .collect()
    }
}

impl fmt::Display for ImageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// An image as listed or inspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// Id, always with the `sha256:` prefix.
    pub id: String,
    /// Its tags; empty for a dangling image.
    pub tags: Vec<ImageTag>,
    /// Labels.
    pub labels: Labels,
}

/// Normalises an image id to the `sha256:` form Docker uses.
pub fn normalise_image_id(id: &str) -> String {
    if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

/// Runs `build` up to three times while it fails with a message containing
/// one of `races`: the engine's own failures when another client removes
/// images during a build (Podman's "layer not known", Docker's "No such
/// image"), not the Dockerfile's fault. Each backend names its engine's.
///
/// Before each retry the attempt's tag is removed from `backend`: an
/// attempt the race broke may have committed and tagged its image all the
/// same, and the retry, tagging its own image, would leave that one
/// untagged — labelled by a start that then succeeds, which no cleanup
/// takes for its own (a user's commit of an agent looks just the same).
/// The tag is this start's alone (`anvyl-agent-<name>:<start>`).
pub async fn retry_build_races<F, Fut>(
    backend: &dyn Backend,
    tag: &str,
    races: &[&str],
    mut build: F,
) -> Result<BuildOutput>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<BuildOutput>>,
{
    let raced = |e: &BackendError| matches!(e, BackendError::BuildFailed { message } if races.iter().any(|m| message.contains(m)));
    let mut retries = 0;
    loop {
        match build().await {
            // At once: the other client's removal is over by the time it
            // failed us.
            Err(e) if retries < 2 && raced(&e) => {
                retries += 1;
                tracing::warn!("build of {tag} met the engine's race ({e}); trying again");
                match backend.remove_image(tag).await {
                    Ok(()) => tracing::debug!("removed {tag}, left by the broken attempt"),
                    Err(e) if e.is_not_found() => {}
                    // The retry moves the tag: what stays untagged is then
                    // only what this removal could not take.
                    Err(e) => tracing::warn!("cannot remove {tag} of the broken attempt: {e}"),
                }
            }
            other => return other,
        }
    }
}

/// The product name of `backend`'s engine, for messages and identities;
/// anvyl's own stand-ins (the in-memory engine, [`crate::no_engine::NoEngine`]) are
/// `Memory`.
pub fn engine_name(backend: &dyn Backend) -> &'static str {
    backend.kind().map_or("Memory", BackendKind::engine_name)
}

/// The innermost message of an error chain — "Connection refused", not
/// "error trying to connect" — for one-line messages from client errors.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// A volume as inspected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Volume {
    /// Labels.
    pub labels: Labels,
    /// Where the engine keeps its files: below the engine's data root.
    pub mountpoint: String,
}

/// A container to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Image reference or id.
    pub image: String,
    /// Command; the image's `CMD` when `None`.
    pub command: Option<Vec<String>>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Labels, ownership labels included (see [`crate::Ownership::stamp`]).
    pub labels: Labels,
    /// Network mode; the engine's default when `None`.
    pub network: Option<String>,
}

/// An image to build from a context directory holding a `Dockerfile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Directory sent as the build context.
    pub context_dir: PathBuf,
    /// The tag to give the image.
    pub tag: String,
    /// Labels, ownership labels included.
    pub labels: Labels,
    /// Network mode of `RUN` steps; the engine's default when `None`.
    pub network: Option<String>,
}

/// What a successful build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    /// Id of the built image.
    pub image_id: String,
}

/// Receives build output lines as they arrive (for a spinner or the log).
pub type BuildProgress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Which stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives container log chunks as they arrive.
pub type LogSink<'a> = &'a (dyn Fn(LogStream, &[u8]) + Send + Sync);

/// Something that happened to a container, as an engine's event stream
/// says it: a reason to look again, never a truth to act on (see
/// [`Backend::container_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// What happened: `start`, `die`, `destroy`, … as the engine names it.
    pub action: String,
    /// The container's id, when the engine says.
    pub container: String,
}

/// An engine's container events, until its connection ends.
pub type EventStream<'a> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ContainerEvent>> + Send + 'a>>;

/// The one error type of every backend. Engine client errors never cross it;
/// they are mapped by HTTP status and error kind. The few answers only
/// their text tells apart (the containerd store's transient reads, a build
/// broken by a concurrent image removal) are matched by text in the backend
/// crate that knows them, each with a conformance check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The engine cannot be reached at `endpoint`.
    #[error(
        "cannot reach the {} engine at {endpoint}: {message}",
        .engine.map_or("container", BackendKind::engine_name)
    )]
    Unreachable {
        /// Which engine; `None` for anvyl's own stand-ins.
        engine: Option<BackendKind>,
        /// The endpoint tried.
        endpoint: String,
        /// What the transport said.
        message: String,
    },
    /// The container or image does not exist (HTTP 404).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The operation conflicts with the resource's state (HTTP 409, or
    /// Podman's equivalent): in use, name taken, removal in progress.
    #[error("{what}: conflict: {message}")]
    Conflict {
        /// The resource.
        what: String,
        /// The engine's explanation.
        message: String,
    },
    /// An image build failed (a step exited non-zero, a bad base image).
    #[error("image build failed: {message}")]
    BuildFailed {
        /// The engine's explanation, e.g. the failing step.
        message: String,
    },
    /// Any other answer from the engine.
    #[error("{operation} failed: {message}")]
    Engine {
        /// The operation, e.g. `remove container`.
        operation: &'static str,
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// The engine's explanation.
        message: String,
    },
    /// A local problem before the request (e.g. packing the build context).
    #[error("{operation}: {message}")]
    Local {
        /// The operation.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl BackendError {
    /// True for [`BackendError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for [`BackendError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True when the engine never answered: not reachable at all, or no
    /// HTTP status (refused, dropped, silent past the request timeout).
    /// Nothing can be concluded from such an engine about its resources.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Engine { status: None, .. }
        )
    }
}

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

    /// Checks that the engine answers.
    async fn ping(&self) -> Result<()>;

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

    /// Builds an image from `spec.context_dir`, removing intermediate
    /// containers even when a step fails.
    async fn build_image(
        &self,
        spec: &BuildSpec,
        progress: BuildProgress<'_>,
    ) -> Result<BuildOutput>;

    /// Adds the tag `target` (`repo:tag`) to the image `source`.
    async fn tag_image(&self, source: &str, target: &str) -> Result<()>;

    /// All images that match `query` (tagged or dangling).
    async fn list_images(&self, query: &Query) -> Result<Vec<ImageSummary>>;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failing(message: &str) -> Result<BuildOutput> {
        Err(BackendError::BuildFailed {
            message: message.into(),
        })
    }

    #[tokio::test]
    async fn a_build_is_tried_three_times_on_the_engines_race_only() {
        let engine = crate::memory::MemoryBackend::new();
        let tries = AtomicU32::new(0);
        let raced = retry_build_races(&engine, "x:latest", &["layer not known"], || async {
            tries.fetch_add(1, Ordering::SeqCst);
            failing("layer not known")
        })
        .await;
        assert!(raced.is_err());
        assert_eq!(tries.swap(0, Ordering::SeqCst), 3);

        let own = retry_build_races(&engine, "x:latest", &["layer not known"], || async {
            tries.fetch_add(1, Ordering::SeqCst);
            failing("RUN false: exit code 1")
        })
        .await;
        assert!(own.is_err());
        assert_eq!(
            tries.swap(0, Ordering::SeqCst),
            1,
            "the Dockerfile's own failure"
        );

        let second = retry_build_races(&engine, "x:latest", &["layer not known"], || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 => failing("layer not known"),
                _ => Ok(BuildOutput {
                    image_id: "sha256:1".into(),
                }),
            }
        })
        .await;
        assert_eq!(second.unwrap().image_id, "sha256:1");
    }

    /// An attempt the race broke after it tagged its image: the retry's
    /// image takes the tag, and the broken attempt's image is gone, not
    /// left untagged with the start's labels.
    #[tokio::test]
    async fn a_broken_attempts_image_is_removed_before_the_retry() {
        let engine = crate::memory::MemoryBackend::new();
        let labels = Labels::from([("io.anvyl.start".to_string(), "s1".to_string())]);
        let first = std::sync::Mutex::new(None);
        let built = retry_build_races(&engine, "x:s1", &["layer not known"], || async {
            let id = engine.seed_image(&["x:s1"], labels.clone());
            let mut first = first.lock().unwrap();
            if first.is_none() {
                *first = Some(id);
                return failing("layer not known");
            }
            Ok(BuildOutput { image_id: id })
        })
        .await
        .unwrap();
        let first = first.lock().unwrap().clone().unwrap();
        assert_ne!(first, built.image_id);
        assert!(engine.inspect_image(&first).await.is_err(), "left behind");
        assert_eq!(
            engine.inspect_image("x:s1").await.unwrap().id,
            built.image_id
        );
    }
}
