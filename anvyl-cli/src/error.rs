//! The CLI's error type: each variant knows its documented exit status and
//! prints as one line, never as a backtrace. Errors from core stay typed
//! (engine, state, lifecycle, agent name): their exit status is decided
//! here, from what they are. Every error says its cause in its own message
//! (none is also a `source()`), so what is printed is `to_string()`.

use std::process::ExitCode;

use anvyl_core::lifecycle::LifecycleError;
use anvyl_core::lifecycle::StartError;
use anvyl_core::pipeline::CleanupError;
use anvyl_core::{AgentName, BackendError, BackendKind, InvalidAgentName, StateError};

/// Exit status 1: the operation failed, or owned resources remain.
pub const EXIT_FAILED: u8 = 1;
/// Exit status 2: bad input or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit status 3: the engine is unreachable.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit status 4: the user answered "no" at a prompt; nothing changed.
pub const EXIT_DECLINED: u8 = 4;
/// Exit status 130: interrupted.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a command did not succeed. Bad input and bad configuration are the
/// user's own text told back; every other variant holds what failed, typed,
/// and says its cause in its own message (as core's errors do: nothing is
/// also a [`std::error::Error::source`], so nothing is said twice).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: a malformed value, a refused confirmation without a terminal.
    #[error("{0}")]
    Usage(String),
    /// Bad configuration: names the file, key or value.
    #[error("configuration: {0}")]
    Config(String),
    /// Something of this machine the command needs failed: the async
    /// runtime, the terminal, the signal handlers.
    #[error("cannot {doing}: {cause}")]
    Io {
        /// What the command tried, e.g. `read the answer`.
        doing: &'static str,
        /// Why it could not.
        cause: std::io::Error,
    },
    /// A start that did not end with a running agent; its status is the
    /// cause's: 3 when its host did not answer, 2 when the user can resolve it.
    #[error("{}", start_message(.0))]
    Start(Box<StartError>),
    /// `agent remove` forgot the agent, but its host could not be asked to
    /// remove what it has there.
    #[error(
        "agent '{agent}' is forgotten, but host '{host}' does not answer ({cause}): its container {0} and images {0}:* may remain there; `anvyl agent cleanup --host {host}` removes them once it answers",
        .agent.resource_name()
    )]
    Forgotten {
        /// The agent.
        agent: AgentName,
        /// Its host.
        host: String,
        /// Why the host could not be asked.
        cause: BackendError,
    },
    /// No host of a cleanup answered.
    #[error("{}", unreached_message(.hosts, .first))]
    Unreached {
        /// The hosts tried.
        hosts: Vec<String>,
        /// What the first of them said.
        first: String,
    },
    /// A cleanup left owned resources it could not remove.
    #[error("{0} resource(s) owned by anvyl could not be removed")]
    Remaining(usize),
    /// Some hosts of a cleanup could not be cleaned (each was said above).
    #[error("host(s) not cleaned: {} (see above)", .0.join(", "))]
    HostsNotCleaned(Vec<String>),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted: {0}")]
    Interrupted(Interruption),
    /// The user declined at a prompt: their choice, not a failure.
    #[error("Nothing was removed.")]
    Declined,
    /// An engine's error: exit 3 when it never answered, with what to check.
    #[error("{}{}", .0, unreachable_hint(.0))]
    Engine(BackendError),
    /// The state store's: the user's input (an unknown name, a wrong
    /// status) is exit 2, a store that fails is exit 1.
    #[error(transparent)]
    State(#[from] StateError),
    /// An agent operation's (its engine and state errors are told apart
    /// as such: see the `From` below).
    #[error(transparent)]
    Lifecycle(LifecycleError),
    /// A malformed agent name.
    #[error(transparent)]
    Name(#[from] InvalidAgentName),
}

/// What was interrupted, when it was not a start (whose interruption is a
/// [`StartError`]).
#[derive(Debug, thiserror::Error)]
pub enum Interruption {
    /// A cleanup, part-way.
    #[error("cleanup stopped part-way; run `anvyl agent cleanup` again to finish")]
    Cleanup,
    /// The printing of agents' logs.
    #[error("stopped printing the logs of {}", agents(.0))]
    Logs(Vec<AgentName>),
    /// An agent of several whose turn had not come: left as it was.
    #[error("agent '{0}' was left as it was")]
    NotBegun(AgentName),
}

impl CliError {
    /// The documented exit status.
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Config(_) | Self::Name(_) => EXIT_USAGE,
            Self::Io { .. } | Self::Remaining(_) | Self::HostsNotCleaned(_) => EXIT_FAILED,
            Self::Start(e) => start_status(e),
            // The agent is gone from the store: what remains is the
            // engine's, and a host that does not answer is status 3.
            Self::Forgotten { cause, .. } | Self::Engine(cause) => engine_status(cause),
            Self::Unreached { .. } => EXIT_UNREACHABLE,
            Self::Interrupted(_) => EXIT_INTERRUPTED,
            Self::Declined => EXIT_DECLINED,
            Self::State(e) => state_status(e),
            Self::Lifecycle(e) => lifecycle_status(e),
        }
    }

    /// Prints the error on stderr — one line, then any indented context
    /// lines — and returns the exit status.
    pub fn report(&self) -> ExitCode {
        eprint!("{}", self.printed());
        ExitCode::from(self.exit_status())
    }

    /// The error as one line — followed by the indented context lines it
    /// carries (a failed build's or an exited command's last output, a
    /// configuration file's line and caret) — each ended by a newline.
    pub(crate) fn printed(&self) -> String {
        let text = self.to_string();
        let (line, context) = one_line(&text);
        let mut printed = match self {
            Self::Declined => format!("{line}\n"),
            _ => format!("error: {line}\n"),
        };
        for context in context {
            printed.push_str(context);
            printed.push('\n');
        }
        printed
    }
}

