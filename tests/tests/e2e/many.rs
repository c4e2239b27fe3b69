//! Verbs over several agents: `agent start A B C` starts each on its own —
//! one that fails is cleaned up like a single start and the others run —
//! says a line per agent, exits with the worst status, and `-o json` says
//! each; `agent logs A B` prefixes each line with its agent; `agent stop
//! --all` and `agent remove A B --yes` leave nothing of any of them.

use anvyl_core::AgentStatus;
use anvyl_tests::Sandbox;

use crate::lifecycle::{assert_cleaned, create, create_slow, wait_for_the_slow_step};
use crate::unique;

#[tokio::test]
async fn several_agents_start_on_their_own_and_the_worst_status_is_the_exit() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let runs = ["echo one; sleep 600", "echo two; sleep 600"];
    let good: Vec<_> = (runs.iter().enumerate())
        .map(|(i, command)| {
            create(
                &s,
                &unique(&format!("many{i}")),
                &["--image", &base, "--command", command],
            )
        })
        .collect();
    let bad = create(
        &s,
        &unique("manybad"),
        &["--image", &base, "--command", "echo no key >&2; exit 3"],
    );
    let (g0, g1) = (good[0].as_str(), good[1].as_str());

    let run = s.anvyl(&["agent", "start", g0, bad.as_str(), g1, g0]);
    // The bad one is cleaned up as a single failed start would be, and
    // exit 1 is the worst; the good ones run, each said once.
    assert_cleaned(&s, &bad, &run, 1).await;
    for agent in &good {
        let line = format!("Agent '{agent}' is running on host");
        assert_eq!(run.stdout.matches(&line).count(), 1, "{run:?}");
        assert_eq!(s.state().agent(agent).unwrap().status, AgentStatus::Running);
    }
    assert!(
        run.stderr
            .contains(&format!("start of agent '{bad}' failed")),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("started 2 of 3 agents; 1 did not succeed"),
        "{run:?}"
    );

    // Each agent's lines, prefixed with its name, whatever the chunks.
    let logs = s.anvyl(&["agent", "logs", g0, g1]);
    assert_eq!(logs.code, Some(0), "{logs:?}");
    let mut lines: Vec<&str> = logs.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [format!("{g0} | one"), format!("{g1} | two")],
        "{logs:?}"
    );

    // Starting what runs is refused for each (exit 2), in JSON one row each.
    let again = s.anvyl(&["-o", "json", "agent", "start", g0, g1]);
    assert_eq!(again.code, Some(2), "{again:?}");
    let rows: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{again:?}");
    for (row, agent) in rows.iter().zip([g0, g1]) {
        assert_eq!(row["agent"], agent);
        assert_eq!(row["ok"], false);
        assert_eq!(row["exit"], 2);
    }

    // Every agent that is not stopped, then both forgotten without a trace.
    let stop = s.anvyl(&["agent", "stop", "--all"]);
    assert_eq!(stop.code, Some(0), "{stop:?}");
    for agent in &good {
        assert!(
            stop.stdout.contains(&format!("Stopped agent '{agent}'.")),
            "{stop:?}"
        );
        assert_eq!(s.state().agent(agent).unwrap().status, AgentStatus::Stopped);
    }
    let removed = s.anvyl(&["agent", "remove", g0, g1, "--yes"]);
    assert_eq!(removed.code, Some(0), "{removed:?}");
    for agent in &good {
        assert_eq!(s.traces_of(agent).await, Vec::<String>::new());
        assert!(s.state().agent(agent).is_err(), "{agent} is still known");
    }
}

/// Ctrl-C while two of three agents build (`parallelism = 2`): both are
/// cleaned up as a single interrupted start is, the third is not begun,
/// and the exit is 130.
#[tokio::test]
async fn ctrl_c_cleans_the_starts_in_progress_and_begins_no_other() {
    let s = Sandbox::new().await;
    let building = [create_slow(&s, "manyint"), create_slow(&s, "manyint")];
    let waiting = create_slow(&s, "manywait");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("anvyl.toml");
    std::fs::write(&config, "parallelism = 2\n").unwrap();
    let child = s.spawn_anvyl(&[
        "--config",
        config.to_str().unwrap(),
        "agent",
        "start",
        building[0].as_str(),
        building[1].as_str(),
        waiting.as_str(),
    ]);
    for agent in &building {
        wait_for_the_slow_step(&s, agent).await;
    }
    Sandbox::signal(&child, "-INT");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let run: anvyl_tests::Run = output.into();
    for agent in &building {
        assert_cleaned(&s, agent, &run, 130).await;
    }
    assert_eq!(s.traces_of(&waiting).await, Vec::<String>::new());
    assert!(s.build_dirs_of(&waiting).is_empty(), "{run:?}");
    assert_eq!(
        s.state().agent(&waiting).unwrap().status,
        AgentStatus::Stopped
    );
    assert!(
        run.stderr.contains(&format!(
            "interrupted: agent '{waiting}' was left as it was"
        )),
        "{run:?}"
    );
}

#[tokio::test]
async fn a_bad_name_among_several_changes_nothing() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let agent = create(
        &s,
        &unique("manyname"),
        &["--image", &base, "--command", "sleep 600"],
    );
    let run = s.anvyl(&["agent", "start", agent.as_str(), "Not-A-Name!"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(
        s.state().agent(&agent).unwrap().status,
        AgentStatus::Stopped
    );
    assert_eq!(s.traces_of(&agent).await, Vec::<String>::new());
    let neither = s.anvyl(&["agent", "stop"]);
    assert_eq!(neither.code, Some(2), "{neither:?}");
}

/// Twelve agents in one command, one of which fails its build: the other
/// eleven run, the failed one is cleaned up as a single failed start is,
/// and the exit is 1.
#[tokio::test]
async fn twelve_agents_start_together_and_a_failing_one_harms_no_other() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let good: Vec<_> = (0..11)
        .map(|i| {
            create(
                &s,
                &unique(&format!("twelve{i}")),
                &["--image", &base, "--command", "sleep 600"],
            )
        })
        .collect();
    let bad = create(
        &s,
        &unique("twelvebad"),
        &[
            "--image",
            &base,
            "--setup",
            "exit 7",
            "--command",
            "sleep 600",
        ],
    );
    let mut args = vec!["agent", "start"];
    args.extend(good.iter().map(|a| a.as_str()));
    args.insert(8, bad.as_str());
    let run = s.anvyl(&args);
    assert_cleaned(&s, &bad, &run, 1).await;
    for agent in &good {
        assert_eq!(
            s.state().agent(agent).unwrap().status,
            AgentStatus::Running,
            "{agent}: {run:?}"
        );
        let container = s.engine.inspect_container(&s.container_of(agent)).await;
        assert!(
            container.is_ok_and(|c| c.state == anvyl_core::ContainerState::Running),
            "{agent}: {run:?}"
        );
    }
    assert!(
        run.stderr
            .contains("started 11 of 12 agents; 1 did not succeed"),
        "{run:?}"
    );
    let mut remove = vec!["agent", "remove", "--force", "--yes"];
    remove.extend(good.iter().map(|a| a.as_str()));
    let removed = s.anvyl(&remove);
    assert_eq!(removed.code, Some(0), "{removed:?}");
    for agent in &good {
        assert_eq!(s.traces_of(agent).await, Vec::<String>::new());
    }
}
