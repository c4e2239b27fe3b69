//! The build cache anvyl owns when told to (`build_cache = "remove"`): the
//! step images its own builds made, as each start recorded them (see
//! [`crate::lifecycle::StepRecorder`]) — never an image merely found
//! untagged. A recorded step is planned only if the engine lists it
//! untagged and built on the parent the record names, no image that stays
//! is built on it, and no other start is in progress (one may be building
//! on it from the cache). Apply lists the tree again and removes children
//! before parents, one at a time, never forcing: the engine itself refuses
//! an image another is built on or a container uses.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::live::Live;
use super::{Cleanup, ItemReport, Kept, Outcome, Plan, Scope, SkipReason, Step};
use crate::backend::{BackendError, ImageSummary};
use crate::ids::StartId;
use crate::name::AgentName;
use crate::state::{StepRecord, LOCAL_HOST};

/// A step image of anvyl's own build the plan will remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStep {
    /// Its record in the state store.
    pub seq: i64,
    /// Its full id: apply removes this id only.
    pub image_id: String,
    /// The image it must still be built on (full id).
    pub parent: String,
    /// How it is shown: `build step <short id>`.
    pub display: String,
    /// The agent whose start built it.
    pub agent: AgentName,
    /// That start.
    pub start: StartId,
}

/// What the plan decided about the recorded steps.
#[derive(Debug, Default)]
pub(super) struct StepChoice {
    pub(super) planned: Vec<PlannedStep>,
    pub(super) kept: Vec<Kept>,
    /// Records of images gone, or not what the record says: forgotten by apply.
    pub(super) forget: Vec<i64>,
}

fn hex(id: &str) -> &str {
    id.trim_start_matches("sha256:")
}

/// The listed image whose id begins with `short` (as a builder prints it).
fn find<'t>(tree: &'t BTreeMap<&str, &ImageSummary>, short: &str) -> Option<&'t ImageSummary> {
    let (id, image) = tree.range(short..).next()?;
    id.starts_with(short).then_some(*image)
}

/// Chooses which of `records` (this host's) a cleanup of `scope` removes,
/// given every image the engine lists (`tree`), the images the plan takes
/// with their tags (`taken`) and what is live.
pub(super) fn choose(
    records: &[StepRecord],
    tree: &[ImageSummary],
    taken: &BTreeSet<String>,
    scope: &Scope,
    host: &str,
    live: &Live,
) -> StepChoice {
    let by_id: BTreeMap<&str, &ImageSummary> = tree.iter().map(|i| (hex(&i.id), i)).collect();
    let mut choice = StepChoice::default();
    let mut candidates: Vec<(&StepRecord, &ImageSummary)> = Vec::new();
    for record in records {
        let in_scope = match scope {
            Scope::Start(id) => &record.start == id,
            Scope::Agent(name) => &record.agent == name,
            Scope::All => true,
        };
        if !in_scope || record.host.as_deref().unwrap_or(LOCAL_HOST) != host {
            continue;
        }
        let Some(image) = find(&by_id, &record.made.image) else {
            choice.forget.push(record.seq);
            continue;
        };
        // Tagged: the image a build led to (its tags are judged as
        // images), or one somebody tagged — theirs. Never a step to take.
        if !image.tags.is_empty() {
            continue;
        }
        let parent = image.parent.as_deref().map(hex).unwrap_or_default();
        if record.made.parent.is_empty() || !parent.starts_with(&record.made.parent) {
            choice.forget.push(record.seq);
            continue;
        }
        if live.starts.contains(&record.start) {
            continue;
        }
        if let Some((agent, _)) = live.starting.iter().next() {
            choice.kept.push(Kept {
                what: format!("build step {}", short(&image.id)),
                reason: format!("a start of '{agent}' is in progress and may build on it"),
            });
            continue;
        }
        candidates.push((record, image));
    }
    // What stays after the plan, and everything it is built on.
    let going: BTreeSet<&str> = (candidates.iter().map(|(_, i)| hex(&i.id)))
        .chain(taken.iter().map(|id| hex(id)))
        .collect();
    let mut under_stays: BTreeSet<&str> = BTreeSet::new();
    for image in tree.iter().filter(|i| !going.contains(hex(&i.id))) {
        let mut parent = image.parent.as_deref().map(hex);
        while let Some(p) = parent {
            if !under_stays.insert(p) {
                break;
            }
            parent = by_id.get(p).and_then(|i| i.parent.as_deref()).map(hex);
        }
    }
    let depth = |image: &ImageSummary| {
        let mut n = 0;
        let mut parent = image.parent.as_deref().map(hex);
        while let Some(p) = parent.filter(|_| n < tree.len()) {
            n += 1;
            parent = by_id.get(p).and_then(|i| i.parent.as_deref()).map(hex);
        }
        n
    };
    let mut planned: Vec<(usize, PlannedStep)> = Vec::new();
    for (record, image) in candidates {
        if under_stays.contains(hex(&image.id)) {
            choice.kept.push(Kept {
                what: format!("build step {}", short(&image.id)),
                reason: "an image that stays is built on it".into(),
            });
            continue;
        }
        planned.push((
            depth(image),
            PlannedStep {
                seq: record.seq,
                image_id: image.id.clone(),
                parent: image.parent.clone().unwrap_or_default(),
                display: format!("build step {}", short(&image.id)),
                agent: record.agent.clone(),
                start: record.start.clone(),
            },
        ));
    }
    // Children before parents: the engine refuses a parent first.
    planned.sort_by(|(a, x), (b, y)| b.cmp(a).then(y.seq.cmp(&x.seq)));
    choice.planned = planned.into_iter().map(|(_, p)| p).collect();
    choice
}

