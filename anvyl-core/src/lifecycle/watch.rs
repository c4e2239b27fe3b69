//! The watcher's reconciliation (`agent cleanup --watch`): one pass looks
//! at every agent as [`Lifecycle::observe_all`] does and acts on what is
//! dead, with the same fenced operations the ordinary commands use.
//!
//! - A running agent whose container exited or vanished becomes `failed`
//!   once a second look, [`CONFIRM`] later, finds it so still: `agent stop`
//!   removes the container a few milliseconds before it resets the record,
//!   and a user's own stop is not a failure. The change is a compare-and-set
//!   on the start that was seen (`StateStore::mark_failed`).
//! - A failed agent's leftovers are removed once it has been failed for the
//!   grace period (its container's logs stay readable until then), and a
//!   crashed start's at once — both through [`Lifecycle::heal`], the cleanup
//!   pipeline fenced by the start id.
//!
//! Why a watcher never removes a start in progress or a live container: it
//! acts only on agents observed as `failed`, `exited`, `container gone` or
//! `start crashed`. A start in progress holds its lock (observed `starting`)
//! and a live agent's container runs (observed `running`); and every change
//! it makes is fenced by the start it observed, so a start that begins
//! after the observation — with a new start id — is never marked, reset or
//! cleaned, exactly as with a concurrent `agent cleanup`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::observe::NotHealed;
use super::{Lifecycle, LifecycleError, Observed};
use crate::ids::StartId;
use crate::name::AgentName;
use crate::state::{AgentRecord, AgentStatus, Fenced};

/// How long a death must last before the watcher believes it: a second
/// look this much later must find the same start dead.
pub const CONFIRM: Duration = Duration::from_millis(500);

/// How long after a cleanup that left something the watcher tries again.
pub const RETRY: Duration = Duration::from_secs(30);

/// What the watcher did, one line (or one JSON object) each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum WatchAction {
    /// A running agent was found dead and is `failed` now.
    Failed {
        /// The agent.
        agent: AgentName,
        /// What was found: "its container had exited with code 137".
        finding: String,
    },
    /// A dead agent's leftovers were removed and it is `stopped` now.
    Cleaned {
        /// The agent.
        agent: AgentName,
        /// What was found.
        finding: String,
    },
    /// A failed agent's container runs again: it is `running`.
    Revived {
        /// The agent.
        agent: AgentName,
    },
    /// A dead agent's leftovers could not all be removed; the next pass
    /// tries again.
    NotCleaned {
        /// The agent.
        agent: AgentName,
        /// Why.
        error: String,
    },
    /// A host that held running agents did not answer; they are untouched.
    HostUnreachable {
        /// The host.
        host: String,
        /// What it answered, or `host unreachable`.
        reason: String,
    },
    /// A host that did not answer answers again.
    HostBack {
        /// The host.
        host: String,
    },
}

impl std::fmt::Display for WatchAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed { agent, finding } => write!(f, "Agent '{agent}' failed: {finding}"),
            Self::Cleaned { agent, finding } => {
                write!(f, "Cleaned up agent '{agent}' ({finding}); it is stopped")
            }
            Self::Revived { agent } => write!(f, "Agent '{agent}' runs again"),
            Self::NotCleaned { agent, error } => {
                write!(f, "Could not clean up agent '{agent}': {error}")
            }
            Self::HostUnreachable { host, reason } => {
                write!(
                    f,
                    "Host '{host}' does not answer ({reason}); its agents are left as they are"
                )
            }
            Self::HostBack { host } => write!(f, "Host '{host}' answers again"),
        }
    }
}

/// What the watcher remembers between passes.
#[derive(Debug)]
pub struct Watch {
    grace: Duration,
    /// Running agents seen dead once: the start, and when.
    suspect: BTreeMap<AgentName, (Option<StartId>, Instant)>,
    /// Failed agents: the start, and when their leftovers are due to go.
    failed: BTreeMap<AgentName, (Option<StartId>, Instant)>,
    /// Crashed starts whose cleanup left something: when to try again.
    retry: BTreeMap<AgentName, Instant>,
    /// Hosts reported as not answering.
    down: BTreeSet<String>,
    /// The one host watched, when not all.
    host: Option<String>,
}

