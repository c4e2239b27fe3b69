//! The CLI's error type: each variant knows its documented exit status and
//! prints as one line, never as a backtrace.

use std::process::ExitCode;

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
        }
    }

    /// Prints the error as one line on stderr — followed by the indented
    /// context lines it carries (a failed build's or an exited command's
    /// last output) — and returns the exit status.
    pub fn report(&self) -> ExitCode {
        let text = self.to_string();
        let (line, context) = one_line(&text);
        match self {
            Self::Declined(_) => eprintln!("{line}"),
            _ => eprintln!("error: {line}"),
        }
        for context in context {
            eprintln!("{context}");
        }
        ExitCode::from(self.exit_status())
    }
}

impl From<anvyl_core::BackendError> for CliError {
    fn from(e: anvyl_core::BackendError) -> Self {
        if e.is_unreachable() {
            Self::Unreachable(format!("{e}{}", unreachable_hint(&e)))
        } else {
            Self::Failed(e.to_string())
        }
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

/// What a user can check when an engine does not answer.
fn unreachable_hint(e: &anvyl_core::BackendError) -> &'static str {
    match e {
        anvyl_core::BackendError::Unreachable { engine: "Docker", .. } => {
            " (is dockerd running? anvyl uses [docker] endpoint, else DOCKER_HOST, else /var/run/docker.sock; --backend podman for Podman)"
        }
        anvyl_core::BackendError::Unreachable { engine: "Podman", .. } => {
            " (is `podman system service` running? anvyl uses [podman] endpoint, else CONTAINER_HOST, else the rootless, else the rootful socket; --backend docker for Docker)"
        }
        _ => " (the engine did not answer; request_timeout sets how long anvyl waits)",
    }
}

impl From<anvyl_core::StateError> for CliError {
    fn from(e: anvyl_core::StateError) -> Self {
        Self::Failed(e.to_string())
    }
}

impl From<anvyl_core::pipeline::CleanupError> for CliError {
    fn from(e: anvyl_core::pipeline::CleanupError) -> Self {
        match e {
            anvyl_core::pipeline::CleanupError::Backend(b) => b.into(),
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<anvyl_core::InvalidAgentName> for CliError {
    fn from(e: anvyl_core::InvalidAgentName) -> Self {
        Self::Usage(e.to_string())
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
