//! Unit tests of start, stop and remove on the in-memory engine: every
//! failure cause ends with nothing of the start left and the agent stopped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::backend::{Backend, DynBackend, Labels, Query};
use crate::memory::{Fault, MemoryBackend, Op};
use crate::ownership::LABEL_AGENT;
use crate::state::{AgentSpec, AgentStatus, StateStore, LOCAL_HOST};

pub(super) const BASE: &str = "busybox:latest";

struct Memory(Arc<MemoryBackend>);

#[async_trait]
impl Connector for Memory {
    async fn connect(&self, _: &HostRecord) -> Result<DynBackend, BackendError> {
        Ok(self.0.clone())
    }
}

/// An in-memory engine registered as the local host, a state store and a
/// state directory: what every lifecycle test (and the race tests) needs.
pub(super) struct World {
    pub(super) engine: Arc<MemoryBackend>,
    connector: Memory,
    pub(super) state: StateStore,
    root: tempfile::TempDir,
}

impl World {
    pub(super) fn new() -> Self {
        Self::with_state(|_| StateStore::open_in_memory().unwrap())
    }

    /// A world whose state store is on disk, with the start locks that
    /// other processes see.
    pub(super) fn on_disk() -> Self {
        Self::with_state(|root| StateStore::open(root).unwrap())
    }

    fn with_state(open: impl FnOnce(&std::path::Path) -> StateStore) -> Self {
        let engine = Arc::new(MemoryBackend::new());
        engine.seed_image(&[BASE], Labels::new());
        let root = tempfile::tempdir().unwrap();
        let state = open(root.path());
        state.ensure_local_host().unwrap();
        Self {
            connector: Memory(engine.clone()),
            engine,
            state,
            root,
        }
    }

    pub(super) fn build_root(&self) -> crate::build_root::BuildRoot {
        crate::build_root::BuildRoot::new(self.root.path()).unwrap()
    }

    /// The cleanup of this world's engine and state, default settings.
    pub(super) fn cleanup(&self) -> crate::pipeline::Cleanup<'_> {
        crate::pipeline::Cleanup::new(
            self.engine.as_ref(),
            &self.state,
            self.build_root(),
            crate::pipeline::CleanupSettings::default(),
        )
    }

    pub(super) fn lifecycle(&self) -> Lifecycle<'_> {
        self.lifecycle_with(LifecycleSettings {
            settle: Duration::from_millis(50),
            interrupt_grace: Duration::ZERO,
            ..LifecycleSettings::default()
        })
    }

    fn lifecycle_with(&self, settings: LifecycleSettings) -> Lifecycle<'_> {
        Lifecycle::new(&self.state, &self.connector, self.build_root(), settings)
    }

    fn agent(&self, name: &str, spec: AgentSpec) -> AgentName {
        let name = AgentName::new(name).unwrap();
        self.state.create_agent(&name, &spec).unwrap();
        name
    }

    /// An agent that keeps running, built with one setup step.
    fn with_setup(&self, name: &str, step: &str) -> AgentName {
        self.agent(
            name,
            AgentSpec {
                image: BASE.into(),
                setup: vec![step.into()],
                command: Some("sleep 600".into()),
                ..AgentSpec::default()
            },
        )
    }

    pub(super) fn good(&self, name: &str) -> AgentName {
        self.agent(
            name,
            AgentSpec {
                image: BASE.into(),
                command: Some("sleep 600".into()),
                ..AgentSpec::default()
            },
        )
    }

    /// A start killed with -9 after its build: recorded as starting, its
    /// process gone, its image (tagged for the start) and build directory
    /// left.
    pub(super) fn killed_start(&self, name: &AgentName) -> (StartId, String) {
        let start = StartId::random();
        let dir = self.build_root().dir_path(name, &start);
        // pid 0 is no process, and nothing holds its lock.
        self.state.begin_start_as(name, &start, &dir, 0).unwrap();
        let labels = crate::ownership::Ownership::new(self.state.instance_id().clone()).stamp(
            &Labels::new(),
            name,
            &start,
        );
        let image = self.engine.seed_image(&[&name.start_tag(&start)], labels);
        self.build_root().make_dir(name, &start, &[]).unwrap();
        (start, image)
    }

    /// An agent started, whose container then exited.
    pub(super) async fn died(&self, name: &AgentName) -> Started {
        let started = self.start(name).await.unwrap();
        (self.engine).set_state(
            &started.container_id,
            crate::backend::ContainerState::Exited,
        );
        started
    }

    pub(super) async fn start(&self, name: &AgentName) -> Result<Started, StartError> {
        self.lifecycle()
            .start(name, &|_| {}, std::future::pending())
            .await
    }

    /// Containers and images carrying the agent's label or exact name.
    /// Asserts that the container `id` is on the engine and runs.
    pub(super) async fn assert_runs(&self, id: &str) {
        let container = self.engine.inspect_container(id).await;
        let state = container.map(|c| c.state);
        assert!(
            matches!(state, Ok(crate::backend::ContainerState::Running)),
            "{id}: {state:?}"
        );
    }

    pub(super) async fn remains(&self, name: &AgentName) -> usize {
        let mut labels = Labels::new();
        labels.insert(LABEL_AGENT.into(), name.to_string());
        let containers = self
            .engine
            .list_containers(&Query::labelled(labels.clone()))
            .await
            .unwrap();
        let images = self
            .engine
            .list_images(&Query::labelled(labels))
            .await
            .unwrap();
        let named = self
            .engine
            .inspect_container(&name.resource_name())
            .await
            .is_ok() as usize
            + self.engine.inspect_image(&name.image_tag()).await.is_ok() as usize;
        containers.len() + images.len() + named
    }

    fn build_dirs(&self) -> usize {
        std::fs::read_dir(self.root.path().join(crate::build_root::BUILDS))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    async fn assert_nothing_left(&self, name: &AgentName, err: &StartError) {
        assert_eq!(self.remains(name).await, 0, "resources remain after {err}");
        assert_eq!(
            self.build_dirs(),
            0,
            "a build directory remains after {err}"
        );
        assert_eq!(self.state.agent(name).unwrap().status, AgentStatus::Stopped);
        assert_eq!(
            err.report().map(|r| r.remaining_owned()),
            Some(0),
            "{err:?}"
        );
    }
}

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

