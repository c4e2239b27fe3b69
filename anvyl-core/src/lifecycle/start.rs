//! `start`: the steps of DESIGN.md in order, and on any failure or
//! interruption the cleanup pipeline for exactly this start. The build
//! directory is removed on every path.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Lifecycle, StartCause, StartError};
use crate::backend::{
    Backend, BuildProgress, BuildSpec, ContainerSpec, ContainerState, DynBackend, Labels,
};
use crate::ids::StartId;
use crate::name::AgentName;
use crate::no_engine::NoEngine;
use crate::ownership::Ownership;
use crate::pipeline::{build_dir_prefix, Cleanup, Plan, PlannedDir, PlannedReset, Report, Scope};
use crate::state::{AgentRecord, AgentStatus};

/// A running, registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    /// The agent.
    pub agent: AgentName,
    /// The start that made it.
    pub start: StartId,
    /// The host it runs on.
    pub host: String,
    /// Its container.
    pub container_id: String,
    /// Its image.
    pub image_id: String,
}

impl Lifecycle<'_> {
    /// Starts `name`. `cancel` resolving (Ctrl-C, SIGTERM) interrupts the
    /// start, which is then cleaned up like a failure.
    pub async fn start(
        &self,
        name: &AgentName,
        progress: BuildProgress<'_>,
        cancel: impl Future<Output = ()>,
    ) -> Result<Started, StartError> {
        let agent = self.state.agent(name)?;
        let start = StartId::random();
        // One transaction: a second concurrent start finds `starting` and is refused.
        self.state.transition(
            name,
            &[AgentStatus::Stopped, AgentStatus::Failed],
            AgentStatus::Starting,
            None,
            Some(&start),
        )?;
        if let Err(e) = self
            .state
            .record_start(&start, name, None, None, std::process::id())
        {
            if let Err(reset) = self.state.reset_to_stopped(name) {
                tracing::warn!("cannot reset agent '{name}' to stopped: {reset}");
            }
            return Err(e.into());
        }
        tracing::debug!("start {start} of agent '{name}' recorded");

        let mut engine: Option<DynBackend> = None;
        let mut build_dir: Option<PathBuf> = None;
        let outcome = {
            let steps = self.run_steps(&agent, &start, &mut engine, &mut build_dir, progress);
            tokio::select! {
                result = steps => result.map_err(Some),
                () = cancel => Err(None),
            }
        };
        match outcome {
            Ok(started) => {
                if let Some(dir) = &build_dir {
                    remove_build_dir(dir);
                }
                self.end_start(&start, "running");
                Ok(started)
            }
            Err(cause) => {
                tracing::info!("Cleaning up failed startup for agent '{name}'");
                let report = self
                    .clean_failed_start(name, &start, engine.as_deref(), build_dir.as_deref())
                    .await;
                let outcome = if cause.is_some() {
                    "failed"
                } else {
                    "interrupted"
                };
                self.end_start(&start, outcome);
                Err(match cause {
                    Some(cause) => StartError::Failed {
                        agent: name.clone(),
                        start,
                        cause,
                        report,
                    },
                    None => StartError::Interrupted {
                        agent: name.clone(),
                        start,
                        report,
                    },
                })
            }
        }
    }

    /// Records how a start ended. Failing to is not the start's failure:
    /// the start then merely looks crashed, and cleanup treats it as such.
    fn end_start(&self, start: &StartId, outcome: &str) {
        if let Err(e) = self.state.end_start(start, outcome) {
            tracing::warn!("cannot record the end of start {start}: {e}");
        }
    }

    /// Steps 3 to 6. What they create is recorded (engine, build directory)
    /// as it appears, so a failure at any point can be undone.
    async fn run_steps(
        &self,
        agent: &AgentRecord,
        start: &StartId,
        engine: &mut Option<DynBackend>,
        build_dir: &mut Option<PathBuf>,
        progress: BuildProgress<'_>,
    ) -> Result<Started, StartCause> {
        let name = &agent.name;
        let spec = &agent.spec;
        let other = |e: &dyn std::fmt::Display| StartCause::Other(e.to_string());

        // 3. The host, and its engine.
        let host = self.resolve_host(agent.host.as_deref())?;
        self.state
            .update_start(start, Some(&host.name), None)
            .map_err(|e| other(&e))?;
        let backend = self
            .connector
            .connect(&host)
            .await
            .map_err(|source| StartCause::Host {
                host: host.name.clone(),
                source,
            })?;
        *engine = Some(backend.clone());
        let mut env = spec.env.clone();
        if let Some(var) = &spec.api_key_env {
            // Read now, passed only as container environment: never written
            // into an image layer or the state store.
            let key = std::env::var(var).map_err(|_| {
                StartCause::Other(format!(
                    "environment variable {var} (the provider API key) is not set"
                ))
            })?;
            env.push(format!("{var}={key}"));
        }
        env.push(format!("ANVYL_AGENT={name}"));
        if let Some(provider) = &spec.provider {
            env.push(format!("ANVYL_PROVIDER={provider}"));
        }
        if let Some(model) = &spec.model {
            env.push(format!("ANVYL_MODEL={model}"));
        }

        // 4. A unique build directory, the Dockerfile, the image.
        std::fs::create_dir_all(&self.build_root).map_err(|e| {
            StartCause::Other(format!(
                "cannot create build root {}: {e}",
                self.build_root.display()
            ))
        })?;
        let dir = tempfile::Builder::new()
            .prefix(&build_dir_prefix(name))
            .tempdir_in(&self.build_root)
            .map_err(|e| StartCause::Other(format!("cannot create build directory: {e}")))?
            .keep();
        *build_dir = Some(dir.clone());
        self.state
            .update_start(start, None, Some(&dir))
            .map_err(|e| other(&e))?;
        std::fs::write(
            dir.join("Dockerfile"),
            super::render_dockerfile(name.as_str(), spec),
        )
        .map_err(|e| StartCause::Other(format!("cannot write Dockerfile: {e}")))?;
        let labels =
            Ownership::new(self.state.instance_id().clone()).stamp(&Labels::new(), name, start);
        let network = spec
            .network
            .clone()
            .or_else(|| self.settings.network.clone());
        let build = BuildSpec {
            context_dir: dir.clone(),
            tag: name.image_tag(),
            labels: labels.clone(),
            network: network.clone(),
        };
        let image_id = backend
            .build_image(&build, progress)
            .await
            .map_err(StartCause::Build)?
            .image_id;

        // 5. The container.
        let container = ContainerSpec {
            name: name.resource_name(),
            image: name.image_tag(),
            command: None,
            env,
            labels,
            network,
        };
        let container_id = backend
            .create_container(&container)
            .await
            .map_err(StartCause::CreateContainer)?;
        backend
            .start_container(&container_id)
            .await
            .map_err(StartCause::StartContainer)?;

        // 6. Registration, once the container has shown it stays up.
        self.settle(backend.as_ref(), &container_id).await?;
        self.state
            .register(name, &host.name, &container_id, start)
            .map_err(|e| StartCause::Registration(e.to_string()))?;
        tracing::info!("Started agent '{name}' on host '{}'", host.name);
        Ok(Started {
            agent: name.clone(),
            start: start.clone(),
            host: host.name,
            container_id,
            image_id,
        })
    }

    /// Waits the settle time, failing as soon as the container is not running.
    async fn settle(&self, backend: &dyn Backend, id: &str) -> Result<(), StartCause> {
        let began = Instant::now();
        loop {
            let state = backend
                .inspect_container(id)
                .await
                .map_err(|e| StartCause::Registration(e.to_string()))?
                .state;
            if state != ContainerState::Running {
                return Err(StartCause::Registration(format!(
                    "the container stopped running {:.1}s after it started (its command must keep running)",
                    began.elapsed().as_secs_f64()
                )));
            }
            if began.elapsed() >= self.settings.settle {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100).min(self.settings.settle)).await;
        }
    }

    /// Runs the pipeline for exactly this start. When the engine cannot even
    /// be listed, the build directory and the status are still handled.
    async fn clean_failed_start(
        &self,
        name: &AgentName,
        start: &StartId,
        engine: Option<&dyn Backend>,
        build_dir: Option<&Path>,
    ) -> Report {
        let backend: &dyn Backend = engine.unwrap_or(&NoEngine);
        let cleanup = Cleanup::new(
            backend,
            self.state,
            self.build_root.clone(),
            self.settings.cleanup.clone(),
        );
        let plan = match cleanup.plan(Scope::Start(start.clone())).await {
            Ok(plan) => plan,
            Err(e) => {
                tracing::warn!(
                    "cannot list what start {start} created ({e}); run `anvyl agent cleanup {name}` once the engine answers"
                );
                Plan {
                    scope: Scope::Start(start.clone()),
                    containers: Vec::new(),
                    images: Vec::new(),
                    build_dirs: build_dir
                        .filter(|d| d.exists())
                        .map(|d| PlannedDir {
                            path: d.to_path_buf(),
                            agent: name.clone(),
                        })
                        .into_iter()
                        .collect(),
                    resets: vec![PlannedReset {
                        agent: name.clone(),
                        from: AgentStatus::Starting,
                        stale: false,
                    }],
                    kept: Vec::new(),
                    dangling_images: 0,
                }
            }
        };
        cleanup.apply(&plan).await
    }
}

fn remove_build_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => tracing::debug!("Removed temporary build directory: {}", dir.display()),
        Err(e) => tracing::warn!("cannot remove build directory {}: {e}", dir.display()),
    }
}
