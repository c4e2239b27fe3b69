//! Planning: list what the engine and the build root hold, then read the
//! state, keep what is anvyl's by the ownership rule and in scope, and set
//! aside the live resources of running agents and of starts in progress.
//! The order is the fence: a start is recorded before it creates anything,
//! so whatever the listings saw belongs to a start the state read knows.

use std::collections::BTreeSet;

use super::{
    Cleanup, CleanupError, Kept, Plan, PlannedContainer, PlannedDir, PlannedImage, PlannedReset,
    Scope,
};
use crate::backend::{ContainerState, ContainerSummary, ImageSummary};
use crate::build_root::FoundDir;
use crate::ids::StartId;
use crate::name::AgentName;
use crate::ownership::{start_of, Claim, LABEL_START};
use crate::state::{AgentRecord, AgentStatus, StartRecord, SUCCEEDED};

use super::live::Live;

/// What the state said, to judge each listed resource by.
#[derive(Clone, Copy)]
struct Judge<'s> {
    scope: &'s Scope,
    /// The agents the state knows (unlabelled resources need them).
    known: &'s BTreeSet<AgentName>,
    live: &'s Live,
    starts: &'s [StartRecord],
}

/// What live resources a scope must spare: none for a failed start's own
/// cleanup, which removes exactly what that start made.
fn judged<'l>(scope: &Scope, live: &'l Live) -> Option<&'l Live> {
    match scope {
        Scope::Start(_) => None,
        _ => Some(live),
    }
}

/// Why an unlabelled look-alike stays unless the user asks.
const UNLABELLED: &str = "unlabelled — not removed (--include-unlabelled removes it)";

