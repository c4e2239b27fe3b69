//! Checks of containers: labels, filters by label and by exact name, start, stop within its timeout, forced removal, and a missing one.

use super::*;

/// Labels and the exact name survive create and inspect.
pub async fn check_container_labels_round_trip(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("labels");
    let ours = Ownership::new(InstanceId::random());
    let mut user = Labels::new();
    user.insert("io.anvyl.managed-by".into(), "not-anvyl".into());
    user.insert("team".into(), "ml".into());
    let labels = ours.stamp(&user, &agent, &StartId::random());
    let name = agent.resource_name();
    let id = backend
        .create_container(&container_spec(fixture, &name, labels, &["true"]))
        .await
        .expect("create");
    let found = backend.inspect_container(&id).await.expect("inspect");
    discard(backend, &[&id], &[]).await;
    assert_eq!(found.name, name);
    assert_eq!(found.id, id);
    assert_eq!(found.state, ContainerState::Created);
    assert_eq!(
        found.labels.get("io.anvyl.managed-by").map(String::as_str),
        Some("anvyl")
    );
    assert_eq!(found.labels.get("team").map(String::as_str), Some("ml"));
    assert_eq!(ours.labelled_agent(&found.labels), Some(agent));
}

/// A label query returns the matching container and not one of another agent.
pub async fn check_label_filter_selects_exactly(backend: &dyn Backend, fixture: &Fixture) {
    let (a, b) = (unique_agent("filt-a"), unique_agent("filt-b"));
    let ours = Ownership::new(InstanceId::random());
    let ida = backend
        .create_container(&container_spec(
            fixture,
            &a.resource_name(),
            labels_of(&ours, &a),
            &["true"],
        ))
        .await
        .expect("create a");
    let idb = backend
        .create_container(&container_spec(
            fixture,
            &b.resource_name(),
            labels_of(&ours, &b),
            &["true"],
        ))
        .await
        .expect("create b");
    let listed = backend
        .list_containers(&Query::labelled(ours.selector(Some(&a), None)))
        .await;
    let all_ours = backend
        .list_containers(&Query::labelled(ours.selector(None, None)))
        .await;
    discard(backend, &[&ida, &idb], &[]).await;
    let ids: Vec<String> = listed.expect("list").into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![ida.clone()]);
    let ids: BTreeSet<String> = all_ours.expect("list").into_iter().map(|c| c.id).collect();
    assert_eq!(ids, BTreeSet::from([ida, idb]));
}

/// A name query includes the container of exactly that name (look-alikes
/// may come too; callers compare exactly).
pub async fn check_name_filter_includes_exact_name(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("name");
    let exact = agent.resource_name();
    let longer = format!("{exact}2");
    let id = backend
        .create_container(&container_spec(fixture, &exact, Labels::new(), &["true"]))
        .await
        .expect("create");
    let id2 = backend
        .create_container(&container_spec(fixture, &longer, Labels::new(), &["true"]))
        .await
        .expect("create look-alike");
    let listed = backend.list_containers(&Query::named(exact.clone())).await;
    discard(backend, &[&id, &id2], &[]).await;
    let names: Vec<String> = listed.expect("list").into_iter().map(|c| c.name).collect();
    assert!(names.contains(&exact), "{exact} missing from {names:?}");
}

/// Start makes a container running; stop makes it exited; repeating either is
/// not an error.
pub async fn check_start_and_stop_container(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("run");
    let id = backend
        .create_container(&container_spec(
            fixture,
            &agent.resource_name(),
            Labels::new(),
            &["sleep", "300"],
        ))
        .await
        .expect("create");
    let result = async {
        backend.start_container(&id).await.expect("start");
        backend.start_container(&id).await.expect("start again");
        assert_eq!(
            backend.inspect_container(&id).await.expect("inspect").state,
            ContainerState::Running
        );
        backend
            .stop_container(&id, Duration::ZERO)
            .await
            .expect("stop");
        backend
            .stop_container(&id, Duration::ZERO)
            .await
            .expect("stop again");
        backend.inspect_container(&id).await.expect("inspect").state
    }
    .await;
    discard(backend, &[&id], &[]).await;
    assert_eq!(result, ContainerState::Exited);
}

/// A stop honours the timeout it is given: a main process that ignores the
/// stop signal is killed once the timeout has passed — not after the
/// engine's own default of 10 s (libpod's stop ignores the timeout
/// podman-api sends) — and one that exits on the signal stops at once, so
/// the signal is really sent. The bounds are wide: they tell 2 s from 10 s.
pub async fn check_stop_honours_its_timeout(backend: &dyn Backend, fixture: &Fixture) {
    let started = |agent: AgentName, command: &'static [&'static str]| async move {
        let id = backend
            .create_container(&container_spec(
                fixture,
                &agent.resource_name(),
                Labels::new(),
                command,
            ))
            .await
            .expect("create");
        backend.start_container(&id).await.expect("start");
        id
    };
    // busybox `sleep` as PID 1 has no handler: SIGTERM does nothing to it.
    let stubborn = started(unique_agent("stubborn"), &["sleep", "300"]).await;
    let polite = started(
        unique_agent("polite"),
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ],
    )
    .await;
    let began = std::time::Instant::now();
    let stubborn_stop = backend
        .stop_container(&stubborn, Duration::from_secs(2))
        .await;
    let stubborn_took = began.elapsed();
    let stubborn_state = backend.inspect_container(&stubborn).await.map(|c| c.state);
    let began = std::time::Instant::now();
    let polite_stop = backend
        .stop_container(&polite, Duration::from_secs(8))
        .await;
    let polite_took = began.elapsed();
    discard(backend, &[&stubborn, &polite], &[]).await;
    stubborn_stop.expect("stop with timeout 2 s");
    polite_stop.expect("stop with timeout 8 s");
    assert_eq!(stubborn_state.expect("inspect"), ContainerState::Exited);
    let waited_enough = !fixture.runs_processes || stubborn_took >= Duration::from_millis(1500);
    assert!(
        waited_enough && stubborn_took < Duration::from_secs(6),
        "a stop with timeout 2 s of a process that ignores SIGTERM took {stubborn_took:?}"
    );
    assert!(
        polite_took < Duration::from_secs(6),
        "a process that exits on SIGTERM took {polite_took:?} to stop (timeout 8 s): no stop signal?"
    );
}

/// A running container is removed outright with a zero stop timeout.
pub async fn check_forced_removal_of_running_container(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("force");
    let id = backend
        .create_container(&container_spec(
            fixture,
            &agent.resource_name(),
            Labels::new(),
            &["sleep", "300"],
        ))
        .await
        .expect("create");
    backend.start_container(&id).await.expect("start");
    backend
        .remove_container(&id, Duration::ZERO)
        .await
        .expect("forced removal");
    let err = backend.inspect_container(&id).await.expect_err("removed");
    assert!(err.is_not_found(), "expected not found, got {err}");
}

/// Inspecting or removing a missing container is `NotFound`.
pub async fn check_missing_container_is_not_found(backend: &dyn Backend, _: &Fixture) {
    let name = unique_agent("missing").resource_name();
    let err = backend.inspect_container(&name).await.expect_err("missing");
    assert!(err.is_not_found(), "inspect: expected not found, got {err}");
    let err = backend
        .remove_container(&name, Duration::ZERO)
        .await
        .expect_err("missing");
    assert!(err.is_not_found(), "remove: expected not found, got {err}");
}
