//! `kill -9` at exact points: the proxy holds one engine call of an `anvyl`
//! run, the test kills the process while it waits, and one later ordinary
//! `agent cleanup` must converge — nothing owned left, every status right.
//! Points: a start while it builds, once its image exists, once its
//! container exists, while it settles; a cleanup between its image
//! removals; a stop between stopping and removing; a remove midway.

use anvyl_core::AgentStatus;
use anvyl_tests::proxy::{Fault, FaultProxy, Hold};
use anvyl_tests::reliability::tally;
use anvyl_tests::Sandbox;

use crate::unique;

/// Runs `args` through a proxy that holds the `nth` call of `method` whose
/// path contains `part`, kills `anvyl` there, and lets the call go.
pub(crate) async fn kill_at(s: &Sandbox, args: &[&str], method: &str, part: &str, nth: usize) {
    let proxy = FaultProxy::start(&s.itest.endpoint);
    let hold = Hold::new();
    proxy.inject_matching(method, part, nth, Fault::Hold(hold.clone()));
    let mut child = s.spawn_anvyl_via(&proxy, args);
    let reached = tokio::time::timeout(std::time::Duration::from_secs(60), hold.held()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_killed_at_any_stage_is_cleaned_by_the_next_cleanup() {
    let points = [
        ("building", "POST", "/build", 1),
        ("image exists", "POST", "/tag", 1),
        ("container exists", "POST", "/start", 1),
        ("settling", "GET", "/containers/", 1),
    ];
    for (point, method, part, nth) in points {
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
