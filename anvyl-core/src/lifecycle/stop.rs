//! `stop` and `remove`. Stopping removes the agent's container (its image
//! stays until a cleanup, as a cache); removing also runs the cleanup for
//! the agent and forgets it. A running agent is only removed with force.

use super::observe::NotHealed;
use super::{Lifecycle, LifecycleError, Observed};
use crate::backend::{Backend, BackendError};
use crate::name::AgentName;
use crate::pipeline::{Cleanup, Report, Scope};
use crate::state::{AgentRecord, AgentStatus, Fence, Fenced, HostRecord, StateError};

/// What `stop` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The agent ran and is stopped now.
    Now,
    /// The agent was recorded as running or starting, but was not (what
    /// was found: "its container had exited with code 137"); what it left
    /// is removed and it is stopped now.
    Dead(String),
    /// It was stopped or failed: nothing was done. (A start that crashed is
    /// cleaned up and reported as `Dead`.)
    NotRunning(AgentStatus),
}

/// What `remove` did.
#[derive(Debug)]
pub enum Removed {
    /// Everything of the agent was removed, then the agent forgotten.
    Cleaned(Report),
    /// Forced while its host did not answer: the agent is forgotten, and
    /// its container and images may remain on `host`.
    Forgotten {
        /// Where its resources may remain.
        host: String,
        /// Why the host could not be asked.
        cause: BackendError,
    },
}

