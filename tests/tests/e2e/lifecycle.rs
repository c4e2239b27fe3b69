//! `anvyl agent start` either ends with a running, registered agent or with
//! nothing left behind: one test per failure cause, each asserting that no
//! container or image carries the agent's labels or exact name, that no
//! build directory remains, that the status is `stopped`, that the exit is
//! non-zero, and that the log tells the cleanup.

use std::time::{Duration, Instant};

use anvyl_core::{AgentName, AgentStatus};
use anvyl_tests::{Run, Sandbox};

use crate::unique;

/// Creates `name` with `args` (no `--start`).
pub(crate) fn create(s: &Sandbox, name: &str, args: &[&str]) -> AgentName {
    let mut argv = vec!["agent", "create", name];
    argv.extend(args);
    let run = s.anvyl(&argv);
    assert_eq!(run.code, Some(0), "create: {run:?}");
    AgentName::new(name).unwrap()
}

/// Everything a failed start must leave: nothing of the agent, status
/// stopped, a non-zero exit and the cleanup in the log.
pub(crate) async fn assert_cleaned(s: &Sandbox, agent: &AgentName, run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "{run:?}");
    assert_eq!(s.traces_of(agent).await, Vec::<String>::new(), "{run:?}");
    assert_eq!(
        s.build_dirs_of(agent),
        Vec::<std::path::PathBuf>::new(),
        "{run:?}"
    );
    assert_eq!(s.state().agent(agent).unwrap().status, AgentStatus::Stopped);
    for line in [
        format!("Cleaning up failed startup for agent '{agent}'"),
        format!("Reset agent '{agent}' status to stopped"),
    ] {
        assert!(
            run.stderr.lines().any(|l| l == line),
            "missing {line:?} in:\n{}",
            run.stderr
        );
    }
}

fn timed(s: &Sandbox, args: &[&str]) -> Run {
    let began = Instant::now();
    let run = s.anvyl(args);
    eprintln!(
        "{} {:?}: start-to-clean {:.2}s",
        s.itest.backend,
        args,
        began.elapsed().as_secs_f64()
    );
    run
}