/// A failed start's status, from its cause: 3 when the host's engine did
/// not answer at any of its calls, 2 for what the user resolves (another
/// `anvyl` changed the agent, another engine behind its host, a missing
/// precondition), 130 when interrupted, else 1.
fn start_status(e: &StartError) -> u8 {
    match e {
        StartError::Refused(e) => state_status(e),
        StartError::Precondition(_) => EXIT_USAGE,
        StartError::Interrupted { .. } => EXIT_INTERRUPTED,
        StartError::Unhealed { cause, .. } | StartError::Unobserved { cause, .. } => {
            lifecycle_status(cause)
        }
        StartError::Failed { cause, .. } => match cause.engine_error() {
            Some(e) if e.is_unreachable() => EXIT_UNREACHABLE,
            _ => EXIT_FAILED,
        },
        _ => EXIT_FAILED,
    }
}

/// What a failed start says: its error, what is left of it, and what to
/// check when its host did not answer.
fn start_message(e: &StartError) -> String {
    let remaining = match e.report().map(|r| r.remaining_owned()) {
        Some(n) if n > 0 => {
            format!(" ({n} resource(s) could not be removed: run `anvyl agent cleanup`)")
        }
        _ => String::new(),
    };
    match e {
        StartError::Interrupted { .. } => {
            format!("interrupted: {e}; everything it created was removed{remaining}")
        }
        StartError::Unhealed { cause, .. } | StartError::Unobserved { cause, .. } => {
            let hint = cause.unreachable_engine().map_or("", unreachable_hint);
            format!("{e}{hint}")
        }
        _ => format!("{e}{remaining}"),
    }
}

/// "agent 'a'", or "agents 'a', 'b'".
fn agents(names: &[AgentName]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.as_slice() {
        [one] => format!("agent {one}"),
        many => format!("agents {}", many.join(", ")),
    }
}

fn unreached_message(hosts: &[String], first: &str) -> String {
    if let [_] = hosts {
        format!("{first} (is the engine running? `anvyl host list` shows every host's endpoint)")
    } else {
        format!(
            "no host could be reached ({}); `anvyl host list` says why",
            hosts.join(", ")
        )
    }
}

fn engine_status(e: &BackendError) -> u8 {
    if e.is_unreachable() {
        EXIT_UNREACHABLE
    } else {
        EXIT_FAILED
    }
}

