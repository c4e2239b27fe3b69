//! Agent lifecycle: start (with guaranteed cleanup of a failed start), stop
//! and remove. A start either ends with a running agent registered with the
//! hosts registry, or — on any failure or interruption — with everything it
//! created removed by the cleanup pipeline and the agent back to `stopped`.

mod base;
mod context;
mod dockerfile;
mod observe;
#[cfg(test)]
mod races;
mod start;
mod steps;
mod stop;
#[cfg(test)]
mod tests;
mod watch;

use std::time::Duration;

use crate::backend::BackendError;
use crate::build_root::BuildRoot;
use crate::connector::Connector;
use crate::identity::RecordedEngine;
use crate::ids::StartId;
use crate::name::AgentName;
use crate::pipeline::{CleanupSettings, Report};
use crate::state::{HostRecord, StateError, StateStore};

pub use context::{pack_context, pack_labelled_context};
pub use dockerfile::{
    labelled_dockerfile, render_dockerfile, validate_spec, InvalidSpec, LABELLED_DOCKERFILE,
};
pub use observe::{Observed, OBSERVE_TIMEOUT};
pub use start::Started;
pub use steps::{MadeStep, StepRecorder};
pub use stop::{Removed, Stopped};
pub use watch::{Watch, WatchAction, CONFIRM, RETRY};

/// Tunables of starts and stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// How long a started container must keep running before the agent is
    /// registered; a command that exits at once fails the start.
    pub settle: Duration,
    /// Network mode of containers and build steps when the agent names none.
    pub network: Option<String>,
    /// How long `stop` lets a container shut down before killing it. The
    /// default, 0, is the CLI's and the cleanup's: killed at once.
    pub stop_timeout: Duration,
    /// Settings of the cleanup a failed start runs.
    pub cleanup: CleanupSettings,
    /// After an interrupted build, how long to wait before looking once more
    /// for what the engine finished on its own.
    pub interrupt_grace: Duration,
    /// When a start pulls its base image, for agents that say nothing.
    pub pull: crate::pull::PullPolicy,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(1),
            network: None,
            stop_timeout: CleanupSettings::default().stop_timeout,
            cleanup: CleanupSettings::default(),
            interrupt_grace: Duration::from_secs(2),
            pull: crate::pull::PullPolicy::default(),
        }
    }
}

/// Why a start failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartCause {
    /// No registered, enabled host.
    #[error("no hosts available")]
    NoHost,
    /// The host's engine could not be reached.
    #[error("host '{host}': {cause}")]
    Host {
        /// The host.
        host: String,
        /// Why.
        cause: BackendError,
    },
    /// The image build failed; with the last lines the build printed (the
    /// failing step's own output), which are otherwise only shown with -v.
    #[error("{cause}{}", output_block("last output of the build", last_output))]
    Build {
        /// Why.
        cause: BackendError,
        /// The build's last lines, escape codes removed.
        last_output: Vec<String>,
    },
    /// The container could not be created.
    #[error("{}", in_context("cannot create container", .0))]
    CreateContainer(BackendError),
    /// The container could not be started.
    #[error("{}", in_context("cannot start container", .0))]
    StartContainer(BackendError),
    /// The agent's command ended before the settle time had passed.
    #[error("the agent's command exited{} {:.1}s after it started: it must keep running{}",
        exit_code.map(|c| format!(" with code {c}")).unwrap_or_default(),
        *after_ms as f64 / 1000.0,
        output_block("its last output", last_output))]
    Exited {
        /// Milliseconds from the container's start.
        after_ms: u64,
        /// The exit code, when the engine says.
        exit_code: Option<i64>,
        /// The container's last lines of output.
        last_output: Vec<String>,
    },
    /// The container could not be looked at while it settled.
    #[error("{}", in_context("cannot check the container while it settles", .0))]
    Settle(BackendError),
    /// The registry could not record the running agent.
    #[error("registration failed: {0}")]
    Registration(StateError),
    /// The base image could not be had: a pull failed, or the policy
    /// forbids one and the engine lacks it.
    #[error("{0}")]
    Base(BackendError),
    /// The user's registry credentials could not be read.
    #[error("{0}")]
    Credentials(crate::pull::CredentialError),
    /// The state store could not read the hosts or record the start's
    /// progress.
    #[error("{0}")]
    State(StateError),
    /// The start's build directory could not be made.
    #[error("cannot make build directory: {0}")]
    BuildDir(crate::build_root::BuildRootError),
}

