//! Unit tests of start, stop and remove on the in-memory engine: every
//! failure cause ends with nothing of the start left and the agent stopped.

mod build_cache;
mod engines;
mod messages;
mod pull;
mod restarting;
mod start;
mod stop;

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
    let here = here.current().await.unwrap().clone();
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
