//! Status changes, fenced by the start id. Every change is a compare-and-set
//! on what the caller saw — the agent's status and its current start — made
//! in one immediate transaction: a cleanup that planned a reset of start A
//! does nothing to an agent that a start B has taken since, and says so.
//! A start is recorded in the same transaction that moves the agent to
//! `starting`, so there is no moment when a start in progress looks crashed.

use std::fmt;
use std::path::Path;

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::liveness::process_stat;
use super::{now, own_process_start, AgentSpec, AgentStatus, StateError, StateStore};
use crate::ids::StartId;
use crate::name::AgentName;

/// What a caller saw of an agent, and what a compare-and-set expects to
/// find still: one of `statuses`, with `start` as the current start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The statuses the change may start from.
    pub statuses: Vec<AgentStatus>,
    /// The current start seen (`None`: the agent had never started).
    pub start: Option<StartId>,
}

impl Fence {
    /// Expects exactly `status` with `start` current.
    pub fn at(status: AgentStatus, start: Option<&StartId>) -> Self {
        Self {
            statuses: vec![status],
            start: start.cloned(),
        }
    }

    /// Also accepts `status`.
    pub fn or(mut self, status: AgentStatus) -> Self {
        if !self.statuses.contains(&status) {
            self.statuses.push(status);
        }
        self
    }

    fn admits(&self, status: AgentStatus, start: Option<&StartId>) -> bool {
        self.statuses.contains(&status) && self.start.as_ref() == start
    }
}

/// What an agent was found to be when a fenced change did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its status now.
    pub status: AgentStatus,
    /// Its current start now.
    pub start: Option<StartId>,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.start {
            Some(start) => write!(f, "{} (start {start})", self.status.as_str()),
            None => f.write_str(self.status.as_str()),
        }
    }
}

/// The result of a fenced change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced {
    /// The change was made.
    Done,
    /// The agent no longer exists.
    Gone,
    /// The agent is no longer what the caller saw; nothing was changed.
    Changed(Found),
}

impl StateStore {
    /// Moves `name` from `stopped` or `failed` to `starting` and records the
    /// start (id, build directory, this process) in one transaction. A second
    /// concurrent start finds `starting` and is refused.
    pub fn begin_start(
        &self,
        name: &AgentName,
        start: &StartId,
        build_dir: &Path,
    ) -> Result<AgentSpec, StateError> {
        self.begin_start_of(name, start, build_dir, std::process::id())
    }

    /// [`StateStore::begin_start`] on behalf of process `pid`: fixtures use
    /// it to stage a start whose process is gone (a crash).
    #[cfg(any(test, feature = "testing"))]
    pub fn begin_start_as(
        &self,
        name: &AgentName,
        start: &StartId,
        build_dir: &Path,
        pid: u32,
    ) -> Result<AgentSpec, StateError> {
        self.begin_start_of(name, start, build_dir, pid)
    }

    fn begin_start_of(
        &self,
        name: &AgentName,
        start: &StartId,
        build_dir: &Path,
        pid: u32,
    ) -> Result<AgentSpec, StateError> {
        self.fenced_tx(name, |tx, found| {
            found.at_rest(name, "stopped or failed")?;
            tx.execute(
                "UPDATE agents SET status = 'starting', container_id = NULL, current_start = ?2 WHERE name = ?1",
                params![name.as_str(), start.as_str()],
            )?;
            tx.execute(
                "INSERT INTO starts (id, agent, host, build_dir, pid, pid_start, started) VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6)",
                params![
                    start.as_str(),
                    name.as_str(),
                    build_dir.display().to_string(),
                    pid,
                    if pid == std::process::id() { own_process_start() } else { process_stat(pid).map(|(_, s)| s) }
                        .map(|ticks| ticks as i64),
                    now()
                ],
            )?;
            // The spec this start runs, read where no update can come
            // between (an update needs the agent stopped).
            spec_in(tx, name)
        })
    }

    /// Changes a stopped (or failed) agent's spec with `change`, in one
    /// transaction that checks the status: a start that began meanwhile
    /// keeps the spec it read and this update is refused, and two updates
    /// at once each see the other's. `change` may refuse (its error is
    /// returned inside, and nothing is written).
    pub fn update_spec<E>(
        &self,
        name: &AgentName,
        change: impl FnOnce(&mut AgentSpec) -> Result<(), E>,
    ) -> Result<Result<(), E>, StateError> {
        self.fenced_tx(name, |tx, found| {
            found.at_rest(name, "stopped (stop it first, then update it)")?;
            let mut spec = spec_in(tx, name)?;
            if let Err(e) = change(&mut spec) {
                return Ok(Err(e));
            }
            let json = serde_json::to_string(&spec).expect("an AgentSpec always serialises");
            tx.execute(
                "UPDATE agents SET spec = ?2 WHERE name = ?1",
                params![name.as_str(), json],
            )?;
            Ok(Ok(()))
        })
    }

