//! `start`: check every precondition, record the start, resolve a host,
//! build the agent's image in a temporary build directory, create and start
//! its container, wait the settle time, then register it with the hosts
//! registry; on any failure or interruption, the cleanup pipeline for
//! exactly this start. The build directory is removed on every path.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::observe::NotHealed;
use super::{Lifecycle, StartCause, StartError};
use crate::backend::{
    Backend, BuildProgress, BuildSpec, ContainerSpec, ContainerState, DynBackend, Labels,
};
use crate::build_root::{BuildRoot, Removal};
use crate::ids::StartId;
use crate::name::AgentName;
use crate::no_engine::NoEngine;
use crate::ownership::Ownership;
use crate::pipeline::{Cleanup, Plan, PlannedDir, PlannedReset, Report, Scope};
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
        // A dead agent — its start crashed, its container died or vanished —
        // is cleaned up first, as `agent cleanup` would, and then started.
        let agent = self.state.agent(name)?;
        let agent = match self.heal(&agent).await {
            Ok(Some(_)) => self.state.agent(name)?,
            Ok(None) => agent,
            Err(NotHealed::Unobserved(source)) => {
                return Err(StartError::Unobserved {
                    agent: name.clone(),
                    cause: Box::new(source),
                })
            }
            Err(NotHealed::Unhealed(finding, source)) => {
                return Err(StartError::Unhealed {
                    agent: name.clone(),
                    finding,
                    cause: Box::new(source),
                })
            }
        };
        // Refused as a running agent before a missing key is complained of;
        // `begin_start` checks the status again, atomically.
        if !matches!(agent.status, AgentStatus::Stopped | AgentStatus::Failed) {
            return Err(StartError::Refused(crate::state::StateError::WrongStatus {
                agent: name.clone(),
                actual: agent.status.as_str(),
                expected: "stopped or failed",
            }));
        }
        // A spec recorded by an older anvyl may not pass today's checks.
        super::validate_spec(&agent.spec).map_err(|e| StartError::Precondition(e.to_string()))?;
        let env = container_env(&agent).map_err(StartError::Precondition)?;
        let start = StartId::random();
        // Held until this function returns: while it is, every other
        // process sees this start as in progress, whatever its pid looks
        // like from there.
        let _claim = self.state.hold_start(&start)?;
        // One transaction moves the agent to `starting` and records the
        // start, with the build directory it will use: a second concurrent
        // start finds `starting` and is refused, and no cleanup ever sees
        // this start half-recorded.
        // The spec as the transaction that moved the agent read it: an
        // `agent update` that came after the read above is what runs (it
        // was checked as it was written), and none can come after.
        let spec = self
            .state
            .begin_start(name, &start, &self.build_root.dir_path(name, &start))?;
        let agent = AgentRecord { spec, ..agent };
        tracing::debug!("start {start} of agent '{name}' recorded");

        let mut engine: Option<DynBackend> = None;
        let mut build_dir: Option<PathBuf> = None;
        let outcome = {
            let steps = self.run_steps(&agent, env, &start, &mut engine, &mut build_dir, progress);
            tokio::select! {
                result = steps => result.map_err(Some),
                () = cancel => Err(None),
            }
        };
        match outcome {
            Ok(started) => {
                if build_dir.is_some() {
                    self.remove_build_dir(name, &start);
                }
                self.end_start(&start, crate::state::SUCCEEDED);
                Ok(started)
            }
            Err(cause) => {
                tracing::info!("Cleaning up failed startup for agent '{name}'");
                let mut report = self
                    .clean_failed_start(name, &start, engine.as_deref(), build_dir.is_some())
                    .await;
                if cause.is_none() && build_dir.is_some() {
                    if let Some(engine) = engine.as_deref() {
                        self.clean_after_the_engine(&start, engine, &mut report)
                            .await;
                    }
                }
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
        env: Vec<String>,
        start: &StartId,
        engine: &mut Option<DynBackend>,
        build_dir: &mut Option<PathBuf>,
        progress: BuildProgress<'_>,
    ) -> Result<Started, StartCause> {
        let name = &agent.name;
        let spec = &agent.spec;

        // 3. The host, and its engine.
        let host = self.resolve_host(agent.host.as_deref())?;
        self.state
            .update_start(start, Some(&host.name), None)
            .map_err(StartCause::State)?;
        let backend = self
            .connector
            .connect(&host)
            .await
            .map_err(|source| StartCause::Host {
                host: host.name.clone(),
                cause: source,
            })?;
        // Who the engine is, asked before anything is made there: it is
        // recorded with the agent, and an engine that does not answer fails
        // the start while nothing exists yet.
        let identity = crate::identity::EngineIdentity::of(backend.as_ref());
        let identity = identity
            .current()
            .await
            .map_err(|source| StartCause::Host {
                host: host.name.clone(),
                cause: source,
            })?
            .clone();
        // The start's own record says where it went, whatever the agent's
        // registration says of an earlier run.
        self.state
            .record_start_engine(start, &identity)
            .map_err(StartCause::State)?;
        *engine = Some(backend.clone());
        // The base, as the engine's CLI would get it, with the user's
        // credentials for its registry — read now, at each start.
        let credentials = self.base_image(backend.as_ref(), spec).await?;
        self.phase(super::Phase::Building);
        // 4. The build directory of this start, the Dockerfile, the image —
        // tagged for this start, then `:latest` moved to it.
        let dockerfile = super::render_dockerfile(name.as_str(), spec);
        *build_dir = Some(self.build_root.dir_path(name, start));
        let dir = self
            .build_root
            .make_dir(name, start, &[("Dockerfile", dockerfile.as_bytes())])
            .map_err(StartCause::BuildDir)?;
        let labels =
            Ownership::new(self.state.instance_id().clone()).stamp(&Labels::new(), name, start);
        let network = spec
            .network
            .clone()
            .or_else(|| self.settings.network.clone());
        let build = BuildSpec {
            context_dir: dir,
            tag: name.start_tag(start),
            labels: labels.clone(),
            network: network.clone(),
            credentials,
        };
        // The build's output is also kept, bounded: when a step fails, its
        // own last lines say why better than the engine's one-line error.
        let output = std::sync::Mutex::new(Vec::<u8>::new());
        // The step images the build makes, recorded as it names them: a
        // cleanup with an owned build cache takes those and only those
        // (see `steps`), also of starts made before it was asked to.
        // Buildah's output (Podman) names no step it made, but a step's own
        // output could imitate Docker's: it is not read at all.
        let steps = (backend.kind() != Some(crate::backend::BackendKind::Podman))
            .then(|| std::sync::Mutex::new(super::StepRecorder::default()));
        let recording = |line: &str| {
            progress(line);
            let made = (steps.as_ref()).and_then(|s| s.lock().ok()?.read(line));
            if let Some(made) = made {
                if let Err(e) = self.state.record_build_step(start, &made) {
                    tracing::warn!(
                        "cannot record build step {} of start {start}: {e}; `{}` removes it",
                        made.image,
                        backend.prune_hint().unwrap_or("the engine's prune")
                    );
                }
            }
            if let Ok(mut output) = output.lock() {
                output.extend_from_slice(line.as_bytes());
                if !line.ends_with('\n') {
                    output.push(b'\n');
                }
                if output.len() > 64 * 1024 {
                    let cut = output.len() - 16 * 1024;
                    output.drain(..cut);
                }
            }
        };
        let image_id = match backend.build_image(&build, &recording).await {
            Ok(built) => built.image_id,
            Err(source) => {
                let last_output = output
                    .lock()
                    .map(|o| super::last_lines(&o))
                    .unwrap_or_default();
                return Err(StartCause::Build {
                    cause: source,
                    last_output,
                });
            }
        };
        backend
            .tag_image(&name.start_tag(start), &name.image_tag())
            .await
            .map_err(|source| StartCause::Build {
                cause: source,
                last_output: Vec::new(),
            })?;

        // 5. The container.
        self.phase(super::Phase::Creating);
        // The container also carries the engine's marker id, from which a
        // pruned marker is restored (see `crate::identity`).
        let mut labels = labels;
        if let Some(marker) = identity.marker() {
            labels.insert(crate::identity::LABEL_ENGINE.into(), marker.into());
        }
        let container = ContainerSpec {
            name: name.resource_name(),
            // This start's own tag: `:latest` may move to a newer build.
            image: name.start_tag(start),
            command: None,
            env,
            labels,
            network,
            resources: spec.resources.clone(),
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
        self.phase(super::Phase::Settling);
        self.settle(backend.as_ref(), &container_id).await?;
        self.state
            .register(name, &host.name, &container_id, start, &identity)
            .map_err(StartCause::Registration)?;
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
            let container = backend
                .inspect_container(id)
                .await
                .map_err(StartCause::Settle)?;
            // A command its engine already had to start again (Docker says
            // `restarting`, and `running` in between) did not keep running.
            let restarted = container.will_restart() || container.restarts.count > 0;
            if container.state != ContainerState::Running || restarted {
                let after_ms = began.elapsed().as_millis() as u64;
                return Err(StartCause::Exited {
                    after_ms,
                    exit_code: container.exit_code,
                    last_output: last_output(backend, id).await,
                });
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
        made_dir: bool,
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
                let dir = BuildRoot::dir_name(name, start);
                Plan {
                    scope: Scope::Start(start.clone()),
                    containers: Vec::new(),
                    images: Vec::new(),
                    build_steps: Vec::new(),
                    forget_steps: Vec::new(),
                    build_dirs: made_dir
                        .then(|| PlannedDir {
                            path: self.build_root.dir_path(name, start),
                            name: dir,
                            agent: name.clone(),
                            start: start.clone(),
                        })
                        .into_iter()
                        .collect(),
                    resets: vec![PlannedReset {
                        agent: name.clone(),
                        from: AgentStatus::Starting,
                        start: Some(start.clone()),
                        stale: false,
                    }],
                    kept: Vec::new(),
                    dangling_images: 0,
                    build_root_error: None,
                    other_instances: Vec::new(),
                }
            }
        };
        cleanup.apply(&plan).await
    }

    /// An interrupted build may go on inside the engine after anvyl stopped
    /// listening (Docker's builder commits the step in progress): after the
    /// grace time, what the start's label finds now is removed too.
    async fn clean_after_the_engine(
        &self,
        start: &StartId,
        engine: &dyn Backend,
        report: &mut Report,
    ) {
        if self.settings.interrupt_grace.is_zero() {
            return;
        }
        tracing::info!(
            "Waiting {:.0}s for the engine to settle the interrupted build",
            self.settings.interrupt_grace.as_secs_f64()
        );
        tokio::time::sleep(self.settings.interrupt_grace).await;
        let cleanup = Cleanup::new(
            engine,
            self.state,
            self.build_root.clone(),
            self.settings.cleanup.clone(),
        );
        match cleanup.plan(Scope::Start(start.clone())).await {
            Ok(plan) if !plan.containers.is_empty() || !plan.images.is_empty() => {
                let late = cleanup.apply(&plan).await;
                for (mine, theirs) in report.steps.iter_mut().zip(late.steps) {
                    mine.items.extend(theirs.items);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot list what start {start} left: {e}"),
        }
    }

    /// The build directory of a start that succeeded: it served its purpose.
    fn remove_build_dir(&self, name: &AgentName, start: &StartId) {
        match self.build_root.remove(&BuildRoot::dir_name(name, start)) {
            Ok(Removal::HoldsAMount(mount)) => tracing::warn!(
                "Kept the build directory of start {start}: {} is a mount point",
                mount.display()
            ),
            Ok(_) => tracing::debug!("Removed the build directory of start {start}"),
            Err(e) => tracing::warn!("cannot remove the build directory of start {start}: {e}"),
        }
    }
}

/// The container's environment, checked before anything is created: the
/// provider key is read now and passed only as container environment —
/// never written into an image layer or the state store.
fn container_env(agent: &AgentRecord) -> Result<Vec<String>, String> {
    let spec = &agent.spec;
    let mut env = spec.env.clone();
    if let Some(var) = &spec.api_key_env {
        let key = std::env::var(var).map_err(|_| {
            format!(
                "environment variable {var} (the provider API key of agent '{}') is not set",
                agent.name
            )
        })?;
        env.push(format!("{var}={key}"));
    }
    env.push(format!("ANVYL_AGENT={}", agent.name));
    if let Some(provider) = &spec.provider {
        env.push(format!("ANVYL_PROVIDER={provider}"));
    }
    if let Some(model) = &spec.model {
        env.push(format!("ANVYL_MODEL={model}"));
    }
    Ok(env)
}

/// The last lines an exited container printed, for the error that says it
/// exited. Reading them is an extra: when it fails, the error goes without.
async fn last_output(backend: &dyn Backend, id: &str) -> Vec<String> {
    let output = std::sync::Mutex::new(Vec::<u8>::new());
    let sink = |_: crate::backend::LogStream, bytes: &[u8]| {
        if let Ok(mut output) = output.lock() {
            output.extend_from_slice(bytes);
        }
    };
    if let Err(e) = backend
        .logs(id, false, Some(super::LAST_LINES), &sink)
        .await
    {
        tracing::warn!("cannot read the last output of the agent's command: {e}");
    }
    let output = output.into_inner().unwrap_or_default();
    super::last_lines(&output)
}
