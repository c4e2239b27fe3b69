//! The CLI's error type: each variant knows its documented exit status and
//! prints as one line, never as a backtrace. Errors from core stay typed
//! (engine, state, lifecycle, agent name): their exit status is decided
//! here, from what they are, and their cause chain is rendered once.

use std::process::ExitCode;

use anvyl_core::lifecycle::LifecycleError;
use anvyl_core::pipeline::CleanupError;
use anvyl_core::{BackendError, BackendKind, InvalidAgentName, StateError};

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

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: a malformed name, a refused confirmation without a terminal.
    #[error("{0}")]
    Usage(String),
    /// Bad configuration: names the file, key or value.
    #[error("configuration: {0}")]
    Config(String),
    /// The engine does not answer.
    #[error("{0}")]
    Unreachable(String),
    /// The operation failed or left owned resources behind.
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// The user declined at a prompt: their choice, not a failure.
    #[error("{0}")]
    Declined(String),
    /// An engine's error: exit 3 when it never answered, with what to check.
    #[error("{}{}", .0, unreachable_hint(.0))]
    Engine(#[from] BackendError),
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

impl CliError {
    /// The documented exit status.
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Config(_) => EXIT_USAGE,
            Self::Unreachable(_) => EXIT_UNREACHABLE,
            Self::Failed(_) => EXIT_FAILED,
            Self::Interrupted(_) => EXIT_INTERRUPTED,
            Self::Declined(_) => EXIT_DECLINED,
            Self::Engine(e) => engine_status(e),
            Self::State(e) => state_status(e),
            Self::Lifecycle(e) => match e {
                // Refusals the user resolves with --force or by waiting — or
                // another anvyl changed the agent meanwhile: nothing of that
                // was touched, as with a start refused while one runs.
                LifecycleError::Running(_)
                | LifecycleError::Starting { .. }
                | LifecycleError::Changed { .. }
                | LifecycleError::OtherEngine { .. } => EXIT_USAGE,
                _ => EXIT_FAILED,
            },
            Self::Name(_) => EXIT_USAGE,
        }
    }

    /// `message` (which says this error) with this error's exit status.
    pub(crate) fn within(&self, message: String) -> CliError {
        match self.exit_status() {
            EXIT_UNREACHABLE => CliError::Unreachable(message),
            EXIT_USAGE => CliError::Usage(message),
            _ => CliError::Failed(message),
        }
    }

    /// The error and its causes, each said once.
    fn rendered(&self) -> String {
        said_once(self)
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
        let text = self.rendered();
        let (line, context) = one_line(&text);
        let mut printed = match self {
            Self::Declined(_) => format!("{line}\n"),
            _ => format!("error: {line}\n"),
        };
        for context in context {
            printed.push_str(context);
            printed.push('\n');
        }
        printed
    }
}

/// `e` and its causes: a cause already said is not repeated — most of
/// core's messages hold their cause, some in its last words only (SQLite's
/// "Error code 26: file is not a database" as "… file is not a database").
fn said_once(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(e) = cause {
        let said = e.to_string();
        let last_words = said.rsplit(": ").next().unwrap_or(&said);
        if !text.contains(last_words) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = e.source();
    }
    text
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

impl From<LifecycleError> for CliError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Backend(b) => b.into(),
            LifecycleError::State(s) => s.into(),
            LifecycleError::Cleanup(c) => c.into(),
            other => Self::Lifecycle(other),
        }
    }
}

impl From<CleanupError> for CliError {
    fn from(e: CleanupError) -> Self {
        match e {
            CleanupError::Backend(b) => b.into(),
            CleanupError::State(s) => s.into(),
            other => Self::Failed(other.to_string()),
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
        let all = [
            CliError::Usage(String::new()),
            CliError::Unreachable(String::new()),
            CliError::Failed(String::new()),
            CliError::Declined(String::new()),
            CliError::Interrupted(String::new()),
        ];
        let codes: Vec<u8> = all.iter().map(CliError::exit_status).collect();
        assert_eq!(
            codes,
            [
                EXIT_USAGE,
                EXIT_UNREACHABLE,
                EXIT_FAILED,
                EXIT_DECLINED,
                EXIT_INTERRUPTED
            ]
        );
        assert_eq!(codes, [2, 3, 1, 4, 130]);
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
                    source: std::io::Error::other("read-only file system"),
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
        assert!(
            down.rendered().contains("is dockerd running?"),
            "{}",
            down.rendered()
        );
    }

    #[test]
    fn a_cause_is_said_once() {
        // The message holds its cause: not repeated.
        let e = CliError::from(StateError::Directory {
            path: "/s".into(),
            source: std::io::Error::other("read-only file system"),
        });
        assert_eq!(
            e.rendered(),
            "cannot create state directory /s: read-only file system"
        );
        // A cause the message leaves out is added, once.
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read the plan")]
        struct Outer(#[source] std::io::Error);
        let outer = Outer(std::io::Error::other("disk gone"));
        assert_eq!(said_once(&outer), "cannot read the plan: disk gone");
        // A cause worded differently but ending as the message does.
        #[derive(Debug, thiserror::Error)]
        #[error("state store /s/anvyl.db: file is not a database")]
        struct Store(#[source] Coded);
        #[derive(Debug, thiserror::Error)]
        #[error("Error code 26: file is not a database")]
        struct Coded;
        assert_eq!(
            said_once(&Store(Coded)),
            "state store /s/anvyl.db: file is not a database"
        );
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