    /// Step 4 of the pipeline, fenced: the status becomes `stopped` and the
    /// container id is cleared, only if the agent is still as `fence` says.
    pub fn reset_to_stopped(&self, name: &AgentName, fence: &Fence) -> Result<Fenced, StateError> {
        self.fenced_update(
            name,
            fence,
            "UPDATE agents SET status = 'stopped', container_id = NULL WHERE name = ?1",
        )
    }

    /// A running agent whose container is gone or exited becomes `failed`,
    /// only if it still runs the start the caller saw. Its container's id
    /// stays: `agent logs` reads the dead container until a cleanup (the
    /// watcher's, after its grace) removes it and resets the agent.
    pub fn mark_failed(
        &self,
        name: &AgentName,
        start: Option<&StartId>,
    ) -> Result<Fenced, StateError> {
        self.fenced_update(
            name,
            &Fence::at(AgentStatus::Running, start),
            "UPDATE agents SET status = 'failed' WHERE name = ?1",
        )
    }

    /// A failed agent whose recorded container runs again becomes
    /// `running`, only if it is still failed under the start the caller saw.
    pub fn revive(&self, name: &AgentName, start: Option<&StartId>) -> Result<Fenced, StateError> {
        self.fenced_update(
            name,
            &Fence::at(AgentStatus::Failed, start),
            "UPDATE agents SET status = 'running' WHERE name = ?1 AND container_id IS NOT NULL",
        )
    }

    /// Forgets an agent, only if it is still as `fence` says: an agent that
    /// a start took meanwhile is not forgotten under it.
    pub fn delete_agent(&self, name: &AgentName, fence: &Fence) -> Result<Fenced, StateError> {
        self.fenced_update(name, fence, "DELETE FROM agents WHERE name = ?1")
    }

    /// Sets a status unconditionally (test fixtures that stage a state).
    #[cfg(any(test, feature = "testing"))]
    pub fn force_status(
        &self,
        name: &AgentName,
        status: AgentStatus,
        container_id: Option<&str>,
        start: Option<&StartId>,
    ) -> Result<(), StateError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE agents SET status = ?2, container_id = ?3, current_start = COALESCE(?4, current_start) WHERE name = ?1",
                params![name.as_str(), status.as_str(), container_id, start.map(StartId::as_str)],
            )
            .map_err(|e| self.db_err(e))?;
        if changed == 0 {
            return Err(StateError::UnknownAgent(name.clone()));
        }
        Ok(())
    }

    fn fenced_update(
        &self,
        name: &AgentName,
        fence: &Fence,
        sql: &str,
    ) -> Result<Fenced, StateError> {
        let result = self.fenced_tx(name, |tx, found| {
            if !fence.admits(found.status, found.start.as_ref()) {
                return Ok(Fenced::Changed(found));
            }
            tx.execute(sql, [name.as_str()])?;
            Ok(Fenced::Done)
        });
        match result {
            Err(StateError::UnknownAgent(_)) => Ok(Fenced::Gone),
            other => other,
        }
    }

    /// Runs `change` in an immediate transaction with the agent's status and
    /// start as they are now; commits only when `change` succeeds.
    fn fenced_tx<T>(
        &self,
        name: &AgentName,
        change: impl FnOnce(&Transaction<'_>, Found) -> Result<T, TxError>,
    ) -> Result<T, StateError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db_err(e))?;
        let row: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT status, current_start FROM agents WHERE name = ?1",
                [name.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.db_err(e))?;
        let (status, start) = row.ok_or_else(|| StateError::UnknownAgent(name.clone()))?;
        let found = Found {
            status: AgentStatus::parse(&status).map_err(|e| self.db_err(e))?,
            start: start.map(StartId::from_stored),
        };
        let value = change(&tx, found).map_err(|e| match e {
            TxError::Sql(e) => self.db_err(e),
            TxError::State(e) => e,
        })?;
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(value)
    }
}

/// An error inside a fenced transaction: SQLite's, or a refusal.
impl Found {
    /// Refuses unless the agent is `stopped` or `failed`: nothing of it
    /// runs, so a start may begin or its spec change.
    fn at_rest(&self, name: &AgentName, expected: &'static str) -> Result<(), TxError> {
        match self.status {
            AgentStatus::Stopped | AgentStatus::Failed => Ok(()),
            status => Err(TxError::State(StateError::WrongStatus {
                agent: name.clone(),
                actual: status.as_str(),
                expected,
            })),
        }
    }
}

/// The agent's spec, read in `tx`.
fn spec_in(tx: &Transaction<'_>, name: &AgentName) -> Result<AgentSpec, TxError> {
    let json: String = tx.query_row(
        "SELECT spec FROM agents WHERE name = ?1",
        [name.as_str()],
        |r| r.get(0),
    )?;
    Ok(serde_json::from_str(&json).map_err(|e| super::records::conversion_error(0, e))?)
}

