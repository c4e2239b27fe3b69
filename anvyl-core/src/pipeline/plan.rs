//! Planning: list what the engine and the build root hold, keep what is
//! anvyl's by the ownership rule and in scope, and set aside the live
//! resources of running agents and of starts still in progress.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{
    Cleanup, CleanupError, Kept, Plan, PlannedContainer, PlannedDir, PlannedImage, PlannedReset,
    Scope,
};
use crate::backend::{ContainerState, ContainerSummary, ImageSummary, Labels, Query};
use crate::name::{AgentName, RESOURCE_PREFIX};
use crate::ownership::{Claim, LABEL_START};
use crate::state::{AgentRecord, AgentStatus, StartRecord};

/// What must not be touched while planning: live containers and images of
/// running agents, and agents with a start in progress.
#[derive(Default)]
struct Live {
    containers: BTreeSet<String>,
    images: BTreeSet<String>,
    starting: BTreeMap<AgentName, u32>,
}

impl Live {
    fn reason(&self, agent: &AgentName, id: &str, is_image: bool) -> Option<String> {
        if let Some(pid) = self.starting.get(agent) {
            return Some(format!("a start of '{agent}' is in progress (pid {pid})"));
        }
        let live = if is_image {
            self.images.contains(id)
        } else {
            self.containers.contains(id)
        };
        live.then(|| format!("in use by running agent '{agent}'"))
    }
}

