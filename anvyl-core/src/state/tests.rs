//! The store on disk: its id made once, readers not waiting for writers,
//! unreadable rows skipped, migrations and newer stores, start liveness.

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
        conn.execute_batch("CREATE TABLE agents (name TEXT PRIMARY KEY); PRAGMA user_version = 3;")
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
            "state store {} was written by a newer anvyl (schema 99, this one knows 5): upgrade anvyl",
            file.display()
        )
    );
    assert!(StateStore::open_current(dir.path()).unwrap().is_none());
    assert_eq!(std::fs::read(&file).unwrap(), before, "written to");
    assert!(!dir.path().join("anvyl.db-wal").exists());
}

/// `agent update` and `agent start` meet in one row: an update before the
/// start's transaction is the spec the start runs; after it, the update is
/// refused and the start keeps what it read. Two updates each see the other.
#[test]
fn an_update_and_a_start_never_disagree_on_the_spec() {
    let state = StateStore::open_in_memory().unwrap();
    let web = web();
    state.create_agent(&web, &AgentSpec::default()).unwrap();
    let set = |command: &'static str| {
        move |spec: &mut AgentSpec| -> Result<(), ()> {
            spec.command = Some(command.into());
            Ok(())
        }
    };
    state.update_spec(&web, set("one")).unwrap().unwrap();
    let both = |spec: &mut AgentSpec| -> Result<(), ()> {
        spec.network = Some("none".into());
        Ok(())
    };
    state.update_spec(&web, both).unwrap().unwrap();
    let start = StartId::random();
    let spec = state.begin_start(&web, &start, Path::new("/b")).unwrap();
    assert_eq!(spec.command.as_deref(), Some("one"));
    assert_eq!(spec.network.as_deref(), Some("none"));
    let refused = state.update_spec(&web, set("two"));
    assert!(
        matches!(refused, Err(StateError::WrongStatus { .. })),
        "{refused:?}"
    );
    assert_eq!(
        state.agent(&web).unwrap().spec.command.as_deref(),
        Some("one")
    );
    // A change that refuses writes nothing.
    let w2 = AgentName::new("w2").unwrap();
    state.create_agent(&w2, &AgentSpec::default()).unwrap();
    let said = state
        .update_spec(&w2, |spec: &mut AgentSpec| {
            spec.command = Some("x".into());
            Err("no")
        })
        .unwrap();
    assert_eq!(said, Err("no"));
    assert_eq!(state.agent(&w2).unwrap().spec.command, None);
}
