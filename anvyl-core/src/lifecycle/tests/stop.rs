//! Refusals, stops and removes: a running agent kept unless forced, an agent on another engine or a host that is down not touched here.

use super::*;

#[tokio::test]
async fn a_second_start_is_refused_while_one_runs() {
    let w = World::new();
    let web = w.good("web");
    w.start(&web).await.unwrap();
    let err = w.start(&web).await.unwrap_err();
    assert!(matches!(err, StartError::Refused(_)), "{err:?}");
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Running);
}

#[tokio::test]
async fn stop_removes_the_container_and_remove_needs_force_while_running() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    let lifecycle = w.lifecycle();
    assert!(matches!(
        lifecycle.remove(&web, false).await,
        Err(LifecycleError::Running(_))
    ));
    lifecycle.stop(&web).await.unwrap();
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_err());
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Stopped);

    w.start(&web).await.unwrap();
    lifecycle.remove(&web, true).await.unwrap();
    assert_eq!(w.remains(&web).await, 0);
    assert!(w.state.agent(&web).is_err(), "the agent is still recorded");
}

#[tokio::test]
async fn a_spec_that_cannot_build_is_refused_before_anything_is_recorded() {
    let w = World::new();
    // Recorded by an older anvyl that accepted it: the backslash would join
    // the setup step to the CMD line.
    let web = w.with_setup("web", "echo a \\");
    let err = w.start(&web).await.unwrap_err();
    assert!(matches!(err, StartError::Precondition(_)), "{err:?}");
    assert!(err.to_string().contains("backslash"), "{err}");
    assert!(w.state.starts().unwrap().is_empty());
    assert!(w.engine.calls().is_empty(), "{:?}", w.engine.calls());
}

#[tokio::test]
async fn an_agent_running_on_another_engine_is_not_stopped_here() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    // As if it had been started while the configuration reached another
    // engine, marked as anvyl marks every engine.
    w.state
        .conn()
        .execute(
            "UPDATE agents SET engine = 'Podman id:0123456789abcdef'",
            [],
        )
        .unwrap();
    let err = w.lifecycle().stop(&web).await.unwrap_err();
    assert!(matches!(err, LifecycleError::OtherEngine { .. }), "{err:?}");
    let err = w.lifecycle().remove(&web, true).await.unwrap_err();
    assert!(matches!(err, LifecycleError::OtherEngine { .. }), "{err:?}");
    // Nor said to run (a start, a removal without --force): the cause is
    // the other engine.
    let err = w.lifecycle().remove(&web, false).await.unwrap_err();
    assert!(matches!(err, LifecycleError::OtherEngine { .. }), "{err:?}");
    let err = w.start(&web).await.unwrap_err();
    assert!(
        matches!(&err, StartError::Unobserved { cause, .. }
            if matches!(**cause, LifecycleError::OtherEngine { .. })),
        "{err:?}"
    );
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Running);
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_ok());
}

#[tokio::test]
async fn an_agent_whose_host_is_down_is_removed_only_by_force_and_then_only_forgotten() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    for op in [Op::RemoveContainer, Op::ListContainers, Op::ListImages] {
        w.engine.inject(op, None, Fault::Unreachable, None);
    }
    let err = w.lifecycle().remove(&web, false).await.unwrap_err();
    assert!(matches!(err, LifecycleError::Running(_)), "{err:?}");
    w.state
        .force_status(&web, AgentStatus::Failed, None, None)
        .unwrap();
    let err = w.lifecycle().remove(&web, false).await.unwrap_err();
    assert!(err.unreachable_engine().is_some(), "{err:?}");
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Failed);

    w.state
        .force_status(
            &web,
            AgentStatus::Running,
            Some(&started.container_id),
            None,
        )
        .unwrap();
    // The engine still answers a ping: a failed call is not a host that is
    // down, and nothing is forgotten.
    let err = w.lifecycle().remove(&web, true).await.unwrap_err();
    assert!(err.unreachable_engine().is_some(), "{err:?}");
    assert!(w.state.agent(&web).is_ok(), "kept while its host answers");

    w.engine.inject(Op::Ping, None, Fault::Unreachable, None);
    match w.lifecycle().remove(&web, true).await.unwrap() {
        Removed::Forgotten { host, cause } => {
            assert_eq!(host, LOCAL_HOST);
            assert!(cause.is_unreachable());
        }
        other => panic!("{other:?}"),
    }
    assert!(w.state.agent(&web).is_err(), "forgotten");
    // Its container stays where it is, labelled for a later cleanup.
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_ok());
}