impl Cleanup<'_> {
    /// Decides what a cleanup of `scope` removes. Reads only: nothing is
    /// changed, on the engine or in the state store.
    pub async fn plan(&self, scope: Scope) -> Result<Plan, CleanupError> {
        let agents = self.state.agents()?;
        let starts = self.state.starts()?;
        let known: BTreeSet<AgentName> = agents.iter().map(|a| a.name.clone()).collect();
        let start = match &scope {
            Scope::Start(id) => starts.iter().find(|s| &s.id == id),
            _ => None,
        };

        // The agents' survey and the engine's listings do not depend on each
        // other: one round-trip's latency instead of five.
        let (survey, containers, images, dangling) = futures::try_join!(
            self.survey_agents(&scope, start, &agents, &starts),
            self.fetch_containers(&scope),
            self.fetch_images(&scope, &known),
            async { Ok(self.backend.count_dangling_images().await?) },
        )?;
        let (live, resets) = survey;
        let mut plan = Plan {
            scope: scope.clone(),
            containers: Vec::new(),
            images: Vec::new(),
            build_dirs: Vec::new(),
            resets,
            kept: Vec::new(),
            dangling_images: 0,
        };
        self.plan_containers(&scope, &known, &live, containers, &mut plan);
        self.plan_images(&scope, &known, &live, images, &mut plan);
        self.plan_build_dirs(&scope, start, &starts, &live, &mut plan)?;
        plan.dangling_images = dangling;
        Ok(plan)
    }

    /// Finds the live resources to spare and the statuses to reset. An agent
    /// recorded as running whose container is gone or exited is stale: not
    /// live, and reset.
    async fn survey_agents(
        &self,
        scope: &Scope,
        start: Option<&StartRecord>,
        agents: &[AgentRecord],
        starts: &[StartRecord],
    ) -> Result<(Live, Vec<PlannedReset>), CleanupError> {
        let mut live = Live::default();
        let mut resets = Vec::new();
        for agent in agents {
            let reset = |stale| PlannedReset {
                agent: agent.name.clone(),
                from: agent.status,
                stale,
            };
            match scope {
                // The starter cleans up after itself: its own start is not
                // "in progress" to it, and the agent is reset whatever it says.
                Scope::Start(_) => {
                    if start.is_some_and(|s| s.agent == agent.name) {
                        resets.push(reset(false));
                    }
                    continue;
                }
                Scope::Agent(name) if name != &agent.name => continue,
                _ => {}
            }
            match agent.status {
                AgentStatus::Stopped => {}
                AgentStatus::Failed => resets.push(reset(false)),
                AgentStatus::Starting => {
                    let in_progress = starts
                        .iter()
                        .find(|s| Some(&s.id) == agent.current_start.as_ref() && s.is_live());
                    match in_progress {
                        Some(s) => {
                            live.starting.insert(agent.name.clone(), s.pid);
                        }
                        None => resets.push(reset(false)),
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

    /// The container of a running agent, if it really runs.
    async fn running_container(
        &self,
        agent: &AgentRecord,
    ) -> Result<Option<ContainerSummary>, CleanupError> {
        let Some(id) = &agent.container_id else {
            return Ok(None);
        };
        match self.backend.inspect_container(id).await {
            Ok(c) if c.state == ContainerState::Running => Ok(Some(c)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The label selector of `scope`.
    fn selector(&self, scope: &Scope) -> Labels {
        match scope {
            Scope::Start(id) => self.ownership.selector(None, Some(id)),
            Scope::Agent(agent) => self.ownership.selector(Some(agent), None),
            Scope::All => self.ownership.selector(None, None),
        }
    }

    /// Whether a resource of `agent` with `labels` falls in `scope`. Server
    /// filters already narrowed the listing; this is the exact client check.
    fn in_scope(scope: &Scope, agent: &AgentName, labels: &Labels, claim: Claim) -> bool {
        match scope {
            Scope::Start(id) => {
                claim == Claim::Labelled
                    && labels.get(LABEL_START).map(String::as_str) == Some(id.as_str())
            }
            Scope::Agent(name) => name == agent,
            Scope::All => true,
        }
    }

    /// The candidates for this installation's containers in scope, found by
    /// one listing. A labelled container is ours only under the exact name
    /// `anvyl-agent-<agent>` (engines copy an image's labels into every
    /// container made from it), so outside a start one name listing finds
    /// labelled and legacy containers alike: one scan of the engine's
    /// containers, not two. Owners are decided on the client afterwards.
    async fn fetch_containers(&self, scope: &Scope) -> Result<Vec<ContainerSummary>, CleanupError> {
        let query = match scope {
            Scope::Start(_) => Query::labelled(self.selector(scope)),
            Scope::Agent(agent) => Query::named(agent.resource_name()),
            // A name filter matches substrings: a hint, compared exactly later.
            Scope::All => Query::named(RESOURCE_PREFIX),
        };
        Ok(self.backend.list_containers(&query).await?)
    }

    /// This installation's labelled images in scope, and the legacy
    /// candidates by reference (compared exactly later).
    async fn fetch_images(
        &self,
        scope: &Scope,
        known: &BTreeSet<AgentName>,
    ) -> Result<Vec<ImageSummary>, CleanupError> {
        let labelled = Query::labelled(self.selector(scope));
        let legacy = async {
            match scope {
                Scope::Agent(agent) if known.contains(agent) => {
                    self.backend
                        .list_images(&Query::named(agent.resource_name()))
                        .await
                }
                // A glob is only a server-side hint; tags are compared exactly.
                Scope::All if !known.is_empty() => {
                    self.backend
                        .list_images(&Query::named(format!("{RESOURCE_PREFIX}*")))
                        .await
                }
                _ => Ok(Vec::new()),
            }
        };
        let (mut found, legacy) = futures::try_join!(self.backend.list_images(&labelled), legacy)?;
        found.extend(legacy);
        Ok(found)
    }

    fn plan_containers(
        &self,
        scope: &Scope,
        known: &BTreeSet<AgentName>,
        live: &Live,
        found: Vec<ContainerSummary>,
        plan: &mut Plan,
    ) {
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
            let reason = match scope {
                Scope::Start(_) => None,
                _ => live.reason(&agent, &container.id, false),
            };
            match reason {
                Some(reason) => plan.kept.push(Kept {
                    what: format!("container {}", container.name),
                    reason,
                }),
                None => plan.containers.push(PlannedContainer {
                    id: container.id,
                    name: container.name,
                    agent,
                    claim,
                }),
            }
        }
        plan.containers
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    }

    fn plan_images(
        &self,
        scope: &Scope,
        known: &BTreeSet<AgentName>,
        live: &Live,
        found: Vec<ImageSummary>,
        plan: &mut Plan,
    ) {
        let mut seen = BTreeSet::new();
        let mut planned = BTreeSet::new();
        for image in found {
            if !seen.insert(image.id.clone()) {
                continue;
            }
            for (agent, claim, reference, display) in self.owned_references(&image, known) {
                if !Self::in_scope(scope, &agent, &image.labels, claim) {
                    continue;
                }
                let reason = match scope {
                    Scope::Start(_) => None,
                    _ => live.reason(&agent, &image.id, true),
                };
                match reason {
                    Some(reason) => plan.kept.push(Kept {
                        what: format!("image {display}"),
                        reason,
                    }),
                    None if planned.insert(reference.clone()) => plan.images.push(PlannedImage {
                        reference,
                        display,
                        image_id: image.id.clone(),
                        agent,
                        claim,
                    }),
                    None => {}
                }
            }
        }
        plan.images.sort_by(|a, b| a.display.cmp(&b.display));
    }

    /// The references of `image` that are ours: its owned tags, or its id
    /// when it is an untagged image carrying our labels.
    fn owned_references(
        &self,
        image: &ImageSummary,
        known: &BTreeSet<AgentName>,
    ) -> Vec<(AgentName, Claim, String, String)> {
        if let Some(agent) = self.ownership.untagged_owner(image) {
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

    fn plan_build_dirs(
        &self,
        scope: &Scope,
        start: Option<&StartRecord>,
        starts: &[StartRecord],
        live: &Live,
        plan: &mut Plan,
    ) -> Result<(), CleanupError> {
        if let Scope::Start(_) = scope {
            if let Some(dir) = start.and_then(|s| s.build_dir.as_ref()) {
                if dir.exists() {
                    plan.build_dirs.push(PlannedDir {
                        path: dir.clone(),
                        agent: start.map(|s| s.agent.clone()).expect("dir implies start"),
                    });
                }
            }
            return Ok(());
        }
        let in_use: BTreeSet<&PathBuf> = starts
            .iter()
            .filter(|s| s.is_live())
            .filter_map(|s| s.build_dir.as_ref())
            .collect();
        for (path, agent) in build_dirs(&self.build_root)? {
            if !Self::in_scope(scope, &agent, &Labels::new(), Claim::Labelled) {
                continue;
            }
            if in_use.contains(&path) || live.starting.contains_key(&agent) {
                plan.kept.push(Kept {
                    what: format!("build directory {}", path.display()),
                    reason: format!("a start of '{agent}' is in progress"),
                });
            } else {
                plan.build_dirs.push(PlannedDir { path, agent });
            }
        }
        Ok(())
    }
}

/// Build directories are named `<agent>.<random>` directly below the build
/// root; anything else there is not anvyl's and is ignored.
fn build_dirs(root: &Path) -> Result<Vec<(PathBuf, AgentName)>, CleanupError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CleanupError::BuildRoot {
                path: root.display().to_string(),
                source,
            })
        }
    };
    let mut dirs: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (agent, _) = name.split_once('.')?;
            Some((entry.path(), AgentName::new(agent).ok()?))
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The prefix of a build directory of `agent` (the part before the random
/// suffix `tempfile` adds).
pub fn build_dir_prefix(agent: &AgentName) -> String {
    format!("{agent}.")
}
