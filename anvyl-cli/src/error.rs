//! The CLI's error type: each variant knows its documented exit status and
//! prints as one line, never as a backtrace.

use std::process::ExitCode;

/// Exit status 1: the operation failed, or owned resources remain.
pub const EXIT_FAILED: u8 = 1;
/// Exit status 2: bad input or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit status 3: the engine is unreachable.
pub const EXIT_UNREACHABLE: u8 = 3;
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
}

impl CliError {
    /// The documented exit status.
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Config(_) => EXIT_USAGE,
            Self::Unreachable(_) => EXIT_UNREACHABLE,
            Self::Failed(_) => EXIT_FAILED,
            Self::Interrupted(_) => EXIT_INTERRUPTED,
        }
    }

    /// Prints the error as one line on stderr and returns the exit status.
    pub fn report(&self) -> ExitCode {
        // Newlines from engine messages would break the one-line promise.
        let line = self.to_string().replace('\n', " ");
        eprintln!("error: {line}");
        ExitCode::from(self.exit_status())
    }
}

impl From<anvyl_core::BackendError> for CliError {
    fn from(e: anvyl_core::BackendError) -> Self {
        if e.is_unreachable() {
            Self::Unreachable(e.to_string())
        } else {
            Self::Failed(e.to_string())
        }
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
