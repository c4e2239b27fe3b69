//! Races between concurrent commands, made deterministic with the in-memory
//! engine's gates: one command is stopped at an exact engine call while
//! another runs, then let go. Each test asserts that the live agent keeps its
//! container, image, build directory and status — the fencing promise.

use super::tests::World;
use super::*;
use crate::backend::{Backend, ContainerState};
use crate::memory::{Fault, Gate, Op};
use crate::pipeline::Scope;
use crate::state::AgentStatus;

impl World {
    /// What a start that crashed (kill -9) after building leaves, once
    /// marked failed: an image tagged `:latest` and `:<start>`, a build
    /// directory.
    async fn crashed_start(&self, name: &AgentName) -> StartId {
        let (start, image) = self.killed_start(name);
        self.engine
            .tag_image(&image, &name.image_tag())
            .await
            .unwrap();
        self.state
            .force_status(name, AgentStatus::Failed, None, None)
            .unwrap();
        start
    }

    /// Once another command waits at `listing`, starts `name` up to its
    /// container's creation (image built, build directory made), lets the
    /// listing go on, and finishes the start when `creating` opens.
    async fn start_while_listing(
        &self,
        name: &AgentName,
        listing: &Gate,
        creating: &Gate,
    ) -> Result<Started, StartError> {
        listing.reached().await;
        let start = self.start(name);
        tokio::pin!(start);
        tokio::select! {
            _ = &mut start => panic!("the start should wait at its gate"),
            () = creating.reached() => listing.open(),
        }
        start.await
    }

    fn gate(&self, op: Op) -> Gate {
        let gate = Gate::new();
        self.engine
            .inject(op, None, Fault::Gate(gate.clone()), Some(1));
        gate
    }

    /// The agent runs `started`: recorded so, its container running, its
    /// image present under the start's own tag, no build directory of it.
    async fn assert_alive(&self, started: &Started) {
        let agent = self.state.agent(&started.agent).unwrap();
        assert_eq!(agent.status, AgentStatus::Running, "{agent:?}");
        assert_eq!(agent.current_start.as_ref(), Some(&started.start));
        let container = self
            .engine
            .inspect_container(&started.container_id)
            .await
            .expect("the live container was removed");
        assert_eq!(container.state, ContainerState::Running);
        let image = self
            .engine
            .inspect_image(&started.agent.start_tag(&started.start))
            .await
            .expect("the live image was removed");
        assert_eq!(image.id, started.image_id);
    }
}

/// A start that runs between a cleanup's plan and its apply (the user
/// restarting an agent while the `[y/N]` prompt waits) keeps everything.
#[tokio::test]
async fn a_start_between_plan_and_apply_survives() {
    let w = World::new();
    let web = w.good("web");
    let old = w.crashed_start(&web).await;
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.resets.len(), 1, "{plan:?}");

    let started = w.start(&web).await.unwrap();
    let report = cleanup.apply(&plan).await;

    w.assert_alive(&started).await;
    // The old start's own tag and directory were orphans and went.
    assert!(w.engine.inspect_image(&web.start_tag(&old)).await.is_err());
    assert!(!w.build_root().dir_path(&web, &old).exists());
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
}

/// A stale running agent is reconciled while the user starts it again:
/// the cleanup's reset must not write `stopped` over the new start, and
/// its untag of `:latest`, racing the new build, must not strand it.
#[tokio::test]
async fn a_restart_while_a_stale_agent_is_cleaned_keeps_the_new_start() {
    let w = World::new();
    let web = w.good("web");
    w.died(&web).await;
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert!(plan.resets.iter().any(|r| r.stale), "{plan:?}");

    // Apply stops right before it untags: the old container is gone, the
    // agent is marked failed, and the user starts it again.
    let gate = w.gate(Op::RemoveImage);
    let (report, started) = tokio::join!(cleanup.apply(&plan), async {
        gate.reached().await;
        let started = w.start(&web).await;
        gate.open();
        started
    });
    let started = started.unwrap();

    w.assert_alive(&started).await;
    let reset = &report.steps[3].items[0];
    assert!(
        matches!(
            &reset.outcome,
            crate::pipeline::Outcome::Skipped {
                reason: crate::pipeline::SkipReason::ChangedSinceThePlan(_)
            }
        ),
        "{report:?}"
    );
    // And the next stop finds it running.
    w.lifecycle().stop(&web).await.unwrap();
}

