//! The rules a plan and its apply hold on one engine: lookalikes and other installations left, live agents kept, a start scope exact, the build root never followed out of.

use super::*;

#[tokio::test]
async fn the_memory_backend_passes_the_conformance_suite() {
    let engine = MemoryBackend::new();
    engine.seed_image(&[BASE], Labels::new());
    let fixture = Fixture {
        base_image: BASE.into(),
        network: None,
        build_cache: false,
        runs_processes: false,
    };
    conformance::run_all(&engine, &fixture).await;
}

#[tokio::test]
async fn cleaning_web_leaves_lookalikes_and_other_installations() {
    let w = World::new();
    let web = w.agent("web");
    w.agent("web2");
    let (mine, _) = w.leftovers(&web, &StartId::random()).await;
    let theirs =
        Ownership::new(InstanceId::random()).stamp(&Labels::new(), &web, &StartId::random());
    let keep = [
        w.container("anvyl-agent-web2", BASE, Labels::new()).await,
        w.container("my-anvyl-agent-web", BASE, Labels::new()).await,
        w.container("anvyl-agent-web-other", BASE, theirs).await,
    ];
    w.engine
        .tag_image(&web.image_tag(), "mine:keep")
        .await
        .unwrap();

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::Agent(web.clone())).await.unwrap();
    let report = cleanup.apply(&plan).await;

    assert!(!w.exists(&mine).await);
    for id in &keep {
        assert!(w.exists(id).await, "look-alike {id} removed");
    }
    assert!(
        w.engine.inspect_image("mine:keep").await.is_ok(),
        "user tag removed"
    );
    assert!(w.engine.inspect_image(&web.image_tag()).await.is_err());
    assert_eq!(report.remaining_owned(), 0);
}

#[tokio::test]
async fn a_legacy_container_whose_agent_is_forgotten_after_the_plan_is_kept() {
    let w = World::new();
    let old = w.agent("old");
    let legacy = w.container("anvyl-agent-old", BASE, Labels::new()).await;

    let cleanup = w.cleanup_with(CleanupSettings {
        include_unlabelled: true,
        ..CleanupSettings::default()
    });
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.containers.len(), 1, "{plan:?}");
    // Without the agent, an unlabelled container is nobody's we know of.
    w.state
        .delete_agent(&old, &Fence::at(AgentStatus::Stopped, None))
        .unwrap();
    let report = cleanup.apply(&plan).await;

    assert!(w.exists(&legacy).await, "{report:?}");
    assert_eq!(
        report.count(|o| *o
            == Outcome::Skipped {
                reason: SkipReason::NoLongerOwned
            }),
        1,
        "{report:?}"
    );
}

#[tokio::test]
async fn a_failing_step_does_not_stop_the_others() {
    let w = World::new();
    let web = w.agent("web");
    let start = StartId::random();
    let (container, _) = w.leftovers(&web, &start).await;
    let dir = w.build_dir(&format!("web.{start}"));
    w.state
        .force_status(&web, AgentStatus::Failed, None, Some(&start))
        .unwrap();
    w.engine.inject(
        Op::RemoveContainer,
        None,
        Fault::Fail("disk on fire".into()),
        None,
    );

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::Agent(web.clone())).await.unwrap();
    let report = cleanup.apply(&plan).await;

    let outcomes: Vec<(Step, &Outcome)> = report.items().map(|(s, i)| (s, &i.outcome)).collect();
    assert!(matches!(
        outcomes[0],
        (Step::Containers, Outcome::Failed { .. })
    ));
    // The image is still used by the container that could not go: kept, with the reason.
    assert!(matches!(
        outcomes[1],
        (
            Step::Images,
            Outcome::Skipped {
                reason: SkipReason::InUse(_)
            }
        )
    ));
    assert_eq!(outcomes[2], (Step::BuildDirs, &Outcome::Removed));
    assert_eq!(outcomes[3], (Step::StatusReset, &Outcome::Removed));
    assert!(w.exists(&container).await);
    assert!(!dir.exists());
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Stopped);
    assert_eq!(report.remaining_owned(), 2);
}