impl Cleanup<'_> {
    /// Decides what a cleanup of `scope` removes. It removes and resets
    /// nothing; judging a running agent may restore its engine's pruned
    /// marker volume (see [`crate::identity`]).
    pub async fn plan(&self, scope: Scope) -> Result<Plan, CleanupError> {
        // First what exists — the engine's listings (concurrently: one
        // round-trip's latency) and the build root — and only then the state.
        let owns_steps = self.settings.build_cache == super::BuildCache::Remove;
        let (containers, images, dangling, tree) = if self.part.has_engine() {
            futures::try_join!(
                self.fetch_containers(&scope),
                self.fetch_images(&scope),
                async { Ok::<_, CleanupError>(self.backend.count_dangling_images().await?) },
                async {
                    Ok::<_, CleanupError>(match owns_steps {
                        true => Some(self.backend.list_image_tree().await?),
                        false => None,
                    })
                },
            )?
        } else {
            (Vec::new(), Vec::new(), 0, None)
        };
        let dirs = if self.part.has_build_root() {
            self.build_root.list()
        } else {
            Ok(Vec::new())
        };

        // An adopted installation's agents are not in this state store: none
        // is known, surveyed or reset here, and the build root (this
        // installation's) is not theirs. Starts this state records as live
        // stay live all the same: a store whose installation id was lost
        // still knows its running agents.
        let adopting = self.settings.adopt.is_some();
        let (agent_rows, start_rows) = (self.state.agent_rows()?, self.state.start_rows()?);
        let no_agents = Vec::new();
        let agents = if adopting {
            &no_agents
        } else {
            &agent_rows.rows
        };
        let starts = &start_rows.rows;
        let other_instances = match scope {
            Scope::All => self.other_instances(&containers, &images),
            _ => Vec::new(),
        };
        let dirs = if adopting { Ok(Vec::new()) } else { dirs };
        let known: BTreeSet<AgentName> = agents.iter().map(|a| a.name.clone()).collect();
        let own = match &scope {
            Scope::Start(id) => Some(id),
            _ => None,
        };
        let (mut live, resets) = if self.part.has_engine() {
            self.survey_agents(&scope, agents, starts).await?
        } else {
            (Live::default(), Vec::new())
        };
        let mut of_state = Live::of_state(&agent_rows, &start_rows, own);
        // A stale "running" agent's start is not live: its resources are
        // what this cleanup is for.
        for stale in resets.iter().filter(|r| r.stale) {
            if let Some(start) = &stale.start {
                of_state.starts.remove(start);
            }
            of_state.agents.remove(&stale.agent);
        }
        live.starts = of_state.starts;
        live.starting = of_state.starting;
        live.agents = of_state.agents;
        live.unreadable = of_state.unreadable;
        live.only_listed = of_state.only_listed;
        if adopting {
            live.keep_possibly_live(&containers, &self.ownership);
        }

        let mut plan = Plan {
            scope: scope.clone(),
            containers: Vec::new(),
            images: Vec::new(),
            build_steps: Vec::new(),
            forget_steps: Vec::new(),
            build_dirs: Vec::new(),
            resets,
            kept: Vec::new(),
            dangling_images: dangling,
            build_root_error: None,
            other_instances,
        };
        let judge = Judge {
            scope: &scope,
            known: &known,
            live: &live,
            starts,
        };
        self.plan_containers(&judge, containers, &mut plan);
        self.plan_images(&judge, images, &mut plan);
        match dirs {
            Ok(dirs) => self.plan_build_dirs(&scope, &live, dirs, &mut plan),
            Err(e) => plan.build_root_error = Some(e.to_string()),
        }
        // What is kept for restarts, before the build steps are judged: a
        // step below a kept image is not planned at all.
        let retention = &self.settings.retention;
        let last = super::retention::last_active(agents, starts);
        let now = crate::state::now();
        plan.retain(retention, &last, now);
        if let Some(tree) = &tree {
            self.plan_build_steps(&scope, tree, &live, &mut plan)
                .await?;
            plan.retain(retention, &last, now);
            plan.discount_planned_steps(tree);
        }
        Ok(plan)
    }

    /// Finds the live containers and images of running agents, and the
    /// statuses to reset. An agent recorded as running whose container is
    /// gone or exited is stale: not live, and reset.
    async fn survey_agents(
        &self,
        scope: &Scope,
        agents: &[AgentRecord],
        starts: &[StartRecord],
    ) -> Result<(Live, Vec<PlannedReset>), CleanupError> {
        let mut live = Live::default();
        let mut resets = Vec::new();
        // Asked only when a running agent of this host is judged.
        let engine = crate::identity::EngineIdentity::of(self.backend);
        for agent in agents {
            let reset = |stale| PlannedReset {
                agent: agent.name.clone(),
                from: agent.status,
                start: agent.current_start.clone(),
                stale,
            };
            match scope {
                // The starter cleans up after itself: its own start is not
                // "in progress" to it, and the agent is reset if it is
                // still that start's.
                Scope::Start(id) => {
                    if agent.current_start.as_ref() == Some(id) {
                        resets.push(reset(false));
                    }
                    continue;
                }
                Scope::Agent(name) if name != &agent.name => continue,
                _ => {}
            }
            // An agent of another host is judged by its own host's engine
            // only: here its container is simply not to be seen. Its
            // current start stays live (see `Live::of_state`).
            if agent.home(starts) != self.host {
                continue;
            }
            // Nor, while it runs, by another engine behind the same host
            // name: `local` follows the configuration, which may point
            // elsewhere today, and there its container would look gone.
            // Any other status is safe to reset from anywhere: nothing runs,
            // and a start in progress is kept by its lock below.
            let running = agent.status == AgentStatus::Running;
            if running
                && !engine
                    .judges(agent.engine.as_ref(), agent.container_id.as_deref())
                    .await?
            {
                continue;
            }
            match agent.status {
                AgentStatus::Stopped => {}
                AgentStatus::Failed => resets.push(reset(false)),
                AgentStatus::Starting => {
                    let in_progress = starts
                        .iter()
                        .any(|s| Some(&s.id) == agent.current_start.as_ref() && s.is_live());
                    if !in_progress {
                        resets.push(reset(false));
                    }
                }
                AgentStatus::Running => match self.running_container(agent).await? {
                    Some(container) => {
                        live.containers.insert(container.id);
                        live.images.insert(container.image_id);
                    }
                    None => resets.push(reset(true)),
                },
            }
        }
        Ok((live, resets))
    }

    /// The container of a running agent, if it really runs — or its engine
    /// is restarting it (see [`ContainerSummary::will_restart`]).
    async fn running_container(
        &self,
        agent: &AgentRecord,
    ) -> Result<Option<ContainerSummary>, CleanupError> {
        let Some(id) = &agent.container_id else {
            return Ok(None);
        };
        match self.backend.inspect_container(id).await {
            Ok(c) if c.state == ContainerState::Running || c.will_restart() => Ok(Some(c)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an owned item stays, and why: live, or unlabelled without
    /// the user's say-so. A failed start's own items never stay.
    fn keep_reason(
        &self,
        live: Option<&Live>,
        claim: Claim,
        agent: &AgentName,
        start: Option<&StartId>,
        id: &str,
        is_image: bool,
    ) -> Option<String> {
        if claim == Claim::LegacyName && !self.settings.include_unlabelled {
            return Some(UNLABELLED.into());
        }
        live.and_then(|live| live.reason(agent, start, Some(id), is_image))
    }

    fn plan_containers(&self, judge: &Judge<'_>, found: Vec<ContainerSummary>, plan: &mut Plan) {
        let Judge {
            scope, known, live, ..
        } = *judge;
        let mut seen = BTreeSet::new();
        for container in found {
            if !seen.insert(container.id.clone()) {
                continue;
            }
            let Some((agent, claim)) = self.ownership.container_owner(&container, known) else {
                continue;
            };
            if !Self::in_scope(scope, &agent, &container.labels, claim) {
                continue;
            }
            let start = start_of(&container.labels, claim);
            match self.keep_reason(
                judged(scope, live),
                claim,
                &agent,
                start.as_ref(),
                &container.id,
                false,
            ) {
                Some(reason) => plan.kept.push(Kept {
                    what: format!("container {}", container.name),
                    reason,
                }),
                None => plan.containers.push(PlannedContainer {
                    id: container.id,
                    name: container.name,
                    agent,
                    start,
                    claim,
                }),
            }
        }
        // Natural order, as people count: web-2 before web-10.
        plan.containers
            .sort_by(|a, b| natord::compare(&a.name, &b.name).then(a.id.cmp(&b.id)));
    }

    fn plan_images(&self, judge: &Judge<'_>, found: Vec<ImageSummary>, plan: &mut Plan) {
        let Judge {
            scope,
            known,
            live,
            starts,
        } = *judge;
        let mut seen = BTreeSet::new();
        let mut planned = BTreeSet::new();
        for image in found {
            if !seen.insert(image.id.clone()) {
                continue;
            }
            for (agent, claim, reference, display) in
                self.owned_references(scope, &image, known, starts)
            {
                if !Self::in_scope(scope, &agent, &image.labels, claim) {
                    continue;
                }
                let start = start_of(&image.labels, claim);
                match self.keep_reason(
                    judged(scope, live),
                    claim,
                    &agent,
                    start.as_ref(),
                    &image.id,
                    true,
                ) {
                    Some(reason) => plan.kept.push(Kept {
                        what: format!("image {display}"),
                        reason,
                    }),
                    None if planned.insert(reference.clone()) => plan.images.push(PlannedImage {
                        reference,
                        display,
                        image_id: image.id.clone(),
                        agent,
                        start,
                        claim,
                    }),
                    None => {}
                }
            }
        }
        plan.images
            .sort_by(|a, b| natord::compare(&a.display, &b.display));
    }

    /// The references of `image` that are ours: its owned tags, or its id
    /// when it is an untagged image carrying our labels from a start that
    /// did not succeed (a build that finished after its start was
    /// interrupted or crashed). Engines copy labels into every image built
    /// FROM anvyl's or committed from its container: an untagged image of a
    /// start that ran is a user's as likely as not, and stays.
    fn owned_references(
        &self,
        scope: &Scope,
        image: &ImageSummary,
        known: &BTreeSet<AgentName>,
        starts: &[StartRecord],
    ) -> Vec<(AgentName, Claim, String, String)> {
        if let Some(agent) = self.ownership.untagged_owner(image) {
            let start = image.labels.get(LABEL_START).map(StartId::from_stored);
            let unsuccessful = match (scope, &start) {
                (Scope::Start(own), Some(start)) if own == start => true,
                (_, Some(start)) => starts
                    .iter()
                    .any(|s| &s.id == start && s.outcome.as_deref() != Some(SUCCEEDED)),
                (_, None) => false,
            };
            if !unsuccessful {
                return Vec::new();
            }
            let short = image.id.trim_start_matches("sha256:");
            let short = &short[..short.len().min(12)];
            return vec![(
                agent,
                Claim::Labelled,
                image.id.clone(),
                format!("<none> ({short})"),
            )];
        }
        self.ownership
            .owned_tags(image, known)
            .into_iter()
            .map(|(tag, agent, claim)| (agent, claim, tag.reference.clone(), tag.to_string()))
            .collect()
    }

    /// Build directories are anvyl's by their place and name alone
    /// (`<agent>.<start>` directly below the build root): a failed start's
    /// own, or any whose start is not live.
    fn plan_build_dirs(&self, scope: &Scope, live: &Live, found: Vec<FoundDir>, plan: &mut Plan) {
        for dir in found {
            let in_scope = match scope {
                Scope::Start(id) => &dir.start == id,
                Scope::Agent(name) => &dir.agent == name,
                Scope::All => true,
            };
            if !in_scope {
                continue;
            }
            let reason = judged(scope, live)
                .and_then(|live| live.reason(&dir.agent, Some(&dir.start), None, false));
            if let Some(reason) = reason {
                plan.kept.push(Kept {
                    what: format!("build directory {}", dir.path.display()),
                    reason,
                });
                continue;
            }
            plan.build_dirs.push(PlannedDir {
                path: dir.path,
                name: dir.name,
                agent: dir.agent,
                start: dir.start,
            });
        }
    }
}
