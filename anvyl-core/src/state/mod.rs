//! The state store: one SQLite database holding the installation id, the
//! agents, the hosts registry and every start attempt. WAL mode and a busy
//! timeout let several `anvyl` processes share it; every status change runs
//! in an immediate transaction so that two of them never both win.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::identity::RecordedEngine;

use crate::ids::{InstanceId, StartId};
use crate::name::AgentName;

mod error;
mod hosts;
mod liveness;
mod records;
mod schema;
mod status;
mod steps;

pub use error::StateError;
pub use hosts::{HostAccess, HostRecord, LOCAL_HOST};
pub use liveness::{own_process_start, process_alive, StartLock};
pub use records::{AgentRecord, AgentSpec, AgentStatus, Rows, StartRecord, SUCCEEDED};
pub use status::{Fence, Fenced, Found};
pub use steps::StepRecord;

use records::{key_text, readable, row_to_agent, row_to_start};

/// File name of the database inside the state directory.
pub const DATABASE_FILE: &str = "anvyl.db";

/// The SQLite-backed store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct StateStore {
    conn: Mutex<Connection>,
    path: String,
    instance: InstanceId,
    /// Where starts hold their locks (`None` for an in-memory store).
    locks: Option<PathBuf>,
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl StateStore {
    /// Claims `start` for this process until the returned lock is dropped:
    /// other processes see the start as in progress while it is held. An
    /// in-memory store has no locks (`None`: liveness by pid).
    pub fn hold_start(&self, start: &StartId) -> Result<Option<StartLock>, StateError> {
        let Some(locks) = &self.locks else {
            return Ok(None);
        };
        liveness::hold(locks, start)
            .map(Some)
            .map_err(|source| StateError::StartLock {
                path: liveness::lock_path(locks, start).display().to_string(),
                cause: source,
            })
    }

    /// Whether another process holds `start`'s lock now: a start in
    /// progress, or a stop removing that start's container. An in-memory
    /// store has no locks: never.
    pub fn start_busy(&self, start: &StartId) -> bool {
        (self.locks.as_deref())
            .and_then(|locks| liveness::held(&liveness::lock_path(locks, start)))
            .unwrap_or(false)
    }

    /// This installation's id.
    pub fn instance_id(&self) -> &InstanceId {
        &self.instance
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back on drop), so a poisoned lock is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn db_err(&self, source: rusqlite::Error) -> StateError {
        StateError::Database {
            path: self.path.clone(),
            cause: source,
        }
    }

    /// Records a new agent as `stopped`.
    pub fn create_agent(&self, name: &AgentName, spec: &AgentSpec) -> Result<(), StateError> {
        let spec = serde_json::to_string(spec).expect("an AgentSpec always serialises");
        let changed = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO agents (name, spec, status, created) VALUES (?1, ?2, 'stopped', ?3)",
                params![name.as_str(), spec, now()],
            )
            .map_err(|e| self.db_err(e))?;
        if changed == 0 {
            return Err(StateError::AgentExists(name.clone()));
        }
        Ok(())
    }

    /// One agent.
    pub fn agent(&self, name: &AgentName) -> Result<AgentRecord, StateError> {
        self.conn()
            .query_row(
                "SELECT name, spec, status, container_id, host, current_start, created, engine FROM agents WHERE name = ?1",
                [name.as_str()],
                row_to_agent,
            )
            .optional()
            .map_err(|e| self.db_err(e))?
            .ok_or_else(|| StateError::UnknownAgent(name.clone()))
    }

    /// Every agent, by name.
    pub fn agents(&self) -> Result<Vec<AgentRecord>, StateError> {
        Ok(self.agent_rows()?.rows)
    }

    /// Every agent that can be read, and the names of those that cannot:
    /// a cleanup must spare what it cannot judge.
    pub fn agent_rows(&self) -> Result<Rows<AgentRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT name, spec, status, container_id, host, current_start, created, engine FROM agents ORDER BY name",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((key_text(r, 0), row_to_agent(r))))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db_err(e))?;
        Ok(readable(rows, "agent"))
    }

    /// Records the build directory and host a start uses, as soon as they
    /// are known.
    pub fn update_start(
        &self,
        id: &StartId,
        host: Option<&str>,
        build_dir: Option<&Path>,
    ) -> Result<(), StateError> {
        self.conn()
            .execute(
                "UPDATE starts SET host = COALESCE(?2, host), build_dir = COALESCE(?3, build_dir) WHERE id = ?1",
                params![id.as_str(), host, build_dir.map(|p| p.display().to_string())],
            )
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Records the engine a start went to (see [`crate::identity`]), before
    /// it makes anything there.
    pub fn record_start_engine(
        &self,
        id: &StartId,
        engine: &RecordedEngine,
    ) -> Result<(), StateError> {
        self.conn()
            .execute(
                "UPDATE starts SET engine = ?2 WHERE id = ?1",
                params![id.as_str(), engine],
            )
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Marks a start as ended with `outcome` (`running`, `failed`, …).
    pub fn end_start(&self, id: &StartId, outcome: &str) -> Result<(), StateError> {
        self.conn()
            .execute(
                "UPDATE starts SET ended = ?2, outcome = ?3 WHERE id = ?1",
                params![id.as_str(), now(), outcome],
            )
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Every recorded start, oldest first.
    pub fn starts(&self) -> Result<Vec<StartRecord>, StateError> {
        Ok(self.start_rows()?.rows)
    }

    /// Every start that can be read, and the ids of those that cannot.
    pub fn start_rows(&self) -> Result<Rows<StartRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, agent, build_dir, pid, pid_start, ended, outcome, host, engine, started FROM starts ORDER BY started, id")
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((key_text(r, 0), row_to_start(r))))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db_err(e))?;
        let mut rows = readable(rows, "start");
        if let Some(locks) = &self.locks {
            for start in &mut rows.rows {
                start.lock = Some(liveness::lock_path(locks, &start.id));
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests;
