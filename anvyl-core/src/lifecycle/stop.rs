//! `stop` and `remove`. Stopping removes the agent's container (its image
//! stays until a cleanup, as a cache); removing also runs the cleanup for
//! the agent and forgets it. A running agent is only removed with force.

use super::{Lifecycle, LifecycleError};
use crate::name::AgentName;
use crate::pipeline::{Cleanup, Report, Scope};
use crate::state::{AgentRecord, AgentStatus};

impl Lifecycle<'_> {
    /// Stops a running agent: its container is stopped (gracefully, within
    /// the stop timeout) and removed, and its status becomes `stopped`.
    pub async fn stop(&self, name: &AgentName) -> Result<(), LifecycleError> {
        let agent = self.state.agent(name)?;
        self.refuse_if_starting(&agent)?;
        if agent.status != AgentStatus::Running {
            return Err(crate::state::StateError::WrongStatus {
                agent: name.clone(),
                actual: agent.status.as_str(),
                expected: "running",
            }
            .into());
        }
        if let Some(id) = &agent.container_id {
            let backend = self.engine_of(&agent).await?;
            for result in [
                backend.stop_container(id, self.settings.stop_timeout).await,
                backend
                    .remove_container(id, self.settings.stop_timeout)
                    .await,
            ] {
                match result {
                    Ok(()) => {}
                    // Already gone: the goal is reached.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            tracing::info!("Removed container by name: {}", name.resource_name());
        }
        self.state.reset_to_stopped(name)?;
        tracing::info!("Stopped agent '{name}'");
        Ok(())
    }

    /// Removes an agent: stops it when `force` allows, removes everything of
    /// it through the cleanup pipeline, then forgets it.
    pub async fn remove(&self, name: &AgentName, force: bool) -> Result<Report, LifecycleError> {
        let agent = self.state.agent(name)?;
        self.refuse_if_starting(&agent)?;
        if agent.status == AgentStatus::Running {
            if !force {
                return Err(LifecycleError::Running(name.clone()));
            }
            self.stop(name).await?;
        }
        let backend = self.engine_of(&agent).await?;
        let cleanup = Cleanup::new(
            backend.as_ref(),
            self.state,
            self.build_root.clone(),
            self.settings.cleanup.clone(),
        );
        let plan = cleanup.plan(Scope::Agent(name.clone())).await?;
        let report = cleanup.apply(&plan).await;
        let remaining = report.remaining_owned();
        if remaining > 0 {
            return Err(LifecycleError::Remaining {
                agent: name.clone(),
                remaining,
            });
        }
        self.state.delete_agent(name)?;
        tracing::info!("Removed agent '{name}'");
        Ok(report)
    }

    fn refuse_if_starting(&self, agent: &AgentRecord) -> Result<(), LifecycleError> {
        if agent.status != AgentStatus::Starting {
            return Ok(());
        }
        let starts = self.state.starts()?;
        let live = starts
            .iter()
            .find(|s| Some(&s.id) == agent.current_start.as_ref() && s.is_live());
        match live {
            Some(s) => Err(LifecycleError::Starting {
                agent: agent.name.clone(),
                pid: s.pid,
            }),
            None => Ok(()),
        }
    }

    /// The engine of the agent's host (the first available when it has none).
    async fn engine_of(
        &self,
        agent: &AgentRecord,
    ) -> Result<crate::backend::DynBackend, LifecycleError> {
        let host = self
            .resolve_host(agent.host.as_deref())
            .or_else(|_| self.resolve_host(None))
            .map_err(|cause| {
                LifecycleError::Backend(crate::backend::BackendError::Local {
                    operation: "resolve host",
                    message: cause.to_string(),
                })
            })?;
        Ok(self.connector.connect(&host).await?)
    }
}