/// Wrong status and unknown names are the user's input, not a failure.
fn state_status(e: &StateError) -> u8 {
    match e {
        StateError::UnknownAgent(_)
        | StateError::AgentExists(_)
        | StateError::WrongStatus { .. }
        | StateError::UnknownHost(_)
        | StateError::HostExists(_)
        | StateError::InvalidHostName(_)
        | StateError::HostInUse { .. } => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// Refusals the user resolves with --force or by waiting — or another
/// anvyl changed the agent meanwhile: nothing of that was touched, as with
/// a start refused while one runs. Engine and state errors as their own.
fn lifecycle_status(e: &LifecycleError) -> u8 {
    match e {
        LifecycleError::Backend(e) | LifecycleError::Cleanup(CleanupError::Backend(e)) => {
            engine_status(e)
        }
        LifecycleError::State(e) | LifecycleError::Cleanup(CleanupError::State(e)) => {
            state_status(e)
        }
        LifecycleError::Running(_)
        | LifecycleError::Starting { .. }
        | LifecycleError::Changed { .. }
        | LifecycleError::OtherEngine { .. } => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// Splits an error's text into its one line — newlines from engine messages
/// would break the one-line promise — and the indented context lines below
/// it.
fn one_line(text: &str) -> (String, Vec<&str>) {
    let mut line = String::new();
    let mut context = Vec::new();
    for (i, part) in text.split('\n').enumerate() {
        if i > 0 && part.starts_with("  ") {
            context.push(part);
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(part);
        }
    }
    (line, context)
}

/// What a user can check when an engine does not answer; nothing for an
/// engine that did.
fn unreachable_hint(e: &BackendError) -> &'static str {
    if !e.is_unreachable() {
        return "";
    }
    match e {
        BackendError::Unreachable {
            engine: Some(BackendKind::Docker),
            ..
        } => {
            " (is dockerd running? anvyl uses [docker] endpoint, else DOCKER_HOST, else /var/run/docker.sock; --backend podman for Podman)"
        }
        BackendError::Unreachable {
            engine: Some(BackendKind::Podman),
            ..
        } => {
            " (is `podman system service` running? anvyl uses [podman] endpoint, else CONTAINER_HOST, else the rootless, else the rootful socket; --backend docker for Docker)"
        }
        _ => " (the engine did not answer; request_timeout sets how long anvyl waits)",
    }
}

impl From<BackendError> for CliError {
    fn from(e: BackendError) -> Self {
        Self::Engine(e)
    }
}

impl From<LifecycleError> for CliError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Backend(e) | LifecycleError::Cleanup(CleanupError::Backend(e)) => {
                e.into()
            }
            LifecycleError::State(e) | LifecycleError::Cleanup(CleanupError::State(e)) => e.into(),
            other => Self::Lifecycle(other),
        }
    }
}

impl From<CleanupError> for CliError {
    fn from(e: CleanupError) -> Self {
        LifecycleError::Cleanup(e).into()
    }
}

