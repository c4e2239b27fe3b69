//! Each agent judged by its own engine only: another host, another engine of the same kind, a fleet with a host that does not answer, rows that cannot be read.

use super::*;

#[tokio::test]
async fn an_agent_of_another_host_is_not_judged_by_this_engine() {
    let w = World::new();
    let remote = w.agent("remote");
    let start = StartId::random();
    // It runs on host `gpu`: its container is there, not on this engine;
    // here, its image of the same start (pulled over, say) and nothing else.
    w.state
        .begin_start(&remote, &start, std::path::Path::new("/b/x"))
        .unwrap();
    w.state
        .add_host(
            "gpu",
            crate::BackendKind::Docker,
            Some("unix:///gpu.sock"),
            &Default::default(),
        )
        .unwrap();
    w.state
        .register(
            &remote,
            "gpu",
            "c-on-gpu",
            &start,
            &identity_of(&w.engine).await,
        )
        .unwrap();
    let labels = w.ours().stamp(&Labels::new(), &remote, &start);
    w.engine.seed_image(&[&remote.start_tag(&start)], labels);

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert!(plan.resets.is_empty(), "{plan:?}");
    assert!(
        plan.images.is_empty(),
        "its live start's image is kept: {plan:?}"
    );
    cleanup.apply(&plan).await;
    let agent = w.state.agent(&remote).unwrap();
    assert_eq!(agent.status, AgentStatus::Running);
    assert!(w
        .engine
        .inspect_image(&remote.start_tag(&start))
        .await
        .is_ok());

    // Judged on its own host, the container gone there, it is reconciled.
    let on_gpu = w.cleanup().on_host("gpu");
    let plan = on_gpu.plan(Scope::All).await.unwrap();
    assert!(plan.resets.iter().any(|r| r.stale), "{plan:?}");
}

#[tokio::test]
async fn an_agent_whose_row_cannot_be_read_keeps_everything() {
    let w = World::new();
    let good = w.agent("good");
    let start = StartId::random();
    let (container, _) = w.leftovers(&good, &start).await;
    w.engine.start_container(&container).await.unwrap();
    w.state
        .force_status(&good, AgentStatus::Running, Some(&container), Some(&start))
        .unwrap();
    // An edited database, or a status only a newer anvyl knows.
    w.state
        .conn()
        .execute(
            "UPDATE agents SET status = 'zombie' WHERE name = 'good'",
            [],
        )
        .unwrap();

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert!(
        plan.containers.is_empty() && plan.images.is_empty(),
        "{plan:?}"
    );
    assert!(
        plan.kept
            .iter()
            .any(|k| k.reason.contains("cannot be read")),
        "{plan:?}"
    );
    cleanup.apply(&plan).await;
    assert!(w.exists(&container).await);
    assert!(w.engine.inspect_image(&good.image_tag()).await.is_ok());
}

#[tokio::test]
async fn an_untagged_image_is_ours_only_from_a_start_that_did_not_succeed() {
    let w = World::new();
    let web = w.agent("web");
    // A start that ran: a user's image built FROM anvyl's, or committed from
    // its container, inherits its labels — and is untagged once rebuilt.
    let ran = StartId::random();
    w.state
        .begin_start(&web, &ran, std::path::Path::new("/b/web.r"))
        .unwrap();
    w.state.end_start(&ran, crate::state::SUCCEEDED).unwrap();
    w.state
        .force_status(&web, AgentStatus::Stopped, None, None)
        .unwrap();
    let users = w
        .engine
        .seed_image(&[], w.ours().stamp(&Labels::new(), &web, &ran));
    // A start that was interrupted while its build went on in the engine.
    let broke = StartId::random();
    w.state
        .begin_start(&web, &broke, std::path::Path::new("/b/web.b"))
        .unwrap();
    w.state.end_start(&broke, "interrupted").unwrap();
    w.state
        .force_status(&web, AgentStatus::Stopped, None, None)
        .unwrap();
    let late = w
        .engine
        .seed_image(&[], w.ours().stamp(&Labels::new(), &web, &broke));

    let cleanup = w.cleanup();
    let report = cleanup
        .apply(&cleanup.plan(Scope::All).await.unwrap())
        .await;

    assert!(w.engine.inspect_image(&users).await.is_ok(), "{report:?}");
    assert!(w.engine.inspect_image(&late).await.is_err(), "{report:?}");
}