impl StartCause {
    /// The engine's answer behind this cause, when an engine call failed:
    /// what decides whether the host was unreachable.
    pub fn engine_error(&self) -> Option<&BackendError> {
        match self {
            Self::Host { cause, .. }
            | Self::Build { cause, .. }
            | Self::CreateContainer(cause)
            | Self::StartContainer(cause)
            | Self::Settle(cause)
            | Self::Base(cause) => Some(cause),
            Self::NoHost
            | Self::Exited { .. }
            | Self::Registration(_)
            | Self::State(_)
            | Self::Credentials(_)
            | Self::BuildDir(_) => None,
        }
    }
}

/// `error`, after `context` unless the error already names the operation
/// ("start container failed: …", not "cannot start container: start
/// container failed: …").
fn in_context(context: &str, error: &BackendError) -> String {
    match error {
        BackendError::Engine { .. } => error.to_string(),
        other => format!("{context}: {other}"),
    }
}

/// How many lines of a failed build's or an exited command's output an
/// error shows.
pub const LAST_LINES: usize = 10;

/// `title` and `lines`, indented under an error's first line; nothing when
/// there are no lines.
fn output_block(title: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut block = format!("\n  {title}:");
    for line in lines {
        block.push_str("\n  | ");
        block.push_str(line);
    }
    block
}

/// The last `LAST_LINES` non-blank lines of `text`, without escape codes
/// (a build step's or a command's colours arrive raw).
pub(crate) fn last_lines(text: &[u8]) -> Vec<String> {
    let plain = strip_ansi_escapes::strip(text);
    let text = String::from_utf8_lossy(&plain);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(LAST_LINES)..].to_vec()
}

/// A start that did not end with a running agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Refused by the state store before anything was created (unknown
    /// agent, already starting or running).
    #[error(transparent)]
    Refused(#[from] StateError),
    /// A precondition does not hold (an invalid spec, a missing API key
    /// variable); nothing was recorded or created.
    #[error("{0}")]
    Precondition(String),
    /// Failed; everything the start created was cleaned up (see `report`).
    #[error("start of agent '{agent}' failed: {cause}")]
    Failed {
        /// The agent.
        agent: AgentName,
        /// The start.
        start: StartId,
        /// Why.
        cause: StartCause,
        /// What the cleanup did.
        report: Report,
    },
    /// The agent was dead (a crashed start, a container that died or
    /// vanished) and what it left could not be cleaned up; nothing was
    /// started.
    #[error("agent '{agent}' is not running ({finding}), and what it left cannot be cleaned up: {cause}")]
    Unhealed {
        /// The agent.
        agent: AgentName,
        /// What was found.
        finding: String,
        /// Why it could not be cleaned up.
        cause: Box<LifecycleError>,
    },
    /// Recorded as running, and it could not be observed (its host does
    /// not answer, another engine is behind it): a host that does not
    /// answer is not a dead agent, nor a live one. Nothing was done.
    #[error("agent '{agent}' is recorded as running, but whether it runs cannot be told, so nothing was changed: {cause}")]
    Unobserved {
        /// The agent.
        agent: AgentName,
        /// Why it could not be observed.
        cause: Box<LifecycleError>,
    },
    /// Interrupted (SIGINT/SIGTERM); everything created was cleaned up.
    #[error("start of agent '{agent}' was interrupted")]
    Interrupted {
        /// The agent.
        agent: AgentName,
        /// The start.
        start: StartId,
        /// What the cleanup did.
        report: Report,
    },
}

impl StartError {
    /// The cleanup report of a failed or interrupted start.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Self::Failed { report, .. } | Self::Interrupted { report, .. } => Some(report),
            Self::Refused(_)
            | Self::Precondition(_)
            | Self::Unhealed { .. }
            | Self::Unobserved { .. } => None,
        }
    }
}