impl From<StartError> for CliError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Refused(e) => e.into(),
            StartError::Precondition(why) => Self::Usage(why),
            other => Self::Start(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_is_one_line_with_its_context_below() {
        let (line, context) = super::one_line(
            "start failed: the agent's command exited with code 3\n  its last output:\n  | no key",
        );
        assert_eq!(line, "start failed: the agent's command exited with code 3");
        assert_eq!(context, ["  its last output:", "  | no key"]);
        let (line, context) = super::one_line("engine said:\nline two\nline three");
        assert_eq!(line, "engine said: line two line three");
        assert!(context.is_empty());
    }

    use super::*;

    #[test]
    fn each_cause_has_its_own_exit_status() {
        let web = AgentName::new("web").unwrap();
        let all = [
            CliError::Usage(String::new()),
            CliError::Unreached {
                hosts: vec!["local".into()],
                first: String::new(),
            },
            CliError::Remaining(1),
            CliError::HostsNotCleaned(vec!["far".into()]),
            CliError::Io {
                doing: "read the answer",
                cause: std::io::Error::other("gone"),
            },
            CliError::Declined,
            CliError::Interrupted(Interruption::Logs(vec![web])),
        ];
        let codes: Vec<u8> = all.iter().map(CliError::exit_status).collect();
        assert_eq!(
            codes,
            [
                EXIT_USAGE,
                EXIT_UNREACHABLE,
                EXIT_FAILED,
                EXIT_FAILED,
                EXIT_FAILED,
                EXIT_DECLINED,
                EXIT_INTERRUPTED
            ]
        );
        assert_eq!(codes, [2, 3, 1, 1, 1, 4, 130]);
    }

    #[test]
    fn core_errors_stay_typed_and_get_their_status_from_what_they_are() {
        let web = anvyl_core::AgentName::new("web").unwrap();
        let cases = [
            (
                CliError::from(StateError::UnknownAgent(web.clone())),
                EXIT_USAGE,
            ),
            (
                CliError::from(StateError::Directory {
                    path: "/s".into(),
                    cause: std::io::Error::other("read-only file system"),
                }),
                EXIT_FAILED,
            ),
            (
                CliError::from(LifecycleError::Running(web.clone())),
                EXIT_USAGE,
            ),
            (
                CliError::from(LifecycleError::State(StateError::AgentExists(web))),
                EXIT_USAGE,
            ),
            (
                CliError::from(LifecycleError::Backend(BackendError::Unreachable {
                    engine: Some(BackendKind::Docker),
                    endpoint: "unix:///d.sock".into(),
                    message: "connection refused".into(),
                })),
                EXIT_UNREACHABLE,
            ),
            (
                CliError::from(anvyl_core::AgentName::new("Bad!").unwrap_err()),
                EXIT_USAGE,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.exit_status(), status, "{error}");
            assert!(matches!(
                error,
                CliError::State(_)
                    | CliError::Lifecycle(_)
                    | CliError::Name(_)
                    | CliError::Engine(_)
            ));
        }
        // An agent command's engine error keeps the hint of what to check.
        let down = CliError::from(LifecycleError::Backend(BackendError::Unreachable {
            engine: Some(BackendKind::Docker),
            endpoint: "unix:///d.sock".into(),
            message: "connection refused".into(),
        }));
        assert!(down.to_string().contains("is dockerd running?"), "{down}");
    }

    #[test]
    fn a_cause_is_said_once() {
        // The message holds its cause: not repeated.
        let e = CliError::from(StateError::Directory {
            path: "/s".into(),
            cause: std::io::Error::other("read-only file system"),
        });
        assert_eq!(
            e.to_string(),
            "cannot create state directory /s: read-only file system"
        );
        // Said in the message, so not also a source: whatever walks the
        // chain (a log, `{:#}`) says it once too.
        let store = StateError::StartLock {
            path: "/s/locks/1".into(),
            cause: std::io::Error::other("file is not a lock"),
        };
        let unobserved = anvyl_core::lifecycle::StartError::Unobserved {
            agent: AgentName::new("web").unwrap(),
            cause: Box::new(LifecycleError::Backend(BackendError::Unreachable {
                engine: Some(BackendKind::Podman),
                endpoint: "unix:///p.sock".into(),
                message: "connection refused".into(),
            })),
        };
        for e in [CliError::from(store), CliError::from(unobserved), e] {
            assert!(std::error::Error::source(&e).is_none(), "{e}: {e:?}");
            let said = e.to_string();
            for cause in ["not a lock", "connection refused", "read-only"] {
                assert!(said.matches(cause).count() <= 1, "{said}");
            }
        }
    }

    #[test]
    fn an_engine_that_never_answered_is_exit_3_whatever_the_transport_said() {
        let silent = anvyl_core::BackendError::Engine {
            operation: "list containers",
            status: None,
            message: "no answer within 2s".into(),
        };
        assert_eq!(CliError::from(silent).exit_status(), EXIT_UNREACHABLE);
        let refused = anvyl_core::BackendError::Engine {
            operation: "list containers",
            status: Some(500),
            message: "boom".into(),
        };
        assert_eq!(CliError::from(refused).exit_status(), EXIT_FAILED);
    }
}
