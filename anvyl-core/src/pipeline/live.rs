//! What a plan must not touch, read from the state before the listings are
//! judged: the live containers and images of running agents, the starts
//! that are live, and the agents with a start in progress. The plan sets
//! them aside; the apply asks again, item by item, before it removes.

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::{ContainerState, ContainerSummary};
use crate::ids::StartId;
use crate::name::AgentName;
use crate::ownership::{Ownership, LABEL_START};
use crate::state::{AgentRecord, AgentStatus, Rows, StartRecord};

/// What must not be touched while planning: live containers and images of
/// running agents, the starts that are live, and agents with a start in
/// progress.
#[derive(Default)]
pub(super) struct Live {
    pub(super) containers: BTreeSet<String>,
    pub(super) images: BTreeSet<String>,
    pub(super) starts: BTreeSet<StartId>,
    pub(super) starting: BTreeMap<AgentName, u32>,
    /// Agents with a live start, running or starting.
    pub(super) agents: BTreeSet<AgentName>,
    /// Agents whose state row cannot be read: nothing of them can be judged.
    pub(super) unreadable: BTreeSet<AgentName>,
    /// When a row's key itself is no agent name (NULL, a number): the
    /// agents the state does list, whose resources alone can be judged —
    /// that row may have been any other agent's.
    pub(super) only_listed: Option<BTreeSet<AgentName>>,
    /// A start row cannot be read: it may be a start in progress.
    pub(super) unreadable_starts: bool,
}

impl Live {
    /// Why an item of `agent` from `start` must be left after all: its start
    /// is live now, or — unlabelled, with no start — its agent has a live start.
    pub(super) fn changed(&self, agent: &AgentName, start: Option<&StartId>) -> Option<String> {
        if let Some(why) = self.unreadable(agent) {
            return Some(why);
        }
        match start {
            Some(start) if self.starts.contains(start) => {
                Some(format!("start {start} of '{agent}' is live"))
            }
            Some(_) => None,
            None => self
                .agents
                .contains(agent)
                .then(|| format!("agent '{agent}' has a live start")),
        }
    }

    /// The live starts and starting agents the state shows now; `own` (the
    /// start a failed starter is cleaning up) does not count. A start or an
    /// agent whose row cannot be read counts as live.
    pub(super) fn of_state(
        agents: &Rows<AgentRecord>,
        starts: &Rows<StartRecord>,
        own: Option<&StartId>,
    ) -> Self {
        let nameless =
            (agents.unreadable.iter()).any(|name| AgentName::new(name.as_str()).is_err());
        let mut live = Live {
            unreadable: (agents.unreadable.iter())
                .filter_map(|name| AgentName::new(name.as_str()).ok())
                .collect(),
            only_listed: nameless.then(|| agents.rows.iter().map(|a| a.name.clone()).collect()),
            starts: (starts.unreadable.iter())
                .map(StartId::from_stored)
                .filter(|s| Some(s) != own)
                .collect(),
            unreadable_starts: (starts.unreadable.iter())
                .any(|s| Some(s.as_str()) != own.map(StartId::as_str)),
            ..Live::default()
        };
        for agent in &agents.rows {
            let Some(current) = agent.current_start.as_ref().filter(|s| Some(*s) != own) else {
                continue;
            };
            match agent.status {
                AgentStatus::Running => {
                    live.starts.insert(current.clone());
                    live.agents.insert(agent.name.clone());
                }
                AgentStatus::Starting => {
                    if let Some(s) = starts.rows.iter().find(|s| &s.id == current && s.is_live()) {
                        live.starts.insert(current.clone());
                        live.starting.insert(agent.name.clone(), s.pid);
                        live.agents.insert(agent.name.clone());
                    }
                }
                AgentStatus::Stopped | AgentStatus::Failed => {}
            }
        }
        live
    }

    /// Keeps what runs of an adopted installation. Its liveness is in its
    /// own state store, which this one cannot read: a running container of
    /// it may be that installation's live agent, and a created one the
    /// container of its start in progress, so it stays, with its image and
    /// everything of its start. Only a stopped installation is adopted
    /// whole; a cleanup run then removes what has stopped since.
    pub(super) fn keep_possibly_live(
        &mut self,
        containers: &[ContainerSummary],
        theirs: &Ownership,
    ) {
        for c in containers {
            if !may_be_live(c) || theirs.labelled_agent(&c.labels).is_none() {
                continue;
            }
            self.containers.insert(c.id.clone());
            self.images.insert(c.image_id.clone());
            if let Some(start) = c.labels.get(LABEL_START) {
                self.starts.insert(StartId::from_stored(start.as_str()));
            }
        }
    }

    /// Why nothing of `agent` can be judged, if so.
    pub(super) fn unreadable(&self, agent: &AgentName) -> Option<String> {
        if self
            .only_listed
            .as_ref()
            .is_some_and(|l| !l.contains(agent))
        {
            return Some(format!(
                "a state row whose name cannot be read may be agent '{agent}''s; nothing of it is judged"
            ));
        }
        self.unreadable.contains(agent).then(|| {
            format!("the state row of agent '{agent}' cannot be read; nothing of it is judged")
        })
    }

    /// Why a resource of `agent` from `start` must stay, if it must.
    pub(super) fn reason(
        &self,
        agent: &AgentName,
        start: Option<&StartId>,
        id: Option<&str>,
        is_image: bool,
    ) -> Option<String> {
        if let Some(why) = self.unreadable(agent) {
            return Some(why);
        }
        if let Some(pid) = self.starting.get(agent) {
            return Some(format!("a start of '{agent}' is in progress (pid {pid})"));
        }
        let in_use = match (id, is_image) {
            (Some(id), true) => self.images.contains(id),
            (Some(id), false) => self.containers.contains(id),
            (None, _) => false,
        };
        (in_use || start.is_some_and(|s| self.starts.contains(s)))
            .then(|| format!("in use by running agent '{agent}'"))
    }
}

/// Whether a container may belong to a live agent or start of an
/// installation whose state cannot be read: running (or paused), or created
/// and not yet started.
pub(super) fn may_be_live(c: &ContainerSummary) -> bool {
    matches!(c.state, ContainerState::Running | ContainerState::Created)
}
