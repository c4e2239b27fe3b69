//! The cleanup pipeline: [`Cleanup::plan`] decides, from the engine's
//! listings and the state store, exactly which resources of a scope are
//! orphans; [`Cleanup::apply`] removes those and nothing else, in four steps
//! (containers, images, build directories, status reset). Each step runs even
//! when an earlier one failed, and each item is independent of the others.
//!
//! Concurrent commands are fenced by the start id (see `state::status`):
//! the plan lists the engine first and reads the state after, so any start
//! whose resources it saw is already recorded; apply skips every item whose
//! start is live by then and resets only statuses nobody changed since.

mod apply;
mod fleet;
mod listing;
mod live;
mod plan;
#[cfg(test)]
mod property;
mod report;
mod retention;
mod steps;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::backend::Backend;
use crate::build_root::BuildRoot;
use crate::ids::{InstanceId, StartId};
use crate::name::AgentName;
use crate::ownership::{Claim, Ownership};
use crate::state::{AgentStatus, StateStore};

pub use fleet::{Fleet, FleetPlan, FleetReport, HostError, HostPlan, HostReport, HOSTS_AT_ONCE};
pub use report::{ItemReport, Outcome, Report, SkipReason, StepReport};
pub use retention::Retention;
pub use steps::PlannedStep;

/// What a cleanup covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Scope {
    /// Exactly the resources of one failed start.
    Start(StartId),
    /// One agent's orphaned resources.
    Agent(AgentName),
    /// The orphaned resources of every agent of this installation.
    All,
}

/// The four steps, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// 1. Containers, forced.
    Containers,
    /// 2. Images, by tag.
    Images,
    /// 3. Build directories below the build root.
    BuildDirs,
    /// 4. Status reset to `stopped`.
    StatusReset,
}

impl Step {
    /// All steps, in order.
    pub const ALL: [Step; 4] = [
        Step::Containers,
        Step::Images,
        Step::BuildDirs,
        Step::StatusReset,
    ];

    /// A short human title.
    pub fn title(self) -> &'static str {
        self.words().title
    }

    /// Every word the plan, the progress bar and the summary use for this
    /// step: one table, so no two views name a step differently by mistake.
    pub fn words(self) -> &'static StepWords {
        &STEP_WORDS[self as usize]
    }

    /// Its place in [`Step::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a step is called where (see [`Step::words`]).
#[derive(Debug)]
pub struct StepWords {
    /// "build directories": log lines.
    pub title: &'static str,
    /// "build dirs": the progress bar and the plan's columns, where space
    /// is short.
    pub short: &'static str,
    /// "build dir": the plan's STEP column, one item.
    pub kind: &'static str,
    /// "build directory": before an item's name ("Skipped build directory …").
    pub noun: &'static str,
    /// "build directory", "build directories": what the summary counts.
    pub counted: (&'static str, &'static str),
}

/// In [`Step::ALL`] order.
const STEP_WORDS: [StepWords; 4] = [
    StepWords {
        title: "containers",
        short: "containers",
        kind: "container",
        noun: "container",
        counted: ("container", "containers"),
    },
    StepWords {
        title: "images",
        short: "images",
        kind: "image",
        noun: "image",
        counted: ("image", "images"),
    },
    StepWords {
        title: "build directories",
        short: "build dirs",
        kind: "build dir",
        noun: "build directory",
        counted: ("build directory", "build directories"),
    },
    StepWords {
        title: "status resets",
        short: "resets",
        kind: "status",
        noun: "status reset of",
        // "reset 1 agent"
        counted: ("agent", "agents"),
    },
];

/// Tunables of a cleanup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupSettings {
    /// How many removals run at once.
    pub parallelism: usize,
    /// How long a forced container removal waits for the container to stop.
    pub stop_timeout: Duration,
    /// How many times a 409 is retried before it is final.
    pub conflict_retries: u32,
    /// The first backoff after a 409; doubled each retry.
    pub conflict_backoff: Duration,
    /// Also remove unlabelled resources named exactly like a known agent
    /// (from older tooling). Off by default: they may be a user's own.
    pub include_unlabelled: bool,
    /// Clean up another installation's resources instead of this one's:
    /// after a lost or emptied state store, its labelled leftovers belong to
    /// an instance id nobody runs any more. Only on the user's request.
    pub adopt: Option<InstanceId>,
    /// Whether the step images of anvyl's own builds are anvyl's to remove.
    pub build_cache: BuildCache,
    /// What is kept for restarts although it could go.
    pub retention: Retention,
}

