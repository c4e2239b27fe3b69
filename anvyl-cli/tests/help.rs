//! Snapshots of `--help`, so a change to the command line is a visible diff.
//! These run the built binary and need no engine.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_anvyl"))
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .expect("run anvyl");
    assert!(output.status.success(), "{args:?} failed");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn agent_help() {
    insta::assert_snapshot!(help(&["agent", "--help"]));
}

#[test]
fn agent_start_help() {
    insta::assert_snapshot!(help(&["agent", "start", "--help"]));
}

#[test]
fn agent_cleanup_help() {
    insta::assert_snapshot!(help(&["agent", "cleanup", "--help"]));
}

#[test]
fn bad_names_are_refused_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = Command::new(env!("CARGO_BIN_EXE_anvyl"))
        .args(["agent", "cleanup", "Not_A_Name", "--yes"])
        .env("ANVYL_STATE_DIR", &state)
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .output()
        .expect("run anvyl");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: invalid agent name"), "{stderr}");
    assert!(!state.exists(), "the state directory was created");
}

#[test]
fn an_unreachable_engine_is_one_line_and_exit_3() {
    let state = tempfile::tempdir().unwrap();
    let anvyl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_anvyl"))
            .args(args)
            .env("ANVYL_STATE_DIR", state.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .expect("run anvyl")
    };
    let created = anvyl(&["agent", "create", "web", "--image", "base"]);
    assert_eq!(created.status.code(), Some(0), "{created:?}");
    for args in [
        &["agent", "cleanup", "--yes"][..],
        &["agent", "remove", "web", "--yes"],
    ] {
        let output = anvyl(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("unix:///nonexistent/docker.sock") && stderr.contains(" running?"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_config_typo_is_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("anvyl.toml");
    std::fs::write(&file, "backend = \"docker\"\nstop_timout = 3\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_anvyl"))
        .args(["--config", file.to_str().unwrap(), "agent", "cleanup"])
        .output()
        .expect("run anvyl");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stop_timout"), "{stderr}");
}

#[test]
fn a_bad_argument_is_one_line_and_exit_status_2() {
    for args in [
        &["agent", "logs", "web", "--tail", "-1"][..],
        &["agent", "bogus"],
        &["agent", "cleanup", "--no-such-flag"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_anvyl"))
            .args(args)
            .output()
            .expect("run anvyl");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}

#[test]
fn a_usage_error_keeps_what_clap_lists_below_its_first_line() {
    for (args, says) in [
        (
            &["agent", "create", "web"][..],
            "error: the following required arguments were not provided: --image <BASE> (see --help)",
        ),
        (
            &["agent", "lst"],
            "error: unrecognized subcommand 'lst'; tip: some similar subcommands exist: 'stop', 'ls', 'list' (see --help)",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_anvyl"))
            .args(args)
            .output()
            .expect("run anvyl");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr).trim_end(), says);
    }
}

/// What the shell gets when it asks anvyl to complete `args` (the last one
/// is the word being typed), with the state in `state`.
fn complete(state: &std::path::Path, args: &[&str]) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_anvyl"))
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", args.len().to_string())
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .env("ANVYL_STATE_DIR", state)
        .env("XDG_CONFIG_HOME", state.join("no-config"))
        .arg("--")
        .arg("anvyl")
        .args(args)
        .output()
        .expect("run anvyl");
    assert!(output.status.success(), "{args:?} failed");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn agent_and_host_names_complete_from_the_store_and_completing_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let offered = complete(&state, &["agent", "start", ""]);
    assert!(offered.iter().all(|o| o.starts_with('-')), "{offered:?}");
    assert!(!state.exists(), "completing created the state directory");
    for name in ["web-10", "web-2", "api"] {
        let created = Command::new(env!("CARGO_BIN_EXE_anvyl"))
            .args(["agent", "create", name, "--image", "base"])
            .env("ANVYL_STATE_DIR", &state)
            .env("XDG_CONFIG_HOME", state.join("no-config"))
            .output()
            .expect("run anvyl");
        assert!(created.status.success(), "{created:?}");
    }
    assert_eq!(
        complete(&state, &["agent", "stop", "we"]),
        ["web-2", "web-10"]
    );
    assert_eq!(
        complete(&state, &["agent", "cleanup", "--host", ""]),
        ["local"]
    );
}

#[test]
fn completing_never_writes_a_store_that_is_empty_or_needs_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let database = state.join(anvyl_core::state::DATABASE_FILE);
    // An empty file, then an older anvyl's header (schema version 1): a
    // real SQLite page whose user_version (bytes 60..64) is below ours.
    let mut old = vec![0u8; 4096];
    old[..16].copy_from_slice(b"SQLite format 3\0");
    old[16..18].copy_from_slice(&4096u16.to_be_bytes());
    old[60..64].copy_from_slice(&1i32.to_be_bytes());
    for contents in [Vec::new(), old] {
        std::fs::write(&database, &contents).unwrap();
        let offered = complete(&state, &["agent", "stop", ""]);
        assert!(offered.iter().all(|o| o.starts_with('-')), "{offered:?}");
        let now = std::fs::read(&database).unwrap();
        assert!(now == contents, "completing wrote to the store");
        let files: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
        assert_eq!(
            files.len(),
            1,
            "completing wrote beside the store: {files:?}"
        );
    }
}
