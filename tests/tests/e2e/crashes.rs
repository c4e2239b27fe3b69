//! `kill -9` at exact points: the proxy holds one engine call of an `anvyl`
//! run, the test kills the process while it waits, and one later ordinary
//! `agent cleanup` must converge — nothing owned left, every status right.
//! Points: a start while it builds, once its image exists, once its
//! container exists, while it settles; a cleanup between its image
//! removals; a stop between stopping and removing; a remove midway.

use std::time::Duration;

use anvyl_core::AgentStatus;
use anvyl_tests::proxy::{Fault, FaultProxy, Hold};
use anvyl_tests::reliability::tally;
use anvyl_tests::Sandbox;

use crate::unique;
use crate::watch::Watcher;

/// Runs `args` through a proxy that holds the `nth` call of `method` whose
/// path contains `part`, kills `anvyl` there, and lets the call go.
pub(crate) async fn kill_at(s: &Sandbox, args: &[&str], method: &str, part: &str, nth: usize) {
    kill_at_after(s, args, (method, part, nth), Duration::ZERO, || {}).await
}

/// [`kill_at`], with the process left waiting there for `held` first.
pub(crate) async fn kill_at_after(
    s: &Sandbox,
    args: &[&str],
    (method, part, nth): (&str, &str, usize),
    held: Duration,
    before_the_kill: impl FnOnce(),
) {
    let proxy = FaultProxy::start(&s.itest.endpoint);
    let hold = Hold::new();
    proxy.inject_matching(method, part, nth, Fault::Hold(hold.clone()));
    let mut child = s.spawn_anvyl_via(&proxy, args);
    let reached = tokio::time::timeout(std::time::Duration::from_secs(60), hold.held()).await;
    tokio::time::sleep(held).await;
    // While the process still holds the call: what was done by then was
    // done to a command in progress (after the kill it is a crash, which
    // may be reaped at once).
    before_the_kill();
    child.kill().expect("kill -9");
    let status = child.wait().expect("reap");
    hold.release();
    assert!(
        reached.is_ok(),
        "{args:?} never reached {method} {part} #{nth} (exited {status:?}); calls: {:?}",
        proxy.calls()
    );
}

/// One ordinary cleanup afterwards converges: nothing owned left and every
/// agent's status is `stopped` (or what `expect` says for one agent).
async fn assert_converges(s: &Sandbox, point: &str) {
    let run = s.anvyl(&["agent", "cleanup", "--yes"]);
    assert_eq!(run.code, Some(0), "{point}: {run:?}");
    let left = s.owned_leftovers().await;
    assert_eq!(left, Vec::<String>::new(), "{point}: {run:?}");
    for agent in s.state().agents().expect("agents") {
        assert_eq!(
            agent.status,
            AgentStatus::Stopped,
            "{point}: {}",
            agent.name
        );
    }
    tally("crash_points", 1);
    tally("owned_leftovers", left.len());
}