#[tokio::test]
async fn not_found_counts_as_done_and_conflicts_are_retried() {
    let w = World::new();
    let (a, b) = (w.agent("a"), w.agent("b"));
    let (ca, _) = w.leftovers(&a, &StartId::random()).await;
    let (cb, _) = w.leftovers(&b, &StartId::random()).await;
    w.engine
        .inject(Op::RemoveContainer, Some(&ca), Fault::NotFound, Some(1));
    w.engine
        .inject(Op::RemoveContainer, Some(&cb), Fault::Conflict, Some(2));

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    let report = cleanup.apply(&plan).await;

    let containers = &report.steps[0].items;
    assert_eq!(containers[0].outcome, Outcome::AlreadyGone);
    assert_eq!(containers[1].outcome, Outcome::Removed);
    let tries = w
        .engine
        .calls()
        .iter()
        .filter(|(op, t)| *op == Op::RemoveContainer && t == &cb)
        .count();
    assert_eq!(tries, 3);
    // b's image follows its container; a's (faked) 404 left a container that
    // still uses a's image, which is therefore kept with the reason.
    let images: Vec<&Outcome> = report.steps[1].items.iter().map(|i| &i.outcome).collect();
    assert!(matches!(
        images[..],
        [
            Outcome::Skipped {
                reason: SkipReason::InUse(_)
            },
            Outcome::Removed
        ]
    ));
}

#[tokio::test]
async fn conflicts_are_retried_a_bounded_number_of_times() {
    let w = World::new();
    let a = w.agent("a");
    let (ca, _) = w.leftovers(&a, &StartId::random()).await;
    w.engine
        .inject(Op::RemoveContainer, Some(&ca), Fault::Conflict, None);

    let cleanup = w.cleanup();
    let report = cleanup
        .apply(&cleanup.plan(Scope::All).await.unwrap())
        .await;

    assert!(matches!(
        report.steps[0].items[0].outcome,
        Outcome::Failed { .. }
    ));
    let tries = w
        .engine
        .calls()
        .iter()
        .filter(|(op, _)| *op == Op::RemoveContainer)
        .count();
    assert_eq!(
        tries,
        1 + CleanupSettings::default().conflict_retries as usize
    );
}

#[tokio::test]
async fn a_running_agent_keeps_its_live_container_and_image() {
    let w = World::new();
    let (live, dead) = (w.agent("live"), w.agent("dead"));
    let (c_live, _) = w.leftovers(&live, &StartId::random()).await;
    w.engine.start_container(&c_live).await.unwrap();
    w.state
        .force_status(&live, AgentStatus::Running, Some(&c_live), None)
        .unwrap();
    let (c_dead, _) = w.leftovers(&dead, &StartId::random()).await;

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.kept.len(), 2, "{:?}", plan.kept);
    let report = cleanup.apply(&plan).await;

    assert!(w.exists(&c_live).await);
    assert!(w.engine.inspect_image(&live.image_tag()).await.is_ok());
    assert!(!w.exists(&c_dead).await);
    assert_eq!(w.state.agent(&live).unwrap().status, AgentStatus::Running);
    assert_eq!(report.remaining_owned(), 0);
}

#[tokio::test]
async fn a_running_agent_whose_container_exited_is_reconciled_and_cleaned() {
    let w = World::new();
    let web = w.agent("web");
    let (c, _) = w.leftovers(&web, &StartId::random()).await;
    w.state
        .force_status(&web, AgentStatus::Running, Some(&c), None)
        .unwrap();
    w.engine.set_state(&c, ContainerState::Exited);

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::Agent(web.clone())).await.unwrap();
    assert!(plan.resets[0].stale);
    // Planning changes nothing: a dry run leaves the status alone.
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Running);
    cleanup.apply(&plan).await;

    assert!(!w.exists(&c).await);
    let agent = w.state.agent(&web).unwrap();
    assert_eq!(
        (agent.status, agent.container_id),
        (AgentStatus::Stopped, None)
    );
}