#[tokio::test]
async fn a_start_reports_its_phases_in_order() {
    let w = World::new();
    let web = w.good("web");
    let seen = std::sync::Mutex::new(Vec::new());
    let sink = |phase: Phase| seen.lock().unwrap().push(phase);
    w.lifecycle()
        .with_phases(&sink)
        .start(&web, &|_| {}, std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [Phase::Building, Phase::Creating, Phase::Settling]
    );
}

#[test]
fn an_error_shows_the_last_lines_of_output_plainly() {
    let mut text: String = (1..=12)
        .map(|i| format!("\x1b[31mline {i}\x1b[0m\r\n"))
        .collect();
    text.push_str("\n   \n");
    let lines = super::last_lines(text.as_bytes());
    assert_eq!(lines.len(), super::LAST_LINES);
    assert_eq!(lines.first().map(String::as_str), Some("line 3"));
    assert_eq!(lines.last().map(String::as_str), Some("line 12"));

    let cause = StartCause::Exited {
        after_ms: 300,
        exit_code: Some(3),
        last_output: vec!["no API key".into()],
    };
    assert_eq!(
        cause.to_string(),
        "the agent's command exited with code 3 0.3s after it started: it must keep running\n  its last output:\n  | no API key"
    );
    let silent = StartCause::Exited {
        after_ms: 300,
        exit_code: None,
        last_output: Vec::new(),
    };
    assert_eq!(
        silent.to_string(),
        "the agent's command exited 0.3s after it started: it must keep running"
    );
}

#[test]
fn an_engine_error_is_not_prefixed_with_its_own_operation_again() {
    let engine = StartCause::StartContainer(BackendError::Engine {
        operation: "start container",
        status: Some(500),
        message: "exec: \"sh\": not found".into(),
    });
    assert_eq!(
        engine.to_string(),
        "start container failed: exec: \"sh\": not found"
    );
    let missing = StartCause::CreateContainer(BackendError::NotFound {
        what: "image anvyl-agent-x:s1".into(),
    });
    assert!(
        missing.to_string().starts_with("cannot create container: "),
        "{missing}"
    );
}

