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

    /// Whether it runs, as observed.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running)
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
mod tests {
    use super::*;
    use crate::backend::Query;
    use crate::lifecycle::tests::World;
    use crate::lifecycle::{StartError, Stopped};
    use crate::name::AgentName;

    impl World {
        async fn observed(&self, name: &AgentName) -> Observed {
            let agent = self.state.agent(name).unwrap();
            self.lifecycle().observe(&agent).await.unwrap()
        }

        async fn containers(&self) -> usize {
            let all = Query::named("anvyl-agent-");
            self.engine.list_containers(&all).await.unwrap().len()
        }
    }

    /// Scene 1 of the truth issue: `agent start` after a start killed with
    /// -9 cleans up what it left and starts.
    #[tokio::test]
    async fn a_start_after_a_killed_start_cleans_it_up_and_runs() {
        let w = World::new();
        let k = AgentName::new("k").unwrap();
        w.good("k");
        let (old, image) = w.killed_start(&k);
        assert_eq!(w.observed(&k).await, Observed::StartCrashed { pid: 0 });

        let started = w.start(&k).await.unwrap();

        assert_ne!(started.start, old);
        assert_eq!(w.observed(&k).await, Observed::Running);
        assert!(w.engine.inspect_image(&image).await.is_err(), "its image");
        assert!(!w.build_root().dir_path(&k, &old).exists(), "its dir");
    }

    /// Scenes 2 and 3: a running agent whose container exited, or was
    /// removed by hand, is seen so, and the next start runs it again.
    #[tokio::test]
    async fn a_start_of_an_agent_whose_container_died_or_vanished_runs_it_again() {
        let w = World::new();
        for (name, gone) in [("d", false), ("r", true)] {
            let agent = w.good(name);
            let first = w.start(&agent).await.unwrap();
            if gone {
                w.engine
                    .remove_container(&first.container_id, Duration::ZERO)
                    .await
                    .unwrap();
                assert_eq!(w.observed(&agent).await, Observed::ContainerGone);
            } else {
                w.engine
                    .set_state(&first.container_id, ContainerState::Exited);
                assert!(
                    matches!(w.observed(&agent).await, Observed::Exited { .. }),
                    "{:?}",
                    w.observed(&agent).await
                );
            }

            let again = w.start(&agent).await.unwrap();

            assert_eq!(w.observed(&agent).await, Observed::Running);
            assert!(
                (w.engine.inspect_container(&first.container_id).await).is_err(),
                "the dead container was removed"
            );
            assert_ne!(again.container_id, first.container_id);
        }
        assert_eq!(w.containers().await, 2);
    }

    /// A live container is never healed away: the start is refused as
    /// before, and nothing is touched.
    #[tokio::test]
    async fn a_start_of_a_running_agent_is_refused_and_touches_nothing() {
        let w = World::new();
        let web = w.good("web");
        let first = w.start(&web).await.unwrap();
        let err = w.start(&web).await.unwrap_err();
        assert!(matches!(err, StartError::Refused(_)), "{err:?}");
        assert_eq!(w.observed(&web).await, Observed::Running);
        assert!(w
            .engine
            .inspect_container(&first.container_id)
            .await
            .is_ok());
    }

    /// `stop` of a dead agent says what it found; `remove` of one needs no
    /// force; `stop` of a killed start cleans it up.
    #[tokio::test]
    async fn stop_and_remove_of_dead_agents_say_what_they_found() {
        let w = World::new();
        let d = w.good("d");
        w.died(&d).await;
        let stopped = w.lifecycle().stop(&d).await.unwrap();
        assert_eq!(stopped, Stopped::Dead("its container had exited".into()));
        assert_eq!(w.observed(&d).await, Observed::Stopped);

        let r = w.good("r");
        let first = w.start(&r).await.unwrap();
        (w.engine
            .remove_container(&first.container_id, Duration::ZERO))
        .await
        .unwrap();
        w.lifecycle().remove(&r, false).await.unwrap();
        assert!(w.state.agent(&r).is_err(), "forgotten without --force");

        let k = w.good("k");
        let (old, image) = w.killed_start(&k);
        let stopped = w.lifecycle().stop(&k).await.unwrap();
        assert_eq!(
            stopped,
            Stopped::Dead("its start had crashed (pid 0 is gone)".into())
        );
        assert_eq!(w.observed(&k).await, Observed::Stopped);
        assert!(w.engine.inspect_image(&image).await.is_err());
        assert!(!w.build_root().dir_path(&k, &old).exists());
    }

    /// A host whose engine does not answer is shown as unknown, never as a
    /// guess; the agents of hosts that answer are observed all the same.
    #[tokio::test]
    async fn an_engine_that_fails_is_unknown_not_guessed() {
        let w = World::new();
        let web = w.good("web");
        w.start(&web).await.unwrap();
        let idle = w.good("idle");
        w.engine.inject(
            crate::memory::Op::InspectContainer,
            None,
            crate::memory::Fault::Fail("boom".into()),
            None,
        );
        let agents = [w.state.agent(&web).unwrap(), w.state.agent(&idle).unwrap()];
        let observed = w.lifecycle().observe_all(&agents).await.unwrap();
        assert!(
            matches!(&observed[0], Observed::Unknown { reason } if reason.contains("boom")),
            "{observed:?}"
        );
        assert_eq!(observed[1], Observed::Stopped);
        assert_eq!(observed[0].finding(), None, "unknown is not dead");
    }

