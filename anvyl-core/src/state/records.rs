//! What the store holds, as anvyl reads it: an agent's status, spec and
//! record, a start's record, and the rows of a table that could be read
//! (an unreadable row spoils only itself).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::identity::RecordedEngine;
use crate::ids::StartId;
use crate::name::AgentName;

use super::liveness::{self, process_alive};
use super::LOCAL_HOST;

/// An agent's recorded status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Not running; nothing of it should exist but its image cache.
    Stopped,
    /// A start is in progress.
    Starting,
    /// Its container runs and is registered.
    Running,
    /// A start failed, or its container died; cleanup resets it.
    Failed,
}

impl AgentStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Failed => "failed",
        }
    }

    pub(super) fn parse(s: &str) -> rusqlite::Result<Self> {
        Ok(match s {
            "stopped" => Self::Stopped,
            "starting" => Self::Starting,
            "running" => Self::Running,
            "failed" => Self::Failed,
            other => {
                return Err(rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    format!("unknown agent status {other:?}").into(),
                ))
            }
        })
    }
}

/// What an agent runs. Secrets are never stored: only the name of the
/// environment variable to read the provider key from at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Base image (`FROM`).
    pub image: String,
    /// Build steps, one `RUN` each.
    #[serde(default)]
    pub setup: Vec<String>,
    /// The command (`CMD`), run by `/bin/sh -c`.
    #[serde(default)]
    pub command: Option<String>,
    /// `KEY=VALUE` environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Network mode of the container and its build steps.
    #[serde(default)]
    pub network: Option<String>,
    /// When a start pulls the base image; the configuration's when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<crate::pull::PullPolicy>,
    /// Its container's mounts, limits, restart policy, user and workdir.
    #[serde(
        default,
        skip_serializing_if = "crate::resources::Resources::is_default"
    )]
    pub resources: crate::resources::Resources,
    /// Model provider, e.g. `anthropic`.
    #[serde(default)]
    pub provider: Option<String>,
    /// Model name.
    #[serde(default)]
    pub model: Option<String>,
    /// Name of the environment variable holding the provider API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
}

/// One agent as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRecord {
    /// Its name.
    pub name: AgentName,
    /// What it runs.
    pub spec: AgentSpec,
    /// Recorded status.
    pub status: AgentStatus,
    /// Id of its live container, while running.
    pub container_id: Option<String>,
    /// The host it runs on.
    pub host: Option<String>,
    /// The start attempt in progress or last made.
    pub current_start: Option<StartId>,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// The engine it was registered on (see [`crate::identity`]): the `local` host follows the
    /// configuration, so its name alone does not say which engine that was.
    pub engine: Option<RecordedEngine>,
}

impl AgentRecord {
    /// The host whose engine holds and judges this agent: the one it is
    /// assigned to; before it has one, the host its current start went to
    /// (a start that failed there left its resources there); else the
    /// configured engine's, `local`.
    pub fn home<'a>(&'a self, starts: &'a [StartRecord]) -> &'a str {
        self.host
            .as_deref()
            .or_else(|| {
                let current = self.current_start.as_ref()?;
                starts.iter().find(|s| &s.id == current)?.host.as_deref()
            })
            .unwrap_or(LOCAL_HOST)
    }
}

/// One start attempt as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartRecord {
    /// Its id.
    pub id: StartId,
    /// The agent started.
    pub agent: AgentName,
    /// The build directory it made, if any.
    pub build_dir: Option<PathBuf>,
    /// The process that ran it.
    pub pid: u32,
    /// That process's start time (clock ticks after boot), to tell it from
    /// a later process that reuses the pid.
    pub pid_start: Option<u64>,
    /// When it began (seconds since the epoch).
    pub started: i64,
    /// When it ended; `None` while running or after a crash.
    pub ended: Option<i64>,
    /// How it ended: [`SUCCEEDED`], `failed`, `interrupted`; `None` while
    /// running or after a crash.
    pub outcome: Option<String>,
    /// The host it resolved, once it did.
    pub host: Option<String>,
    /// The engine it went to, once it asked (see [`crate::identity`]).
    pub engine: Option<RecordedEngine>,
    /// The lock its process holds while it runs (see `liveness`).
    #[serde(skip)]
    pub lock: Option<PathBuf>,
}

