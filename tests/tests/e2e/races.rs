//! Races between `anvyl` processes, made deterministic with the delaying
//! proxy: one command is paused at an exact engine call while another runs
//! straight against the engine, then let go. The live agent keeps its
//! container, image, status — and the paused command says what it skipped.

use std::process::Child;
use std::time::Duration;

use anvyl_core::{AgentName, AgentStatus, StartId};
use anvyl_tests::proxy::{Fault, FaultProxy, Hold};
use anvyl_tests::reliability::tally;
use anvyl_tests::{Run, Sandbox};

use crate::unique;

/// Starts `args` through a proxy paused at the first call of `method` whose
/// path contains `part`; returns once it waits there.
async fn paused_at(
    s: &Sandbox,
    args: &[&str],
    method: &str,
    part: &str,
) -> (FaultProxy, Hold, Child) {
    let proxy = FaultProxy::start(&s.itest.endpoint);
    let hold = Hold::new();
    proxy.inject_matching(method, part, 1, Fault::Pause(hold.clone()));
    let child = s.spawn_anvyl_via(&proxy, args);
    tokio::time::timeout(Duration::from_secs(60), hold.held())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{args:?} never reached {method} {part}: {:?}",
                proxy.calls()
            )
        });
    (proxy, hold, child)
}

/// Lets the paused command go and returns what it did.
fn resume(hold: &Hold, child: Child) -> Run {
    hold.release();
    child.wait_with_output().expect("wait").into()
}

/// The agent runs: recorded so, its container running, its image present.
async fn assert_alive(s: &Sandbox, agent: &AgentName, what: &str) {
    let record = s.state().agent(agent).expect("agent");
    assert_eq!(record.status, AgentStatus::Running, "{what}");
    let id = record.container_id.expect("container id");
    let container = s.engine.inspect_container(&id).await;
    let running = container
        .as_ref()
        .is_ok_and(|c| c.state == anvyl_core::ContainerState::Running);
    if !running {
        tally("live_removed", 1);
    }
    assert!(running, "{what}: the live container is gone: {container:?}");
    let image = s.engine.inspect_image(&container.unwrap().image_id).await;
    if image.is_err() {
        tally("live_removed", 1);
    }
    assert!(image.is_ok(), "{what}: the live image is gone");
    let start = record.current_start.expect("start");
    assert!(
        s.has_image(&agent.start_tag(&start)).await,
        "{what}: the start's tag"
    );
    tally("races", 1);
}

fn run_ok(s: &Sandbox, args: &[&str]) {
    let run = s.anvyl(args);
    assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
}

/// What a crashed start leaves, image and build directory (no container,
/// so that a new start can make one): a failed agent.
async fn crashed(s: &Sandbox, name: &str) -> AgentName {
    let agent = s.create(name);
    let start = StartId::random();
    let labels = s.ownership.stamp(&Default::default(), &agent, &start);
    s.image(&agent.start_tag(&start), labels).await;
    s.engine
        .tag_image(&agent.start_tag(&start), &agent.image_tag())
        .await
        .expect("tag");
    s.build_dir(&agent, start.as_str());
    s.set_status(&agent, AgentStatus::Failed, None);
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_between_a_cleanups_plan_and_its_removals_survives() {
    let s = Sandbox::new().await;
    let agent = crashed(&s, &unique("racea")).await;
    let (_proxy, hold, cleanup) =
        paused_at(&s, &["agent", "cleanup", "--yes"], "DELETE", "/images/").await;
    run_ok(&s, &["agent", "start", agent.as_str()]);
    let run = resume(&hold, cleanup);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_alive(&s, &agent, "start between plan and apply").await;
    assert_eq!(s.converge().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_while_a_cleanup_lists_is_seen_as_live() {
    let s = Sandbox::new().await;
    let agent = s.create(&unique("raceb"));
    let (_proxy, hold, cleanup) = paused_at(
        &s,
        &["agent", "cleanup", "--yes"],
        "GET",
        "/containers/json",
    )
    .await;
    run_ok(&s, &["agent", "start", agent.as_str()]);
    let run = resume(&hold, cleanup);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_alive(&s, &agent, "start during the listing").await;
    assert_eq!(s.converge().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_start_and_cleanup_wait_for_a_start_in_progress() {
    let s = Sandbox::new().await;
    let agent = s.create(&unique("racec"));
    let (_proxy, hold, start) = paused_at(
        &s,
        &["agent", "start", agent.as_str()],
        "POST",
        "/containers/create",
    )
    .await;
    // A second start, a remove and a cleanup all find the start in progress.
    let second = s.anvyl(&["agent", "start", agent.as_str()]);
    assert_eq!(second.code, Some(2), "{second:?}");
    let remove = s.anvyl(&["agent", "remove", agent.as_str(), "--yes", "--force"]);
    assert_eq!(remove.code, Some(2), "{remove:?}");
    let cleanup = s.anvyl(&["agent", "cleanup", "--yes"]);
    assert_eq!(cleanup.code, Some(0), "{cleanup:?}");
    assert!(cleanup.stdout.contains("in progress"), "{cleanup:?}");
    let run = resume(&hold, start);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_alive(&s, &agent, "start with a second start, remove and cleanup").await;
    assert_eq!(s.converge().await, Vec::<String>::new());
}

/// A start running in another PID namespace (a sandboxed terminal sharing
/// the state directory) records a pid that means another process out here;
/// its lock still says it is in progress, and a cleanup spares it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_in_another_pid_namespace_is_in_progress_to_a_cleanup() {
    let s = Sandbox::new().await;
    let agent = s.create(&unique("pidns"));
    let start = s.spawn_anvyl_in_pid_namespace(
        &["agent", "start", agent.as_str()],
        &[("ANVYL_SETTLE_MS", "6000")],
    );
    // Wait until it settles: its container runs.
    let began = std::time::Instant::now();
    while !s.has_container(&agent.resource_name()).await {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the start never made its container"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cleanup = s.anvyl(&["agent", "cleanup", "--yes"]);
    assert_eq!(cleanup.code, Some(0), "{cleanup:?}");
    assert!(s.has_container(&agent.resource_name()).await, "{cleanup:?}");
    let run: Run = start.wait_with_output().expect("wait").into();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_alive(&s, &agent, "start in another PID namespace").await;
    assert_eq!(s.converge().await, Vec::<String>::new());
}
