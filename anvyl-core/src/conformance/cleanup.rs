//! Checks of the cleanup on the engine: lookalikes spared, what is made after the plan kept, both tags of a start removed, the build cache left.

use super::*;

/// A full cleanup of one agent removes its labelled resources and leaves
/// every look-alike: `anvyl-agent-<name>2`, `my-anvyl-agent-<name>`, another
/// installation's resources, a user's tags on the agent's image (in another
/// repository, in anvyl's repository, and under `localhost/`) and, unless
/// asked, an unlabelled container with an agent's exact name.
pub async fn check_cleanup_spares_lookalikes(backend: &dyn Backend, fixture: &Fixture) {
    let state = StateStore::open_in_memory().expect("state");
    let ours = Ownership::new(state.instance_id().clone());
    let theirs = Ownership::new(InstanceId::random());
    let agent = unique_agent("web");
    let legacy = unique_agent("old");
    for a in [&agent, &legacy] {
        state.create_agent(a, &AgentSpec::default()).expect("agent");
    }
    let tag = agent.image_tag();
    let user_tags = [
        format!("user-{agent}:keep"),
        format!("{}:backup", agent.resource_name()),
        format!("localhost/{}:mine", agent.resource_name()),
    ];
    build(backend, fixture, &tag, labels_of(&ours, &agent), "")
        .await
        .expect("build");
    for user_tag in &user_tags {
        backend.tag_image(&tag, user_tag).await.expect("user tag");
    }
    let mk = |name: String, labels: Labels| {
        let spec = container_spec(fixture, &name, labels, &["true"]);
        async move { backend.create_container(&spec).await.expect("create") }
    };
    let c_ours = mk(agent.resource_name(), labels_of(&ours, &agent)).await;
    // A user's container of the agent's image inherits the image's labels.
    let mut users = container_spec(
        fixture,
        &format!("user-of-{agent}"),
        Labels::new(),
        &["true"],
    );
    users.image = tag.clone();
    let c_users = backend
        .create_container(&users)
        .await
        .expect("create user's container");
    let c_legacy = mk(legacy.resource_name(), Labels::new()).await;
    let survivors = vec![
        mk(format!("{}2", agent.resource_name()), Labels::new()).await,
        mk(format!("my-{}", legacy.resource_name()), Labels::new()).await,
        mk(
            format!("{}-x", agent.resource_name()),
            labels_of(&theirs, &agent),
        )
        .await,
        mk(format!("{}2", legacy.resource_name()), Labels::new()).await,
        c_users,
    ];
    let build_root = tempfile::tempdir().expect("build root");
    let cleanup = cleanup_of(
        backend,
        &state,
        build_root.path(),
        CleanupSettings::default(),
    );
    let mut removed = Vec::new();
    let mut record = |report: &crate::pipeline::Report| {
        removed.extend(
            report
                .items()
                .filter(|(_, i)| i.outcome == Outcome::Removed)
                .map(|(_, i)| i.target.clone()),
        )
    };
    for scope in [Scope::Agent(agent.clone()), Scope::Agent(legacy.clone())] {
        let plan = cleanup.plan(scope).await.expect("plan");
        record(&cleanup.apply(&plan).await);
    }
    let legacy_kept = backend.inspect_container(&c_legacy).await.is_ok();
    // Asked for, the unlabelled container named for a known agent goes.
    let asked = CleanupSettings {
        include_unlabelled: true,
        ..CleanupSettings::default()
    };
    let cleanup = cleanup_of(backend, &state, build_root.path(), asked);
    let plan = cleanup
        .plan(Scope::Agent(legacy.clone()))
        .await
        .expect("plan");
    record(&cleanup.apply(&plan).await);
    let after: BTreeSet<String> = backend
        .list_containers(&Query::default())
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut user_images = Vec::new();
    for user_tag in &user_tags {
        user_images.push((user_tag, backend.inspect_image(user_tag).await.is_ok()));
    }
    discard(
        backend,
        &survivors.iter().map(String::as_str).collect::<Vec<_>>(),
        &user_tags.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert!(legacy_kept, "an unlabelled container was removed unasked");
    assert!(
        !after.contains(&c_ours) && !after.contains(&c_legacy),
        "owned containers remain"
    );
    for s in &survivors {
        assert!(after.contains(s), "look-alike {s} was removed");
    }
    for (user_tag, kept) in user_images {
        assert!(
            kept,
            "the user's tag {user_tag} on the agent's image was removed"
        );
    }
    removed.sort();
    // The user's tags keep the image alive, so our tag goes without conflict.
    let mut expected = vec![agent.resource_name(), legacy.resource_name(), tag.clone()];
    expected.sort();
    assert_eq!(removed, expected);
}

/// Apply removes only what the plan listed: a container created and an
/// image tag rebuilt after planning both survive.
pub async fn check_resources_made_after_plan_survive(backend: &dyn Backend, fixture: &Fixture) {
    let state = StateStore::open_in_memory().expect("state");
    let ours = Ownership::new(state.instance_id().clone());
    let agent = unique_agent("late");
    let tag = agent.image_tag();
    build(backend, fixture, &tag, labels_of(&ours, &agent), "")
        .await
        .expect("build");
    let early = backend
        .create_container(&container_spec(
            fixture,
            &agent.resource_name(),
            labels_of(&ours, &agent),
            &["true"],
        ))
        .await
        .expect("create");
    let build_root = tempfile::tempdir().expect("build root");
    let cleanup = cleanup_of(
        backend,
        &state,
        build_root.path(),
        CleanupSettings::default(),
    );
    let plan = cleanup
        .plan(Scope::Agent(agent.clone()))
        .await
        .expect("plan");
    assert_eq!(
        (plan.containers.len(), plan.images.len()),
        (1, 1),
        "{plan:?}"
    );

    // Another start runs between plan and apply: it rebuilds the tag (a new
    // image) after the old container is gone, and makes a new container.
    backend
        .remove_container(&early, Duration::ZERO)
        .await
        .expect("remove early");
    let rebuilt = build(
        backend,
        fixture,
        &tag,
        labels_of(&ours, &agent),
        "LABEL rebuilt=yes\n",
    )
    .await
    .expect("rebuild");
    let late = backend
        .create_container(&container_spec(
            fixture,
            &agent.resource_name(),
            labels_of(&ours, &agent),
            &["true"],
        ))
        .await
        .expect("create late");

    let report = cleanup.apply(&plan).await;
    let late_alive = backend.inspect_container(&late).await;
    let image_now = backend.inspect_image(&tag).await;
    // The first build lost its tag to the rebuild; remove it by id.
    discard(backend, &[&late], &[&tag, &plan.images[0].image_id]).await;
    assert!(
        late_alive.is_ok(),
        "a container made after planning was removed: {report:?}"
    );
    assert_eq!(image_now.expect("rebuilt image survives").id, rebuilt);
    assert_eq!(report.count(|o| *o == Outcome::Removed), 0, "{report:?}");
}

/// A start's image carries two tags anvyl gives, `:latest` and `:<start>`;
/// a cleanup removes both and with them the image, every time (Podman
/// loses one of two untags of one image that run at once).
pub async fn check_both_tags_of_a_start_are_removed(backend: &dyn Backend, fixture: &Fixture) {
    let state = StateStore::open_in_memory().expect("state");
    let ours = Ownership::new(state.instance_id().clone());
    let build_root = tempfile::tempdir().expect("build root");
    let cleanup = cleanup_of(
        backend,
        &state,
        build_root.path(),
        CleanupSettings::default(),
    );
    for round in 0..3 {
        let agent = unique_agent("tags");
        let start = StartId::random();
        let labels = ours.stamp(&Labels::new(), &agent, &start);
        let start_tag = agent.start_tag(&start);
        let id = build(backend, fixture, &start_tag, labels, "")
            .await
            .expect("build");
        backend
            .tag_image(&start_tag, &agent.image_tag())
            .await
            .expect("tag latest");
        let plan = cleanup.plan(Scope::All).await.expect("plan");
        let planned = plan.images.iter().filter(|i| i.agent == agent).count();
        let report = cleanup.apply(&plan).await;
        let left = backend.inspect_image(&id).await;
        discard(backend, &[], &[&id]).await;
        assert_eq!(planned, 2, "round {round}: {plan:?}");
        assert!(
            left.is_err(),
            "round {round}: the image survived: {report:?}"
        );
        assert_eq!(report.remaining_owned(), 0, "round {round}: {report:?}");
    }
}

/// Removing anvyl's image leaves the untagged image its build step made
/// below it: that is the engine's build cache, which a concurrent build —
/// anyone's — may be using at that moment. It counts as dangling, for the
/// engine's prune.
pub async fn check_removal_leaves_the_build_cache(backend: &dyn Backend, fixture: &Fixture) {
    if !fixture.build_cache {
        return;
    }
    let state = StateStore::open_in_memory().expect("state");
    let ours = Ownership::new(state.instance_id().clone());
    let agent = unique_agent("cache");
    let step = format!("RUN echo {agent} > /cache\n");
    let id = build(
        backend,
        fixture,
        &agent.image_tag(),
        labels_of(&ours, &agent),
        &step,
    )
    .await
    .expect("build");
    let before = backend.count_dangling_images().await.expect("count");
    let build_root = tempfile::tempdir().expect("build root");
    let cleanup = cleanup_of(
        backend,
        &state,
        build_root.path(),
        CleanupSettings::default(),
    );
    let report = cleanup
        .apply(
            &cleanup
                .plan(Scope::Agent(agent.clone()))
                .await
                .expect("plan"),
        )
        .await;
    let after = backend.count_dangling_images().await.expect("count");
    let gone = backend.inspect_image(&id).await.is_err();
    assert!(gone, "anvyl's image remains: {report:?}");
    assert!(
        after > before,
        "the build step's image below anvyl's was removed with it ({before} dangling before, {after} after)"
    );
}