#[tokio::test]
async fn a_start_scope_removes_exactly_that_start() {
    let w = World::new();
    let web = w.agent("web");
    let (old, new) = (StartId::random(), StartId::random());
    let labels = |s: &StartId| w.ours().stamp(&Labels::new(), &web, s);
    // The old start left an image; the new one a container of the base image.
    w.engine.seed_image(&[&web.image_tag()], labels(&old));
    let c_new = w.container(&web.resource_name(), BASE, labels(&new)).await;
    let dir = w.build_dir(&format!("web.{new}"));
    w.state.begin_start(&web, &new, &dir).unwrap();

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::Start(new)).await.unwrap();
    cleanup.apply(&plan).await;

    assert!(w.engine.inspect_image(&web.image_tag()).await.is_ok());
    assert!(!w.exists(&c_new).await);
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_start_in_progress_is_left_alone_and_a_dead_one_is_not() {
    let w = World::new();
    let (busy, crashed) = (w.agent("busy"), w.agent("crashed"));
    for (agent, pid) in [(&busy, std::process::id()), (&crashed, 0)] {
        let start = StartId::from_stored(format!("{agent}1"));
        let dir = w.build_dir(&format!("{agent}.{start}"));
        w.state.begin_start_as(agent, &start, &dir, pid).unwrap();
        w.leftovers(agent, &start).await;
    }

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    let planned: Vec<&AgentName> = plan.containers.iter().map(|c| &c.agent).collect();
    assert_eq!(planned, vec![&crashed]);
    assert_eq!(plan.kept.len(), 3, "{:?}", plan.kept);
    cleanup.apply(&plan).await;

    assert!(w.build_dir_exists("busy.busy1"));
    assert!(!w.build_dir_exists("crashed.crashed1"));
    assert_eq!(w.state.agent(&busy).unwrap().status, AgentStatus::Starting);
    assert_eq!(
        w.state.agent(&crashed).unwrap().status,
        AgentStatus::Stopped
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_in_the_build_root_is_never_followed() {
    let w = World::new();
    let web = w.agent("web");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), "data").unwrap();
    std::fs::create_dir_all(w.build_root().path()).unwrap();
    std::os::unix::fs::symlink(outside.path(), w.build_root().path().join("web.link")).unwrap();
    let inside = w.build_dir("web.real");
    std::os::unix::fs::symlink(outside.path(), inside.join("escape")).unwrap();

    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::Agent(web)).await.unwrap();
    // The link is no build directory: not even promised in the plan.
    let planned: Vec<&str> = plan.build_dirs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(planned, ["web.real"]);
    cleanup.apply(&plan).await;

    assert!(outside.path().join("precious").exists());
    assert!(w.build_root().path().join("web.link").exists());
    assert!(!inside.exists());
}

#[tokio::test]
async fn unrelated_entries_of_the_build_root_are_not_planned() {
    let w = World::new();
    let web = w.agent("web");
    w.build_dir("notes");
    w.build_dir("Web.x");
    w.build_dir("web2.x");
    let plan = w.cleanup().plan(Scope::Agent(web)).await.unwrap();
    assert!(plan.build_dirs.is_empty(), "{:?}", plan.build_dirs);
}

#[tokio::test]
async fn progress_is_told_of_each_item_as_it_finishes() {
    let w = World::new();
    for i in 0..3 {
        let agent = w.agent(&format!("a{i}"));
        w.leftovers(&agent, &StartId::random()).await;
    }
    let settings = CleanupSettings {
        parallelism: 1,
        ..CleanupSettings::default()
    };
    // When the k-th container is told, exactly k removals were asked for:
    // the display moves with the work, not once the step is over.
    let seen = std::sync::Mutex::new(Vec::new());
    let tell = |step: Step, _: &super::ItemReport| {
        if step == Step::Containers {
            let removals = (w.engine.calls().iter())
                .filter(|(op, _)| *op == Op::RemoveContainer)
                .count();
            seen.lock().unwrap().push(removals);
        }
    };
    let cleanup = w
        .cleanup_with(settings)
        .reporting_to(super::Progress::new(&tell));
    let plan = cleanup.plan(Scope::All).await.unwrap();
    let report = cleanup.apply(&plan).await;
    assert_eq!(report.count(|o| *o == Outcome::Removed), 6, "{report:?}");
    assert_eq!(seen.into_inner().unwrap(), [1, 2, 3]);
}

#[tokio::test]
async fn a_broken_build_root_is_one_planned_item_and_told_once() {
    let w = World::new();
    let web = w.agent("web");
    w.leftovers(&web, &StartId::random()).await;
    let builds = w.build_root().path().to_path_buf();
    let _ = std::fs::remove_dir_all(&builds);
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &builds).unwrap();
    let told = std::sync::Mutex::new(0usize);
    let tell = |_: Step, _: &super::ItemReport| *told.lock().unwrap() += 1;
    let cleanup = w.cleanup().reporting_to(super::Progress::new(&tell));
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert!(plan.build_root_error.is_some(), "{plan:?}");
    let report = cleanup.apply(&plan).await;
    // A bar of plan.len() ends full, not past it.
    assert_eq!(*told.lock().unwrap(), plan.len());
    assert_eq!(report.items().count(), plan.len());
}