impl Watch {
    /// A watcher that removes a failed agent's leftovers after `grace`.
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            suspect: BTreeMap::new(),
            failed: BTreeMap::new(),
            retry: BTreeMap::new(),
            down: BTreeSet::new(),
            host: None,
        }
    }

    /// Watches the agents of `host` only (`agent cleanup --watch --host`).
    pub fn on_host(mut self, host: Option<String>) -> Self {
        self.host = host;
        self
    }

    /// When the next pass has something to do without an event: a death to
    /// confirm, or a grace period that ends.
    pub fn next_due(&self) -> Option<Instant> {
        let confirms = self.suspect.values().map(|(_, at)| *at + CONFIRM);
        let graces = self.failed.values().map(|(_, due)| *due);
        let retries = self.retry.values().copied();
        confirms.chain(graces).chain(retries).min()
    }
}

impl Lifecycle<'_> {
    /// One pass of the watcher over every agent (see the module's words).
    /// A failure to read the state store ends it; anything about one agent
    /// or host is an action and the pass goes on.
    pub async fn watch_pass(&self, watch: &mut Watch) -> Result<Vec<WatchAction>, LifecycleError> {
        let starts = self.state.starts()?;
        let mut agents = self.state.agents()?;
        if let Some(host) = &watch.host {
            agents.retain(|a| a.home(&starts) == host);
        }
        let observed = self.observe_all(&agents).await?;
        let now = Instant::now();
        let mut actions = Vec::new();
        let mut down = BTreeSet::new();
        let mut answered = BTreeSet::new();
        let seen: BTreeSet<&AgentName> = agents.iter().map(|a| &a.name).collect();
        watch.suspect.retain(|name, _| seen.contains(name));
        watch.failed.retain(|name, _| seen.contains(name));
        watch.retry.retain(|name, _| seen.contains(name));
        for (agent, observed) in agents.iter().zip(observed) {
            let name = &agent.name;
            let start = agent.current_start.clone();
            if !matches!(observed, Observed::Exited { .. } | Observed::ContainerGone) {
                watch.suspect.remove(name);
            }
            if agent.status != AgentStatus::Failed {
                watch.failed.remove(name);
            }
            if !matches!(observed, Observed::StartCrashed { .. }) {
                watch.retry.remove(name);
            }
            match &observed {
                Observed::Exited { .. } | Observed::ContainerGone => {
                    let first = watch.suspect.get(name).filter(|(s, _)| *s == start);
                    match first {
                        // A stop holds the start's lock while it removes
                        // the container: not a death, whatever it looks.
                        Some(_) if start.as_ref().is_some_and(|s| self.state.start_busy(s)) => {}
                        Some((_, at)) if now >= *at + CONFIRM => {
                            watch.suspect.remove(name);
                            let finding = observed.finding().unwrap_or_default();
                            if self.state.mark_failed(name, start.as_ref())? == Fenced::Done {
                                tracing::info!("Agent '{name}' failed: {finding}");
                                actions.push(WatchAction::Failed {
                                    agent: name.clone(),
                                    finding,
                                });
                                let due = now + watch.grace;
                                watch.failed.insert(name.clone(), (start, due));
                            }
                        }
                        Some(_) => {}
                        None => {
                            watch.suspect.insert(name.clone(), (start, now));
                        }
                    }
                }
                Observed::StartCrashed { .. }
                    if watch.retry.get(name).is_none_or(|at| now >= *at) =>
                {
                    let cleaned = self.clean(agent).await;
                    if let Some(WatchAction::NotCleaned { .. }) = cleaned {
                        watch.retry.insert(name.clone(), now + RETRY);
                    }
                    actions.extend(cleaned);
                }
                Observed::Failed => {
                    // Its container runs again (`docker restart`, or an
                    // engine's restart policy): it is running, not failed.
                    if self.runs_again(agent).await {
                        if self.state.revive(name, start.as_ref())? == Fenced::Done {
                            tracing::info!("Agent '{name}' runs again");
                            actions.push(WatchAction::Revived {
                                agent: name.clone(),
                            });
                        }
                        watch.failed.remove(name);
                        continue;
                    }
                    let due = (watch.failed.entry(name.clone()))
                        .or_insert((start.clone(), now + watch.grace));
                    if due.0 != start {
                        *due = (start, now + watch.grace);
                    }
                    if now >= due.1 {
                        let cleaned = self.clean(agent).await;
                        match cleaned {
                            Some(WatchAction::NotCleaned { .. }) => due.1 = now + RETRY,
                            _ => drop(watch.failed.remove(name)),
                        }
                        actions.extend(cleaned);
                    }
                }
                Observed::Unknown { reason } => {
                    let host = agent.home(&starts).to_string();
                    if !watch.down.contains(&host) && !down.contains(&host) {
                        actions.push(WatchAction::HostUnreachable {
                            host: host.clone(),
                            reason: reason.clone(),
                        });
                    }
                    down.insert(host);
                }
                _ => {}
            }
            if agent.status == AgentStatus::Running && !matches!(observed, Observed::Unknown { .. })
            {
                answered.insert(agent.home(&starts).to_string());
            }
        }
        for host in watch.down.difference(&down) {
            if answered.contains(host) {
                actions.push(WatchAction::HostBack { host: host.clone() });
            }
        }
        watch.down = down;
        Ok(actions)
    }

    /// Whether a failed agent's recorded container runs, as its engine says.
    async fn runs_again(&self, agent: &AgentRecord) -> bool {
        if agent.container_id.is_none() {
            return false;
        }
        match self.engine_of(agent).await {
            Ok((_, backend)) => super::observe::container_of(backend.as_ref(), agent)
                .await
                .is_running(),
            Err(_) => false,
        }
    }

    /// Heals a dead agent, as the action that says how it went: `Cleaned`
    /// only when the agent is stopped now under the start that was seen (a
    /// start another `anvyl` began meanwhile kept everything, and the next
    /// pass judges it).
    async fn clean(&self, agent: &AgentRecord) -> Option<WatchAction> {
        let name = agent.name.clone();
        let still_its = |now: Result<AgentRecord, _>| {
            now.is_ok_and(|now: AgentRecord| {
                now.status == AgentStatus::Stopped && now.current_start == agent.current_start
            })
        };
        match self.heal(agent).await {
            Ok(Some(finding)) if still_its(self.state.agent(&name)) => Some(WatchAction::Cleaned {
                agent: name,
                finding,
            }),
            Ok(Some(_)) => None,
            // Its record changed since it was read: the next pass judges it.
            Ok(None) => None,
            Err(NotHealed::Unhealed(_, LifecycleError::Changed { .. })) => None,
            Err(NotHealed::Unhealed(finding, e)) => Some(WatchAction::NotCleaned {
                agent: name,
                error: format!("{finding}: {e}"),
            }),
            Err(NotHealed::Unobserved(e)) => Some(WatchAction::NotCleaned {
                agent: name,
                error: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, ContainerState};
    use crate::lifecycle::tests::World;

    const GRACE: Duration = Duration::from_secs(300);

    impl World {
        async fn pass(&self, watch: &mut Watch) -> Vec<WatchAction> {
            self.lifecycle().watch_pass(watch).await.unwrap()
        }

        fn status(&self, name: &AgentName) -> AgentStatus {
            self.state.agent(name).unwrap().status
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_agent_fails_on_a_second_look_and_is_cleaned_after_its_grace() {
        let w = World::new();
        let web = w.good("web");
        let started = w.died(&web).await;
        let mut watch = Watch::new(GRACE);
        assert_eq!(w.pass(&mut watch).await, vec![], "one look is not enough");
        assert_eq!(w.status(&web), AgentStatus::Running);
        assert_eq!(watch.next_due(), Some(Instant::now() + CONFIRM));
        tokio::time::advance(CONFIRM).await;
        assert_eq!(
            w.pass(&mut watch).await,
            vec![WatchAction::Failed {
                agent: web.clone(),
                finding: "its container had exited".into()
            }]
        );
        assert_eq!(w.status(&web), AgentStatus::Failed);
        // Its container stays, named by its record, for `agent logs` until
        // the grace ends.
        assert!(w
            .engine
            .inspect_container(&started.container_id)
            .await
            .is_ok());
        let recorded = w.state.agent(&web).unwrap().container_id;
        assert_eq!(recorded.as_deref(), Some(started.container_id.as_str()));
        assert_eq!(w.pass(&mut watch).await, vec![]);
        assert_eq!(watch.next_due(), Some(Instant::now() + GRACE));
        tokio::time::advance(GRACE).await;
        let cleaned = w.pass(&mut watch).await;
        assert!(
            matches!(&cleaned[..], [WatchAction::Cleaned { agent, .. }] if *agent == web),
            "{cleaned:?}"
        );
        assert_eq!(w.status(&web), AgentStatus::Stopped);
        assert_eq!(w.remains(&web).await, 0);
        assert_eq!(watch.next_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_between_the_two_looks_is_not_a_failure() {
        let w = World::new();
        let web = w.good("web");
        w.start(&web).await.unwrap();
        let mut watch = Watch::new(Duration::ZERO);
        // What a stop leaves for a moment: the container gone, the record
        // still running.
        let agent = w.state.agent(&web).unwrap();
        let id = agent.container_id.clone().unwrap();
        w.engine
            .remove_container(&id, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(w.pass(&mut watch).await, vec![]);
        w.lifecycle().stop(&web).await.unwrap();
        tokio::time::advance(CONFIRM).await;
        assert_eq!(w.pass(&mut watch).await, vec![]);
        assert_eq!(w.status(&web), AgentStatus::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_between_the_two_looks_runs_on() {
        let w = World::new();
        let web = w.good("web");
        w.died(&web).await;
        let mut watch = Watch::new(Duration::ZERO);
        assert_eq!(w.pass(&mut watch).await, vec![]);
        // The user restarts it: the start heals the dead run first.
        let again = w.start(&web).await.unwrap();
        tokio::time::advance(CONFIRM).await;
        assert_eq!(w.pass(&mut watch).await, vec![]);
        assert_eq!(w.status(&web), AgentStatus::Running);
        w.assert_runs(&again.container_id).await;
    }

    /// `docker restart` of a dead agent's container: the watcher had it
    /// failed, and finds it running again before its grace ends.
    #[tokio::test(start_paused = true)]
    async fn a_failed_agent_whose_container_runs_again_is_running() {
        let w = World::new();
        let web = w.good("web");
        let started = w.died(&web).await;
        let mut watch = Watch::new(GRACE);
        w.pass(&mut watch).await;
        tokio::time::advance(CONFIRM).await;
        let failed = w.pass(&mut watch).await;
        assert!(
            matches!(&failed[..], [WatchAction::Failed { .. }]),
            "{failed:?}"
        );
        w.engine
            .set_state(&started.container_id, ContainerState::Running);
        assert_eq!(
            w.pass(&mut watch).await,
            vec![WatchAction::Revived { agent: web.clone() }]
        );
        assert_eq!(w.status(&web), AgentStatus::Running);
        tokio::time::advance(GRACE * 2).await;
        assert_eq!(w.pass(&mut watch).await, vec![]);
        w.assert_runs(&started.container_id).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashed_start_is_reaped_at_once_and_a_running_agent_never() {
        let w = World::new();
        let (crashed, live) = (w.good("crashed"), w.good("live"));
        w.killed_start(&crashed);
        let running = w.start(&live).await.unwrap();
        let mut watch = Watch::new(GRACE);
        let actions = w.pass(&mut watch).await;
        assert!(
            matches!(&actions[..], [WatchAction::Cleaned { agent, finding }]
                if *agent == crashed && finding.contains("crashed")),
            "{actions:?}"
        );
        assert_eq!(w.status(&crashed), AgentStatus::Stopped);
        assert_eq!(w.remains(&crashed).await, 0);
        tokio::time::advance(GRACE * 2).await;
        assert_eq!(w.pass(&mut watch).await, vec![]);
        assert_eq!(w.status(&live), AgentStatus::Running);
        w.assert_runs(&running.container_id).await;
    }
}
