//! Observation: what really is of an agent, asked before a command acts on
//! it. The state store records intent and history; what runs is the
//! engine's to say, and whether a start is under way its lock's. A running
//! agent's container is inspected on the engine that holds it (judged as
//! in [`crate::identity`]), a starting agent's start by its lock; a stopped
//! or failed agent has nothing on an engine that could make it run, so
//! nothing is asked of one.
//!
//! Observation changes no agent and removes nothing: only `observe`, for
//! commands that act, may restore an engine's pruned marker; `observe_all`,
//! for listings, writes nothing. The commands that act on what it found — a
//! start that heals a dead agent first, a stop that says what it found —
//! change the state through the cleanup pipeline, fenced by the start id.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::{Lifecycle, LifecycleError};
use crate::backend::{Backend, ContainerState};
use crate::identity::EngineIdentity;
use crate::state::{AgentRecord, AgentStatus};

/// What an agent really is, as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Observed {
    /// Stopped, as recorded: nothing of it runs.
    Stopped,
    /// Failed, as recorded: a start failed or its container died.
    Failed,
    /// Its container runs.
    Running,
    /// Its container exited and its engine starts it again under its
    /// restart policy: alive, not dead.
    Restarting {
        /// How many times the engine has restarted it so far.
        count: u32,
    },
    /// A start of it holds its lock now.
    Starting {
        /// The starting process.
        pid: u32,
    },
    /// It is recorded as starting, but its start's process is gone without
    /// having ended the start (killed, crashed, the machine went down).
    StartCrashed {
        /// The process that was starting it.
        pid: u32,
    },
    /// It is recorded as running, but its container has exited.
    Exited {
        /// The exit code, when the engine says.
        code: Option<i64>,
        /// When it exited (seconds since the epoch), when the engine says.
        finished: Option<i64>,
    },
    /// It is recorded as running, but its container is on its engine no
    /// more (removed by hand, the engine's storage reset).
    ContainerGone,
    /// Its host could not tell: nothing is guessed.
    Unknown {
        /// Why: `host unreachable`, or what the host answered.
        reason: String,
    },
}

impl Observed {
    /// Whether the record says more than is true: recorded as running or
    /// starting, while nothing runs. The next command that acts on the
    /// agent cleans up what is left first.
    pub fn is_dead(&self) -> bool {
        matches!(
            self,
            Self::StartCrashed { .. } | Self::Exited { .. } | Self::ContainerGone
        )
    }

    /// Whether it runs, as observed (a container its engine is restarting
    /// runs again in a moment).
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running | Self::Restarting { .. })
    }

    /// What was found, as the logs say it: "its container had exited with
    /// code 137", "its start had crashed (pid 4242 is gone)". `None` when
    /// nothing is wrong with the record.
    pub fn finding(&self) -> Option<String> {
        Some(match self {
            Self::StartCrashed { pid } => format!("its start had crashed (pid {pid} is gone)"),
            Self::Exited {
                code: Some(code), ..
            } => {
                format!("its container had exited with code {code}")
            }
            Self::Exited { code: None, .. } => "its container had exited".into(),
            Self::ContainerGone => "its container was gone".into(),
            _ => return None,
        })
    }
}

/// The short form `agent list` shows (the age of an exit is the CLI's).
impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped => f.write_str("stopped"),
            Self::Failed => f.write_str("failed"),
            Self::Running => f.write_str("running"),
            Self::Restarting { count } => write!(f, "restarting ({count})"),
            Self::Starting { .. } => f.write_str("starting"),
            Self::StartCrashed { .. } => f.write_str("start crashed"),
            Self::Exited {
                code: Some(code), ..
            } => write!(f, "exited ({code})"),
            Self::Exited { code: None, .. } => f.write_str("exited"),
            Self::ContainerGone => f.write_str("container gone"),
            Self::Unknown { reason } => write!(f, "unknown ({reason})"),
        }
    }
}

/// Why an agent is unknown when its host does not answer (or not in
/// time).
const HOST_UNREACHABLE: &str = "host unreachable";

/// How long one host may take to answer for its agents before they are
/// shown as unknown: a listing must not hang on a host that went away.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many hosts are asked at once, and how many containers of one host
/// are inspected at a time.
const INSPECTS_AT_ONCE: usize = 8;