/// Who removes the step images ("build cache") of anvyl's builds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildCache {
    /// The engine's prune, as for any build (the default): anvyl leaves
    /// them and prints the prune hint. Restarts reuse them.
    #[default]
    Keep,
    /// anvyl: the step images each start recorded its build made go with
    /// the image they led to, unless another image is built on them or a
    /// start in progress may use them.
    Remove,
}

impl Default for CleanupSettings {
    fn default() -> Self {
        Self {
            parallelism: 16,
            stop_timeout: Duration::ZERO,
            conflict_retries: 4,
            conflict_backoff: Duration::from_millis(100),
            include_unlabelled: false,
            adopt: None,
            build_cache: BuildCache::Keep,
            retention: Retention::default(),
        }
    }
}

/// A container the plan will remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedContainer {
    /// Full id; apply acts on this id only.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The agent it belongs to.
    pub agent: AgentName,
    /// The start that made it (`None` when unlabelled).
    pub start: Option<StartId>,
    /// Why it is ours.
    pub claim: Claim,
}

/// An image tag (or untagged image) the plan will remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedImage {
    /// What to remove: the tag as the engine spells it, or the id of an
    /// untagged image.
    pub reference: String,
    /// The tag with engine prefixes removed, or the short id when untagged.
    pub display: String,
    /// The image id the reference named when planned.
    pub image_id: String,
    /// The agent it belongs to.
    pub agent: AgentName,
    /// The start that made it (`None` when unlabelled).
    pub start: Option<StartId>,
    /// Why it is ours.
    pub claim: Claim,
}

impl PlannedImage {
    /// Whether the plan found the image untagged (its reference is its id).
    pub fn is_untagged(&self) -> bool {
        self.reference == self.image_id
    }

    /// Whether it is the agent's `:latest`: the one tag of anvyl's that
    /// moves, to each new build of the agent, while nothing holds a lock.
    pub fn is_latest(&self) -> bool {
        self.display == self.agent.image_tag()
    }
}

/// A build directory the plan will remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDir {
    /// The directory, directly below the build root.
    pub path: PathBuf,
    /// Its name below the build root: `<agent>.<start>`.
    pub name: String,
    /// The agent it was made for.
    pub agent: AgentName,
    /// The start it belongs to.
    pub start: StartId,
}

/// An agent whose status the plan resets to `stopped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedReset {
    /// The agent.
    pub agent: AgentName,
    /// Its status when planned.
    pub from: AgentStatus,
    /// Its current start when planned: the reset applies only if it is
    /// still the current one.
    pub start: Option<StartId>,
    /// True when it said running but its container is gone or exited: it is
    /// marked failed before anything is removed.
    pub stale: bool,
}

/// Something owned that the plan deliberately keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// What it is (`container anvyl-agent-web`).
    pub what: String,
    /// Why it stays.
    pub reason: String,
}

/// What a cleanup will do, decided before anything is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The scope planned.
    pub scope: Scope,
    /// Step 1.
    pub containers: Vec<PlannedContainer>,
    /// Step 2.
    pub images: Vec<PlannedImage>,
    /// Step 2, after the images: the step images of anvyl's own builds
    /// (only with `build_cache = "remove"`), children before parents.
    pub build_steps: Vec<PlannedStep>,
    /// Records of build steps found gone, forgotten by apply.
    #[serde(skip)]
    pub forget_steps: Vec<i64>,
    /// Step 3.
    pub build_dirs: Vec<PlannedDir>,
    /// Step 4.
    pub resets: Vec<PlannedReset>,
    /// Owned resources left alone, with the reason (live agents, starts in
    /// progress).
    pub kept: Vec<Kept>,
    /// Dangling images on the engine, which anvyl leaves to the engine's prune.
    pub dangling_images: usize,
    /// Why the build root could not be read: step 3 fails with this, the
    /// other steps still run.
    pub build_root_error: Option<String>,
    /// Other anvyl installations whose labelled resources are on this engine
    /// (all-agents scope only), with how many: candidates for `adopt`.
    pub other_instances: Vec<OtherInstance>,
}

/// Another installation's labelled resources found on the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherInstance {
    /// Its instance id.
    pub instance: String,
    /// How many of its containers and image tags were listed.
    pub resources: usize,
}

