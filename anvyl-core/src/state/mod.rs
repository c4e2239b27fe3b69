//! The state store: one SQLite database holding the installation id, the
//! agents, the hosts registry and every start attempt. WAL mode and a busy
//! timeout let several `anvyl` processes share it; every status change runs
//! in an immediate transaction so that two of them never both win.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::identity::RecordedEngine;

use crate::ids::{InstanceId, StartId};
use crate::name::AgentName;

mod hosts;
mod liveness;
mod schema;
mod status;

pub use hosts::{HostAccess, HostRecord, LOCAL_HOST};
pub use liveness::{own_process_start, process_alive, StartLock};
pub use status::{Fence, Fenced, Found};

/// File name of the database inside the state directory.
pub const DATABASE_FILE: &str = "anvyl.db";

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

    fn parse(s: &str) -> rusqlite::Result<Self> {
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
            .prepare("SELECT id, agent, build_dir, pid, pid_start, ended, outcome, host, engine FROM starts ORDER BY started, id")
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

fn row_to_start(r: &rusqlite::Row<'_>) -> rusqlite::Result<StartRecord> {
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
fn readable<T>(rows: Vec<(String, rusqlite::Result<T>)>, what: &str) -> Rows<T> {
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
fn key_text(r: &rusqlite::Row<'_>, column: usize) -> String {
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

fn conversion_error(
    col: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

fn row_to_agent(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRecord> {
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

#[cfg(test)]
mod tests {
    use super::liveness::process_stat;
    use super::*;

    fn web() -> AgentName {
        AgentName::new("web").unwrap()
    }

    #[test]
    fn the_installation_id_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateStore::open(dir.path()).unwrap().instance_id().clone();
        let again = StateStore::open(dir.path()).unwrap().instance_id().clone();
        assert_eq!(first, again);
    }

    #[test]
    fn reading_does_not_wait_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.create_agent(&web(), &AgentSpec::default()).unwrap();
        // Another process holds a write transaction for as long as it likes.
        let writer = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Taking the write lock here would fail with "database is locked".
        let reader = StateStore::open(dir.path()).unwrap();
        assert_eq!(reader.agents().unwrap().len(), 1);
        writer.execute_batch("ROLLBACK").unwrap();
    }

    #[test]
    fn an_unreadable_row_is_skipped_not_fatal() {
        let store = StateStore::open_in_memory().unwrap();
        store.create_agent(&web(), &AgentSpec::default()).unwrap();
        store
            .conn()
            .execute(
                "INSERT INTO agents (name, spec, status, created) VALUES ('Bad Name!', '{}', 'stopped', 0), ('odd', 'not json', 'stopped', 0), ('weird', '{\"image\":\"x\"}', 'dancing', 0)",
                [],
            )
            .unwrap();
        let names: Vec<String> = store
            .agents()
            .unwrap()
            .iter()
            .map(|a| a.name.to_string())
            .collect();
        assert_eq!(names, vec!["web"]);
    }

    #[test]
    fn a_store_to_migrate_is_not_opened_for_reading_alone() {
        let dir = tempfile::tempdir().unwrap();
        let listing = || {
            let mut files: Vec<String> = (std::fs::read_dir(dir.path()).unwrap())
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            files
        };
        assert!(StateStore::open_current(dir.path()).unwrap().is_none());
        assert!(listing().is_empty());
        std::fs::write(dir.path().join(DATABASE_FILE), b"").unwrap();
        assert!(StateStore::open_current(dir.path()).unwrap().is_none());
        // An older anvyl's store: schema version 3, no starts.engine.
        {
            let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE agents (name TEXT PRIMARY KEY); PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let before = std::fs::read(dir.path().join(DATABASE_FILE)).unwrap();
        assert!(StateStore::open_current(dir.path()).unwrap().is_none());
        assert_eq!(
            std::fs::read(dir.path().join(DATABASE_FILE)).unwrap(),
            before
        );
        assert_eq!(listing(), vec![DATABASE_FILE]);
        // Migrated by a command that may write, it is read.
        StateStore::open(dir.path()).unwrap();
        assert!(StateStore::open_current(dir.path()).unwrap().is_some());
        // A current store is read without a write — not even its journal
        // mode is set.
        let dir = tempfile::tempdir().unwrap();
        StateStore::open(dir.path())
            .unwrap()
            .create_agent(&web(), &AgentSpec::default())
            .unwrap();
        {
            let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            let mode: String = conn
                .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "delete");
        }
        let before = std::fs::read(dir.path().join(DATABASE_FILE)).unwrap();
        let store = StateStore::open_current(dir.path())
            .unwrap()
            .expect("current");
        assert_eq!(store.agents().unwrap().len(), 1);
        drop(store);
        assert!(std::fs::read(dir.path().join(DATABASE_FILE)).unwrap() == before);
        let files: Vec<String> = (std::fs::read_dir(dir.path()).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, vec![DATABASE_FILE]);
    }

    #[test]
    fn a_null_key_or_a_mistyped_column_spoils_only_its_row() {
        let store = StateStore::open_in_memory().unwrap();
        store.ensure_local_host().unwrap();
        store.create_agent(&web(), &AgentSpec::default()).unwrap();
        let start = StartId::random();
        store
            .begin_start_as(&web(), &start, Path::new("/b/web.1"), 0)
            .unwrap();
        // SQLite takes NULL in a TEXT PRIMARY KEY, and any type anywhere.
        store
            .conn()
            .execute_batch(
                "INSERT INTO agents (name, spec, status, created) VALUES (NULL, '{}', 'stopped', 0);
                 INSERT INTO starts (id, agent, pid, started) VALUES (NULL, 'web', 1, 0);
                 INSERT INTO hosts (name, backend, endpoint, enabled, created) VALUES ('gpu', 'docker', 'unix:///x', 'yes', 0);
                 INSERT INTO hosts (name, backend, endpoint, enabled, created) VALUES (NULL, 'docker', 'unix:///y', 1, 0);",
            )
            .unwrap();

        let agents = store.agent_rows().unwrap();
        assert_eq!(agents.rows.len(), 1);
        assert_eq!(agents.unreadable, vec!["NULL"]);
        let starts = store.start_rows().unwrap();
        assert_eq!(starts.rows.len(), 1);
        assert_eq!(starts.unreadable, vec!["NULL"]);
        let hosts = store.hosts().unwrap();
        let usable: Vec<&str> = (hosts.iter())
            .filter(|h| h.unusable.is_none())
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(usable, vec![LOCAL_HOST]);
        let spoiled: Vec<&str> = (hosts.iter())
            .filter(|h| h.unusable.is_some())
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(spoiled, vec!["NULL", "gpu"]);
        assert!(hosts[1]
            .unusable
            .as_deref()
            .unwrap()
            .contains("cannot be read"));
    }

    #[test]
    fn a_held_lock_makes_a_start_live_whatever_its_pid_says() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.create_agent(&web(), &AgentSpec::default()).unwrap();
        let start = StartId::random();
        // Recorded from another PID namespace: pid 0 means nothing here.
        let lock = store.hold_start(&start).unwrap();
        store
            .begin_start_as(&web(), &start, Path::new("/b/web.1"), 0)
            .unwrap();
        assert!(store.starts().unwrap()[0].is_live());
        drop(lock);
        assert!(!store.starts().unwrap()[0].is_live());
    }

    #[test]
    fn a_reused_pid_is_not_the_same_process() {
        let me = std::process::id();
        let start = own_process_start().expect("own start time");
        assert!(process_alive(me, Some(start)));
        assert!(process_alive(me, None));
        assert!(!process_alive(me, Some(start + 1)));
        assert!(!process_alive(0, None));
    }

    #[test]
    fn a_zombie_does_not_run() {
        // A child that exited and is not reaped yet: its /proc entry stays.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_stat(pid).map(|(state, _)| state) != Some('Z') {
            assert!(std::time::Instant::now() < deadline, "never a zombie");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!process_alive(pid, None));
        child.wait().unwrap();
        assert!(!process_alive(pid, None));
    }

    #[test]
    fn a_start_whose_process_is_gone_is_not_live() {
        let store = StateStore::open_in_memory().unwrap();
        let id = StartId::random();
        // pid 0 never names a process in /proc.
        let other = AgentName::new("other").unwrap();
        store.create_agent(&web(), &AgentSpec::default()).unwrap();
        store.create_agent(&other, &AgentSpec::default()).unwrap();
        store
            .begin_start_as(&web(), &id, Path::new("/b/web.1"), 0)
            .unwrap();
        store
            .begin_start(&other, &StartId::random(), Path::new("/b/other.1"))
            .unwrap();
        let starts = store.starts().unwrap();
        let live: Vec<bool> = starts
            .iter()
            .map(|s| (s.id == id, s.is_live()))
            .filter(|x| x.0)
            .map(|x| x.1)
            .collect();
        assert_eq!(live, vec![false]);
        assert!(starts.iter().any(|s| s.is_live()));
    }

    #[test]
    fn a_store_a_newer_anvyl_wrote_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        StateStore::open(dir.path())
            .unwrap()
            .create_agent(&web(), &AgentSpec::default())
            .unwrap();
        let file = dir.path().join(DATABASE_FILE);
        {
            let conn = Connection::open(&file).unwrap();
            conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA user_version = 99;")
                .unwrap();
        }
        let before = std::fs::read(&file).unwrap();
        let err = StateStore::open(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "state store {} was written by a newer anvyl (schema 99, this one knows 4): upgrade anvyl",
                file.display()
            )
        );
        assert!(StateStore::open_current(dir.path()).unwrap().is_none());
        assert_eq!(std::fs::read(&file).unwrap(), before, "written to");
        assert!(!dir.path().join("anvyl.db-wal").exists());
    }
}
