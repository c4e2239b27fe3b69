//! Truth without asking: a dead agent — its start killed with -9, its
//! container killed or removed by hand — shows in `agent list` as it is,
//! and the next ordinary command heals it without an `agent cleanup`:
//! `agent start` cleans up what is left and runs it, `agent stop` says what
//! it found, `agent remove` needs no force.

use std::time::Duration;

use anvyl_core::AgentName;
use anvyl_tests::{Run, Sandbox};

use crate::crashes::kill_at;
use crate::unique;

/// The agent's row of `agent list --output json`.
fn listed(s: &Sandbox, agent: &AgentName) -> serde_json::Value {
    let run = s.anvyl(&["--output", "json", "agent", "list"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let row = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == agent.as_str());
    row.cloned()
        .unwrap_or_else(|| panic!("{agent} not listed: {run:?}"))
}

fn ok(run: Run, what: &str) -> Run {
    assert_eq!(run.code, Some(0), "{what}: {run:?}");
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_agent_shows_as_it_is_and_the_next_command_heals_it() {
    let s = Sandbox::new().await;

    // 1. A start killed with -9 while it builds: the next start cleans up
    // what it left and runs.
    let k = s.create(&unique("killed"));
    kill_at(&s, &["agent", "start", k.as_str()], "POST", "/build", 1).await;
    let row = listed(&s, &k);
    assert_eq!(
        (row["status"].as_str(), row["recorded"].as_str()),
        (Some("start crashed"), Some("starting")),
        "{row}"
    );
    let run = ok(
        s.anvyl(&["agent", "start", k.as_str()]),
        "start after a crash",
    );
    assert!(
        run.stderr
            .contains(&format!("Cleaning up failed startup for agent '{k}'")),
        "{run:?}"
    );
    assert_eq!(listed(&s, &k)["status"], "running");

    // 2. Its container killed (as by the OOM killer): listed as exited with
    // the code, stopped with what was found, and started again.
    let d = s.create(&unique("died"));
    ok(s.anvyl(&["agent", "start", d.as_str()]), "start");
    let first = s.container_of(&d);
    s.engine
        .stop_container(&first, Duration::ZERO)
        .await
        .expect("kill");
    let row = listed(&s, &d);
    assert_eq!(row["recorded"], "running", "{row}");
    assert_eq!(
        (
            row["observed"]["state"].as_str(),
            row["observed"]["code"].as_i64()
        ),
        (Some("exited"), Some(137)),
        "{row}"
    );
    assert!(
        row["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("exited (137)")),
        "{row}"
    );
    let table = ok(s.anvyl(&["agent", "list"]), "list");
    assert!(table.stdout.contains("exited (137)"), "{table:?}");
    ok(
        s.anvyl(&["agent", "start", d.as_str()]),
        "start after a death",
    );
    assert!(!s.has_container(&first).await, "the dead container is gone");
    let again = s.container_of(&d);
    assert_ne!(again, first);
    s.engine
        .stop_container(&again, Duration::ZERO)
        .await
        .expect("kill");
    let run = ok(
        s.anvyl(&["agent", "stop", d.as_str()]),
        "stop of a dead agent",
    );
    assert!(
        run.stderr
            .contains("its container had exited with code 137"),
        "{run:?}"
    );
    assert_eq!(listed(&s, &d)["status"], "stopped");

    // 3. Its container removed by hand: listed as gone, started again; and
    // once dead again, removed without --force.
    let r = s.create(&unique("removed"));
    ok(s.anvyl(&["agent", "start", r.as_str()]), "start");
    s.engine
        .remove_container(&s.container_of(&r), Duration::ZERO)
        .await
        .expect("docker rm -f");
    assert_eq!(listed(&s, &r)["status"], "container gone");
    ok(
        s.anvyl(&["agent", "start", r.as_str()]),
        "start after a removal",
    );
    assert_eq!(listed(&s, &r)["status"], "running");
    s.engine
        .stop_container(&s.container_of(&r), Duration::ZERO)
        .await
        .expect("kill");
    ok(
        s.anvyl(&["agent", "remove", r.as_str(), "--yes"]),
        "remove of a dead agent without --force",
    );
    assert!(s.state().agent(&r).is_err(), "forgotten");

    assert_eq!(s.converge().await, Vec::<String>::new());
}