/// The outcome of a start that ended with a running agent.
pub const SUCCEEDED: &str = "running";

impl StartRecord {
    /// True while the start has not ended and its process still runs. A
    /// start that never ended and whose process is gone crashed (kill -9).
    pub fn is_live(&self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        match self.lock.as_deref().and_then(liveness::held) {
            Some(held) => held,
            None => process_alive(self.pid, self.pid_start),
        }
    }
}

pub(super) fn row_to_start(r: &rusqlite::Row<'_>) -> rusqlite::Result<StartRecord> {
    let agent: String = r.get(1)?;
    Ok(StartRecord {
        id: StartId::from_stored(r.get::<_, String>(0)?),
        agent: AgentName::new(agent).map_err(|e| conversion_error(1, e))?,
        build_dir: r.get::<_, Option<String>>(2)?.map(PathBuf::from),
        pid: r.get(3)?,
        pid_start: r.get::<_, Option<i64>>(4)?.map(|ticks| ticks as u64),
        ended: r.get(5)?,
        outcome: r.get(6)?,
        host: r.get(7)?,
        engine: r.get(8)?,
        started: r.get(9)?,
        lock: None,
    })
}

/// The rows of a table that could be read, and the keys (agent names,
/// start ids) of those that could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows<T> {
    /// The readable rows.
    pub rows: Vec<T>,
    /// The keys of the unreadable ones.
    pub unreadable: Vec<String>,
}

impl<T> Rows<T> {
    /// No rows at all.
    pub fn none() -> Self {
        Self {
            rows: Vec::new(),
            unreadable: Vec::new(),
        }
    }
}

/// Sorts rows into readable and not. One that cannot be read (an edited or
/// corrupted database, a newer anvyl's status) is reported, not fatal: it
/// must not stop every command — and what it describes is left alone.
pub(super) fn readable<T>(rows: Vec<(String, rusqlite::Result<T>)>, what: &str) -> Rows<T> {
    let mut sorted = Rows {
        rows: Vec::with_capacity(rows.len()),
        unreadable: Vec::new(),
    };
    for (key, row) in rows {
        match row {
            Ok(row) => sorted.rows.push(row),
            Err(e) => {
                tracing::warn!("cannot read {what} {key:?} in the state store ({e}); leaving everything of it alone");
                sorted.unreadable.push(key);
            }
        }
    }
    sorted
}

/// A row's key as text for messages, whatever is stored there: SQLite
/// takes NULL, a number or a blob even in a `TEXT PRIMARY KEY`.
pub(super) fn key_text(r: &rusqlite::Row<'_>, column: usize) -> String {
    use rusqlite::types::ValueRef;
    match r.get_ref(column) {
        Ok(ValueRef::Text(text)) => String::from_utf8_lossy(text).into_owned(),
        Ok(ValueRef::Integer(n)) => n.to_string(),
        Ok(ValueRef::Real(x)) => x.to_string(),
        Ok(ValueRef::Null) => "NULL".to_string(),
        Ok(ValueRef::Blob(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Err(_) => "unreadable".to_string(),
    }
}

pub(super) fn conversion_error(
    col: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

pub(super) fn row_to_agent(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRecord> {
    let name: String = r.get(0)?;
    let spec: String = r.get(1)?;
    let status: String = r.get(2)?;
    Ok(AgentRecord {
        name: AgentName::new(name).map_err(|e| conversion_error(0, e))?,
        spec: serde_json::from_str(&spec).map_err(|e| conversion_error(1, e))?,
        status: AgentStatus::parse(&status)?,
        container_id: r.get(3)?,
        host: r.get(4)?,
        current_start: r.get::<_, Option<String>>(5)?.map(StartId::from_stored),
        created: r.get(6)?,
        engine: r.get(7)?,
    })
}
