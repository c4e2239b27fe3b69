//! Applying a plan. Each step re-lists what it is about to remove and acts
//! only on ids and tags the plan named that still match, so a resource made
//! after planning is never swept. Items run with bounded concurrency; a 404
//! counts as done, a 409 is retried with a bounded, doubling backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;

use futures::stream::{self, StreamExt};

use super::{
    Cleanup, ItemReport, Outcome, Plan, PlannedContainer, PlannedDir, PlannedImage, PlannedReset,
    Report, SkipReason, Step, StepReport,
};
use crate::backend::{BackendError, Query};
use crate::name::AgentName;
use crate::ownership::Claim;
use crate::state::AgentStatus;

impl Cleanup<'_> {
    /// Removes what `plan` lists, in four steps, and reports every item.
    pub async fn apply(&self, plan: &Plan) -> Report {
        // Stale running agents are marked failed before anything is removed,
        // so that a concurrent `list` never shows a running agent whose
        // container this cleanup is taking away.
        for reset in plan.resets.iter().filter(|r| r.stale) {
            if let Err(e) = self.state.transition(
                &reset.agent,
                &[AgentStatus::Running],
                AgentStatus::Failed,
                None,
                None,
            ) {
                tracing::debug!("reconciling '{}' to failed: {e}", reset.agent);
            }
        }
        let mut steps = Vec::with_capacity(4);
        for step in Step::ALL {
            let began = std::time::Instant::now();
            let items = match step {
                Step::Containers => self.remove_containers(&plan.containers).await,
                Step::Images => self.remove_images(&plan.images).await,
                Step::BuildDirs => plan.build_dirs.iter().map(|d| self.remove_dir(d)).collect(),
                Step::StatusReset => plan.resets.iter().map(|r| self.reset(r)).collect(),
            };
            tracing::debug!(
                "step {}: {} item(s) in {:.3}s",
                step.title(),
                items.len(),
                began.elapsed().as_secs_f64()
            );
            steps.push(StepReport { step, items });
        }
        Report { steps }
    }

    /// Runs `op`, retrying a conflict with a doubling backoff.
    async fn with_conflict_retry<F, Fut>(&self, mut op: F) -> Result<(), BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), BackendError>>,
    {
        let mut delay = self.settings.conflict_backoff;
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if e.is_conflict() && attempt < self.settings.conflict_retries => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    /// Lists again what the plan's containers were found by, so ownership is
    /// checked on the engine's current answer, not the plan's memory.
    async fn current_container_owners(
        &self,
        planned: &[PlannedContainer],
    ) -> Result<BTreeSet<String>, String> {
        let known: BTreeSet<AgentName> = self
            .state
            .agents()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|a| a.name)
            .collect();
        let agents: BTreeSet<_> = planned.iter().map(|c| &c.agent).collect();
        let mut found = Vec::new();
        let selector = match agents.iter().next() {
            Some(agent) if agents.len() == 1 => self.ownership.selector(Some(agent), None),
            _ => self.ownership.selector(None, None),
        };
        let listing_failed = |e: BackendError| e.to_string();
        found.extend(
            self.backend
                .list_containers(&Query::labelled(selector))
                .await
                .map_err(listing_failed)?,
        );
        for c in planned.iter().filter(|c| c.claim == Claim::LegacyName) {
            found.extend(
                self.backend
                    .list_containers(&Query::named(c.name.clone()))
                    .await
                    .map_err(listing_failed)?,
            );
        }
        let planned_agent: BTreeMap<&str, &AgentName> =
            planned.iter().map(|c| (c.id.as_str(), &c.agent)).collect();
        Ok(found
            .into_iter()
            .filter(|c| {
                let owner = self.ownership.container_owner(c, &known);
                matches!((owner, planned_agent.get(c.id.as_str())), (Some((agent, _)), Some(p)) if &agent == *p)
            })
            .map(|c| c.id)
            .collect())
    }

    async fn remove_containers(&self, planned: &[PlannedContainer]) -> Vec<ItemReport> {
        if planned.is_empty() {
            return Vec::new();
        }
        let owned = match self.current_container_owners(planned).await {
            Ok(owned) => owned,
            Err(e) => {
                return planned
                    .iter()
                    .map(|c| failed(&c.name, &c.agent, &e))
                    .collect()
            }
        };
        let stop_timeout = self.settings.stop_timeout;
        self.for_each(planned, |c| {
            let owned = owned.contains(&c.id);
            async move {
                if !owned {
                    // Either gone, or not ours any more: tell which.
                    return match self.backend.inspect_container(&c.id).await {
                        Err(e) if e.is_not_found() => item(&c.name, &c.agent, Outcome::AlreadyGone),
                        _ => skipped(&c.name, &c.agent, SkipReason::NoLongerOwned),
                    };
                }
                let result = self
                    .with_conflict_retry(|| self.backend.remove_container(&c.id, stop_timeout))
                    .await;
                match result {
                    Ok(()) => {
                        tracing::info!("Removed container by name: {}", c.name);
                        item(&c.name, &c.agent, Outcome::Removed)
                    }
                    Err(e) if e.is_not_found() => item(&c.name, &c.agent, Outcome::AlreadyGone),
                    Err(e) => failed(&c.name, &c.agent, &e),
                }
            }
        })
        .await
    }

    async fn remove_images(&self, planned: &[PlannedImage]) -> Vec<ItemReport> {
        if planned.is_empty() {
            return Vec::new();
        }
        // Where each planned reference points now.
        let current = match self.current_image_ids(planned).await {
            Ok(current) => current,
            Err(e) => {
                return planned
                    .iter()
                    .map(|i| failed(&i.display, &i.agent, &e))
                    .collect()
            }
        };
        let engine = self.backend.kind().engine_name();
        self.for_each(planned, |i| {
            let now = current.get(&i.reference).cloned();
            async move {
                match now {
                    None => return item(&i.display, &i.agent, Outcome::AlreadyGone),
                    Some(id) if id != i.image_id => {
                        return skipped(&i.display, &i.agent, SkipReason::ReplacedAfterPlan)
                    }
                    Some(_) => {}
                }
                let result = self
                    .with_conflict_retry(|| self.backend.remove_image(&i.reference))
                    .await;
                match result {
                    Ok(()) => {
                        tracing::info!("Removed {engine} image: {}", i.display);
                        item(&i.display, &i.agent, Outcome::Removed)
                    }
                    Err(e) if e.is_not_found() => item(&i.display, &i.agent, Outcome::AlreadyGone),
                    Err(BackendError::Conflict { message, .. }) => {
                        tracing::warn!("Kept {engine} image {}: in use: {message}", i.display);
                        skipped(&i.display, &i.agent, SkipReason::InUse(message))
                    }
                    Err(e) => failed(&i.display, &i.agent, &e),
                }
            }
        })
        .await
    }

    /// Maps each planned reference (tag or id) to the id it names now: one
    /// labelled listing for labelled images (it carries every tag), an
    /// inspect for each legacy one. Never a listing of every image.
    async fn current_image_ids(
        &self,
        planned: &[PlannedImage],
    ) -> Result<BTreeMap<String, String>, BackendError> {
        let mut current = BTreeMap::new();
        if planned.iter().any(|i| i.claim == Claim::Labelled) {
            let agents: BTreeSet<&AgentName> = planned.iter().map(|i| &i.agent).collect();
            let selector = match agents.iter().next() {
                Some(agent) if agents.len() == 1 => self.ownership.selector(Some(agent), None),
                _ => self.ownership.selector(None, None),
            };
            for image in self.backend.list_images(&Query::labelled(selector)).await? {
                for tag in &image.tags {
                    current.insert(tag.reference.clone(), image.id.clone());
                }
                current.insert(image.id.clone(), image.id);
            }
        }
        for i in planned.iter().filter(|i| i.claim == Claim::LegacyName) {
            match self.backend.inspect_image(&i.reference).await {
                Ok(image) => {
                    current.insert(i.reference.clone(), image.id);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(current)
    }

    fn remove_dir(&self, dir: &PlannedDir) -> ItemReport {
        let target = dir.path.display().to_string();
        if !is_directly_below(&dir.path, &self.build_root) {
            return skipped(&target, &dir.agent, SkipReason::NotABuildDir);
        }
        // symlink_metadata does not follow a link: a link planted in the
        // build root is skipped, never followed out of it.
        match std::fs::symlink_metadata(&dir.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                item(&target, &dir.agent, Outcome::AlreadyGone)
            }
            Err(e) => item(
                &target,
                &dir.agent,
                Outcome::Failed {
                    error: e.to_string(),
                },
            ),
            Ok(meta) if !meta.is_dir() => skipped(&target, &dir.agent, SkipReason::NotABuildDir),
            // remove_dir_all removes links inside the tree without following them.
            Ok(_) => match std::fs::remove_dir_all(&dir.path) {
                Ok(()) => {
                    tracing::info!("Removed temporary build directory: {target}");
                    item(&target, &dir.agent, Outcome::Removed)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    item(&target, &dir.agent, Outcome::AlreadyGone)
                }
                Err(e) => item(
                    &target,
                    &dir.agent,
                    Outcome::Failed {
                        error: e.to_string(),
                    },
                ),
            },
        }
    }

    fn reset(&self, reset: &PlannedReset) -> ItemReport {
        let target = reset.agent.to_string();
        match self.state.reset_to_stopped(&reset.agent) {
            Ok(true) => {
                tracing::info!("Reset agent '{}' status to stopped", reset.agent);
                item(&target, &reset.agent, Outcome::Removed)
            }
            Ok(false) => item(&target, &reset.agent, Outcome::AlreadyGone),
            Err(e) => item(
                &target,
                &reset.agent,
                Outcome::Failed {
                    error: e.to_string(),
                },
            ),
        }
    }

    /// Runs `op` on every item with the configured concurrency, keeping the
    /// plan's order in the report.
    async fn for_each<'p, T, F, Fut>(&self, items: &'p [T], op: F) -> Vec<ItemReport>
    where
        F: Fn(&'p T) -> Fut,
        Fut: Future<Output = ItemReport>,
    {
        stream::iter(items.iter().map(op))
            .buffered(self.settings.parallelism.max(1))
            .collect()
            .await
    }
}

fn is_directly_below(path: &Path, root: &Path) -> bool {
    path.parent() == Some(root)
}

fn item(target: &str, agent: &AgentName, outcome: Outcome) -> ItemReport {
    ItemReport {
        target: target.to_string(),
        agent: agent.clone(),
        outcome,
    }
}

fn skipped(target: &str, agent: &AgentName, reason: SkipReason) -> ItemReport {
    item(target, agent, Outcome::Skipped { reason })
}

fn failed(target: &str, agent: &AgentName, e: &dyn std::fmt::Display) -> ItemReport {
    tracing::warn!("Failed to remove {target}: {e}");
    item(
        target,
        agent,
        Outcome::Failed {
            error: e.to_string(),
        },
    )
}