impl Plan {
    /// True when there is nothing to remove or reset.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.images.is_empty()
            && self.build_steps.is_empty()
            && self.build_dirs.is_empty()
            && self.resets.is_empty()
            && self.build_root_error.is_none()
    }

    /// Number of resources and resets planned.
    pub fn len(&self) -> usize {
        Step::ALL.iter().map(|step| self.count(*step)).sum()
    }

    /// Number of items planned for `step`. A build root that cannot be
    /// read counts as one item of step 3: apply reports it, as a failure.
    pub fn count(&self, step: Step) -> usize {
        match step {
            Step::Containers => self.containers.len(),
            Step::Images => self.images.len() + self.build_steps.len(),
            Step::BuildDirs => self.build_dirs.len() + usize::from(self.build_root_error.is_some()),
            Step::StatusReset => self.resets.len(),
        }
    }
}

/// Told of every item an apply finishes, the moment it finishes — removed,
/// already gone, kept or failed — for a progress display. Hosts are applied
/// concurrently, so calls come from several tasks.
#[derive(Clone, Copy, Default)]
pub struct Progress<'a>(Option<&'a Tell<'a>>);

/// What [`Progress`] calls: the step and the finished item's report.
pub type Tell<'a> = dyn Fn(Step, &ItemReport) + Send + Sync + 'a;

impl<'a> Progress<'a> {
    /// Calls `tell` for every finished item.
    pub fn new(tell: &'a Tell<'a>) -> Self {
        Self(Some(tell))
    }

    /// Tells nobody.
    pub fn none() -> Self {
        Self(None)
    }

    fn done(&self, step: Step, item: &ItemReport) {
        if let Some(tell) = self.0 {
            tell(step, item);
        }
    }
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(..)"
        } else {
            "Progress(none)"
        })
    }
}

/// Errors that stop planning (apply reports per item instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// The engine failed to list what there is.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// A cleanup bound to one engine — one registered host's — one state store
/// and one build root.
#[derive(Debug)]
pub struct Cleanup<'a> {
    backend: &'a dyn Backend,
    state: &'a StateStore,
    ownership: Ownership,
    build_root: BuildRoot,
    settings: CleanupSettings,
    host: String,
    part: Part,
    progress: Progress<'a>,
}

/// Which of the resources a [`Cleanup`] covers. One host's engine holds
/// containers and images; the build root is this machine's, whatever the
/// host: a fleet cleanup plans it once, not once per host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The engine's resources, the status resets and the build root.
    Everything,
    /// The engine's resources and the status resets of its agents.
    Engine,
    /// The build root only: the engine is never asked.
    BuildRoot,
}

impl Part {
    fn has_engine(self) -> bool {
        self != Self::BuildRoot
    }

    fn has_build_root(self) -> bool {
        self != Self::Engine
    }
}

impl<'a> Cleanup<'a> {
    /// A cleanup of the installation behind `state` on `backend`.
    pub fn new(
        backend: &'a dyn Backend,
        state: &'a StateStore,
        build_root: BuildRoot,
        settings: CleanupSettings,
    ) -> Self {
        Self {
            backend,
            state,
            ownership: Ownership::new(
                settings
                    .adopt
                    .clone()
                    .unwrap_or_else(|| state.instance_id().clone()),
            ),
            build_root,
            settings,
            host: crate::state::LOCAL_HOST.to_string(),
            part: Part::Everything,
            progress: Progress::none(),
        }
    }

    /// Covers only `part` of the resources (default: everything).
    pub fn covering(mut self, part: Part) -> Self {
        self.part = part;
        self
    }

    /// Tells `progress` of every item [`Cleanup::apply`] finishes.
    pub fn reporting_to(mut self, progress: Progress<'a>) -> Self {
        self.progress = progress;
        self
    }

    /// The registered host whose engine `backend` is (default: `local`).
    /// Agents assigned to another host are never reconciled or reset from
    /// this engine's listings: their container is on their own host.
    pub fn on_host(mut self, host: &str) -> Self {
        self.host = host.to_string();
        self
    }
}

#[cfg(test)]
mod step_tests {
    use super::Step;

    /// The words table is indexed by a step's place in `ALL`: a step added
    /// or moved in one and not the other would name another step.
    #[test]
    fn each_step_has_its_own_words_in_order() {
        let titles: Vec<&str> = Step::ALL.iter().map(|s| s.words().title).collect();
        assert_eq!(
            titles,
            ["containers", "images", "build directories", "status resets"]
        );
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(step.index(), i, "{step:?}");
        }
    }
}
