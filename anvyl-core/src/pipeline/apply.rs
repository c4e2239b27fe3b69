//! Applying a plan. Right before each step the state is read again, and
//! an item whose start has become live since the plan — or, unlabelled,
//! whose agent has — is skipped as "changed since the plan". Each item is
//! then inspected and acted on only if it is still what the plan named (the
//! same owner, the same image id), so a resource made or changed after
//! planning is never swept. Status resets are compare-and-set on the status
//! and start the plan saw. Items run with bounded concurrency, tags of one
//! image one after another; a 404 counts as done, a 409 is retried with a
//! bounded, doubling backoff, and a removal that errs but leaves the item
//! gone counts as done.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use backon::{ExponentialBuilder, Retryable};
use futures::stream::{self, StreamExt};

use super::live::{may_be_live, Live};
use super::{
    Cleanup, ItemReport, Outcome, Plan, PlannedContainer, PlannedDir, PlannedImage, PlannedReset,
    Report, Scope, SkipReason, Step, StepReport,
};
use crate::backend::BackendError;
use crate::build_root::Removal;
use crate::ids::StartId;
use crate::name::AgentName;
use crate::state::{AgentStatus, Fence, Fenced, StateError};

impl Cleanup<'_> {
    /// Removes what `plan` lists, in four steps, and reports every item.
    pub async fn apply(&self, plan: &Plan) -> Report {
        // Stale running agents are marked failed before anything is removed,
        // so that a concurrent `list` never shows a running agent whose
        // container this cleanup is taking away — and only if they still
        // run the start the plan judged.
        for reset in plan.resets.iter().filter(|r| r.stale) {
            match self.state.mark_failed(&reset.agent, reset.start.as_ref()) {
                Ok(Fenced::Done) => {}
                Ok(other) => tracing::debug!("'{}' not marked failed: {other:?}", reset.agent),
                Err(e) => tracing::warn!("cannot mark agent '{}' failed: {e}", reset.agent),
            }
        }
        let own = match &plan.scope {
            Scope::Start(id) => Some(id),
            _ => None,
        };
        let mut steps = Vec::with_capacity(4);
        for step in Step::ALL {
            let began = std::time::Instant::now();
            let items = match step {
                Step::Containers => match self.live_now(own) {
                    Ok(live) => self.remove_containers(&plan.containers, &live).await,
                    Err(e) => (plan.containers.iter())
                        .map(|c| self.told(step, ItemReport::failed(&c.name, &c.agent, &e)))
                        .collect(),
                },
                Step::Images => match self.live_now(own) {
                    Ok(live) => {
                        let mut items = self.remove_images(&plan.images, &live).await;
                        items.extend(self.remove_build_steps(plan).await);
                        items
                    }
                    Err(e) => (plan.images.iter().map(|i| (&i.display, &i.agent)))
                        .chain(plan.build_steps.iter().map(|s| (&s.display, &s.agent)))
                        .map(|(what, agent)| self.told(step, ItemReport::failed(what, agent, &e)))
                        .collect(),
                },
                Step::BuildDirs => self.remove_dirs(plan, own),
                Step::StatusReset => (plan.resets.iter())
                    .map(|r| self.told(step, self.reset(r)))
                    .collect(),
            };
            tracing::debug!(
                "step {}: {} ItemReport::of(s) in {:.3}s",
                step.title(),
                items.len(),
                began.elapsed().as_secs_f64()
            );
            steps.push(StepReport { step, items });
        }
        Report { steps }
    }

    /// Tells the progress display that `report` of `step` is done.
    pub(super) fn told(&self, step: Step, report: ItemReport) -> ItemReport {
        self.progress.done(step, &report);
        report
    }

    /// What is live now, by the state as it is at this moment. When it
    /// cannot be read, a step removes nothing and fails every item with why.
    pub(super) fn live_now(&self, own: Option<&StartId>) -> Result<Live, StateError> {
        Ok(Live::of_state(
            &self.state.agent_rows()?,
            &self.state.start_rows()?,
            own,
        ))
    }

    /// Runs `op`, retrying a conflict with a doubling backoff.
    async fn with_conflict_retry<F, Fut>(&self, op: F) -> Result<(), BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), BackendError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.conflict_backoff)
            .without_max_delay()
            .with_max_times(self.settings.conflict_retries as usize);
        op.retry(backoff).when(BackendError::is_conflict).await
    }

    async fn remove_containers(
        &self,
        planned: &[PlannedContainer],
        live: &Live,
    ) -> Vec<ItemReport> {
        if planned.is_empty() {
            return Vec::new();
        }
        let known = match self.known_agents() {
            Ok(known) => known,
            Err(e) => {
                return (planned.iter())
                    .map(|c| self.told(Step::Containers, ItemReport::failed(&c.name, &c.agent, &e)))
                    .collect()
            }
        };
        let known = &known;
        self.for_each(planned, |c| async move {
            self.told(
                Step::Containers,
                self.remove_container(c, live, known).await,
            )
        })
        .await
    }

    async fn remove_container(
        &self,
        c: &PlannedContainer,
        live: &Live,
        known: &BTreeSet<AgentName>,
    ) -> ItemReport {
        let stop_timeout = self.settings.stop_timeout;
        if let Some(why) = live.changed(&c.agent, c.start.as_ref()) {
            return ItemReport::skipped(&c.name, &c.agent, SkipReason::ChangedSinceThePlan(why));
        }
        // Ownership is checked on the engine's answer of this moment,
        // not the plan's memory: a container whose labels or name no
        // longer make it this agent's is left alone.
        match self.backend.inspect_container(&c.id).await {
            // An adopted installation's container that runs now, or was
            // created again, may be its live agent's (see `Live::keep_possibly_live`).
            Ok(now) if self.settings.adopt.is_some() && may_be_live(&now) => {
                let why =
                    "it runs or was created again, and its installation may be alive".to_string();
                return ItemReport::skipped(
                    &c.name,
                    &c.agent,
                    SkipReason::ChangedSinceThePlan(why),
                );
            }
            Ok(now) => match self.ownership.container_owner(&now, known) {
                Some((agent, _)) if agent == c.agent => {}
                _ => return ItemReport::skipped(&c.name, &c.agent, SkipReason::NoLongerOwned),
            },
            Err(e) if e.is_not_found() => {
                return ItemReport::of(&c.name, &c.agent, Outcome::AlreadyGone)
            }
            Err(e) => return ItemReport::failed(&c.name, &c.agent, &e),
        }
        let result = self
            .with_conflict_retry(|| self.backend.remove_container(&c.id, stop_timeout))
            .await;
        let result = match result {
            // Another remover may have been at it ("removal already in
            // progress") or the answer was lost: what counts is whether
            // the container is gone now.
            Err(e) if !e.is_not_found() => match self.backend.inspect_container(&c.id).await {
                Err(again) if again.is_not_found() => Ok(()),
                _ => Err(e),
            },
            other => other,
        };
        match result {
            Ok(()) => {
                // Removed by id (a name can be taken again between plan and
                // apply); the line keeps the shape users grep for, which
                // names the container by its name.
                tracing::info!("Removed container by name: {}", c.name);
                ItemReport::of(&c.name, &c.agent, Outcome::Removed)
            }
            Err(e) if e.is_not_found() => ItemReport::of(&c.name, &c.agent, Outcome::AlreadyGone),
            Err(e) => ItemReport::failed(&c.name, &c.agent, &e),
        }
    }

    async fn remove_images(&self, planned: &[PlannedImage], live: &Live) -> Vec<ItemReport> {
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
        // Tags of one image are removed one after another: Podman loses one
        // of two untags of the same image that run at once. Untagged images
        // come after every tag, since each is removed through its start's
        // tag (see `remove_untagged`): a tagged image of the same start that
        // is planned too must have given that tag up first — and two of one
        // start take turns with it.
        let mut tagged: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut untagged: BTreeMap<Option<&StartId>, Vec<usize>> = BTreeMap::new();
        for (n, (i, _)) in current.iter().enumerate() {
            match i.is_untagged() {
                false => tagged.entry(i.image_id.as_str()).or_default().push(n),
                true => untagged.entry(i.start.as_ref()).or_default().push(n),
            }
        }
        // Of one image, `:latest` goes first and the start's own tag last: a
        // new start may move `:latest` to its build at any moment, and were
        // the start's tag removed first, an image left only with a
        // `:latest` that then moved would be untagged, of a start that
        // succeeded — no cleanup's to take (see `plan::owned_references`).
        // Removed last, the start's tag takes the image with it.
        for group in tagged.values_mut() {
            group.sort_by_key(|&n| !current[n].0.is_latest());
        }
        let mut reports = self
            .remove_image_groups(&current, tagged.into_values(), live)
            .await;
        reports.extend(
            self.remove_image_groups(&current, untagged.into_values(), live)
                .await,
        );
        reports.sort_by_key(|(n, _)| *n);
        reports.into_iter().map(|(_, r)| r).collect()
    }

    /// Removes the planned images of each group one after another, the
    /// groups side by side; returns each report with its plan position.
    async fn remove_image_groups(
        &self,
        current: &[(
            &PlannedImage,
            Result<crate::backend::ImageSummary, BackendError>,
        )],
        groups: impl Iterator<Item = Vec<usize>>,
        live: &Live,
    ) -> Vec<(usize, ItemReport)> {
        let groups: Vec<Vec<usize>> = groups.collect();
        let done: Vec<Vec<(usize, ItemReport)>> = stream::iter(&groups)
            .map(|group| async move {
                let mut reports = Vec::with_capacity(group.len());
                for &n in group {
                    let (i, now) = &current[n];
                    let report = self.remove_image(i, now, live).await;
                    reports.push((n, self.told(Step::Images, report)));
                }
                reports
            })
            .buffer_unordered(self.settings.parallelism.max(1))
            .collect()
            .await;
        done.into_iter().flatten().collect()
    }

    async fn remove_image(
        &self,
        i: &PlannedImage,
        now: &Result<crate::backend::ImageSummary, BackendError>,
        live: &Live,
    ) -> ItemReport {
        let engine = crate::backend::engine_name(self.backend);
        if let Some(why) = live.changed(&i.agent, i.start.as_ref()) {
            return ItemReport::skipped(&i.display, &i.agent, SkipReason::ChangedSinceThePlan(why));
        }
        // `:latest` is asked again right before it goes: the answer from
        // before the first removal may be stale by now, and removing a
        // `:latest` that moved would untag a newer start's build.
        let again;
        let now = if i.is_latest() {
            again = self.backend.inspect_image(&i.reference).await;
            &again
        } else {
            now
        };
        match now {
            Ok(now) if now.id != i.image_id => {
                return ItemReport::skipped(&i.display, &i.agent, SkipReason::ReplacedAfterPlan)
            }
            Ok(now) if i.is_untagged() && !now.tags.is_empty() => {
                return ItemReport::skipped(&i.display, &i.agent, SkipReason::retagged(now))
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return ItemReport::of(&i.display, &i.agent, Outcome::AlreadyGone)
            }
            Err(e) => return ItemReport::failed(&i.display, &i.agent, e),
        }
        if i.is_untagged() {
            return self.remove_untagged(i).await;
        }
        let result = self
            .with_conflict_retry(|| self.backend.remove_image(&i.reference))
            .await;
        let result = match result {
            // Docker can untag and then fail on a parent a sibling's removal
            // took ("unrecognized image ID"): the tag is gone, which is the
            // goal. A conflict is an image in use: that is reported as such.
            Err(e) if !e.is_not_found() && !e.is_conflict() => {
                match self.backend.inspect_image(&i.reference).await {
                    Err(again) if again.is_not_found() => {
                        tracing::debug!("{} gone although removal said: {e}", i.display);
                        Ok(())
                    }
                    _ => Err(e),
                }
            }
            other => other,
        };
        match result {
            Ok(()) => {
                tracing::info!("Removed {engine} image: {}", i.display);
                ItemReport::of(&i.display, &i.agent, Outcome::Removed)
            }
            Err(e) if e.is_not_found() => {
                ItemReport::of(&i.display, &i.agent, Outcome::AlreadyGone)
            }
            Err(BackendError::Conflict { message, .. }) => {
                tracing::warn!("Kept {engine} image {}: in use: {message}", i.display);
                ItemReport::skipped(&i.display, &i.agent, SkipReason::InUse(message))
            }
            Err(e) => ItemReport::failed(&i.display, &i.agent, &e),
        }
    }

    /// Removes an untagged image of a start that did not succeed. Engines
    /// remove an image named by id together with its one tag, so a tag a
    /// user adds between the re-check above and the removal would go with
    /// it. Instead the image gets its start's own tag back and that tag is
    /// removed: an engine deletes the image only when that was its last
    /// tag, and otherwise merely untags it — the user's tag, added at any
    /// moment, keeps the image. A crash in between leaves an image under a
    /// tag anvyl gives, which the next cleanup removes.
    async fn remove_untagged(&self, i: &PlannedImage) -> ItemReport {
        let engine = crate::backend::engine_name(self.backend);
        let Some(start) = &i.start else {
            // Untagged images are claimed by their start label only.
            return ItemReport::skipped(&i.display, &i.agent, SkipReason::NoLongerOwned);
        };
        let handle = i.agent.start_tag(start);
        // The start's tag may name another image of that start (a build
        // retried after the engine's race): moving it would strand that one.
        match self.backend.inspect_image(&handle).await {
            Ok(other) if other.id != i.image_id => {
                let why = format!("its start's tag {handle} names another image");
                return ItemReport::skipped(
                    &i.display,
                    &i.agent,
                    SkipReason::ChangedSinceThePlan(why),
                );
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                if let Err(e) = self.backend.tag_image(&i.image_id, &handle).await {
                    return match e.is_not_found() {
                        true => ItemReport::of(&i.display, &i.agent, Outcome::AlreadyGone),
                        false => ItemReport::failed(&i.display, &i.agent, &e),
                    };
                }
            }
            Err(e) => return ItemReport::failed(&i.display, &i.agent, &e),
        }
        let removed = self
            .with_conflict_retry(|| self.backend.remove_image(&handle))
            .await;
        // What counts is what is left of the image now.
        match (removed, self.backend.inspect_image(&i.image_id).await) {
            (_, Err(e)) if e.is_not_found() => {
                tracing::info!("Removed {engine} image: {}", i.display);
                ItemReport::of(&i.display, &i.agent, Outcome::Removed)
            }
            (Ok(()), Ok(now)) if !now.tags.is_empty() => {
                ItemReport::skipped(&i.display, &i.agent, SkipReason::retagged(&now))
            }
            (Err(BackendError::Conflict { message, .. }), _) => {
                tracing::warn!("Kept {engine} image {}: in use: {message}", i.display);
                ItemReport::skipped(&i.display, &i.agent, SkipReason::InUse(message))
            }
            (Err(e), _) | (Ok(()), Err(e)) => ItemReport::failed(&i.display, &i.agent, &e),
            (Ok(()), Ok(_)) => {
                ItemReport::failed(&i.display, &i.agent, &"the engine kept the image")
            }
        }
    }

    /// The agents the state store knows now (legacy ownership needs them).
    fn known_agents(&self) -> Result<BTreeSet<AgentName>, crate::state::StateError> {
        Ok(self.state.agents()?.into_iter().map(|a| a.name).collect())
    }

    /// Step 3. A broken build root fails this step only.
    fn remove_dirs(&self, plan: &Plan, own: Option<&StartId>) -> Vec<ItemReport> {
        let root = self.build_root.path().display().to_string();
        if let Some(error) = &plan.build_root_error {
            tracing::warn!("Cannot clean build directories: {error}");
            return vec![self.told(
                Step::BuildDirs,
                ItemReport {
                    target: root,
                    agent: None,
                    outcome: Outcome::Failed {
                        error: error.clone(),
                    },
                },
            )];
        }
        if plan.build_dirs.is_empty() {
            return Vec::new();
        }
        match self.live_now(own) {
            Ok(live) => (plan.build_dirs.iter())
                .map(|d| self.told(Step::BuildDirs, self.remove_dir(d, &live)))
                .collect(),
            Err(e) => (plan.build_dirs.iter())
                .map(|d| {
                    let target = d.path.display().to_string();
                    self.told(Step::BuildDirs, ItemReport::failed(&target, &d.agent, &e))
                })
                .collect(),
        }
    }

    fn remove_dir(&self, dir: &PlannedDir, live: &Live) -> ItemReport {
        let target = dir.path.display().to_string();
        if let Some(why) = live.changed(&dir.agent, Some(&dir.start)) {
            return ItemReport::skipped(&target, &dir.agent, SkipReason::ChangedSinceThePlan(why));
        }
        match self.build_root.remove(&dir.name) {
            Ok(Removal::Removed) => {
                tracing::info!("Removed temporary build directory: {target}");
                ItemReport::of(&target, &dir.agent, Outcome::Removed)
            }
            Ok(Removal::Gone) => ItemReport::of(&target, &dir.agent, Outcome::AlreadyGone),
            Ok(Removal::NotADirectory) => {
                ItemReport::skipped(&target, &dir.agent, SkipReason::NotABuildDir)
            }
            Ok(Removal::HoldsAMount(mount)) => {
                let mount = mount.display().to_string();
                tracing::warn!("Kept build directory {target}: {mount} is a mount point");
                ItemReport::skipped(&target, &dir.agent, SkipReason::HoldsAMount(mount))
            }
            Err(e) => ItemReport::failed(&target, &dir.agent, &e),
        }
    }

    fn reset(&self, reset: &PlannedReset) -> ItemReport {
        let target = reset.agent.to_string();
        let mut fence = Fence::at(reset.from, reset.start.as_ref());
        if reset.stale {
            fence = fence.or(AgentStatus::Failed);
        }
        match self.state.reset_to_stopped(&reset.agent, &fence) {
            Ok(Fenced::Done) => {
                tracing::info!("Reset agent '{}' status to stopped", reset.agent);
                ItemReport::of(&target, &reset.agent, Outcome::Removed)
            }
            Ok(Fenced::Gone) => ItemReport::of(&target, &reset.agent, Outcome::AlreadyGone),
            Ok(Fenced::Changed(found)) => {
                tracing::info!(
                    "Kept the status of agent '{}': it is {found} since the plan",
                    reset.agent
                );
                ItemReport::skipped(
                    &target,
                    &reset.agent,
                    SkipReason::ChangedSinceThePlan(format!("the agent is {found} now")),
                )
            }
            Err(e) => ItemReport::failed(&target, &reset.agent, &e),
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
