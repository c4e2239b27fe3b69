//! The build cache owned (`build_cache = "remove"`): the step images a
//! start's build made go with its image — after a failed start, a cleanup
//! or a remove — and the engine is left with exactly the images it had;
//! never a step another image is built on, one a record does not describe,
//! or any while another start is in progress. The default keeps them.

use super::*;
use crate::pipeline::{BuildCache, Cleanup, CleanupSettings, Scope};

fn owning() -> CleanupSettings {
    CleanupSettings {
        build_cache: BuildCache::Remove,
        ..CleanupSettings::default()
    }
}

impl World {
    fn owning_lifecycle(&self) -> Lifecycle<'_> {
        self.lifecycle_with(LifecycleSettings {
            settle: Duration::from_millis(50),
            interrupt_grace: Duration::ZERO,
            cleanup: owning(),
            ..LifecycleSettings::default()
        })
    }

    fn cleanup_owning(&self) -> Cleanup<'_> {
        Cleanup::new(
            self.engine.as_ref(),
            &self.state,
            self.build_root(),
            owning(),
        )
    }

    /// Every image id on the engine, build steps included.
    async fn tree(&self) -> Vec<String> {
        let mut ids: Vec<String> = (self.engine.list_image_tree().await.unwrap())
            .into_iter()
            .map(|i| i.id)
            .collect();
        ids.sort();
        ids
    }

    fn two_steps(&self, name: &str) -> AgentName {
        self.agent(
            name,
            AgentSpec {
                image: BASE.into(),
                setup: vec!["echo one".into(), "echo two".into()],
                command: Some("sleep 600".into()),
                ..AgentSpec::default()
            },
        )
    }

    /// An agent with two setup steps, started and stopped, the build cache
    /// owned: its image and steps are left for a cleanup.
    async fn stopped_with_steps(&self, name: &str) -> AgentName {
        let agent = self.two_steps(name);
        self.start_owning(&agent).await.unwrap();
        self.owning_lifecycle().stop(&agent).await.unwrap();
        agent
    }

    async fn start_owning(&self, name: &AgentName) -> Result<Started, StartError> {
        (self.owning_lifecycle())
            .start(name, &|_| {}, std::future::pending())
            .await
    }
}

#[tokio::test]
async fn start_stop_cleanup_leaves_the_engine_as_found() {
    let w = World::new();
    let before = w.tree().await;
    let web = w.two_steps("web");
    w.start_owning(&web).await.unwrap();
    assert_eq!(
        w.tree().await.len(),
        before.len() + 3,
        "two steps and the image"
    );
    // The two steps, and the last (labels) that is the image itself.
    assert_eq!(w.state.build_steps().unwrap().len(), 3);
    w.owning_lifecycle().stop(&web).await.unwrap();
    let cleanup = w.cleanup_owning();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.build_steps.len(), 2, "{plan:#?}");
    // Children first: the second step is built on the first.
    assert_eq!(plan.build_steps[1].image_id, plan.build_steps[0].parent);
    let report = cleanup.apply(&plan).await;
    assert_eq!(report.remaining_owned(), 0, "{report:#?}");
    assert_eq!(w.tree().await, before);
    assert!(
        w.state.build_steps().unwrap().is_empty(),
        "records forgotten"
    );
}

#[tokio::test]
async fn by_default_the_steps_stay_for_the_engines_prune() {
    let w = World::new();
    let before = w.tree().await;
    let web = w.two_steps("web");
    w.start(&web).await.unwrap();
    w.lifecycle().stop(&web).await.unwrap();
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert!(plan.build_steps.is_empty());
    cleanup.apply(&plan).await;
    assert_eq!(w.tree().await.len(), before.len() + 2, "the steps stay");
    // Recorded all the same: `cleanup --build-cache` takes them later.
    let plan = w.cleanup_owning().plan(Scope::All).await.unwrap();
    assert_eq!(plan.build_steps.len(), 2);
    w.cleanup_owning().apply(&plan).await;
    assert_eq!(w.tree().await, before);
}