impl Lifecycle<'_> {
    /// What `agent` really is, for a command about to act on it: an engine
    /// whose marker was pruned gets it back here, as any acting command's
    /// would (see [`crate::identity`]).
    pub async fn observe(&self, agent: &AgentRecord) -> Result<Observed, LifecycleError> {
        let agents = std::slice::from_ref(agent);
        let mut observed = self.observe_marking(agents, true).await?;
        Ok(observed.pop().expect("one agent, one observation"))
    }

    /// What each of `agents` really is, in their order, for a command that
    /// only looks (it marks no engine): each host is connected once and
    /// asked for its agents side by side with the other hosts, within
    /// [`OBSERVE_TIMEOUT`].
    pub async fn observe_all(
        &self,
        agents: &[AgentRecord],
    ) -> Result<Vec<Observed>, LifecycleError> {
        self.observe_marking(agents, false).await
    }

    async fn observe_marking(
        &self,
        agents: &[AgentRecord],
        may_mark: bool,
    ) -> Result<Vec<Observed>, LifecycleError> {
        let starts = self.state.starts()?;
        let mut observed = Vec::with_capacity(agents.len());
        // The running agents, by home host, to ask their engines.
        let mut by_host: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (n, agent) in agents.iter().enumerate() {
            observed.push(match agent.status {
                AgentStatus::Stopped => Observed::Stopped,
                AgentStatus::Failed => Observed::Failed,
                AgentStatus::Starting => {
                    match starts
                        .iter()
                        .find(|s| Some(&s.id) == agent.current_start.as_ref())
                    {
                        Some(s) if s.is_live() => Observed::Starting { pid: s.pid },
                        // It ended after the agent was read (ran, or failed
                        // and was cleaned up): the record read is merely
                        // old, not dead. Only a start that never ended and
                        // whose process is gone crashed.
                        Some(s) if s.ended.is_some() => Observed::Starting { pid: s.pid },
                        Some(s) => Observed::StartCrashed { pid: s.pid },
                        // Recorded as starting with no start: nothing holds
                        // it, as after a crash.
                        None => Observed::StartCrashed { pid: 0 },
                    }
                }
                AgentStatus::Running => {
                    by_host
                        .entry(agent.home(&starts).to_string())
                        .or_default()
                        .push(n);
                    Observed::Unknown {
                        reason: "not asked".into(),
                    }
                }
            });
        }
        let answers: Vec<Vec<(usize, Observed)>> = stream::iter(by_host.into_values())
            .map(|group| async move {
                let asked = self.ask_host(agents, &group, may_mark);
                match tokio::time::timeout(OBSERVE_TIMEOUT, asked).await {
                    Ok(answers) => answers,
                    Err(_) => unknown(&group, HOST_UNREACHABLE),
                }
            })
            .buffer_unordered(INSPECTS_AT_ONCE)
            .collect()
            .await;
        for (n, answer) in answers.into_iter().flatten() {
            observed[n] = answer;
        }
        Ok(observed)
    }

    /// Asks one host for its running agents `group` (indices into `agents`).
    async fn ask_host(
        &self,
        agents: &[AgentRecord],
        group: &[usize],
        may_mark: bool,
    ) -> Vec<(usize, Observed)> {
        let host = match self.home_of(&agents[group[0]]) {
            Ok(host) => host,
            Err(e) => return unknown(group, &e.to_string()),
        };
        let backend = match self.connector.connect(&host).await {
            Ok(backend) => backend,
            Err(e) => return unknown(group, &reason(&e.into())),
        };
        // Looking marks nothing: an engine whose marker is gone stays
        // unmarked until a command that acts meets it.
        let engine = match may_mark {
            true => EngineIdentity::of(backend.as_ref()),
            false => EngineIdentity::reading(backend.as_ref()),
        };
        let (engine, backend, host) = (&engine, backend.as_ref(), host.name.as_str());
        stream::iter(group)
            .map(|&n| async move {
                let agent = &agents[n];
                let observed = match super::stop::check_engine(agent, host, engine).await {
                    Ok(()) => container_of(backend, agent).await,
                    Err(e) => Observed::Unknown { reason: reason(&e) },
                };
                (n, observed)
            })
            .buffer_unordered(INSPECTS_AT_ONCE)
            .collect()
            .await
    }
}

