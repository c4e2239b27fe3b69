//! Applying a plan: removals side by side within the bound, another installation's leftovers only when adopted, and a removal that errs judged by what the engine did.

use super::*;

#[tokio::test]
async fn removals_run_concurrently_within_the_bound() {
    let w = World::new();
    for i in 0..8 {
        let agent = w.agent(&format!("a{i}"));
        w.leftovers(&agent, &StartId::random()).await;
    }
    w.engine.inject(
        Op::RemoveContainer,
        None,
        Fault::Stall(Duration::from_millis(200)),
        None,
    );
    let settings = CleanupSettings {
        parallelism: 4,
        ..CleanupSettings::default()
    };
    let cleanup = w.cleanup_with(settings);
    let plan = cleanup.plan(Scope::All).await.unwrap();
    let began = std::time::Instant::now();
    let report = cleanup.apply(&plan).await;
    let took = began.elapsed();
    assert_eq!(report.count(|o| *o == Outcome::Removed), 16);
    // 8 stalls of 200 ms, 4 at a time: two waves, never eight in a row.
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1200),
        "{took:?}"
    );
}

#[tokio::test]
async fn another_installations_leftovers_are_listed_and_removed_only_when_adopted() {
    let w = World::new();
    let web = w.agent("web");
    let (mine, _) = w.leftovers(&web, &StartId::random()).await;
    let lost = InstanceId::random();
    let theirs = Ownership::new(lost.clone());
    let other = AgentName::new("other").unwrap();
    let labels = theirs.stamp(&Labels::new(), &other, &StartId::random());
    w.engine.seed_image(&[&other.image_tag()], labels.clone());
    let orphan = w
        .container(&other.resource_name(), &other.image_tag(), labels)
        .await;
    // What a lost installation leaves: its agent's container has exited.
    w.engine.set_state(&orphan, ContainerState::Exited);
    w.state
        .force_status(&web, AgentStatus::Failed, None, None)
        .unwrap();

    let plan = w.cleanup().plan(Scope::All).await.unwrap();
    assert_eq!(
        plan.other_instances,
        vec![OtherInstance {
            instance: lost.to_string(),
            resources: 2
        }]
    );
    assert!(plan.containers.iter().all(|c| c.agent == web), "{plan:?}");

    let adopting = w.cleanup_with(CleanupSettings {
        adopt: Some(lost),
        ..CleanupSettings::default()
    });
    let plan = adopting.plan(Scope::All).await.unwrap();
    assert!(plan.resets.is_empty(), "this state's agents are not theirs");
    let report = adopting.apply(&plan).await;
    assert!(!w.exists(&orphan).await, "{report:?}");
    assert!(w.engine.inspect_image(&other.image_tag()).await.is_err());
    assert!(w.exists(&mine).await, "this installation's own was taken");
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Failed);
}

#[tokio::test]
async fn a_removal_that_errs_but_took_place_counts_as_done() {
    let w = World::new();
    let web = w.agent("web");
    let start = StartId::random();
    let labels = w.ours().stamp(&Labels::new(), &web, &start);
    let image = w
        .engine
        .seed_image(&[&web.image_tag(), &web.start_tag(&start)], labels.clone());
    let container = w.container(&web.resource_name(), BASE, labels).await;
    // Docker untags and then fails on a parent ("unrecognized image ID");
    // an answer can be lost after the engine acted.
    let unrecognized = Fault::FailAfter("unrecognized image ID sha256:0123".into());
    w.engine.inject(Op::RemoveImage, None, unrecognized, None);
    let lost = Fault::FailAfter("connection reset".into());
    w.engine.inject(Op::RemoveContainer, None, lost, None);

    let cleanup = w.cleanup();
    let report = cleanup
        .apply(&cleanup.plan(Scope::All).await.unwrap())
        .await;

    assert!(!w.exists(&container).await);
    assert!(w.engine.inspect_image(&image).await.is_err());
    assert_eq!(report.count(|o| *o == Outcome::Removed), 3, "{report:?}");
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
}

#[tokio::test]
async fn a_removal_that_errs_and_did_not_happen_is_reported() {
    let w = World::new();
    let web = w.agent("web");
    let (container, _) = w.leftovers(&web, &StartId::random()).await;
    w.engine
        .inject(Op::RemoveContainer, None, Fault::Fail("boom".into()), None);
    let cleanup = w.cleanup();
    let report = cleanup
        .apply(&cleanup.plan(Scope::All).await.unwrap())
        .await;
    assert!(w.exists(&container).await);
    assert!(matches!(
        report.steps[0].items[0].outcome,
        Outcome::Failed { .. }
    ));
}