#[tokio::test]
async fn a_failed_build_takes_the_steps_it_made() {
    let w = World::new();
    let before = w.tree().await;
    let web = w.agent(
        "web",
        AgentSpec {
            image: BASE.into(),
            setup: vec!["echo one".into(), "false".into()],
            command: Some("sleep 600".into()),
            ..AgentSpec::default()
        },
    );
    let err = w.start_owning(&web).await.unwrap_err();
    w.assert_nothing_left(&web, &err).await;
    assert_eq!(w.tree().await, before);
}

#[tokio::test]
async fn remove_takes_the_steps_of_every_start() {
    let w = World::new();
    let before = w.tree().await;
    let web = w.stopped_with_steps("web").await;
    w.start_owning(&web).await.unwrap();
    w.owning_lifecycle().remove(&web, true).await.unwrap();
    assert_eq!(w.tree().await, before);
}

#[tokio::test]
async fn a_step_another_image_is_built_on_stays_with_its_parents() {
    let w = World::new();
    w.stopped_with_steps("web").await;
    let steps = w.state.build_steps().unwrap();
    let first = w.engine.inspect_image(&steps[0].made.image).await.unwrap();
    // Somebody's build took the first step from the cache.
    let theirs = w.engine.seed_step(Some(first.id.clone()), Labels::new());
    w.engine.tag_image(&theirs, "mine:1").await.unwrap();
    let cleanup = w.cleanup_owning();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.build_steps.len(), 1, "only the second step: {plan:#?}");
    assert!(plan
        .kept
        .iter()
        .any(|k| k.reason == "an image that stays is built on it"));
    cleanup.apply(&plan).await;
    assert!(w.engine.inspect_image("mine:1").await.is_ok());
    assert!(w.engine.inspect_image(&first.id).await.is_ok());
    // Its record stays: once theirs is gone, a later cleanup takes it.
    w.engine.remove_image("mine:1").await.unwrap();
    let plan = w.cleanup_owning().plan(Scope::All).await.unwrap();
    assert_eq!(plan.build_steps.len(), 1);
    assert_eq!(plan.build_steps[0].image_id, first.id);
}

/// A record whose image is not built on the parent it names — a line of a
/// step's own output that looked like the builder's — removes nothing.
#[tokio::test]
async fn a_record_the_engine_contradicts_removes_nothing() {
    let w = World::new();
    let web = w.good("web");
    w.start_owning(&web).await.unwrap();
    let start = w.state.agent(&web).unwrap().current_start.unwrap();
    let theirs = w.engine.seed_step(None, Labels::new());
    let hex = theirs.trim_start_matches("sha256:");
    let made = MadeStep {
        image: hex[..12].to_string(),
        parent: "0123456789ab".into(),
    };
    w.state.record_build_step(&start, &made).unwrap();
    w.owning_lifecycle().stop(&web).await.unwrap();
    let cleanup = w.cleanup_owning();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert!(plan.build_steps.is_empty(), "{plan:#?}");
    cleanup.apply(&plan).await;
    assert!(w.engine.inspect_image(&theirs).await.is_ok());
    assert!(
        w.state.build_steps().unwrap().is_empty(),
        "the record is forgotten"
    );
}

/// Another start may be building on a step from the cache: nothing of the
/// build cache goes while one is in progress.
#[tokio::test]
async fn no_step_goes_while_another_start_is_in_progress() {
    let w = World::on_disk();
    let web = w.stopped_with_steps("web").await;
    let other = w.good("other");
    let start = StartId::random();
    let dir = w.build_root().dir_path(&other, &start);
    w.state.begin_start(&other, &start, &dir).unwrap();
    let cleanup = w.cleanup_owning();
    let plan = cleanup.plan(Scope::Agent(web.clone())).await.unwrap();
    assert!(plan.build_steps.is_empty());
    assert_eq!(
        (plan.kept.iter())
            .filter(|k| k.reason.contains("'other' is in progress"))
            .count(),
        2
    );
}

