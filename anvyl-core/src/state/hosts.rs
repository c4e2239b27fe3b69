//! The hosts registry — the "infrastructure service" an agent registers
//! with once its container runs. A host is an engine endpoint; the local
//! host follows the configuration and is registered once, on first use, so
//! that removing it sticks.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::{now, AgentStatus, StateError, StateStore};
use crate::backend::BackendKind;
use crate::ids::StartId;
use crate::name::AgentName;

/// The name of the host registered from the configuration.
pub const LOCAL_HOST: &str = "local";

/// One host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRecord {
    /// Its name.
    pub name: String,
    /// Its engine; `None` follows the configuration — unless `unusable`
    /// says why there is none.
    pub backend: Option<BackendKind>,
    /// Why the host cannot be used: its row names a backend this anvyl
    /// does not know (a hand edit, a newer anvyl). Such a host is listed
    /// and reported, never connected; the other hosts are unaffected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
    /// The endpoint; `None` follows the configuration.
    pub endpoint: Option<String>,
    /// Whether starts may use it.
    pub enabled: bool,
    /// Registration time, seconds since the epoch.
    pub created: i64,
    /// How it is reached, beyond its endpoint.
    pub access: HostAccess,
}

/// How a host is reached, beyond its endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostAccess {
    /// The directory of `ca.pem`, `cert.pem` and `key.pem` for a `tcp://`
    /// endpoint with TLS.
    pub tls_dir: Option<String>,
    /// A plain `tcp://` endpoint the user accepted without TLS.
    pub insecure: bool,
    /// A Docker context or Podman system connection (by its backend) the
    /// endpoint is read from at each connection, instead of `endpoint`.
    pub named: Option<String>,
}

const HOST_COLUMNS: &str = "name, backend, endpoint, enabled, created, tls_dir, insecure, named";

fn row_to_host(r: &rusqlite::Row<'_>) -> rusqlite::Result<HostRecord> {
    // A row that cannot be read (a hand edit: `enabled = 'yes'`, a NULL
    // name) makes that host unusable and reported, never the registry
    // unreadable: every other host still works.
    Ok(read_host(r).unwrap_or_else(|e| HostRecord {
        name: super::records::key_text(r, 0),
        backend: None,
        unusable: Some(format!("its row in the state store cannot be read ({e})")),
        endpoint: None,
        enabled: true,
        created: 0,
        access: HostAccess::default(),
    }))
}

fn read_host(r: &rusqlite::Row<'_>) -> rusqlite::Result<HostRecord> {
    // Read as text: one row with a backend this anvyl does not know must not
    // make the whole registry unreadable.
    let (backend, unusable) = match r
        .get::<_, Option<String>>(1)?
        .map(|b| b.parse::<BackendKind>())
    {
        None => (None, None),
        Some(Ok(kind)) => (Some(kind), None),
        Some(Err(e)) => (None, Some(e.to_string())),
    };
    Ok(HostRecord {
        name: r.get(0)?,
        backend,
        unusable,
        endpoint: r.get(2)?,
        enabled: r.get(3)?,
        created: r.get(4)?,
        access: HostAccess {
            tls_dir: r.get(5)?,
            insecure: r.get(6)?,
            named: r.get(7)?,
        },
    })
}

impl StateStore {
    /// Registers the local host the first time the registry is used. Returns
    /// true when it did; after a `host remove local` it never comes back.
    pub fn ensure_local_host(&self) -> Result<bool, StateError> {
        // Once registered, a plain read: no command waits for another
        // process's write lock just to learn that nothing is to be done.
        if self.local_host_registered()? {
            return Ok(false);
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db_err(e))?;
        let done: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'local_host'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db_err(e))?;
        if done.is_some() {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR IGNORE INTO hosts (name, backend, endpoint, enabled, created) VALUES (?1, NULL, NULL, 1, ?2)",
            params![LOCAL_HOST, now()],
        )
        .map_err(|e| self.db_err(e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('local_host', 'registered')",
            [],
        )
        .map_err(|e| self.db_err(e))?;
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(true)
    }

