//! Observe before acting: a start, stop or remove of an agent that died,
//! vanished, crashed or cannot be seen acts on what it found, and an engine
//! that fails or does not answer is unknown, never guessed.

use super::*;
use crate::backend::Query;
use crate::lifecycle::tests::World;
use crate::lifecycle::{StartError, Stopped};
use crate::name::AgentName;

impl World {
    async fn observed(&self, name: &AgentName) -> Observed {
        let agent = self.state.agent(name).unwrap();
        self.lifecycle().observe(&agent).await.unwrap()
    }

    async fn containers(&self) -> usize {
        let all = Query::named("anvyl-agent-");
        self.engine.list_containers(&all).await.unwrap().len()
    }
}

/// Scene 1 of the truth issue: `agent start` after a start killed with
/// -9 cleans up what it left and starts.
#[tokio::test]
async fn a_start_after_a_killed_start_cleans_it_up_and_runs() {
    let w = World::new();
    let k = AgentName::new("k").unwrap();
    w.good("k");
    let (old, image) = w.killed_start(&k);
    assert_eq!(w.observed(&k).await, Observed::StartCrashed { pid: 0 });

    let started = w.start(&k).await.unwrap();

    assert_ne!(started.start, old);
    assert_eq!(w.observed(&k).await, Observed::Running);
    assert!(w.engine.inspect_image(&image).await.is_err(), "its image");
    assert!(!w.build_root().dir_path(&k, &old).exists(), "its dir");
}

/// Scenes 2 and 3: a running agent whose container exited, or was
/// removed by hand, is seen so, and the next start runs it again.
#[tokio::test]
async fn a_start_of_an_agent_whose_container_died_or_vanished_runs_it_again() {
    let w = World::new();
    for (name, gone) in [("d", false), ("r", true)] {
        let agent = w.good(name);
        let first = w.start(&agent).await.unwrap();
        if gone {
            w.engine
                .remove_container(&first.container_id, Duration::ZERO)
                .await
                .unwrap();
            assert_eq!(w.observed(&agent).await, Observed::ContainerGone);
        } else {
            w.engine
                .set_state(&first.container_id, ContainerState::Exited);
            assert!(
                matches!(w.observed(&agent).await, Observed::Exited { .. }),
                "{:?}",
                w.observed(&agent).await
            );
        }

        let again = w.start(&agent).await.unwrap();

        assert_eq!(w.observed(&agent).await, Observed::Running);
        assert!(
            (w.engine.inspect_container(&first.container_id).await).is_err(),
            "the dead container was removed"
        );
        assert_ne!(again.container_id, first.container_id);
    }
    assert_eq!(w.containers().await, 2);
}

/// A live container is never healed away: the start is refused as
/// before, and nothing is touched.
#[tokio::test]
async fn a_start_of_a_running_agent_is_refused_and_touches_nothing() {
    let w = World::new();
    let web = w.good("web");
    let first = w.start(&web).await.unwrap();
    let err = w.start(&web).await.unwrap_err();
    assert!(matches!(err, StartError::Refused(_)), "{err:?}");
    assert_eq!(w.observed(&web).await, Observed::Running);
    assert!(w
        .engine
        .inspect_container(&first.container_id)
        .await
        .is_ok());
}

/// `stop` of a dead agent says what it found; `remove` of one needs no
/// force; `stop` of a killed start cleans it up.
#[tokio::test]
async fn stop_and_remove_of_dead_agents_say_what_they_found() {
    let w = World::new();
    let d = w.good("d");
    w.died(&d).await;
    let stopped = w.lifecycle().stop(&d).await.unwrap();
    assert_eq!(stopped, Stopped::Dead("its container had exited".into()));
    assert_eq!(w.observed(&d).await, Observed::Stopped);

    let r = w.good("r");
    let first = w.start(&r).await.unwrap();
    (w.engine
        .remove_container(&first.container_id, Duration::ZERO))
    .await
    .unwrap();
    w.lifecycle().remove(&r, false).await.unwrap();
    assert!(w.state.agent(&r).is_err(), "forgotten without --force");

    let k = w.good("k");
    let (old, image) = w.killed_start(&k);
    let stopped = w.lifecycle().stop(&k).await.unwrap();
    assert_eq!(
        stopped,
        Stopped::Dead("its start had crashed (pid 0 is gone)".into())
    );
    assert_eq!(w.observed(&k).await, Observed::Stopped);
    assert!(w.engine.inspect_image(&image).await.is_err());
    assert!(!w.build_root().dir_path(&k, &old).exists());
}

/// A host whose engine does not answer is shown as unknown, never as a
/// guess; the agents of hosts that answer are observed all the same.
#[tokio::test]
async fn an_engine_that_fails_is_unknown_not_guessed() {
    let w = World::new();
    let web = w.good("web");
    w.start(&web).await.unwrap();
    let idle = w.good("idle");
    w.engine.inject(
        crate::memory::Op::InspectContainer,
        None,
        crate::memory::Fault::Fail("boom".into()),
        None,
    );
    let agents = [w.state.agent(&web).unwrap(), w.state.agent(&idle).unwrap()];
    let observed = w.lifecycle().observe_all(&agents).await.unwrap();
    assert!(
        matches!(&observed[0], Observed::Unknown { reason } if reason.contains("boom")),
        "{observed:?}"
    );
    assert_eq!(observed[1], Observed::Stopped);
    assert_eq!(observed[0].finding(), None, "unknown is not dead");
}