/// Why a stop or remove did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The state store refused (unknown agent, wrong status).
    #[error(transparent)]
    State(#[from] StateError),
    /// The engine failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The agent runs and `--force` was not given.
    #[error("agent '{0}' is running: stop it first, or remove it with --force")]
    Running(AgentName),
    /// Another `anvyl` changed the agent while this command worked on it;
    /// nothing of the newer state was touched.
    #[error("agent '{agent}' changed meanwhile: it is {found} now; nothing of that was touched")]
    Changed {
        /// The agent.
        agent: AgentName,
        /// What it is now.
        found: crate::state::Found,
    },
    /// The agent was registered on another engine than its host's
    /// configuration reaches today (`local` follows the configuration).
    #[error("agent '{agent}' runs on {}, but its host '{host}' reaches {current} now: point anvyl at that engine to manage it",
        .recorded.as_ref().map_or("an engine it did not record".to_string(), ToString::to_string))]
    OtherEngine {
        /// The agent.
        agent: AgentName,
        /// Its host.
        host: String,
        /// The engine it was registered on, when it was recorded.
        recorded: Option<Box<RecordedEngine>>,
        /// The engine its host reaches now.
        current: Box<RecordedEngine>,
    },
    /// The agent's resources are on a host the registry no longer knows:
    /// another host would see none of them.
    #[error("agent '{agent}' belongs to host '{host}', which is not registered")]
    HomeNotRegistered {
        /// The agent.
        agent: AgentName,
        /// The host it was started on.
        host: String,
    },
    /// A start of the agent is in progress in another process.
    #[error("a start of agent '{agent}' is in progress (pid {pid})")]
    Starting {
        /// The agent.
        agent: AgentName,
        /// The starting process.
        pid: u32,
    },
    /// The cleanup of a removed agent left owned resources.
    #[error("{remaining} resource(s) of agent '{agent}' could not be removed")]
    Remaining {
        /// The agent.
        agent: AgentName,
        /// How many.
        remaining: usize,
    },
    /// The cleanup could not plan.
    #[error(transparent)]
    Cleanup(#[from] crate::pipeline::CleanupError),
}

impl LifecycleError {
    /// The engine error behind this one, when the engine never answered.
    pub fn unreachable_engine(&self) -> Option<&BackendError> {
        match self {
            Self::Backend(e) | Self::Cleanup(crate::pipeline::CleanupError::Backend(e)) => {
                Some(e).filter(|e| e.is_unreachable())
            }
            _ => None,
        }
    }
}

/// The phase a start is in, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Pulling its base image: how far, when the engine has said.
    Pulling(Option<crate::pull::PullProgress>),
    /// Building the agent's image.
    Building,
    /// Creating and starting its container.
    Creating,
    /// Waiting the settle time to see that it keeps running.
    Settling,
}

/// Receives the phases of a start.
pub type PhaseSink<'a> = &'a (dyn Fn(Phase) + Send + Sync);

/// Starts, stops and removes agents of one installation.
pub struct Lifecycle<'a> {
    state: &'a StateStore,
    connector: &'a dyn Connector,
    build_root: BuildRoot,
    settings: LifecycleSettings,
    phases: Option<PhaseSink<'a>>,
    credentials: &'a dyn crate::pull::CredentialSource,
}

impl<'a> Lifecycle<'a> {
    /// Lifecycle operations on `state`, reaching engines through `connector`.
    pub fn new(
        state: &'a StateStore,
        connector: &'a dyn Connector,
        build_root: BuildRoot,
        settings: LifecycleSettings,
    ) -> Self {
        Self {
            state,
            connector,
            build_root,
            settings,
            phases: None,
            credentials: &crate::pull::Anonymous,
        }
    }

    /// Finds the user's registry credentials in `source` at each start.
    pub fn with_credentials(mut self, source: &'a dyn crate::pull::CredentialSource) -> Self {
        self.credentials = source;
        self
    }

    /// Tells `sink` each phase a start enters.
    pub fn with_phases(mut self, sink: PhaseSink<'a>) -> Self {
        self.phases = Some(sink);
        self
    }

    fn phase(&self, phase: Phase) {
        if let Some(sink) = self.phases {
            sink(phase);
        }
    }

    /// The host an agent runs on: its own, else the first enabled one.
    pub fn resolve_host(&self, own: Option<&str>) -> Result<HostRecord, StartCause> {
        let hosts = self.state.hosts().map_err(StartCause::State)?;
        let host = match own {
            Some(name) => hosts.into_iter().find(|h| h.name == name && h.enabled),
            // A host that cannot be used is no candidate for an agent of
            // its own choosing.
            None => (hosts.into_iter()).find(|h| h.enabled && h.unusable.is_none()),
        };
        host.ok_or(StartCause::NoHost)
    }
}