    fn local_host_registered(&self) -> Result<bool, StateError> {
        let done: Option<String> = self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = 'local_host'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db_err(e))?;
        Ok(done.is_some())
    }

    /// Adds a host.
    pub fn add_host(
        &self,
        name: &str,
        backend: BackendKind,
        endpoint: Option<&str>,
        access: &HostAccess,
    ) -> Result<(), StateError> {
        if AgentName::new(name).is_err() {
            return Err(StateError::InvalidHostName(name.to_string()));
        }
        let changed = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO hosts (name, backend, endpoint, enabled, created, tls_dir, insecure, named) VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7)",
                params![name, backend, endpoint, now(), access.tls_dir, access.insecure, access.named],
            )
            .map_err(|e| self.db_err(e))?;
        if changed == 0 {
            return Err(StateError::HostExists(name.to_string()));
        }
        Ok(())
    }

    /// Removes a host no agent is assigned to: an assigned agent, even a
    /// stopped one, would lose the only place its leftovers are looked for.
    pub fn remove_host(&self, name: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db_err(e))?;
        let busy: Vec<String> = {
            let mut stmt = tx
                // Also an agent with no host yet whose current start went
                // there: that host is its home (see `AgentRecord::home`).
                .prepare(
                    "SELECT name FROM agents WHERE host = ?1 OR (host IS NULL AND current_start IN (SELECT id FROM starts WHERE host = ?1)) ORDER BY name",
                )
                .map_err(|e| self.db_err(e))?;
            let rows = stmt
                .query_map([name], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<String>, _>>());
            rows.map_err(|e| self.db_err(e))?
        };
        if !busy.is_empty() {
            return Err(StateError::HostInUse {
                host: name.to_string(),
                agents: busy.join(", "),
            });
        }
        let changed = tx
            .execute("DELETE FROM hosts WHERE name = ?1", [name])
            .map_err(|e| self.db_err(e))?;
        if changed == 0 {
            return Err(StateError::UnknownHost(name.to_string()));
        }
        tx.commit().map_err(|e| self.db_err(e))
    }

    /// Every host, by name.
    pub fn hosts(&self) -> Result<Vec<HostRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {HOST_COLUMNS} FROM hosts ORDER BY created, name"
            ))
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], row_to_host)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db_err(e));
        rows
    }

    /// One host.
    pub fn host(&self, name: &str) -> Result<HostRecord, StateError> {
        self.conn()
            .query_row(
                &format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1"),
                [name],
                row_to_host,
            )
            .optional()
            .map_err(|e| self.db_err(e))?
            .ok_or_else(|| StateError::UnknownHost(name.to_string()))
    }

    /// Pins an agent to a host.
    pub fn assign_host(&self, agent: &AgentName, host: &str) -> Result<(), StateError> {
        self.host(host)?;
        let changed = self
            .conn()
            .execute(
                "UPDATE agents SET host = ?2 WHERE name = ?1",
                params![agent.as_str(), host],
            )
            .map_err(|e| self.db_err(e))?;
        if changed == 0 {
            return Err(StateError::UnknownAgent(agent.clone()));
        }
        Ok(())
    }

    /// Registers a started agent: `starting` → `running` on `host` with its
    /// container, in one transaction that also checks the host is still
    /// registered and enabled and that the start is still the agent's own.
    pub fn register(
        &self,
        agent: &AgentName,
        host: &str,
        container_id: &str,
        start: &StartId,
        engine: &crate::identity::RecordedEngine,
    ) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db_err(e))?;
        let enabled: Option<bool> = tx
            .query_row("SELECT enabled FROM hosts WHERE name = ?1", [host], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db_err(e))?;
        if enabled != Some(true) {
            return Err(StateError::UnknownHost(host.to_string()));
        }
        let changed = tx
            .execute(
                "UPDATE agents SET status = 'running', container_id = ?2, host = ?3, engine = ?5 \
                 WHERE name = ?1 AND status = 'starting' AND current_start = ?4",
                params![agent.as_str(), container_id, host, start.as_str(), engine],
            )
            .map_err(|e| self.db_err(e))?;
        if changed == 0 {
            return Err(StateError::WrongStatus {
                agent: agent.clone(),
                actual: "not starting",
                expected: AgentStatus::Starting.as_str(),
            });
        }
        tx.commit().map_err(|e| self.db_err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AgentSpec;

    #[test]
    fn the_local_host_is_registered_once_and_its_removal_sticks() {
        let store = StateStore::open_in_memory().unwrap();
        assert!(store.ensure_local_host().unwrap());
        assert_eq!(store.hosts().unwrap()[0].name, LOCAL_HOST);
        store.remove_host(LOCAL_HOST).unwrap();
        assert!(!store.ensure_local_host().unwrap());
        assert!(store.hosts().unwrap().is_empty());
    }

    #[test]
    fn registration_needs_a_registered_host_and_the_current_start() {
        let store = StateStore::open_in_memory().unwrap();
        let web = AgentName::new("web").unwrap();
        store.create_agent(&web, &AgentSpec::default()).unwrap();
        let start = StartId::random();
        store
            .begin_start(&web, &start, std::path::Path::new("/b/web.s"))
            .unwrap();
        assert!(matches!(
            store.register(
                &web,
                "nowhere",
                "c1",
                &start,
                &crate::identity::RecordedEngine::parse("Docker x")
            ),
            Err(StateError::UnknownHost(_))
        ));
        store
            .add_host(
                "h1",
                crate::BackendKind::Docker,
                Some("unix:///x.sock"),
                &Default::default(),
            )
            .unwrap();
        assert!(store
            .register(
                &web,
                "h1",
                "c1",
                &StartId::random(),
                &crate::identity::RecordedEngine::parse("Docker x")
            )
            .is_err());
        store
            .register(
                &web,
                "h1",
                "c1",
                &start,
                &crate::identity::RecordedEngine::parse("Docker x"),
            )
            .unwrap();
        let agent = store.agent(&web).unwrap();
        assert_eq!(
            (agent.status, agent.container_id.as_deref()),
            (AgentStatus::Running, Some("c1"))
        );
        assert!(matches!(
            store.remove_host("h1"),
            Err(StateError::HostInUse { .. })
        ));
    }

    #[test]
    fn a_host_a_failed_start_went_to_is_still_in_use() {
        let store = StateStore::open_in_memory().unwrap();
        store
            .add_host(
                "h2",
                crate::BackendKind::Docker,
                Some("unix:///y.sock"),
                &Default::default(),
            )
            .unwrap();
        let web = AgentName::new("web").unwrap();
        store.create_agent(&web, &AgentSpec::default()).unwrap();
        let start = StartId::random();
        store
            .begin_start(&web, &start, std::path::Path::new("/b/web.s"))
            .unwrap();
        store.update_start(&start, Some("h2"), None).unwrap();
        // The agent has no host of its own, but its leftovers are on h2.
        let err = store.remove_host("h2").unwrap_err();
        assert!(err.to_string().contains("web"), "{err}");
        store
            .delete_agent(
                &web,
                &crate::state::Fence::at(AgentStatus::Starting, Some(&start)),
            )
            .unwrap();
        store.remove_host("h2").unwrap();
    }

    #[test]
    fn a_hosts_backend_is_stored_typed_and_a_stranger_makes_only_that_host_unusable() {
        let store = StateStore::open_in_memory().unwrap();
        store.ensure_local_host().unwrap();
        store
            .add_host("p", BackendKind::Podman, None, &Default::default())
            .unwrap();
        assert_eq!(store.host("p").unwrap().backend, Some(BackendKind::Podman));
        // A value no anvyl writes (a hand edit, a newer anvyl): that host
        // says why it cannot be used — it is not a host of some default
        // kind — and the registry stays readable.
        store
            .conn()
            .execute("UPDATE hosts SET backend = 'lxc' WHERE name = 'p'", [])
            .unwrap();
        let hosts = store.hosts().unwrap();
        let p = hosts.iter().find(|h| h.name == "p").unwrap();
        assert_eq!(p.backend, None);
        assert!(p.unusable.as_deref().unwrap().contains("lxc"), "{p:?}");
        let local = hosts.iter().find(|h| h.name == LOCAL_HOST).unwrap();
        assert_eq!(local.unusable, None);
    }

    #[test]
    fn a_registered_local_host_is_not_registered_under_a_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert!(store.ensure_local_host().unwrap());
        // Another process holds the write lock (a long start, say).
        let writer =
            rusqlite::Connection::open(dir.path().join(super::super::DATABASE_FILE)).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Before, this waited out the busy timeout and failed "locked".
        assert!(!store.ensure_local_host().unwrap());
        writer.execute_batch("ROLLBACK").unwrap();
    }
}
