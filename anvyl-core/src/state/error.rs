//! The state store's errors.

use crate::name::AgentName;

/// Errors of the state store. Like every anvyl error, each says its cause
/// in its own message and keeps it in a typed field, never also as
/// [`std::error::Error::source`]: the message is complete wherever it is
/// printed or stored, and nothing is said twice (xtask's tidy test
/// holds every error to that).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The database could not be opened or used.
    #[error("state store {path}: {cause}")]
    Database {
        /// The database file.
        path: String,
        /// What SQLite said.
        cause: rusqlite::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {cause}")]
    Directory {
        /// The directory.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The lock a start holds while it runs could not be taken.
    #[error("cannot claim the start lock {path}: {cause}")]
    StartLock {
        /// The lock file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The store was written by a newer anvyl, whose schema this one does
    /// not know: nothing is read or written.
    #[error("state store {path} was written by a newer anvyl (schema {found}, this one knows {known}): upgrade anvyl")]
    NewerSchema {
        /// The database file.
        path: String,
        /// Its schema version.
        found: i64,
        /// The newest this anvyl knows.
        known: i64,
    },
    /// No agent of that name.
    #[error("no agent named '{0}'")]
    UnknownAgent(AgentName),
    /// The agent exists already.
    #[error("agent '{0}' already exists")]
    AgentExists(AgentName),
    /// No host of that name.
    #[error("no host named '{0}'")]
    UnknownHost(String),
    /// The host exists already.
    #[error("host '{0}' already exists")]
    HostExists(String),
    /// The host name is not valid.
    #[error("invalid host name {0:?} (use 1-63 lowercase letters, digits and inner dashes)")]
    InvalidHostName(String),
    /// Agents are still assigned to the host.
    #[error("host '{host}' still has agent(s): {agents}; remove them first (`anvyl agent remove NAME`, then `anvyl agent create NAME --host OTHER` to move one)")]
    HostInUse {
        /// The host.
        host: String,
        /// The agents on it.
        agents: String,
    },
    /// A status change that the current status does not allow.
    #[error("agent '{agent}' is {actual}, not {expected}")]
    WrongStatus {
        /// The agent.
        agent: AgentName,
        /// The status found.
        actual: &'static str,
        /// The status(es) required.
        expected: &'static str,
    },
}
