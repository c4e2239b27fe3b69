//! Unit tests of the rules that protect users, on the in-memory engine.

use std::path::PathBuf;
use std::time::Duration;

use super::OtherInstance;
use super::*;
use crate::backend::{ContainerSpec, ContainerState, ImageTag, Labels};
use crate::build_root::BuildRoot;
use crate::conformance::{self, Fixture};
use crate::ids::InstanceId;
use crate::memory::{Fault, MemoryBackend, Op};
use crate::state::{AgentSpec, Fence};

const BASE: &str = "busybox:latest";

struct World {
    engine: MemoryBackend,
    state: StateStore,
    root: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let engine = MemoryBackend::new();
        engine.seed_image(&[BASE], Labels::new());
        Self {
            engine,
            state: StateStore::open_in_memory().unwrap(),
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn cleanup(&self) -> Cleanup<'_> {
        self.cleanup_with(CleanupSettings {
            conflict_backoff: Duration::from_millis(1),
            ..CleanupSettings::default()
        })
    }

    fn cleanup_with(&self, settings: CleanupSettings) -> Cleanup<'_> {
        Cleanup::new(&self.engine, &self.state, self.build_root(), settings)
    }

    fn build_root(&self) -> BuildRoot {
        BuildRoot::new(self.root.path()).unwrap()
    }

    fn ours(&self) -> Ownership {
        Ownership::new(self.state.instance_id().clone())
    }

    fn agent(&self, name: &str) -> AgentName {
        let name = AgentName::new(name).unwrap();
        self.state
            .create_agent(&name, &AgentSpec::default())
            .unwrap();
        name
    }

    /// A labelled container and image of `agent` from start `start`.
    async fn leftovers(&self, agent: &AgentName, start: &StartId) -> (String, String) {
        let labels = self.ours().stamp(&Labels::new(), agent, start);
        let image = self
            .engine
            .seed_image(&[&agent.image_tag()], labels.clone());
        let container = self
            .container(&agent.resource_name(), &agent.image_tag(), labels)
            .await;
        (container, image)
    }

    async fn container(&self, name: &str, image: &str, labels: Labels) -> String {
        let spec = ContainerSpec {
            name: name.into(),
            image: image.into(),
            labels,
            ..ContainerSpec::default()
        };
        self.engine.create_container(&spec).await.unwrap()
    }

    fn build_dir(&self, name: &str) -> PathBuf {
        let dir = self.build_root().path().join(name);
        std::fs::create_dir_all(dir.join("ctx")).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM x").unwrap();
        dir
    }

    fn build_dir_exists(&self, name: &str) -> bool {
        self.build_root().path().join(name).exists()
    }

    async fn exists(&self, id: &str) -> bool {
        self.engine.inspect_container(id).await.is_ok()
    }
}

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
            "Podman",
        )
        .unwrap();

    let plan = w.cleanup().plan(Scope::All).await.unwrap();
    assert!(plan.resets.is_empty(), "{plan:?}");
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Running);
}

/// Connects `local` and `far` to their in-memory engines; `down` never
/// answers.
struct Fleet3 {
    local: std::sync::Arc<MemoryBackend>,
    far: std::sync::Arc<MemoryBackend>,
}

