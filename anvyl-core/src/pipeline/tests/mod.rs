//! Unit tests of the rules that protect users, on the in-memory engine:
//! the world they run in and its helpers here, the tests by theme below.

mod adopt;
mod apply;
mod engines;
mod images;
mod rules;

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

/// The identity `backend`'s engine is recorded with.
async fn identity_of(backend: &dyn crate::Backend) -> crate::identity::RecordedEngine {
    let identity = crate::identity::EngineIdentity::of(backend);
    identity.current().await.unwrap().clone()
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
