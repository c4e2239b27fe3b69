//! Which engine product a host runs, as the command line, the configuration
//! and the hosts registry name it, and as the state store keeps it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Backend;

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

/// The product name of `backend`'s engine, for messages and identities;
/// anvyl's own stand-ins (the in-memory engine, [`crate::no_engine::NoEngine`]) are
/// `Memory`.
pub fn engine_name(backend: &dyn Backend) -> &'static str {
    backend.kind().map_or("Memory", BackendKind::engine_name)
}