/// A restart while a cleanup removes a stopped agent's image: the new
/// build moves `:latest` to itself and keeps it, and the old image goes
/// whole. Were the old start's own tag removed before `:latest`, and
/// `:latest` judged by an answer from before the restart, the new build
/// would lose `:latest` and the old image would be left untagged — of a
/// start that succeeded, which no cleanup takes (the stress test met it on
/// Podman 4.3).
#[tokio::test]
async fn a_restart_during_the_image_removals_keeps_latest_and_strands_nothing() {
    let w = World::new();
    let web = w.good("web");
    let first = w.start(&web).await.unwrap();
    w.lifecycle().stop(&web).await.unwrap();
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.images.len(), 2, "both tags of the old build: {plan:?}");

    // Apply waits right before it removes the old start's own tag.
    let gate = Gate::new();
    w.engine.inject(
        Op::RemoveImage,
        Some(&web.start_tag(&first.start)),
        Fault::Gate(gate.clone()),
        Some(1),
    );
    let (report, started) = tokio::join!(cleanup.apply(&plan), async {
        gate.reached().await;
        let started = w.start(&web).await;
        gate.open();
        started
    });
    let started = started.unwrap();

    w.assert_alive(&started).await;
    let latest = w.engine.inspect_image(&web.image_tag()).await;
    assert_eq!(
        latest.map(|i| i.id).ok().as_ref(),
        Some(&started.image_id),
        "`:latest` stays on the new build: {report:?}"
    );
    assert!(
        w.engine.inspect_image(&first.image_id).await.is_err(),
        "the old image is gone whole: {report:?}"
    );
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
}

/// `remove` of an agent whose container died, while another `anvyl`
/// starts it again (healing it first): the removal acts on the dead start
/// it judged, and the new start keeps its container, image and record.
#[tokio::test]
async fn a_restart_while_a_dead_agent_is_removed_keeps_the_new_start() {
    let w = World::new();
    let web = w.good("web");
    w.died(&web).await;

    // The removal waits right before it removes the dead container.
    let gate = w.gate(Op::RemoveContainer);
    let remover = w.lifecycle();
    let (removed, started) = tokio::join!(remover.remove(&web, false), async {
        gate.reached().await;
        let started = w.start(&web).await;
        gate.open();
        started
    });
    let started = started.unwrap();

    assert!(
        matches!(removed, Err(LifecycleError::Changed { .. })),
        "{removed:?}"
    );
    w.assert_alive(&started).await;
}

/// A start that begins after the cleanup began listing — its image built,
/// its build directory made — is seen as live when the state is read.
#[tokio::test]
async fn a_start_that_begins_during_the_listing_is_kept() {
    let w = World::new();
    let web = w.good("web");
    let listing = w.gate(Op::ListContainers);
    let creating = w.gate(Op::CreateContainer);
    let cleanup = w.cleanup();
    let (plan, started) = tokio::join!(
        async {
            let plan = cleanup.plan(Scope::All).await.unwrap();
            let report = cleanup.apply(&plan).await;
            creating.open();
            (plan, report)
        },
        w.start_while_listing(&web, &listing, &creating)
    );
    let (plan, report) = plan;
    let started = started.unwrap();

    w.assert_alive(&started).await;
    assert!(
        plan.images.is_empty() && plan.build_dirs.is_empty(),
        "{plan:?}"
    );
    assert!(
        !plan.kept.is_empty(),
        "the live start's resources are kept: {plan:?}"
    );
    assert_eq!(report.remaining_owned(), 0);
}

/// While a start builds, a cleanup planned before it resets nothing, and a
/// second start of the same agent is refused.
#[tokio::test]
async fn a_start_in_progress_is_not_reset_nor_started_twice() {
    let w = World::new();
    let web = w.good("web");
    let old = w.crashed_start(&web).await;
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::Agent(web.clone())).await.unwrap();
    let building = w.gate(Op::BuildImage);
    let (started, (report, second)) = tokio::join!(w.start(&web), async {
        building.reached().await;
        let report = cleanup.apply(&plan).await;
        let second = w.start(&web).await;
        building.open();
        (report, second)
    });
    let started = started.unwrap();

    w.assert_alive(&started).await;
    assert!(
        matches!(
            second,
            Err(StartError::Refused(crate::state::StateError::WrongStatus {
                actual: "starting",
                ..
            }))
        ),
        "{second:?}"
    );
    assert!(!w.build_root().dir_path(&web, &old).exists());
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
}

/// `agent remove` that read the agent stopped, while a start takes it,
/// neither removes the start's resources nor forgets the agent.
#[tokio::test]
async fn remove_racing_a_start_forgets_nothing() {
    let w = World::new();
    let web = w.good("web");
    let listing = w.gate(Op::ListContainers);
    let creating = w.gate(Op::CreateContainer);
    let lifecycle = w.lifecycle();
    let (removed, started) = tokio::join!(
        async {
            let removed = lifecycle.remove(&web, false).await;
            creating.open();
            removed
        },
        w.start_while_listing(&web, &listing, &creating)
    );
    let started = started.unwrap();

    assert!(
        matches!(removed, Err(LifecycleError::Changed { .. })),
        "{removed:?}"
    );
    w.assert_alive(&started).await;
}