/// A heal that cannot remove what the dead agent left is no heal: the
/// stop fails, and the start says why it did not start (not a name
/// conflict with the container it could not remove).
#[tokio::test]
async fn a_heal_that_leaves_something_fails_the_command() {
    let w = World::new();
    let k = w.good("k");
    let (_, image) = w.killed_start(&k);
    w.engine.inject(
        crate::memory::Op::RemoveImage,
        None,
        crate::memory::Fault::Fail("boom".into()),
        Some(1),
    );
    let stopped = w.lifecycle().stop(&k).await;
    assert!(
        matches!(stopped, Err(LifecycleError::Remaining { .. })),
        "{stopped:?}"
    );
    assert!(w.engine.inspect_image(&image).await.is_ok());

    let d = w.good("d");
    let dead = w.died(&d).await;
    w.engine.inject(
        crate::memory::Op::RemoveContainer,
        Some(&dead.container_id),
        crate::memory::Fault::Fail("boom".into()),
        Some(1),
    );
    let err = w.start(&d).await.unwrap_err();
    assert!(matches!(err, StartError::Unhealed { .. }), "{err:?}");
}

/// A start of an agent recorded as running, whose host does not answer
/// (or answers an error): refused with that cause, typed (the CLI's
/// exit 3 for the first), never as "running" — and nothing is changed.
/// A removal without --force is refused with the cause too.
#[tokio::test]
async fn a_start_on_a_silent_host_is_unobserved_and_changes_nothing() {
    let w = World::new();
    let web = w.good("web");
    let running = w.start(&web).await.unwrap();
    for (fault, unreachable) in [
        (crate::memory::Fault::Unreachable, true),
        (crate::memory::Fault::Fail("boom".into()), false),
    ] {
        w.engine
            .inject(crate::memory::Op::InspectContainer, None, fault, None);
        let err = w.start(&web).await.unwrap_err();
        let StartError::Unobserved { cause, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(cause.unreachable_engine().is_some(), unreachable, "{err}");
        let err = w.lifecycle().remove(&web, false).await.unwrap_err();
        assert_eq!(err.unreachable_engine().is_some(), unreachable, "{err}");
        w.engine.clear_faults();
        let record = w.state.agent(&web).unwrap();
        assert_eq!(record.status, AgentStatus::Running);
        assert_eq!(record.current_start, Some(running.start.clone()));
        assert_eq!(w.observed(&web).await, Observed::Running);
    }
}

/// A record read while its start ran, observed once that start ended:
/// old, not crashed — nothing is healed, and a stop says it changed.
#[tokio::test]
async fn a_start_that_ended_since_the_read_is_not_crashed() {
    let w = World::new();
    let web = w.good("web");
    let creating = crate::memory::Gate::new();
    w.engine.inject(
        crate::memory::Op::CreateContainer,
        None,
        crate::memory::Fault::Gate(creating.clone()),
        Some(1),
    );
    let (started, read) = tokio::join!(w.start(&web), async {
        creating.reached().await;
        let read = w.state.agent(&web).unwrap();
        creating.open();
        read
    });
    let started = started.unwrap();
    assert_eq!(read.status, AgentStatus::Starting);
    assert!(!w.lifecycle().observe(&read).await.unwrap().is_dead());
    assert_eq!(w.lifecycle().heal(&read).await.unwrap(), None);
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_ok());
}

/// A failed agent whose container was left (a cleanup killed between
/// marking it failed and removing the container) starts again.
#[tokio::test]
async fn a_failed_agent_with_its_container_left_starts_again() {
    let w = World::new();
    let d = w.good("d");
    let dead = w.died(&d).await;
    w.state.mark_failed(&d, Some(&dead.start)).unwrap();
    let again = w.start(&d).await.unwrap();
    assert!(w
        .engine
        .inspect_container(&dead.container_id)
        .await
        .is_err());
    assert_eq!(w.observed(&d).await, Observed::Running);
    assert_ne!(again.container_id, dead.container_id);
}

/// A listing marks no engine: with the marker pruned and nothing to
/// restore it from, the running agent is unknown, and the engine is
/// left as it was.
#[tokio::test]
async fn a_listing_marks_no_engine() {
    let w = World::new();
    let web = w.good("web");
    let dead = w.died(&web).await;
    (w.engine
        .remove_container(&dead.container_id, Duration::ZERO))
    .await
    .unwrap();
    w.engine.remove_volume(crate::identity::MARKER_VOLUME);
    let agents = [w.state.agent(&web).unwrap()];
    let observed = w.lifecycle().observe_all(&agents).await.unwrap();
    assert!(
        matches!(&observed[0], Observed::Unknown { .. }),
        "{observed:?}"
    );
    let marker = w.engine.volume(crate::identity::MARKER_VOLUME).await;
    assert!(marker.is_err(), "a listing made the marker: {marker:?}");
}