impl Lifecycle<'_> {
    /// Cleans up after a dead or failed agent: when its record says more
    /// than is true (see [`Observed::is_dead`]), or it is `failed` (its
    /// container may be left for `agent logs`), the cleanup pipeline runs for it
    /// on its own host — what is left is removed and it is reset to
    /// `stopped`, fenced by its start id as every cleanup is, so a start
    /// that began meanwhile keeps everything. Returns what was found; `None`
    /// for a stopped agent or a record that holds. An agent that cannot be observed (its host
    /// does not answer, another engine is behind it) is neither dead nor
    /// alive: [`NotHealed::Unobserved`], with the typed cause.
    pub(super) async fn heal(&self, agent: &AgentRecord) -> Result<Option<String>, NotHealed> {
        let (observed, finding) = match agent.status {
            AgentStatus::Stopped => return Ok(None),
            // A failed agent may still have its container (a cleanup killed
            // after it marked the agent failed): the start would meet it
            // under the same name.
            AgentStatus::Failed => (Observed::Failed, "its last run had failed".to_string()),
            AgentStatus::Running | AgentStatus::Starting => {
                let observed = self.observe(agent).await.map_err(NotHealed::Unobserved)?;
                let observed = match observed {
                    Observed::Unknown { .. } => {
                        (self.observe_or_why(agent).await).map_err(NotHealed::Unobserved)?
                    }
                    observed => observed,
                };
                match observed.finding() {
                    Some(finding) => (observed, finding),
                    None => return Ok(None),
                }
            }
        };
        let name = &agent.name;
        tracing::info!("Agent '{name}' is not running: {finding}");
        if matches!(observed, Observed::StartCrashed { .. }) {
            tracing::info!("Cleaning up failed startup for agent '{name}'");
        }
        let report =
            (self.clean_agent(agent).await).map_err(|e| NotHealed::Unhealed(finding.clone(), e))?;
        // What could not be removed would be met again (the container's
        // name by the next start): not healed.
        let remaining = report.remaining_owned();
        if remaining > 0 {
            let agent = name.clone();
            let e = LifecycleError::Remaining { agent, remaining };
            return Err(NotHealed::Unhealed(finding, e));
        }
        Ok(Some(finding))
    }
}

impl Lifecycle<'_> {
    /// A running agent observed once more, the way a command that acts
    /// reaches it, for an observation that came back unknown: what it is
    /// if its host answers now, else why not, typed — another engine
    /// behind its host, a host that does not answer, an inspection that
    /// failed — where the observation has only words.
    pub(super) async fn observe_or_why(
        &self,
        agent: &AgentRecord,
    ) -> Result<Observed, LifecycleError> {
        let (_, backend) = self.engine_of(agent).await?;
        Ok(inspected(backend.as_ref(), agent).await?)
    }
}

/// Why [`Lifecycle::heal`] did not heal.
#[derive(Debug)]
pub(super) enum NotHealed {
    /// The agent could not be observed: nothing was done.
    Unobserved(LifecycleError),
    /// It was found dead (what was found), and what it left could not be
    /// cleaned up.
    Unhealed(String, LifecycleError),
}

/// A running agent's container, inspected on its own engine.
pub(super) async fn container_of(backend: &dyn Backend, agent: &AgentRecord) -> Observed {
    (inspected(backend, agent).await).unwrap_or_else(|e| Observed::Unknown {
        reason: reason(&e.into()),
    })
}

/// A running agent's container as its engine answers for it; an answer
/// that says nothing of it is the error.
async fn inspected(
    backend: &dyn Backend,
    agent: &AgentRecord,
) -> Result<Observed, crate::backend::BackendError> {
    let Some(id) = &agent.container_id else {
        return Ok(Observed::ContainerGone);
    };
    match backend.inspect_container(id).await {
        Ok(c) if c.will_restart() => Ok(Observed::Restarting {
            count: c.restarts.count,
        }),
        Ok(c) if c.state == ContainerState::Running => Ok(Observed::Running),
        Ok(c) => Ok(Observed::Exited {
            code: c.exit_code,
            finished: c.finished,
        }),
        Err(e) if e.is_not_found() => Ok(Observed::ContainerGone),
        Err(e) => Err(e),
    }
}

/// Why a host could not tell, in the few words a listing has room for.
fn reason(e: &LifecycleError) -> String {
    match e.unreachable_engine() {
        Some(_) => HOST_UNREACHABLE.into(),
        None => e.to_string(),
    }
}

fn unknown(group: &[usize], reason: &str) -> Vec<(usize, Observed)> {
    (group.iter())
        .map(|&n| {
            let reason = reason.to_string();
            (n, Observed::Unknown { reason })
        })
        .collect()
}

#[cfg(test)]
mod tests;