/// The plan saw no start; one begins before the apply: the steps stay.
#[tokio::test]
async fn a_start_that_begins_after_the_plan_keeps_the_steps() {
    let w = World::on_disk();
    let web = w.stopped_with_steps("web").await;
    let cleanup = w.cleanup_owning();
    let plan = cleanup.plan(Scope::Agent(web.clone())).await.unwrap();
    assert_eq!(plan.build_steps.len(), 2);
    let other = w.good("other");
    let start = StartId::random();
    let dir = w.build_root().dir_path(&other, &start);
    w.state.begin_start(&other, &start, &dir).unwrap();
    let report = cleanup.apply(&plan).await;
    for step in &plan.build_steps {
        assert!(w.engine.inspect_image(&step.image_id).await.is_ok());
    }
    let skipped = (report.steps.iter().flat_map(|s| &s.items))
        .filter(|i| i.target.starts_with("build step"))
        .filter(|i| matches!(i.outcome, crate::pipeline::Outcome::Skipped { .. }))
        .count();
    assert_eq!(skipped, 2);
}

/// A user tags a step while its removal is on its way to the engine: the
/// removal goes through anvyl's handle tag, so the user's tag keeps it.
#[tokio::test]
async fn a_step_tagged_during_its_removal_keeps_the_tag() {
    let w = World::new();
    let web = w.stopped_with_steps("web").await;
    // The first step, built on the base: the last of the chain to go.
    let first = w.state.build_steps().unwrap()[0].made.image.clone();
    let step = w.engine.inspect_image(&first).await.unwrap().id;
    let cleanup = w.cleanup_owning();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.build_steps.len(), 2, "{plan:#?}");
    let gate = crate::memory::Gate::new();
    let handle = format!("{}:step-{first}", web.resource_name());
    w.engine.inject(
        Op::RemoveImage,
        Some(&handle),
        Fault::Gate(gate.clone()),
        Some(1),
    );
    let apply = cleanup.apply(&plan);
    let user = async {
        gate.reached().await;
        w.engine.tag_image(&step, "keep:mine").await.unwrap();
        gate.open();
    };
    let (report, ()) = tokio::join!(apply, user);
    let kept = w.engine.inspect_image("keep:mine").await.unwrap();
    assert_eq!(kept.id, step, "{report:#?}");
    assert_eq!(kept.tags.len(), 1, "only the user's tag: {kept:?}");
}

/// On Docker's containerd store the engine deletes an image others are
/// built on: an image built on a step after the plan keeps it all the same.
#[tokio::test]
async fn a_step_built_on_after_the_plan_stays_though_the_engine_would_delete_it() {
    let w = World::new();
    w.engine.delete_parents_too();
    w.stopped_with_steps("web").await;
    let cleanup = w.cleanup_owning();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.build_steps.len(), 2);
    // Somebody's build takes the first step from the cache now.
    let first = w.state.build_steps().unwrap()[0].made.image.clone();
    let first = w.engine.inspect_image(&first).await.unwrap().id;
    let theirs = w.engine.seed_step(Some(first.clone()), Labels::new());
    w.engine.tag_image(&theirs, "mine:2").await.unwrap();
    let report = cleanup.apply(&plan).await;
    assert!(w.engine.inspect_image(&first).await.is_ok(), "{report:#?}");
    assert!(w.engine.inspect_image("mine:2").await.is_ok());
}

/// `--older-than` holds back every item of an agent started within the
/// window and takes an older one's; `--keep-images` keeps tags and steps.
#[tokio::test]
async fn retention_keeps_the_recent_agents_and_the_images() {
    let w = World::new();
    let old = w.stopped_with_steps("old").await;
    w.stopped_with_steps("new").await;
    // `old` was created and last started ten days ago.
    (w.state.conn())
        .execute_batch(
            "UPDATE starts SET started = started - 864000 WHERE agent = 'old';
             UPDATE agents SET created = created - 864000 WHERE name = 'old';",
        )
        .unwrap();
    let days = |n: u64| Some(Duration::from_secs(n * 86_400));
    let retention = |keep_images, older_than| CleanupSettings {
        retention: crate::pipeline::Retention {
            keep_images,
            older_than,
        },
        ..owning()
    };
    let cleanup = |settings| Cleanup::new(w.engine.as_ref(), &w.state, w.build_root(), settings);

    let plan = cleanup(retention(false, days(7)))
        .plan(Scope::All)
        .await
        .unwrap();
    assert!(plan.images.iter().all(|i| i.agent == old), "{plan:#?}");
    assert_eq!(plan.images.len(), 2, "{plan:#?}");
    assert!(plan.build_steps.iter().all(|s| s.agent == old));
    assert_eq!(plan.build_steps.len(), 2, "{plan:#?}");
    let within = |k: &&crate::pipeline::Kept| {
        k.reason.starts_with("'new' started") && k.reason.ends_with("ago, within --older-than 7d")
    };
    assert_eq!(
        plan.kept.iter().filter(within).count(),
        2,
        "its two tags (its steps stay below them): {plan:#?}"
    );

    let plan = cleanup(retention(false, days(11)))
        .plan(Scope::All)
        .await
        .unwrap();
    assert!(
        plan.images.is_empty() && plan.build_steps.is_empty(),
        "{plan:#?}"
    );

    let plan = cleanup(retention(true, None))
        .plan(Scope::All)
        .await
        .unwrap();
    assert!(
        plan.images.is_empty() && plan.build_steps.is_empty(),
        "{plan:#?}"
    );
    let restarts = |k: &&crate::pipeline::Kept| k.reason == "kept for restarts (--keep-images)";
    assert_eq!(
        plan.kept.iter().filter(restarts).count(),
        4,
        "two tags each"
    );
}