enum TxError {
    Sql(rusqlite::Error),
    State(StateError),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StateError> for TxError {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AgentSpec;

    fn web() -> AgentName {
        AgentName::new("web").unwrap()
    }

    fn store_with_web() -> StateStore {
        let store = StateStore::open_in_memory().unwrap();
        store.create_agent(&web(), &AgentSpec::default()).unwrap();
        store
    }

    #[test]
    fn a_second_concurrent_start_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = StateStore::open(dir.path()).unwrap();
        let b = StateStore::open(dir.path()).unwrap();
        a.create_agent(&web(), &AgentSpec::default()).unwrap();
        a.begin_start(&web(), &StartId::random(), Path::new("/b/web.1"))
            .unwrap();
        let err = b
            .begin_start(&web(), &StartId::random(), Path::new("/b/web.2"))
            .unwrap_err();
        assert!(matches!(
            err,
            StateError::WrongStatus {
                actual: "starting",
                ..
            }
        ));
        assert_eq!(
            a.starts().unwrap().len(),
            1,
            "the refused start left no record"
        );
    }

    #[test]
    fn a_start_is_one_commit() {
        let store = store_with_web();
        let start = StartId::random();
        store
            .begin_start(&web(), &start, Path::new("/b/web.x"))
            .unwrap();
        let agent = store.agent(&web()).unwrap();
        assert_eq!(agent.status, AgentStatus::Starting);
        assert_eq!(agent.current_start.as_ref(), Some(&start));
        let starts = store.starts().unwrap();
        assert_eq!(starts.len(), 1);
        assert!(
            starts[0].is_live(),
            "recorded with this process as its owner"
        );
        assert_eq!(starts[0].build_dir.as_deref(), Some(Path::new("/b/web.x")));
    }

    #[test]
    fn a_reset_of_an_old_start_leaves_a_new_one_alone() {
        let store = store_with_web();
        let old = StartId::random();
        store
            .force_status(&web(), AgentStatus::Failed, None, Some(&old))
            .unwrap();
        let planned = Fence::at(AgentStatus::Failed, Some(&old));
        // A start takes the agent after the cleanup planned its reset.
        let new = StartId::random();
        store
            .begin_start(&web(), &new, Path::new("/b/web.n"))
            .unwrap();
        let outcome = store.reset_to_stopped(&web(), &planned).unwrap();
        assert_eq!(
            outcome,
            Fenced::Changed(Found {
                status: AgentStatus::Starting,
                start: Some(new.clone())
            })
        );
        let agent = store.agent(&web()).unwrap();
        assert_eq!(
            (agent.status, agent.current_start),
            (AgentStatus::Starting, Some(new))
        );
    }

    #[test]
    fn a_reset_that_still_fits_clears_the_container_id() {
        let store = store_with_web();
        let start = StartId::random();
        store
            .force_status(&web(), AgentStatus::Running, Some("c1"), Some(&start))
            .unwrap();
        let fence = Fence::at(AgentStatus::Running, Some(&start));
        assert_eq!(
            store.reset_to_stopped(&web(), &fence).unwrap(),
            Fenced::Done
        );
        let agent = store.agent(&web()).unwrap();
        assert_eq!(
            (agent.status, agent.container_id),
            (AgentStatus::Stopped, None)
        );
        let gone = AgentName::new("gone").unwrap();
        assert_eq!(store.reset_to_stopped(&gone, &fence).unwrap(), Fenced::Gone);
    }

    #[test]
    fn mark_failed_needs_the_same_running_start() {
        let store = store_with_web();
        let (a, b) = (StartId::random(), StartId::random());
        store
            .force_status(&web(), AgentStatus::Running, Some("c1"), Some(&b))
            .unwrap();
        assert!(matches!(
            store.mark_failed(&web(), Some(&a)).unwrap(),
            Fenced::Changed(_)
        ));
        assert_eq!(store.agent(&web()).unwrap().status, AgentStatus::Running);
        assert_eq!(store.mark_failed(&web(), Some(&b)).unwrap(), Fenced::Done);
        let agent = store.agent(&web()).unwrap();
        assert_eq!(
            (agent.status, agent.container_id.as_deref()),
            (AgentStatus::Failed, Some("c1")),
            "failed, its dead container still named for `agent logs`"
        );
    }

    #[test]
    fn an_agent_taken_by_a_start_is_not_forgotten() {
        let store = store_with_web();
        let seen = Fence::at(AgentStatus::Stopped, None);
        store
            .begin_start(&web(), &StartId::random(), Path::new("/b/web.s"))
            .unwrap();
        assert!(matches!(
            store.delete_agent(&web(), &seen).unwrap(),
            Fenced::Changed(_)
        ));
        assert!(store.agent(&web()).is_ok());
    }
}
