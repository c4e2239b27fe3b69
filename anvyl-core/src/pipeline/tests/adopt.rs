//! Adopting another installation's leftovers (`--instance`): what may still run of it is kept.

use super::*;

#[tokio::test]
async fn adopting_a_live_installation_keeps_what_runs_of_it() {
    // `--instance` names an installation whose state this one cannot read:
    // its agent that runs may well be live.
    let w = World::new();
    let alive = InstanceId::random();
    let theirs = Ownership::new(alive.clone());
    let (runs, stopped) = (
        AgentName::new("runs").unwrap(),
        AgentName::new("gone").unwrap(),
    );
    let start = StartId::random();
    let labels = theirs.stamp(&Labels::new(), &runs, &start);
    w.engine.seed_image(
        &[&runs.image_tag(), &runs.start_tag(&start)],
        labels.clone(),
    );
    let running = w
        .container(&runs.resource_name(), &runs.image_tag(), labels)
        .await;
    w.engine.start_container(&running).await.unwrap();
    let old = theirs.stamp(&Labels::new(), &stopped, &StartId::random());
    w.engine.seed_image(&[&stopped.image_tag()], old.clone());
    let leftover = w
        .container(&stopped.resource_name(), &stopped.image_tag(), old)
        .await;
    w.engine.set_state(&leftover, ContainerState::Exited);

    let adopting = w.cleanup_with(CleanupSettings {
        adopt: Some(alive),
        ..CleanupSettings::default()
    });
    let plan = adopting.plan(Scope::All).await.unwrap();
    assert_eq!(
        plan.kept.len(),
        3,
        "the container and its 2 tags: {:?}",
        plan.kept
    );
    let report = adopting.apply(&plan).await;

    assert!(w.exists(&running).await, "{report:?}");
    assert!(w.engine.inspect_image(&runs.image_tag()).await.is_ok());
    assert!(w
        .engine
        .inspect_image(&runs.start_tag(&start))
        .await
        .is_ok());
    assert!(!w.exists(&leftover).await, "{report:?}");
    assert!(w.engine.inspect_image(&stopped.image_tag()).await.is_err());
}

#[tokio::test]
async fn adopting_keeps_a_container_created_by_a_start_in_progress() {
    let w = World::new();
    let alive = InstanceId::random();
    let theirs = Ownership::new(alive.clone());
    let job = AgentName::new("job").unwrap();
    let start = StartId::random();
    let labels = theirs.stamp(&Labels::new(), &job, &start);
    w.engine
        .seed_image(&[&job.image_tag(), &job.start_tag(&start)], labels.clone());
    // That installation's start created its container and is about to
    // start it.
    let created = w
        .container(&job.resource_name(), &job.start_tag(&start), labels)
        .await;
    let adopting = w.cleanup_with(CleanupSettings {
        adopt: Some(alive),
        ..CleanupSettings::default()
    });
    let report = adopting
        .apply(&adopting.plan(Scope::All).await.unwrap())
        .await;
    assert!(w.exists(&created).await, "{report:?}");
    assert!(w.engine.inspect_image(&job.start_tag(&start)).await.is_ok());
    assert!(w.engine.inspect_image(&job.image_tag()).await.is_ok());
}

#[tokio::test]
async fn an_adopted_container_started_again_after_the_plan_is_kept() {
    let w = World::new();
    let alive = InstanceId::random();
    let theirs = Ownership::new(alive.clone());
    let web = AgentName::new("web").unwrap();
    let labels = theirs.stamp(&Labels::new(), &web, &StartId::random());
    w.engine.seed_image(&[&web.image_tag()], labels.clone());
    let container = w
        .container(&web.resource_name(), &web.image_tag(), labels)
        .await;
    w.engine.set_state(&container, ContainerState::Exited);
    let adopting = w.cleanup_with(CleanupSettings {
        adopt: Some(alive),
        ..CleanupSettings::default()
    });
    let plan = adopting.plan(Scope::All).await.unwrap();
    assert_eq!(plan.containers.len(), 1);
    // That installation starts it again while the prompt waits.
    w.engine.start_container(&container).await.unwrap();
    let report = adopting.apply(&plan).await;
    assert!(w.exists(&container).await, "{report:?}");
}

#[tokio::test]
async fn a_row_whose_name_cannot_be_read_keeps_what_may_be_its_own() {
    for edit in [
        "UPDATE agents SET name = CAST(name AS BLOB) WHERE name = 'k'",
        "UPDATE agents SET name = NULL WHERE name = 'k'",
    ] {
        let w = World::new();
        let k = w.agent("k");
        let start = StartId::random();
        let (container, _) = w.leftovers(&k, &start).await;
        w.engine.start_container(&container).await.unwrap();
        w.state
            .begin_start(&k, &start, std::path::Path::new("/b/k"))
            .unwrap();
        w.state.ensure_local_host().unwrap();
        w.state
            .register(
                &k,
                crate::state::LOCAL_HOST,
                &container,
                &start,
                &crate::identity::RecordedEngine::parse("Memory"),
            )
            .unwrap();
        // A forgotten agent's leftovers are still cleaned when every row
        // reads; here one row's name does not.
        w.state.conn().execute(edit, []).unwrap();

        let cleanup = w.cleanup();
        let report = cleanup
            .apply(&cleanup.plan(Scope::All).await.unwrap())
            .await;
        assert!(w.exists(&container).await, "{edit}: {report:?}");
        assert!(
            w.engine.inspect_image(&k.image_tag()).await.is_ok(),
            "{edit}"
        );
    }
}