impl Lifecycle<'_> {
    /// Stops a running agent: its container is stopped (gracefully, within
    /// the stop timeout) and removed, and its status becomes `stopped` —
    /// only if it still runs the start this command found. Like `docker
    /// stop`, stopping an agent that does not run succeeds and says so.
    pub async fn stop(&self, name: &AgentName) -> Result<Stopped, LifecycleError> {
        self.stop_as_read(self.state.agent(name)?).await
    }

    /// Stops the agent as `agent` records it: the container it names, and
    /// the status reset only while it is still that start's. A caller that
    /// judged the agent by an earlier read (remove, after observing it
    /// dead) acts on what it judged, never on a start begun since.
    async fn stop_as_read(&self, agent: AgentRecord) -> Result<Stopped, LifecycleError> {
        let name = &agent.name;
        self.refuse_if_starting(&agent)?;
        match agent.status {
            // Not live (refused above): a start that crashed.
            AgentStatus::Starting => {
                return match self.heal(&agent).await {
                    Ok(Some(finding)) => Ok(Stopped::Dead(finding)),
                    // Its start ended since it was read: judge it anew.
                    Ok(None) => Err(self.changed_since(&agent)?),
                    Err(NotHealed::Unobserved(e) | NotHealed::Unhealed(_, e)) => Err(e),
                };
            }
            AgentStatus::Stopped | AgentStatus::Failed => {
                return Ok(Stopped::NotRunning(agent.status))
            }
            AgentStatus::Running => {}
        }
        // While it removes the container, the start's lock says so: a
        // watcher that finds the container gone before the record is reset
        // knows it is a stop, not a death. A lock that another stop holds,
        // or that cannot be made, costs only that hint: the stop goes on.
        let _stopping = (agent.current_start.as_ref())
            .and_then(|start| self.state.hold_start(start).ok().flatten());
        let mut found = None;
        if let Some(id) = &agent.container_id {
            let (_, backend) = self.engine_of(&agent).await?;
            // What it was, to say so: a container that died is removed
            // all the same.
            found = super::observe::container_of(backend.as_ref(), &agent)
                .await
                .finding();
            let timeout = self.settings.stop_timeout;
            gone_or(backend.stop_container(id, timeout).await)?;
            let removed = backend.remove_container(id, timeout).await;
            // A concurrent stop or cleanup may be removing it too ("removal
            // already in progress"): what counts is that it is gone.
            let removed = match removed {
                Err(e) if e.is_conflict() => {
                    wait_until_gone(backend.as_ref(), id).await.map_err(|_| e)
                }
                other => other,
            };
            gone_or(removed)?;
            tracing::info!("Removed container by name: {}", name.resource_name());
        }
        // A cleanup running meanwhile may have found the container gone —
        // this stop removed it — and marked the same start failed, or reset
        // it already: the goal is reached all the same. A new start would
        // carry a new start id, and is never touched.
        let fence = Fence::at(AgentStatus::Running, agent.current_start.as_ref())
            .or(AgentStatus::Failed)
            .or(AgentStatus::Stopped);
        match self.state.reset_to_stopped(name, &fence)? {
            Fenced::Done => {}
            Fenced::Gone => return Err(StateError::UnknownAgent(name.clone()).into()),
            Fenced::Changed(found) => {
                return Err(LifecycleError::Changed {
                    agent: name.clone(),
                    found,
                })
            }
        }
        if let Some(finding) = found {
            tracing::info!("Agent '{name}' was not running: {finding}; stopped it");
            return Ok(Stopped::Dead(finding));
        }
        tracing::info!("Stopped agent '{name}'");
        Ok(Stopped::Now)
    }

    /// Removes an agent: stops it when `force` allows, removes everything of
    /// it through the cleanup pipeline, then forgets it — only if no other
    /// `anvyl` took it meanwhile (a start is never forgotten under way).
    ///
    /// When its host does not answer, nothing changes — unless `force`: then
    /// the agent is forgotten and the answer says where its resources may
    /// remain. They keep this installation's labels, so a cleanup of that
    /// host removes them once it answers.
    pub async fn remove(&self, name: &AgentName, force: bool) -> Result<Removed, LifecycleError> {
        match self.remove_everything(name, force).await {
            Ok(report) => Ok(Removed::Cleaned(report)),
            // One dropped or stalled request is not a host that is down:
            // forgetting is for a host that still does not answer.
            // Recorded before engines were marked, its container is not on
            // the engine its host reaches: nothing of it is here to remove,
            // and no engine can be proven its own. Forced, it is forgotten;
            // its resources keep their labels for a cleanup where they are.
            Err(LifecycleError::OtherEngine {
                recorded, current, ..
            }) if force && recorded.as_ref().and_then(|r| r.marker()).is_none() => {
                let cause = BackendError::Local {
                    operation: "find the agent's engine",
                    message: format!(
                        "it was recorded on {}, before engines were marked, and its container is not on {current}",
                        recorded.map_or("no engine".to_string(), |r| r.to_string())
                    ),
                };
                self.forget(name, cause)
            }
            Err(e) if force && e.unreachable_engine().is_some() => {
                if self.host_answers(name).await {
                    return Err(e);
                }
                match e {
                    LifecycleError::Backend(cause)
                    | LifecycleError::Cleanup(crate::pipeline::CleanupError::Backend(cause)) => {
                        self.forget(name, cause)
                    }
                    e => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the agent's host answers a ping now, on a new connection.
    async fn host_answers(&self, name: &AgentName) -> bool {
        let Ok(agent) = self.state.agent(name) else {
            return false;
        };
        match self.engine_of(&agent).await {
            Ok((_, backend)) => backend.ping().await.is_ok(),
            Err(_) => false,
        }
    }

    /// Forgets the agent if it is still as `fence` expects; another
    /// `anvyl` that changed it meanwhile wins.
    fn delete_fenced(&self, name: &AgentName, fence: &Fence) -> Result<(), LifecycleError> {
        match self.state.delete_agent(name, fence)? {
            Fenced::Done | Fenced::Gone => Ok(()),
            Fenced::Changed(found) => Err(LifecycleError::Changed {
                agent: name.clone(),
                found,
            }),
        }
    }

    /// Forgets an agent whose host does not answer.
    fn forget(&self, name: &AgentName, cause: BackendError) -> Result<Removed, LifecycleError> {
        let agent = self.state.agent(name)?;
        self.refuse_if_starting(&agent)?;
        let starts = self.state.starts()?;
        let host = agent.home(&starts).to_string();
        let fence = Fence::at(agent.status, agent.current_start.as_ref());
        self.delete_fenced(name, &fence)?;
        tracing::info!("Forgot agent '{name}'; its host '{host}' does not answer");
        Ok(Removed::Forgotten { host, cause })
    }

    async fn remove_everything(
        &self,
        name: &AgentName,
        force: bool,
    ) -> Result<Report, LifecycleError> {
        let mut agent = self.state.agent(name)?;
        self.refuse_if_starting(&agent)?;
        if agent.status == AgentStatus::Running {
            // An agent whose container died is not running: no force
            // needed. One that cannot be observed is not said to run: the
            // removal fails with why (a host that does not answer: --force
            // forgets it).
            if !force {
                let observed = match self.observe(&agent).await? {
                    Observed::Unknown { .. } => self.observe_or_why(&agent).await?,
                    observed => observed,
                };
                if !observed.is_dead() {
                    return Err(LifecycleError::Running(name.clone()));
                }
            }
            // The start just judged, not one that began since.
            let judged = agent.current_start.clone();
            self.stop_as_read(agent).await?;
            agent = self.state.agent(name)?;
            // Stopped, another `anvyl` may have started it again at once:
            // that start is not this removal's to forget.
            if agent.current_start != judged {
                return Err(self.changed_since(&agent)?);
            }
        }
        let fence = Fence::at(agent.status, agent.current_start.as_ref());
        let report = self.clean_agent(&agent).await?;
        let remaining = report.remaining_owned();
        if remaining > 0 {
            return Err(LifecycleError::Remaining {
                agent: name.clone(),
                remaining,
            });
        }
        // The plan's reset moved a failed agent to stopped.
        let fence = fence.or(AgentStatus::Stopped);
        self.delete_fenced(name, &fence)?;
        tracing::info!("Removed agent '{name}'");
        Ok(report)
    }

    /// Why an agent read as `read` is not that any more, as an error.
    fn changed_since(&self, read: &AgentRecord) -> Result<LifecycleError, LifecycleError> {
        let now = self.state.agent(&read.name)?;
        Ok(LifecycleError::Changed {
            agent: read.name.clone(),
            found: crate::state::Found {
                status: now.status,
                start: now.current_start,
            },
        })
    }

    /// Runs the cleanup pipeline for `agent` on its own host: everything of
    /// it that is not live goes, and a stale or crashed record is reset.
    pub(super) async fn clean_agent(&self, agent: &AgentRecord) -> Result<Report, LifecycleError> {
        let (host, backend) = self.engine_of(agent).await?;
        let cleanup = Cleanup::new(
            backend.as_ref(),
            self.state,
            self.build_root.clone(),
            self.settings.cleanup.clone(),
        )
        .on_host(&host);
        let plan = cleanup.plan(Scope::Agent(agent.name.clone())).await?;
        Ok(cleanup.apply(&plan).await)
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

    /// The agent's host and its engine: the host it was registered on — never
    /// another one, whose listings would say nothing of it — or, for an
    /// agent that never ran, the first available host.
    pub(super) async fn engine_of(
        &self,
        agent: &AgentRecord,
    ) -> Result<(String, crate::backend::DynBackend), LifecycleError> {
        let host = self.home_of(agent)?;
        let backend = self.connector.connect(&host).await?;
        let engine = crate::identity::EngineIdentity::of(backend.as_ref());
        check_engine(agent, &host.name, &engine).await?;
        Ok((host.name, backend))
    }

    /// The registered host an agent's resources are on: the host it was
    /// registered on, else the one its current start went to (`local` when
    /// neither). An agent whose home the registry forgot is refused: another
    /// host would see none of its resources. Cleanup and logs ask this.
    pub fn registered_home(&self, agent: &AgentRecord) -> Result<HostRecord, LifecycleError> {
        let starts = self.state.starts()?;
        let home = agent.home(&starts);
        (self.state.hosts()?.into_iter())
            .find(|h| h.name == home)
            .ok_or_else(|| LifecycleError::HomeNotRegistered {
                agent: agent.name.clone(),
                host: home.to_string(),
            })
    }

    /// Where a command that acts on one agent goes: its
    /// [`Self::registered_home`], or — for an agent that never ran, after
    /// `local` was removed — where a start would go.
    pub fn home_of(&self, agent: &AgentRecord) -> Result<HostRecord, LifecycleError> {
        match self.registered_home(agent) {
            Err(LifecycleError::HomeNotRegistered { host, .. })
                if agent.host.is_none() && host == crate::state::LOCAL_HOST =>
            {
                self.resolve_host(None).map_err(|cause| {
                    LifecycleError::Backend(BackendError::Local {
                        operation: "resolve host",
                        message: cause.to_string(),
                    })
                })
            }
            other => other,
        }
    }
}

/// Refuses an engine that cannot judge a running agent. Judged by another
/// engine, a running agent's container would look gone: stop would reset
/// it, remove would forget it, while it runs. A stopped agent's leftovers
/// carry its labels wherever they are, and so do a crashed start's (a live
/// one was refused before).
pub(super) async fn check_engine(
    agent: &AgentRecord,
    host: &str,
    engine: &crate::identity::EngineIdentity<'_>,
) -> Result<(), LifecycleError> {
    if agent.status == AgentStatus::Running
        && !engine
            .judges(agent.engine.as_ref(), agent.container_id.as_deref())
            .await?
    {
        return Err(LifecycleError::OtherEngine {
            agent: agent.name.clone(),
            host: host.to_string(),
            recorded: agent.engine.clone().map(Box::new),
            current: Box::new(engine.current().await?.clone()),
        });
    }
    Ok(())
}

/// A 404 reaches the goal of a stop or a removal.
fn gone_or(result: Result<(), BackendError>) -> Result<(), BackendError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Waits, bounded, for another remover to finish with container `id`.
async fn wait_until_gone(backend: &dyn Backend, id: &str) -> Result<(), ()> {
    for _ in 0..50 {
        match backend.inspect_container(id).await {
            Err(e) if e.is_not_found() => return Ok(()),
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    Err(())
}