fn short(id: &str) -> &str {
    let hex = hex(id);
    &hex[..hex.len().min(12)]
}

impl Cleanup<'_> {
    /// Plans the recorded build steps in `scope`: what `choose` decides,
    /// on the engine's whole image tree.
    pub(super) async fn plan_build_steps(
        &self,
        scope: &Scope,
        tree: &[ImageSummary],
        live: &Live,
        plan: &mut Plan,
    ) -> Result<(), super::CleanupError> {
        let records = self.state.build_steps()?;
        let mut planned_tags: BTreeMap<&str, usize> = BTreeMap::new();
        for image in &plan.images {
            *planned_tags.entry(image.image_id.as_str()).or_default() += 1;
        }
        // An image goes with its tags when the plan takes every one of them.
        let taken: BTreeSet<String> = (tree.iter())
            .filter(|i| {
                planned_tags
                    .get(i.id.as_str())
                    .is_some_and(|n| *n >= i.tags.len())
            })
            .map(|i| i.id.clone())
            .collect();
        let choice = choose(&records, tree, &taken, scope, &self.host, live);
        // The prune hint counts only what stays: a planned step that is
        // dangling now (nothing built on it) is anvyl's, not the engine's.
        let parents: BTreeSet<&str> = tree.iter().filter_map(|i| i.parent.as_deref()).collect();
        let dangling = (choice.planned.iter())
            .filter(|s| !parents.contains(s.image_id.as_str()))
            .count();
        plan.dangling_images = plan.dangling_images.saturating_sub(dangling);
        plan.build_steps = choice.planned;
        plan.kept.extend(choice.kept);
        plan.forget_steps = choice.forget;
        Ok(())
    }

    /// Removes the planned steps, children first, after the images' tags
    /// (step 2). Every record of an image found gone is forgotten.
    pub(super) async fn remove_build_steps(&self, plan: &Plan, live: &Live) -> Vec<ItemReport> {
        for seq in &plan.forget_steps {
            if let Err(e) = self.state.forget_build_step(*seq) {
                tracing::warn!("cannot forget build step record {seq}: {e}");
            }
        }
        let planned = &plan.build_steps;
        if planned.is_empty() {
            return Vec::new();
        }
        let report = |_: &PlannedStep, r: ItemReport| self.told(Step::Images, r);
        // A start that began since the plan may be building on them.
        if let Some((agent, _)) = live.starting.iter().next() {
            let why = format!("a start of '{agent}' began and may build on it");
            return (planned.iter())
                .map(|s| {
                    let reason = SkipReason::ChangedSinceThePlan(why.clone());
                    report(s, ItemReport::skipped(&s.display, &s.agent, reason))
                })
                .collect();
        }
        let tree = match self.backend.list_image_tree().await {
            Ok(tree) => tree,
            Err(e) => {
                return (planned.iter())
                    .map(|s| report(s, ItemReport::failed(&s.display, &s.agent, &e)))
                    .collect()
            }
        };
        let mut reports = Vec::with_capacity(planned.len());
        for step in planned {
            let item = self.remove_build_step(step, &tree).await;
            reports.push(report(step, item));
        }
        reports
    }

    async fn remove_build_step(&self, step: &PlannedStep, tree: &[ImageSummary]) -> ItemReport {
        let engine = crate::backend::engine_name(self.backend);
        let (display, agent) = (&step.display, &step.agent);
        let forget = || {
            if let Err(e) = self.state.forget_build_step(step.seq) {
                tracing::warn!("cannot forget the record of {}: {e}", step.display);
            }
        };
        match tree.iter().find(|i| i.id == step.image_id) {
            None => {
                forget();
                return ItemReport::of(display, agent, Outcome::AlreadyGone);
            }
            Some(now) if !now.tags.is_empty() => {
                return ItemReport::skipped(display, agent, SkipReason::retagged(now))
            }
            Some(now) if now.parent.as_deref() != Some(step.parent.as_str()) => {
                forget();
                return ItemReport::skipped(display, agent, SkipReason::NoLongerOwned);
            }
            Some(_) => {}
        }
        match self.backend.remove_image(&step.image_id).await {
            Ok(()) => {
                forget();
                tracing::info!("Removed {engine} {}", step.display);
                ItemReport::of(display, agent, Outcome::Removed)
            }
            Err(e) if e.is_not_found() => {
                forget();
                ItemReport::of(display, agent, Outcome::AlreadyGone)
            }
            // Built on since the plan, or used by a container (a build's):
            // the engine keeps it, and so does the record, for a later cleanup.
            Err(BackendError::Conflict { message, .. }) => {
                ItemReport::skipped(display, agent, SkipReason::Shared(message))
            }
            Err(e) => ItemReport::failed(display, agent, &e),
        }
    }
}
