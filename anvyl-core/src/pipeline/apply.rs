//! Applying a plan. Each item is inspected again before it is removed and
//! acted on only if it is still what the plan named (the same owner, the same
//! image id), so a resource made or changed after planning is never swept.
//! Items run with bounded concurrency; a 404 counts as done, a 409 is retried
//! with a bounded, doubling backoff.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;

use futures::stream::{self, StreamExt};

use super::{
    Cleanup, ItemReport, Outcome, Plan, PlannedContainer, PlannedDir, PlannedImage, PlannedReset,
    Report, SkipReason, Step, StepReport,
};
use crate::backend::BackendError;
use crate::name::AgentName;
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

    async fn remove_containers(&self, planned: &[PlannedContainer]) -> Vec<ItemReport> {
        if planned.is_empty() {
            return Vec::new();
        }
        let known = match self.known_agents() {
            Ok(known) => known,
            Err(e) => {
                return planned
                    .iter()
                    .map(|c| failed(&c.name, &c.agent, &e))
                    .collect()
            }
        };
        let known = &known;
        let stop_timeout = self.settings.stop_timeout;
        self.for_each(planned, |c| async move {
            // Ownership is checked on the engine's answer of this moment,
            // not the plan's memory: a container whose labels or name no
            // longer make it this agent's is left alone.
            match self.backend.inspect_container(&c.id).await {
                Ok(now) => match self.ownership.container_owner(&now, known) {
                    Some((agent, _)) if agent == c.agent => {}
                    _ => return skipped(&c.name, &c.agent, SkipReason::NoLongerOwned),
                },
                Err(e) if e.is_not_found() => return item(&c.name, &c.agent, Outcome::AlreadyGone),
                Err(e) => return failed(&c.name, &c.agent, &e),
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
        })
        .await
    }

    async fn remove_images(&self, planned: &[PlannedImage]) -> Vec<ItemReport> {
        // Where each planned reference points now. An image id is a hash of
        // the image's config, labels included, so the same id means the same
        // owner; another id means it was rebuilt or retagged after planning.
        // All are asked before any is removed: Podman 4.3 can answer an image
        // inspect with a nil-pointer panic (HTTP 500) while another image is
        // being removed.
        let current: Vec<_> = stream::iter(planned)
            .map(|i| async move { (i, self.backend.inspect_image(&i.reference).await) })
            .buffered(self.settings.parallelism.max(1))
            .collect()
            .await;
        let engine = self.backend.kind().engine_name();
        self.for_each(&current, |(i, now)| async move {
            match now {
                Ok(now) if now.id == i.image_id => {}
                Ok(_) => return skipped(&i.display, &i.agent, SkipReason::ReplacedAfterPlan),
                Err(e) if e.is_not_found() => {
                    return item(&i.display, &i.agent, Outcome::AlreadyGone)
                }
                Err(e) => return failed(&i.display, &i.agent, e),
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
        })
        .await
    }

    /// The agents the state store knows now (legacy ownership needs them).
    fn known_agents(&self) -> Result<BTreeSet<AgentName>, crate::state::StateError> {
        Ok(self.state.agents()?.into_iter().map(|a| a.name).collect())
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
