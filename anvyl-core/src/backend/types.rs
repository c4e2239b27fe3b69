//! What the engine operations take and give, in anvyl's own types: specs
//! of what to make, summaries of what is there, and the streams of logs
//! and events.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::{Labels, Result};

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
    /// Its restart policy and how often the engine restarted it, when an
    /// inspection says (a listing does not).
    pub restarts: Restarts,
}

/// A container's restart policy and record, as an inspection tells them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Restarts {
    /// The policy it was created with.
    pub policy: crate::resources::Restart,
    /// How many times the engine has started it again.
    pub count: u32,
    /// The engine is between two runs of it and will start it again: its
    /// backend decides, from what the engine says (see
    /// [`Restarts::expected`]).
    pub restarting: bool,
}

/// How long after an exit an engine that reports no restarting state
/// (Podman) is trusted to start the container again. Podman restarts at
/// once; a container exited longer ago was stopped by someone, or its
/// restart failed — dead, not restarting.
pub const RESTART_WINDOW_SECS: i64 = 10;

impl Restarts {
    /// Whether an engine that shows `exited` between two runs will start
    /// the container again: it exited non-zero under `on-failure` with
    /// retries left, within [`RESTART_WINDOW_SECS`] of `now` (seconds since
    /// the epoch). Docker says `restarting` itself; its stop and kill
    /// cancel the restart, which this cannot see — hence the window.
    pub fn expected(&self, exit_code: Option<i64>, finished: Option<i64>, now: i64) -> bool {
        match self.policy {
            crate::resources::Restart::No => false,
            crate::resources::Restart::OnFailure(max) => {
                exit_code.is_some_and(|c| c != 0)
                    && max.is_none_or(|max| self.count < max)
                    && finished.is_some_and(|at| now - at <= RESTART_WINDOW_SECS)
            }
        }
    }
}

impl ContainerSummary {
    /// Whether its engine will start it again on its own (see
    /// [`Restarts`]). Such a container is alive: no cleanup or watcher
    /// may take it for dead.
    pub fn will_restart(&self) -> bool {
        self.restarts.restarting
    }
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// Id, always with the `sha256:` prefix.
    pub id: String,
    /// Its tags; empty for a dangling image.
    pub tags: Vec<ImageTag>,
    /// Labels.
    pub labels: Labels,
    /// The image it was built on, as the classic builder and buildah
    /// record it (`sha256:` form); `None` for a pulled image or when the
    /// engine does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// The parent an engine reports, as [`ImageSummary::parent`]: its empty
/// string (no parent) is `None`.
pub fn parent_image(parent: Option<&str>) -> Option<String> {
    parent.filter(|p| !p.is_empty()).map(normalise_image_id)
}

/// Normalises an image id to the `sha256:` form Docker uses.
pub fn normalise_image_id(id: &str) -> String {
    if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
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
    /// Mounts, limits, restart policy, user and working directory.
    pub resources: crate::resources::Resources,
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
    /// Credentials for the registries the Dockerfile pulls from, should
    /// the engine pull during the build (`X-Registry-Config`).
    pub credentials: crate::pull::Credentials,
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
/// [`super::Backend::container_events`]).
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