/// Two starts of one agent at the same moment: exactly one wins.
#[tokio::test]
async fn two_starts_of_one_agent_have_one_winner() {
    let w = World::new();
    let web = w.good("web");
    let (a, b) = tokio::join!(w.start(&web), w.start(&web));
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("expected one winner: {other:?}"),
    };
    assert!(matches!(lost, StartError::Refused(_)), "{lost:?}");
    w.assert_alive(&won).await;
}

/// A cleanup that runs while `agent stop` is between stopping and removing
/// the container finds it exited, reconciles the agent and resets it: the
/// stop still succeeds, and the agent ends stopped.
#[tokio::test]
async fn a_cleanup_during_a_stop_does_not_fail_the_stop() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    let removing = w.gate(Op::RemoveContainer);
    let lifecycle = w.lifecycle();
    let (stopped, report) = tokio::join!(lifecycle.stop(&web), async {
        removing.reached().await;
        // The stop stopped the container; the engine shows it exited.
        w.engine
            .set_state(&started.container_id, ContainerState::Exited);
        let cleanup = w.cleanup();
        let report = cleanup
            .apply(&cleanup.plan(Scope::All).await.unwrap())
            .await;
        removing.open();
        report
    });
    stopped.unwrap();
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Stopped);
}

/// The user restarts a dead agent while the watcher takes its second look
/// at the dead run: the watcher's mark is fenced by the start it saw, so
/// the new start is not marked failed, reset or cleaned.
#[tokio::test(start_paused = true)]
async fn a_restart_while_the_watcher_looks_runs_on() {
    let w = World::new();
    let web = w.good("web");
    w.died(&web).await;
    let mut watch = Watch::new(Duration::ZERO);
    let lifecycle = w.lifecycle();
    assert_eq!(lifecycle.watch_pass(&mut watch).await.unwrap(), vec![]);
    tokio::time::advance(CONFIRM).await;
    let looking = w.gate(Op::InspectContainer);
    let pass = lifecycle.watch_pass(&mut watch);
    tokio::pin!(pass);
    tokio::select! {
        _ = &mut pass => panic!("the pass should wait at its look"),
        () = looking.reached() => {}
    }
    // The start heals the dead run (its container goes) and runs anew.
    let again = w.start(&web).await.unwrap();
    looking.open();
    let actions = pass.await.unwrap();
    assert_eq!(actions, vec![], "the watcher acted on the new start");
    w.assert_alive(&again).await;
}

/// A failed agent's grace ends while the user starts it again: the
/// watcher's cleanup, listing when the start begins, keeps the new start.
#[tokio::test(start_paused = true)]
async fn a_start_while_the_watcher_cleans_a_failed_agent_is_kept() {
    let w = World::new();
    let web = w.good("web");
    w.crashed_start(&web).await;
    let mut watch = Watch::new(Duration::ZERO);
    let listing = w.gate(Op::ListContainers);
    let creating = w.gate(Op::CreateContainer);
    let lifecycle = w.lifecycle();
    let (actions, started) = tokio::join!(
        async {
            let actions = lifecycle.watch_pass(&mut watch).await.unwrap();
            creating.open();
            actions
        },
        w.start_while_listing(&web, &listing, &creating)
    );
    let started = started.unwrap();
    w.assert_alive(&started).await;
    // Nothing to say: the start took the agent, the next pass judges it.
    assert_eq!(actions, vec![], "the watcher claims what the start kept");
}

/// A stop whose container removal is slow (Podman, a remote host): the
/// container is gone or exited for longer than the watcher's second look,
/// the record still says running. The stop holds the start's lock while
/// it works, so the watcher does not call the user's own stop a failure.
#[tokio::test(start_paused = true)]
async fn a_slow_stop_is_not_a_failure_to_the_watcher() {
    let w = World::on_disk();
    let web = w.good("web");
    w.start(&web).await.unwrap();
    let removing = w.gate(Op::RemoveContainer);
    let lifecycle = w.lifecycle();
    let stop = lifecycle.stop(&web);
    tokio::pin!(stop);
    tokio::select! {
        _ = &mut stop => panic!("the stop should wait at its removal"),
        () = removing.reached() => {}
    }
    let id = w.state.agent(&web).unwrap().container_id.unwrap();
    w.engine.set_state(&id, ContainerState::Exited);
    let mut watch = Watch::new(Duration::ZERO);
    assert_eq!(lifecycle.watch_pass(&mut watch).await.unwrap(), vec![]);
    tokio::time::advance(CONFIRM * 4).await;
    assert_eq!(lifecycle.watch_pass(&mut watch).await.unwrap(), vec![]);
    removing.open();
    assert_eq!(stop.await.unwrap(), Stopped::Now);
    assert_eq!(lifecycle.watch_pass(&mut watch).await.unwrap(), vec![]);
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Stopped);
}