/// A start of `web` on this engine that was killed after it made its
/// container, while the agent's row still names the engine of an earlier
/// run (the configuration pointed `local` elsewhere then).
async fn crashed_after_moving(w: &World, web: &AgentName) -> crate::ids::StartId {
    let start = crate::ids::StartId::random();
    let dir = w.build_root().make_dir(web, &start, &[]).unwrap();
    w.state.begin_start_as(web, &start, &dir, 0).unwrap();
    w.state
        .conn()
        .execute(
            "UPDATE agents SET engine = 'Docker id:0123456789abcdef'",
            [],
        )
        .unwrap();
    let here = crate::identity::EngineIdentity::of(w.engine.as_ref());
    let here = here.current().await.unwrap().to_string();
    w.state.record_start_engine(&start, &here).unwrap();
    let labels =
        crate::Ownership::new(w.state.instance_id().clone()).stamp(&Labels::new(), web, &start);
    w.engine
        .seed_image(&[&web.start_tag(&start)], labels.clone());
    let spec = crate::backend::ContainerSpec {
        name: web.resource_name(),
        image: web.start_tag(&start),
        labels,
        ..Default::default()
    };
    w.engine.create_container(&spec).await.unwrap();
    start
}

#[tokio::test]
async fn a_crashed_start_on_a_new_engine_is_cleaned_and_reset_there() {
    let w = World::new();
    let web = w.good("web");
    let start = crashed_after_moving(&w, &web).await;
    assert_eq!(
        w.state.starts().unwrap()[0].engine.as_deref(),
        Some(
            crate::identity::EngineIdentity::of(w.engine.as_ref())
                .current()
                .await
                .unwrap()
        )
    );

    let cleanup = w.cleanup();
    let report = cleanup
        .apply(&cleanup.plan(crate::pipeline::Scope::All).await.unwrap())
        .await;
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
    assert_eq!(w.remains(&web).await, 0, "{report:?}");
    assert_eq!(w.build_dirs(), 0);
    let agent = w.state.agent(&web).unwrap();
    assert_eq!(
        (agent.status, agent.current_start),
        (AgentStatus::Stopped, Some(start))
    );
    w.start(&web).await.expect("starts again");
}

#[tokio::test]
async fn a_crashed_start_on_a_new_engine_is_removed_by_force() {
    let w = World::new();
    let web = w.good("web");
    crashed_after_moving(&w, &web).await;
    w.lifecycle().remove(&web, true).await.expect("removed");
    assert_eq!(w.remains(&web).await, 0);
    assert!(w.state.agents().unwrap().is_empty());
}

#[tokio::test]
async fn a_running_agent_is_still_judged_here_after_the_engines_marker_was_pruned() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    // `docker volume prune` on Docker 20.10 takes the unused marker volume.
    w.engine.remove_volume(crate::identity::MARKER_VOLUME);
    w.lifecycle()
        .stop(&web)
        .await
        .expect("stopped here, not 'another engine'");
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_err());
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Stopped);
}

#[tokio::test]
async fn an_agent_recorded_before_engines_were_marked_is_judged_where_its_container_is() {
    let w = World::new();
    let web = w.good("web");
    let started = w.start(&web).await.unwrap();
    let cleanup = w.cleanup();
    // Recorded by an older anvyl: the daemon ID every dockerd of a machine
    // shares, or nothing at all. Its container is here: judged here.
    for legacy in ["'Docker 3F2A:SAME'", "NULL"] {
        w.state
            .conn()
            .execute(&format!("UPDATE agents SET engine = {legacy}"), [])
            .unwrap();
        let plan = cleanup.plan(crate::pipeline::Scope::All).await.unwrap();
        assert!(
            plan.resets.is_empty() && plan.containers.is_empty(),
            "{plan:?}"
        );
    }
    // Its container is not on this engine: not judged here.
    w.state
        .conn()
        .execute("UPDATE agents SET container_id = 'elsewhere'", [])
        .unwrap();
    let err = w.lifecycle().stop(&web).await.unwrap_err();
    assert!(matches!(err, LifecycleError::OtherEngine { .. }), "{err:?}");
    let plan = cleanup.plan(crate::pipeline::Scope::All).await.unwrap();
    assert!(plan.resets.is_empty(), "{plan:?}");
    assert_eq!(w.state.agent(&web).unwrap().status, AgentStatus::Running);
    // Forced, it is forgotten, and nothing is removed here.
    assert!(matches!(
        w.lifecycle().remove(&web, true).await.unwrap(),
        Removed::Forgotten { .. }
    ));
    assert!(w.state.agents().unwrap().is_empty());
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_ok());
}