/// Where a start is killed: while it builds, once its image exists, once
/// its container exists, while it settles.
const START_POINTS: [(&str, &str, &str, usize); 4] = [
    ("building", "POST", "/build", 1),
    ("image exists", "POST", "/tag", 1),
    ("container exists", "POST", "/start", 1),
    ("settling", "GET", "/containers/", 1),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_killed_at_any_stage_is_cleaned_by_the_next_cleanup() {
    for (point, method, part, nth) in START_POINTS {
        let s = Sandbox::new().await;
        let agent = s.create(&unique("crash"));
        kill_at(&s, &["agent", "start", agent.as_str()], method, part, nth).await;
        let record = s.state().agent(&agent).expect("agent");
        assert_eq!(
            record.status,
            AgentStatus::Starting,
            "{point}: the start was recorded"
        );
        assert_converges(&s, &format!("start killed while {point}")).await;
        // And the agent starts again afterwards.
        s.started(&agent);
        assert_eq!(s.converge().await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_stop_and_remove_killed_midway_converge() {
    // A cleanup killed between two image removals.
    let s = Sandbox::new().await;
    let agent = s.create(&unique("crashc"));
    s.started(&agent);
    let run = s.anvyl(&["agent", "stop", agent.as_str()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    // Its image has two tags (:latest and the start's): hold the second.
    kill_at(&s, &["agent", "cleanup", "--yes"], "DELETE", "/images/", 2).await;
    assert_converges(&s, "cleanup killed between image removals").await;

    // A stop killed after stopping, before removing the container.
    let s = Sandbox::new().await;
    let agent = s.create(&unique("crashs"));
    s.started(&agent);
    kill_at(
        &s,
        &["agent", "stop", agent.as_str()],
        "DELETE",
        "/containers/",
        1,
    )
    .await;
    assert_converges(&s, "stop killed before removing").await;

    // A remove killed while removing images: the agent stays recorded.
    let s = Sandbox::new().await;
    let agent = s.create(&unique("crashr"));
    s.started(&agent);
    let args = ["agent", "remove", agent.as_str(), "--yes", "--force"];
    kill_at(&s, &args, "DELETE", "/images/", 1).await;
    assert_converges(&s, "remove killed while removing images").await;
    assert!(
        s.state().agent(&agent).is_ok(),
        "the unfinished remove forgot the agent"
    );
    let run = s.anvyl(&["agent", "remove", agent.as_str(), "--yes"]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

/// The same crash points with a watcher alive (`--grace 0`, a resync every
/// second) beside a live agent: the watcher leaves each start alone while
/// it is held (2.5 s: two passes or more), reaps it once it is killed, with
/// no cleanup run, and never touches the live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_alive_reaps_every_crash_point_and_nothing_live() {
    let s = Sandbox::new().await;
    let live = s.create(&unique("live"));
    let live_container = s.started(&live);
    let mut watcher = Watcher::spawn(&s, "1s");
    let mut points: Vec<(String, anvyl_core::AgentName)> = Vec::new();
    let held = Duration::from_millis(2500);
    for (point, method, part, nth) in START_POINTS {
        let agent = s.create(&unique("crashw"));
        let args = ["agent", "start", agent.as_str()];
        let mut early = Vec::new();
        kill_at_after(&s, &args, (method, part, nth), held, || {
            early = watcher.said_of(&agent)
        })
        .await;
        assert!(early.is_empty(), "acted on a start in progress: {early:?}");
        points.push((format!("start killed while {point}"), agent));
    }
    let agent = s.create(&unique("crashws"));
    s.started(&agent);
    let args = ["agent", "stop", agent.as_str()];
    let mut early = Vec::new();
    kill_at_after(&s, &args, ("DELETE", "/containers/", 1), held, || {
        early = watcher.said_of(&agent)
    })
    .await;
    assert!(early.is_empty(), "acted on a stop in progress: {early:?}");
    points.push(("stop killed before removing".into(), agent));

    for (point, agent) in &points {
        let cleaned = watcher.expect("cleaned", Some(agent), Duration::from_secs(30));
        let left = s.traces_of(agent).await;
        assert_eq!(left, Vec::<String>::new(), "{point}: {cleaned}");
        assert!(s.build_dirs_of(agent).is_empty(), "{point}: build dirs");
        assert_eq!(
            s.state().agent(agent).expect("agent").status,
            AgentStatus::Stopped,
            "{point}"
        );
        tally("crash_points", 1);
        tally("owned_leftovers", left.len());
    }
    let (code, _, said) = watcher.terminate();
    assert_eq!(code, Some(0), "said {said:?}");
    assert!(
        !said.iter().any(|l| l["agent"] == live.as_str()),
        "the live agent was acted on: {said:?}"
    );
    assert!(s.has_container(&live_container).await, "the live container");
    assert_eq!(s.converge().await, Vec::<String>::new());
}