/// A user's image already carries the tag a step would be removed through:
/// tagging would move it, so the step stays and the tag stays theirs.
#[tokio::test]
async fn a_handle_that_names_a_users_image_is_never_moved() {
    let w = World::new();
    let web = w.stopped_with_steps("web").await;
    let first = w.state.build_steps().unwrap()[0].made.image.clone();
    let handle = format!("{}:step-{first}", web.resource_name());
    let theirs = w.engine.seed_image(&[handle.as_str()], Labels::new());
    let cleanup = w.cleanup_owning();
    let report = cleanup
        .apply(&cleanup.plan(Scope::All).await.unwrap())
        .await;
    assert_eq!(
        w.engine.inspect_image(&handle).await.unwrap().id,
        theirs,
        "{report:#?}"
    );
    assert!(
        w.engine.inspect_image(&first).await.is_ok(),
        "the step stays"
    );
}

/// A container run from a step (a build being debugged) keeps it, and no
/// handle tag is left on it.
#[tokio::test]
async fn a_step_a_container_uses_stays_without_a_handle() {
    let w = World::new();
    w.stopped_with_steps("web").await;
    let second = w.state.build_steps().unwrap()[1].made.image.clone();
    let step = w.engine.inspect_image(&second).await.unwrap().id;
    let spec = crate::backend::ContainerSpec {
        name: "debugging".into(),
        image: step.clone(),
        ..crate::backend::ContainerSpec::default()
    };
    w.engine.create_container(&spec).await.unwrap();
    let cleanup = w.cleanup_owning();
    let report = cleanup
        .apply(&cleanup.plan(Scope::All).await.unwrap())
        .await;
    let now = w.engine.inspect_image(&step).await.unwrap();
    assert!(now.tags.is_empty(), "{now:?}");
    assert!(
        report.remaining_owned() > 0,
        "reported as in use: {report:#?}"
    );
}

/// The image a start's build led to, untagged by somebody moving a tag of
/// theirs away from it, is no build step: step 2's rules keep it.
#[tokio::test]
async fn an_untagged_image_of_a_start_that_ran_is_no_step() {
    let w = World::new();
    let web = w.two_steps("web");
    let image = w.start_owning(&web).await.unwrap().image_id;
    w.owning_lifecycle().stop(&web).await.unwrap();
    w.engine.tag_image(&image, "snap:1").await.unwrap();
    w.cleanup()
        .apply(&w.cleanup().plan(Scope::All).await.unwrap())
        .await;
    let other = w.engine.seed_image(&[], Labels::new());
    w.engine.tag_image(&other, "snap:1").await.unwrap();
    assert!(w
        .engine
        .inspect_image(&image)
        .await
        .unwrap()
        .tags
        .is_empty());
    let cleanup = w.cleanup_owning();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert!(
        plan.build_steps.iter().all(|s| s.image_id != image),
        "{plan:#?}"
    );
    cleanup.apply(&plan).await;
    assert!(w.engine.inspect_image(&image).await.is_ok());
}