#[tokio::test]
async fn an_agent_registered_on_another_engine_is_not_judged_by_this_one() {
    let w = World::new();
    let web = w.agent("web");
    let start = StartId::random();
    // `local` pointed at another engine when it started (the configuration
    // follows `--backend`, `DOCKER_HOST`, …): its container is not here.
    w.state
        .begin_start(&web, &start, std::path::Path::new("/b/x"))
        .unwrap();
    w.state.ensure_local_host().unwrap();
    w.state
        .register(
            &web,
            crate::state::LOCAL_HOST,
            "c-elsewhere",
            &start,
            &crate::identity::RecordedEngine::parse("Podman"),
        )
        .unwrap();

    let plan = w.cleanup().plan(Scope::All).await.unwrap();
    assert!(plan.resets.is_empty(), "{plan:?}");
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Running);
}

#[tokio::test]
async fn a_fleet_judges_each_agent_on_its_own_host_and_leaves_an_unreachable_one_alone() {
    use std::sync::Arc;
    let w = World::new();
    let engines = Fleet3 {
        local: Arc::new(MemoryBackend::new()),
        far: Arc::new(MemoryBackend::new()),
    };
    w.state.ensure_local_host().unwrap();
    w.state
        .add_host(
            "far",
            crate::BackendKind::Docker,
            Some("unix:///far.sock"),
            &Default::default(),
        )
        .unwrap();
    w.state
        .add_host(
            "down",
            crate::BackendKind::Docker,
            Some("unix:///down.sock"),
            &Default::default(),
        )
        .unwrap();
    let stamp = |agent: &AgentName, start: &StartId| w.ours().stamp(&Labels::new(), agent, start);

    // `remote` runs on far; an image of its earlier, failed start is there too.
    let remote = w.agent("remote");
    let (old, now) = (StartId::random(), StartId::random());
    engines
        .far
        .seed_image(&[&remote.start_tag(&old)], stamp(&remote, &old));
    engines
        .far
        .seed_image(&[&remote.start_tag(&now)], stamp(&remote, &now));
    let live = engines
        .far
        .create_container(&ContainerSpec {
            name: remote.resource_name(),
            image: remote.start_tag(&now),
            labels: stamp(&remote, &now),
            ..ContainerSpec::default()
        })
        .await
        .unwrap();
    engines.far.start_container(&live).await.unwrap();
    w.state
        .begin_start(&remote, &now, std::path::Path::new("/b/r"))
        .unwrap();
    let far_engine = identity_of(engines.far.as_ref()).await;
    w.state
        .register(&remote, "far", &live, &now, &far_engine)
        .unwrap();

    // `web` failed on local: its container, image and build directory remain.
    let web = w.agent("web");
    let failed = StartId::random();
    w.state
        .begin_start_as(&web, &failed, std::path::Path::new("/b/w"), 999_999_999)
        .unwrap();
    w.state.update_start(&failed, Some("local"), None).unwrap();
    engines
        .local
        .seed_image(&[&web.start_tag(&failed)], stamp(&web, &failed));
    engines
        .local
        .create_container(&ContainerSpec {
            name: web.resource_name(),
            image: web.start_tag(&failed),
            labels: stamp(&web, &failed),
            ..ContainerSpec::default()
        })
        .await
        .unwrap();
    std::fs::create_dir_all(w.build_dir(&format!("web.{failed}"))).unwrap();

    // `cut` crashed while starting on `down`, which does not answer now.
    let cut = w.agent("cut");
    let crashed = StartId::random();
    w.state
        .begin_start_as(&cut, &crashed, std::path::Path::new("/b/c"), 999_999_999)
        .unwrap();
    w.state.update_start(&crashed, Some("down"), None).unwrap();

    let fleet = Fleet::connect(
        &w.state,
        w.build_root(),
        CleanupSettings::default(),
        w.state.hosts().unwrap(),
        &engines,
    )
    .await;
    let plan = fleet.plan(Scope::All).await.unwrap();
    let host = |name: &str| plan.hosts.iter().find(|h| h.host == name).unwrap();
    let (local, far) = (
        host("local").plan.as_ref().unwrap(),
        host("far").plan.as_ref().unwrap(),
    );
    assert_eq!(
        (
            local.containers.len(),
            local.images.len(),
            local.resets.len()
        ),
        (1, 1, 1),
        "{local:?}"
    );
    assert_eq!(local.resets[0].agent, web);
    assert!(
        far.resets.is_empty() && far.containers.is_empty(),
        "{far:?}"
    );
    assert_eq!(
        far.images.len(),
        1,
        "only the failed start's image: {far:?}"
    );
    assert!(host("down").error.as_ref().unwrap().unreachable);
    assert!(local.build_dirs.is_empty() && far.build_dirs.is_empty());
    assert_eq!(plan.machine.build_dirs.len(), 1, "planned once: {plan:?}");
    assert!(!plan.no_host_reached());

    let told = std::sync::Mutex::new(Vec::new());
    let tell = |step: Step, item: &super::ItemReport| {
        told.lock().unwrap().push((step, item.target.clone()));
    };
    let report = fleet
        .apply_reporting(&plan, super::Progress::new(&tell))
        .await;
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
    // Every item of every host and of the machine is told once, under its
    // step: a progress bar of plan.len() ends full, never past it.
    let mut told = told.into_inner().unwrap();
    let mut reported: Vec<(Step, String)> = (report.reports())
        .flat_map(|r| r.items().map(|(step, i)| (step, i.target.clone())))
        .collect();
    told.sort();
    reported.sort();
    assert_eq!(told, reported);
    assert_eq!(told.len(), plan.len());
    assert_eq!(w.state.agent(&remote).unwrap().status, AgentStatus::Running);
    assert!(engines.far.inspect_container(&live).await.is_ok());
    assert!(engines
        .far
        .inspect_image(&remote.start_tag(&now))
        .await
        .is_ok());
    assert!(engines
        .far
        .inspect_image(&remote.start_tag(&old))
        .await
        .is_err());
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Stopped);
    assert_eq!(
        w.state.agent(&cut).unwrap().status,
        AgentStatus::Starting,
        "an unreachable host's agent keeps its status"
    );
    assert!(!w.build_dir_exists(&format!("web.{failed}")));
}

#[tokio::test]
async fn an_agent_registered_on_another_engine_of_the_same_kind_is_not_judged_here() {
    // Its host's endpoint reaches another engine today (a relative socket
    // path, a Docker context pointed elsewhere): its container is not to
    // be seen here, and that is no evidence that it is gone.
    let w = World::new();
    w.state.ensure_local_host().unwrap();
    let remote = w.agent("moved");
    let start = StartId::random();
    w.state
        .begin_start(&remote, &start, std::path::Path::new("/b/m"))
        .unwrap();
    let elsewhere = MemoryBackend::new();
    let identity = identity_of(&elsewhere).await;
    assert_ne!(identity, identity_of(&w.engine).await);
    w.state
        .register(
            &remote,
            crate::state::LOCAL_HOST,
            "c-elsewhere",
            &start,
            &identity,
        )
        .unwrap();
    let plan = w.cleanup().plan(Scope::All).await.unwrap();
    assert!(plan.resets.is_empty(), "{plan:?}");
}