    /// A heal that cannot remove what the dead agent left is no heal: the
    /// stop fails, and the start says why it did not start (not a name
    /// conflict with the container it could not remove).
    #[tokio::test]
    async fn a_heal_that_leaves_something_fails_the_command() {
        let w = World::new();
        let k = w.good("k");
        let (_, image) = w.killed_start(&k);
        w.engine.inject(
            crate::memory::Op::RemoveImage,
            None,
            crate::memory::Fault::Fail("boom".into()),
            Some(1),
        );
        let stopped = w.lifecycle().stop(&k).await;
        assert!(
            matches!(stopped, Err(LifecycleError::Remaining { .. })),
            "{stopped:?}"
        );
        assert!(w.engine.inspect_image(&image).await.is_ok());

        let d = w.good("d");
        let dead = w.died(&d).await;
        w.engine.inject(
            crate::memory::Op::RemoveContainer,
            Some(&dead.container_id),
            crate::memory::Fault::Fail("boom".into()),
            Some(1),
        );
        let err = w.start(&d).await.unwrap_err();
        assert!(matches!(err, StartError::Unhealed { .. }), "{err:?}");
    }

    /// A start of an agent recorded as running, whose host does not answer
    /// (or answers an error): refused with that cause, typed (the CLI's
    /// exit 3 for the first), never as "running" — and nothing is changed.
    /// A removal without --force is refused with the cause too.
    #[tokio::test]
    async fn a_start_on_a_silent_host_is_unobserved_and_changes_nothing() {
        let w = World::new();
        let web = w.good("web");
        let running = w.start(&web).await.unwrap();
        for (fault, unreachable) in [
            (crate::memory::Fault::Unreachable, true),
            (crate::memory::Fault::Fail("boom".into()), false),
        ] {
            w.engine
                .inject(crate::memory::Op::InspectContainer, None, fault, None);
            let err = w.start(&web).await.unwrap_err();
            let StartError::Unobserved { cause, .. } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(cause.unreachable_engine().is_some(), unreachable, "{err}");
            let err = w.lifecycle().remove(&web, false).await.unwrap_err();
            assert_eq!(err.unreachable_engine().is_some(), unreachable, "{err}");
            w.engine.clear_faults();
            let record = w.state.agent(&web).unwrap();
            assert_eq!(record.status, AgentStatus::Running);
            assert_eq!(record.current_start, Some(running.start.clone()));
            assert_eq!(w.observed(&web).await, Observed::Running);
        }
    }

    /// A record read while its start ran, observed once that start ended:
    /// old, not crashed — nothing is healed, and a stop says it changed.
    #[tokio::test]
    async fn a_start_that_ended_since_the_read_is_not_crashed() {
        let w = World::new();
        let web = w.good("web");
        let creating = crate::memory::Gate::new();
        w.engine.inject(
            crate::memory::Op::CreateContainer,
            None,
            crate::memory::Fault::Gate(creating.clone()),
            Some(1),
        );
        let (started, read) = tokio::join!(w.start(&web), async {
            creating.reached().await;
            let read = w.state.agent(&web).unwrap();
            creating.open();
            read
        });
        let started = started.unwrap();
        assert_eq!(read.status, AgentStatus::Starting);
        assert!(!w.lifecycle().observe(&read).await.unwrap().is_dead());
        assert_eq!(w.lifecycle().heal(&read).await.unwrap(), None);
        assert!(w
            .engine
            .inspect_container(&started.container_id)
            .await
            .is_ok());
    }

    /// A failed agent whose container was left (a cleanup killed between
    /// marking it failed and removing the container) starts again.
    #[tokio::test]
    async fn a_failed_agent_with_its_container_left_starts_again() {
        let w = World::new();
        let d = w.good("d");
        let dead = w.died(&d).await;
        w.state.mark_failed(&d, Some(&dead.start)).unwrap();
        let again = w.start(&d).await.unwrap();
        assert!(w
            .engine
            .inspect_container(&dead.container_id)
            .await
            .is_err());
        assert_eq!(w.observed(&d).await, Observed::Running);
        assert_ne!(again.container_id, dead.container_id);
    }

    /// A listing marks no engine: with the marker pruned and nothing to
    /// restore it from, the running agent is unknown, and the engine is
    /// left as it was.
    #[tokio::test]
    async fn a_listing_marks_no_engine() {
        let w = World::new();
        let web = w.good("web");
        let dead = w.died(&web).await;
        (w.engine
            .remove_container(&dead.container_id, Duration::ZERO))
        .await
        .unwrap();
        w.engine.remove_volume(crate::identity::MARKER_VOLUME);
        let agents = [w.state.agent(&web).unwrap()];
        let observed = w.lifecycle().observe_all(&agents).await.unwrap();
        assert!(
            matches!(&observed[0], Observed::Unknown { .. }),
            "{observed:?}"
        );
        let marker = w.engine.volume(crate::identity::MARKER_VOLUME).await;
        assert!(marker.is_err(), "a listing made the marker: {marker:?}");
    }
}
