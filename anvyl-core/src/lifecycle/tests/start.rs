//! Starts that fail at each step, from the build to the settle, and an interrupted one: each leaves nothing and the agent stopped.

use super::*;

#[tokio::test]
async fn a_good_start_ends_running_and_registered_with_no_build_directory() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    let agent = w.state.agent(&web).unwrap();
    assert_eq!(agent.status, AgentStatus::Running);
    assert_eq!(
        agent.container_id.as_deref(),
        Some(started.container_id.as_str())
    );
    assert_eq!(agent.host.as_deref(), Some(LOCAL_HOST));
    assert_eq!(w.build_dirs(), 0);
    let container = w
        .engine
        .inspect_container(&started.container_id)
        .await
        .unwrap();
    assert_eq!(container.name, "anvyl-agent-web");
    assert_eq!(container.labels["io.anvyl.start"], started.start.as_str());
}

#[tokio::test]
async fn a_failing_build_leaves_nothing() {
    let w = World::new();
    let web = w.with_setup("web", "false");
    let err = w.start(&web).await.unwrap_err();
    assert!(
        matches!(
            err,
            StartError::Failed {
                cause: StartCause::Build { .. },
                ..
            }
        ),
        "{err:?}"
    );
    w.assert_nothing_left(&web, &err).await;
}

#[tokio::test]
async fn a_missing_base_image_leaves_nothing() {
    let w = World::new();
    let web = w.agent(
        "web",
        AgentSpec {
            image: "no-such-image:1".into(),
            ..AgentSpec::default()
        },
    );
    let err = w.start(&web).await.unwrap_err();
    // Not on the engine, so pulled; not in the registry either.
    assert!(
        matches!(
            err,
            StartError::Failed {
                cause: StartCause::Base(BackendError::Pull {
                    problem: crate::pull::PullProblem::NotFound,
                    ..
                }),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("image library/no-such-image:1 not found in docker.io"),
        "{err}"
    );
    w.assert_nothing_left(&web, &err).await;
}

#[tokio::test]
async fn a_container_that_cannot_be_created_or_started_leaves_nothing() {
    for op in [Op::CreateContainer, Op::StartContainer] {
        let w = World::new();
        let web = w.good("web");
        w.engine
            .inject(op, None, Fault::Fail("refused".into()), None);
        let err = w.start(&web).await.unwrap_err();
        let cause_ok = matches!(
            (&err, op),
            (
                StartError::Failed {
                    cause: StartCause::CreateContainer(_),
                    ..
                },
                Op::CreateContainer
            ) | (
                StartError::Failed {
                    cause: StartCause::StartContainer(_),
                    ..
                },
                Op::StartContainer
            )
        );
        assert!(cause_ok, "{op:?}: {err:?}");
        w.assert_nothing_left(&web, &err).await;
    }
}

#[tokio::test]
async fn a_command_that_exits_at_once_fails_with_its_exit_code_and_leaves_nothing() {
    let w = World::new();
    let web = w.good("web");
    w.engine
        .inject(Op::StartContainer, None, Fault::ExitsAtOnce, None);
    let err = w.start(&web).await.unwrap_err();
    assert!(
        matches!(
            err,
            StartError::Failed {
                cause: StartCause::Exited {
                    exit_code: Some(3),
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("exited with code 3"), "{err}");
    w.assert_nothing_left(&web, &err).await;
}

#[tokio::test]
async fn no_host_fails_before_the_engine_is_touched() {
    let w = World::new();
    let web = w.good("web");
    w.state.remove_host(LOCAL_HOST).unwrap();
    let err = w.start(&web).await.unwrap_err();
    assert!(
        matches!(
            err,
            StartError::Failed {
                cause: StartCause::NoHost,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "start of agent 'web' failed: no hosts available"
    );
    assert!(w.engine.calls().is_empty(), "{:?}", w.engine.calls());
    w.assert_nothing_left(&web, &err).await;
}

#[tokio::test]
async fn a_missing_api_key_variable_fails_the_start_cleanly() {
    let w = World::new();
    let web = w.agent(
        "web",
        AgentSpec {
            image: BASE.into(),
            api_key_env: Some("ANVYL_TEST_SURELY_UNSET_KEY".into()),
            ..AgentSpec::default()
        },
    );
    let err = w.start(&web).await.unwrap_err();
    assert!(
        err.to_string().contains("ANVYL_TEST_SURELY_UNSET_KEY"),
        "{err}"
    );
    // Checked before anything is recorded or created.
    assert!(matches!(err, StartError::Precondition(_)), "{err:?}");
    assert!(w.state.starts().unwrap().is_empty());
    assert!(w.engine.calls().is_empty(), "{:?}", w.engine.calls());
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Stopped);
}

#[tokio::test]
async fn an_interrupted_start_is_cleaned_up() {
    let w = World::new();
    let web = w.good("web");
    w.engine.inject(
        Op::BuildImage,
        None,
        Fault::Stall(Duration::from_secs(30)),
        None,
    );
    let err = w
        .lifecycle()
        .start(&web, &|_| {}, tokio::time::sleep(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Interrupted { .. }), "{err:?}");
    w.assert_nothing_left(&web, &err).await;
}

/// Docker's builder can commit the step in progress after anvyl stopped
/// listening: what appears within the grace time is removed too.
#[tokio::test]
async fn an_image_the_engine_finishes_after_an_interrupt_is_removed_too() {
    let w = World::new();
    let web = w.good("web");
    w.engine.inject(
        Op::BuildImage,
        None,
        Fault::Stall(Duration::from_secs(30)),
        None,
    );
    let lifecycle = w.lifecycle_with(LifecycleSettings {
        settle: Duration::from_millis(50),
        interrupt_grace: Duration::from_millis(300),
        ..LifecycleSettings::default()
    });
    let interrupted = lifecycle.start(&web, &|_| {}, tokio::time::sleep(Duration::from_millis(50)));
    let (err, ()) = tokio::join!(interrupted, async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let start = w.state.agent(&web).unwrap().current_start.unwrap();
        let labels = crate::ownership::Ownership::new(w.state.instance_id().clone()).stamp(
            &Labels::new(),
            &web,
            &start,
        );
        w.engine.seed_image(&[], labels);
    });
    let err = err.unwrap_err();
    assert!(matches!(err, StartError::Interrupted { .. }), "{err:?}");
    w.assert_nothing_left(&web, &err).await;
}
