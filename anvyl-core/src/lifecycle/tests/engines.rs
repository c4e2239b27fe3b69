//! Crashed starts and running agents when the engine behind a host changed or lost its marker.

use super::*;

#[tokio::test]
async fn a_crashed_start_on_a_new_engine_is_cleaned_and_reset_there() {
    let w = World::new();
    let web = w.good("web");
    let start = crashed_after_moving(&w, &web).await;
    assert_eq!(
        w.state.starts().unwrap()[0].engine.as_ref(),
        Some(
            crate::identity::EngineIdentity::of(w.engine.as_ref())
                .current()
                .await
                .unwrap()
        )
    );

    let cleanup = w.cleanup();
    let report = cleanup
        .apply(&cleanup.plan(crate::pipeline::Scope::All).await.unwrap())
        .await;
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
    assert_eq!(w.remains(&web).await, 0, "{report:?}");
    assert_eq!(w.build_dirs(), 0);
    let agent = w.state.agent(&web).unwrap();
    assert_eq!(
        (agent.status, agent.current_start),
        (AgentStatus::Stopped, Some(start))
    );
    w.start(&web).await.expect("starts again");
}

#[tokio::test]
async fn a_crashed_start_on_a_new_engine_is_removed_by_force() {
    let w = World::new();
    let web = w.good("web");
    crashed_after_moving(&w, &web).await;
    w.lifecycle().remove(&web, true).await.expect("removed");
    assert_eq!(w.remains(&web).await, 0);
    assert!(w.state.agents().unwrap().is_empty());
}

#[tokio::test]
async fn a_running_agent_is_still_judged_here_after_the_engines_marker_was_pruned() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    // `docker volume prune` on Docker 20.10 takes the unused marker volume.
    w.engine.remove_volume(crate::identity::MARKER_VOLUME);
    w.lifecycle()
        .stop(&web)
        .await
        .expect("stopped here, not 'another engine'");
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_err());
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Stopped);
}

#[tokio::test]
async fn an_agent_recorded_before_engines_were_marked_is_judged_where_its_container_is() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    let cleanup = w.cleanup();
    // Recorded by an older anvyl: the daemon ID every dockerd of a machine
    // shares, or nothing at all. Its container is here: judged here.
    for legacy in ["'Docker 3F2A:SAME'", "NULL"] {
        w.state
            .conn()
            .execute(&format!("UPDATE agents SET engine = {legacy}"), [])
            .unwrap();
        let plan = cleanup.plan(crate::pipeline::Scope::All).await.unwrap();
        assert!(
            plan.resets.is_empty() && plan.containers.is_empty(),
            "{plan:?}"
        );
    }
    // Its container is not on this engine: not judged here.
    w.state
        .conn()
        .execute("UPDATE agents SET container_id = 'elsewhere'", [])
        .unwrap();
    let err = w.lifecycle().stop(&web).await.unwrap_err();
    assert!(matches!(err, LifecycleError::OtherEngine { .. }), "{err:?}");
    let plan = cleanup.plan(crate::pipeline::Scope::All).await.unwrap();
    assert!(plan.resets.is_empty(), "{plan:?}");
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Running);
    // Forced, it is forgotten, and nothing is removed here.
    assert!(matches!(
        w.lifecycle().remove(&web, true).await.unwrap(),
        Removed::Forgotten { .. }
    ));
    assert!(w.state.agents().unwrap().is_empty());
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_ok());
}