#[tokio::test]
async fn a_failing_build_step_leaves_nothing() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let agent = create(
        &s,
        &unique("badstep"),
        &[
            "--image",
            &base,
            "--setup",
            "echo one",
            "--setup",
            "echo pip says no >&2; false",
        ],
    );
    let run = timed(&s, &["agent", "start", agent.as_str()]);
    assert_cleaned(&s, &agent, &run, 1).await;
    assert!(run.stderr.contains("image build failed"), "{}", run.stderr);
    // The failing step's own output is shown without -v.
    assert!(
        run.stderr.contains("last output of the build:")
            && run
                .stderr
                .lines()
                .any(|l| l.starts_with("  | ") && l.ends_with("pip says no")),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_missing_base_image_leaves_nothing() {
    let s = Sandbox::new().await;
    let agent = create(
        &s,
        &unique("badbase"),
        &["--image", "localhost/anvyl-no-such-base:1"],
    );
    let run = timed(&s, &["agent", "start", agent.as_str()]);
    assert_cleaned(&s, &agent, &run, 1).await;
}

#[tokio::test]
async fn a_container_that_cannot_start_leaves_nothing() {
    let s = Sandbox::new().await;
    // An image with no shell: it builds, the container is created, and the
    // engine cannot run `/bin/sh -c …` in it.
    let agent = create(
        &s,
        &unique("noshell"),
        &["--image", "scratch", "--command", "sleep 600"],
    );
    let run = timed(&s, &["agent", "start", agent.as_str()]);
    assert_cleaned(&s, &agent, &run, 1).await;
    assert!(
        run.stderr.contains("start container failed") && !run.stderr.contains("cannot start"),
        "{}",
        run.stderr
    );
    for line in [
        format!("Removed container by name: {}", agent.resource_name()),
        format!(
            "Removed {} image: {}",
            s.itest.engine_name(),
            agent.image_tag()
        ),
    ] {
        assert!(
            run.stderr.lines().any(|l| l == line),
            "missing {line:?} in:\n{}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn a_command_that_exits_at_once_says_its_code_and_output_and_leaves_nothing() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let agent = create(
        &s,
        &unique("quick"),
        &["--image", &base, "--command", "echo no API key >&2; exit 3"],
    );
    let run = timed(&s, &["agent", "start", agent.as_str()]);
    assert_cleaned(&s, &agent, &run, 1).await;
    // Its exit code and its last output, read before the cleanup removed it.
    assert!(
        run.stderr
            .contains("the agent's command exited with code 3")
            && run.stderr.contains("\n  | no API key"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn no_host_leaves_nothing() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let agent = create(
        &s,
        &unique("nohost"),
        &["--image", &base, "--command", "sleep 600"],
    );
    assert_eq!(s.anvyl(&["host", "remove", "local"]).code, Some(0));
    let run = timed(&s, &["agent", "start", agent.as_str()]);
    assert_cleaned(&s, &agent, &run, 1).await;
    assert!(run.stderr.contains("no hosts available"), "{}", run.stderr);
}

/// An agent whose build has a 30-second step, to interrupt.
pub(crate) fn create_slow(s: &Sandbox, stem: &str) -> AgentName {
    let base = s.itest.base_image.clone();
    create(
        s,
        &unique(stem),
        &[
            "--image",
            &base,
            "--setup",
            "sleep 30",
            "--command",
            "sleep 600",
        ],
    )
}

/// Waits until a start of `agent` has made its build directory, then lets
/// the engine reach the slow step.
pub(crate) async fn wait_for_the_slow_step(s: &Sandbox, agent: &AgentName) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.build_dirs_of(agent).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the start never made its build directory"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// Starts a slow build, waits until its build directory exists, and sends
/// `signal` to anvyl.
async fn interrupt_slow_start(s: &Sandbox, agent: &AgentName, signal: &str) -> Run {
    let child = s.spawn_anvyl(&["agent", "start", agent.as_str()]);
    wait_for_the_slow_step(s, agent).await;
    let began = Instant::now();
    Sandbox::signal(&child, signal);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "{} {signal}: signal-to-exit {:.2}s",
        s.itest.backend,
        began.elapsed().as_secs_f64()
    );
    output.into()
}

#[tokio::test]
async fn sigint_during_a_slow_build_leaves_nothing() {
    let s = Sandbox::new().await;
    let agent = create_slow(&s, "sigint");
    let run = interrupt_slow_start(&s, &agent, "-INT").await;
    assert_cleaned(&s, &agent, &run, 130).await;
}

#[tokio::test]
async fn after_kill_9_during_a_slow_build_the_next_cleanup_removes_the_leftovers() {
    let s = Sandbox::new().await;
    let agent = create_slow(&s, "killed");
    let killed = interrupt_slow_start(&s, &agent, "-KILL").await;
    assert_eq!(killed.code, None, "kill -9 leaves no exit status");
    assert_eq!(
        s.state().agent(&agent).unwrap().status,
        AgentStatus::Starting
    );
    assert_eq!(
        s.build_dirs_of(&agent).len(),
        1,
        "the crashed start left its build directory"
    );

    let run = s.anvyl(&["agent", "cleanup", "--yes"]);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(s.traces_of(&agent).await, Vec::<String>::new());
    assert_eq!(s.build_dirs_of(&agent), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        s.state().agent(&agent).unwrap().status,
        AgentStatus::Stopped
    );
    assert!(
        run.stderr
            .contains(&format!("Reset agent '{agent}' status to stopped")),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_invalid_agent_leaves_no_more_anvyl_resources_than_before() {
    let s = Sandbox::new().await;
    let before = s.owned_counts().await;
    let agent = create(
        &s,
        &unique("invalid"),
        &[
            "--image",
            "localhost/anvyl-invalid-base:0",
            "--setup",
            "false",
        ],
    );
    let run = s.anvyl(&["agent", "start", agent.as_str()]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert_eq!(s.traces_of(&agent).await, Vec::<String>::new());
    assert_eq!(
        s.owned_counts().await,
        before,
        "anvyl's containers or images grew"
    );
    assert_eq!(
        s.state().agent(&agent).unwrap().status,
        AgentStatus::Stopped
    );
}

#[tokio::test]
async fn a_good_agent_runs_logs_stops_and_is_cleaned_up() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let name = unique("good");
    let run = s.anvyl_with(
        &[
            "agent",
            "create",
            &name,
            "--image",
            &base,
            "--provider",
            "anthropic",
            "--model",
            "claude",
            "--api-key-env",
            "ANVYL_TEST_KEY",
            "--command",
            "echo key=$ANVYL_TEST_KEY; echo ready; sleep 600",
            "--start",
        ],
        &[("ANVYL_TEST_KEY", "sk-test-123")],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let agent = AgentName::new(name.as_str()).unwrap();
    assert_eq!(s.build_dirs_of(&agent), Vec::<std::path::PathBuf>::new());

    let list = s.anvyl(&["--output", "json", "agent", "list", "--running"]);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).expect("JSON");
    assert_eq!(rows[0]["name"], name.as_str());
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["host"].as_str()),
        (Some("running"), Some("local"))
    );
    assert_eq!(rows[0]["provider"], "anthropic");

    // The key reaches the container, and nowhere else.
    let logs = s.anvyl(&["agent", "logs", &name]);
    assert!(
        logs.stdout.contains("key=sk-test-123") && logs.stdout.contains("ready"),
        "{logs:?}"
    );
    let db = std::fs::read(s.state_dir.path().join("anvyl.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains("sk-test-123"),
        "the key was stored"
    );

    let again = s.anvyl(&["agent", "start", &name]);
    assert_eq!(
        again.code,
        Some(2),
        "a second start must be refused: {again:?}"
    );
    let remove = s.anvyl(&["agent", "remove", &name, "--yes"]);
    assert_eq!(
        remove.code,
        Some(2),
        "a running agent needs --force: {remove:?}"
    );
    // Refused before any question is asked (here: no terminal to ask on).
    let unasked = s.anvyl(&["agent", "rm", &name]);
    assert_eq!(unasked.code, Some(2), "{unasked:?}");
    assert!(unasked.stderr.contains("is running"), "{unasked:?}");

    let stop = s.anvyl(&["agent", "stop", &name]);
    assert_eq!(stop.code, Some(0), "{stop:?}");
    assert!(!s.has_container(&agent.resource_name()).await);
    assert_eq!(
        s.state().agent(&agent).unwrap().status,
        AgentStatus::Stopped
    );
    // Like `docker stop`: stopping a stopped agent succeeds, and says so.
    let again = s.anvyl(&["agent", "stop", &name]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(again.stderr.contains("not running"), "{again:?}");

    let cleanup = s.anvyl(&["agent", "cleanup", "--yes"]);
    assert_eq!(cleanup.code, Some(0), "{cleanup:?}");
    assert_eq!(s.traces_of(&agent).await, Vec::<String>::new());
}
