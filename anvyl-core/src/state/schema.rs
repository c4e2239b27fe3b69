//! The store's file and schema: opening (creating, switching to WAL,
//! migrating an older schema), or opening only a store already at this
//! anvyl's schema for callers that must not write (shell completion).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{liveness, StateError, StateStore, DATABASE_FILE};
use crate::ids::InstanceId;

/// The schema this code writes; a store below it gets [`SCHEMA`] again
/// (every statement is idempotent).
const SCHEMA_VERSION: i64 = 5;

/// How a store is opened: by commands, which may set it up or migrate it,
/// or only read (shell completion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hosts (
    name     TEXT PRIMARY KEY,
    backend  TEXT,
    endpoint TEXT,
    enabled  INTEGER NOT NULL DEFAULT 1,
    created  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    name          TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,
    status        TEXT NOT NULL,
    container_id  TEXT,
    host          TEXT,
    current_start TEXT,
    created       INTEGER NOT NULL,
    engine        TEXT
);
CREATE TABLE IF NOT EXISTS starts (
    id        TEXT PRIMARY KEY,
    agent     TEXT NOT NULL,
    host      TEXT,
    build_dir TEXT,
    pid       INTEGER NOT NULL,
    pid_start INTEGER,
    started   INTEGER NOT NULL,
    ended     INTEGER,
    outcome   TEXT
);
CREATE TABLE IF NOT EXISTS build_steps (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    start  TEXT NOT NULL,
    image  TEXT NOT NULL,
    parent TEXT NOT NULL
);
";

impl StateStore {
    /// Opens (creating if needed) the store in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StateError::Directory {
            path: state_dir.display().to_string(),
            cause: source,
        })?;
        Self::open_file(state_dir, Access::ReadWrite)
    }

    /// Opens the store in `state_dir` only if it exists at this anvyl's
    /// schema: `None` for no store, an empty file or one that an older
    /// anvyl wrote. Nothing is created or migrated on the way — for
    /// callers that must not write at all (shell completion). The schema
    /// version is read from the file's header (`user_version`, bytes
    /// 60–63), before SQLite is asked anything.
    pub fn open_current(state_dir: &Path) -> Result<Option<Self>, StateError> {
        use std::io::Read;
        let path = state_dir.join(DATABASE_FILE);
        let mut header = [0u8; 100];
        let read = std::fs::File::open(&path).and_then(|mut f| f.read_exact(&mut header));
        match read {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(None)
            }
            Err(source) => {
                return Err(StateError::Directory {
                    path: path.display().to_string(),
                    cause: source,
                })
            }
        }
        let version = i64::from(i32::from_be_bytes([
            header[60], header[61], header[62], header[63],
        ]));
        if !header.starts_with(b"SQLite format 3\0") || version != SCHEMA_VERSION {
            return Ok(None);
        }
        // Read-only: not even the journal mode is set on the way.
        Self::open_file(state_dir, Access::ReadOnly).map(Some)
    }

    /// Opens the database file of `state_dir` for `access`.
    fn open_file(state_dir: &Path, access: Access) -> Result<Self, StateError> {
        use rusqlite::OpenFlags;
        let path = state_dir.join(DATABASE_FILE);
        let display = path.display().to_string();
        let flags = match access {
            Access::ReadWrite => OpenFlags::default(),
            Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        };
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|source| StateError::Database {
                path: display.clone(),
                cause: source,
            })?;
        Self::init(conn, display, Some(state_dir.join(liveness::LOCKS)), access)
    }

    /// A private in-memory store (tests, conformance checks).
    pub fn open_in_memory() -> Result<Self, StateError> {
        let conn = Connection::open_in_memory().map_err(|source| StateError::Database {
            path: ":memory:".into(),
            cause: source,
        })?;
        Self::init(conn, ":memory:".into(), None, Access::ReadWrite)
    }

    fn init(
        conn: Connection,
        path: String,
        locks: Option<PathBuf>,
        access: Access,
    ) -> Result<Self, StateError> {
        let err = |source| StateError::Database {
            path: path.clone(),
            cause: source,
        };
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        // A newer anvyl's store may hold what this one cannot read or would
        // write wrongly: refused before anything is written, WAL included.
        if version > SCHEMA_VERSION {
            return Err(StateError::NewerSchema {
                path,
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        // Opening must not need the write lock: `agent list` has to answer
        // while another process holds a write transaction. Only a store
        // that is new, or older than this schema, is written to here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") && path != ":memory:" && access == Access::ReadWrite {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(err)?;
        }
        let instance = match (
            version >= SCHEMA_VERSION,
            read_instance(&conn).map_err(err)?,
        ) {
            (true, Some(id)) => id,
            _ => {
                // The installation id is made once, in a transaction, so two
                // first runs racing each other still agree on one id.
                let mut conn = conn;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(err)?;
                tx.execute_batch(SCHEMA).map_err(err)?;
                // Version 2: the engine an agent was registered on. Version
                // 3: how a host is reached (TLS, plain TCP, a named context).
                // Version 4: the engine a start went to. Version 5: the
                // step images a start's build made (`build_steps`, above).
                for (table, column, ty) in [
                    ("agents", "engine", "TEXT"),
                    ("starts", "engine", "TEXT"),
                    ("hosts", "tls_dir", "TEXT"),
                    ("hosts", "insecure", "INTEGER NOT NULL DEFAULT 0"),
                    ("hosts", "named", "TEXT"),
                ] {
                    let present: bool = tx
                        .query_row(
                            "SELECT count(*) FROM pragma_table_xinfo(?1) WHERE name = ?2",
                            [table, column],
                            |r| r.get(0),
                        )
                        .map_err(err)?;
                    if !present {
                        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))
                            .map_err(err)?;
                    }
                }
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(err)?;
                let id = match read_instance(&tx).map_err(err)? {
                    Some(id) => id,
                    None => {
                        let id = InstanceId::random();
                        tx.execute(
                            "INSERT INTO meta (key, value) VALUES ('instance', ?1)",
                            [id.as_str()],
                        )
                        .map_err(err)?;
                        id
                    }
                };
                tx.commit().map_err(err)?;
                return Ok(Self {
                    conn: Mutex::new(conn),
                    path,
                    instance: id,
                    locks,
                });
            }
        };
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            instance,
            locks,
        })
    }
}

fn read_instance(conn: &Connection) -> rusqlite::Result<Option<InstanceId>> {
    // Before the schema exists there is no meta table: no id yet.
    let exists: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map(|id| id.map(InstanceId::from_stored))
}