#[async_trait::async_trait]
impl crate::connector::Connector for Fleet3 {
    async fn connect(
        &self,
        host: &crate::state::HostRecord,
    ) -> Result<crate::backend::DynBackend, crate::backend::BackendError> {
        match host.name.as_str() {
            "local" => Ok(self.local.clone()),
            "far" => Ok(self.far.clone()),
            other => Err(crate::backend::BackendError::Unreachable {
                engine: None,
                endpoint: format!("unix:///{other}.sock"),
                message: "connection refused".into(),
            }),
        }
    }
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

/// The identity `backend`'s engine is recorded with.
async fn identity_of(backend: &dyn crate::Backend) -> String {
    let identity = crate::identity::EngineIdentity::of(backend);
    identity.current().await.unwrap().to_string()
}

/// An untagged image of an interrupted start of `web`, as a build that
/// finished after its start was gone leaves it.
async fn untagged_leftover(w: &World, web: &AgentName) -> String {
    let broke = StartId::random();
    w.state
        .begin_start(web, &broke, std::path::Path::new("/b/web.b"))
        .unwrap();
    w.state.end_start(&broke, "interrupted").unwrap();
    w.state
        .force_status(web, AgentStatus::Stopped, None, None)
        .unwrap();
    w.engine
        .seed_image(&[], w.ours().stamp(&Labels::new(), web, &broke))
}

fn skipped_as_changed(report: &Report) -> Vec<String> {
    (report.items())
        .filter(|(step, _)| *step == Step::Images)
        .filter_map(|(_, i)| match &i.outcome {
            Outcome::Skipped {
                reason: SkipReason::ChangedSinceThePlan(why),
            } => Some(why.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_untagged_image_tagged_while_the_prompt_waits_is_kept() {
    let w = World::new();
    let web = w.agent("web");
    let image = untagged_leftover(&w, &web).await;
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.images.len(), 1, "{plan:?}");

    // The user answers the [y/N] prompt only after tagging the image.
    w.engine.tag_image(&image, "keep:mine").await.unwrap();
    let report = cleanup.apply(&plan).await;

    let kept = w.engine.inspect_image("keep:mine").await.unwrap();
    assert_eq!(kept.id, image);
    assert_eq!(kept.tags, vec![ImageTag::parse("keep:mine")]);
    assert_eq!(
        skipped_as_changed(&report),
        vec!["tagged keep:mine since the plan".to_string()],
        "{report:?}"
    );
}

#[tokio::test]
async fn an_untagged_image_tagged_during_its_removal_keeps_the_tag() {
    let w = World::new();
    let web = w.agent("web");
    let image = untagged_leftover(&w, &web).await;
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    // The tag lands after the re-check, while the removal is on its way to
    // the engine: a removal by id would take it with the image.
    let gate = crate::memory::Gate::new();
    w.engine
        .inject(Op::RemoveImage, None, Fault::Gate(gate.clone()), Some(1));
    let apply = cleanup.apply(&plan);
    let user = async {
        gate.reached().await;
        w.engine.tag_image(&image, "keep:mine").await.unwrap();
        gate.open();
    };
    let (report, ()) = tokio::join!(apply, user);

    let kept = w.engine.inspect_image("keep:mine").await.unwrap();
    assert_eq!(kept.id, image, "{report:?}");
    assert_eq!(kept.tags, vec![ImageTag::parse("keep:mine")]);
    assert_eq!(skipped_as_changed(&report).len(), 1, "{report:?}");

    // Untouched, the same leftover is removed, tag and image.
    let again = untagged_leftover(&w, &web).await;
    let report = cleanup
        .apply(&cleanup.plan(Scope::All).await.unwrap())
        .await;
    assert!(w.engine.inspect_image(&again).await.is_err(), "{report:?}");
    assert_eq!(report.count(|o| *o == Outcome::Removed), 1, "{report:?}");
}

#[tokio::test]
async fn an_untagged_image_waits_for_its_starts_tag_to_be_given_up() {
    // A start whose build was retried left its first image untagged; the
    // second holds the start's tag, and both are planned.
    let w = World::new();
    let web = w.agent("web");
    let first = untagged_leftover(&w, &web).await;
    let start = StartId::from_stored(
        w.engine.inspect_image(&first).await.unwrap().labels[crate::ownership::LABEL_START].clone(),
    );
    let labels = w.ours().stamp(&Labels::new(), &web, &start);
    let second = w.engine.seed_image(&[&web.start_tag(&start)], labels);
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.images.len(), 2, "{plan:?}");
    // The tag's removal is slow to come back.
    let gate = crate::memory::Gate::new();
    w.engine.inject(
        Op::RemoveImage,
        Some(&web.start_tag(&start)),
        Fault::Gate(gate.clone()),
        Some(1),
    );
    let apply = cleanup.apply(&plan);
    let slow = async {
        gate.reached().await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gate.open();
    };
    let (report, ()) = tokio::join!(apply, slow);

    assert!(w.engine.inspect_image(&second).await.is_err(), "{report:?}");
    assert!(w.engine.inspect_image(&first).await.is_err(), "{report:?}");
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
}

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
            .register(&k, crate::state::LOCAL_HOST, &container, &start, "Memory")
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
