//! The engine restarted under a running agent, with a watcher running: run
//! by `cargo xtask itest` alone with its engine, after the other tests.
//! While the engine is down, `agent list` says so rather than guess, a
//! start is refused as unreachable and changes nothing, and the watcher
//! reports the host and leaves its agents alone. Once it is back, what
//! anvyl shows is what the engine says. Docker stops the agent's container
//! on its way down (no live restore), and a suite's namespace ends with
//! every process in it, as a reboot would: the watcher fails the agent (on
//! its resync, or on the event of its death) and the next `agent start`
//! heals it. A Podman service on this machine leaves its containers to
//! conmon: the agent still runs, and stays `running`, untouched. xtask says
//! which of the two its engine does, and the test holds it to that.

use std::time::{Duration, Instant};

use anvyl_core::backend::ContainerState;
use anvyl_core::AgentStatus;
use anvyl_tests::restart::EngineSwitch;
use anvyl_tests::Sandbox;

use crate::unique;
use crate::watch::Watcher;

/// The agent's row of `agent list --output json`.
fn listed(s: &Sandbox, agent: &str) -> serde_json::Value {
    let run = s.anvyl(&["--output", "json", "agent", "list"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    (rows.as_array().expect("rows").iter())
        .find(|r| r["name"] == agent)
        .cloned()
        .unwrap_or_else(|| panic!("{agent} not listed: {run:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_restart_under_a_running_agent_is_seen_and_healed() {
    let switch = EngineSwitch::from_env();
    let s = Sandbox::new().await;
    let agent = s.create(&unique("restarted"));
    let container = s.started(&agent);
    // Grace long enough that the next start, not the watcher, removes what
    // a failed agent leaves; a resync short enough to see the engine back.
    let mut watcher = Watcher::spawn_with_grace(&s, "2s", "10m");

    switch.stop();
    let row = listed(&s, agent.as_str());
    assert_eq!(
        (row["status"].as_str(), row["recorded"].as_str()),
        (Some("unknown (host unreachable)"), Some("running")),
        "{row}"
    );
    let refused = s.anvyl(&["agent", "start", agent.as_str()]);
    assert_eq!(
        refused.code,
        Some(3),
        "a start with the engine down: {refused:?}"
    );
    let down = watcher.expect("host_unreachable", None, Duration::from_secs(30));
    assert_eq!(
        s.state().agent(&agent).expect("agent").status,
        AgentStatus::Running,
        "changed while the engine was down; the watcher said {down}"
    );

    switch.start();
    let back = Instant::now();
    watcher.expect("host_back", None, Duration::from_secs(30));
    // A client of its own: the sandbox's may hold connections of the
    // engine's previous life.
    let engine = s.itest.connect().await;
    let runs = engine
        .inspect_container(&container)
        .await
        .expect("inspect the agent's container")
        .state
        == ContainerState::Running;
    eprintln!(
        "restart: {} the agent's container {} the restart",
        s.itest.backend,
        if runs { "survived" } else { "did not survive" }
    );
    assert_eq!(
        runs, switch.keeps_containers,
        "whether the container outlived the engine's restart"
    );
    if runs {
        assert_eq!(listed(&s, agent.as_str())["status"], "running");
        let run = s.anvyl(&["agent", "start", agent.as_str()]);
        assert_eq!(run.code, Some(2), "a start of a running agent: {run:?}");
    } else {
        let failed = watcher.expect("failed", Some(&agent), Duration::from_secs(30));
        eprintln!(
            "restart: engine back to failed {:.2}s ({})",
            back.elapsed().as_secs_f64(),
            failed["finding"]
        );
        let row = listed(&s, agent.as_str());
        assert_eq!(
            (row["recorded"].as_str(), row["status"].as_str()),
            (Some("failed"), Some("failed")),
            "{row}"
        );
        let run = s.anvyl(&["agent", "start", agent.as_str()]);
        assert_eq!(run.code, Some(0), "the next start heals it: {run:?}");
        for said in [
            format!("Agent '{agent}' is not running: its last run had failed"),
            format!("Reset agent '{agent}' status to stopped"),
        ] {
            assert!(run.stderr.contains(&said), "{said}: {run:?}");
        }
        assert_eq!(listed(&s, agent.as_str())["status"], "running");
        assert!(
            !s.has_container(&container).await,
            "the dead container is gone"
        );
    }

    let (code, took, said) = watcher.terminate();
    assert_eq!(code, Some(0), "said {said:?}");
    assert!(took < Duration::from_secs(2), "SIGTERM to exit {took:?}");
    assert!(
        !said
            .iter()
            .any(|l| l["action"] == "cleaned" || l["action"] == "not_cleaned"),
        "the watcher removed something within its grace: {said:?}"
    );
    assert_eq!(s.converge().await, Vec::<String>::new());
}
