//! The build cache anvyl owns when told to (`build_cache = "remove"`): the
//! step images its own builds made, as each start recorded them (see
//! [`crate::lifecycle::StepRecorder`]) — never an image merely found
//! untagged. A recorded step is planned only if the engine lists it
//! untagged and built on the parent the record names, no image that stays
//! is built on it, and no other start is in progress (one may be building
//! on it from the cache). Apply lists the tree again and removes children
//! before parents, one at a time, never forcing: the engine itself refuses
//! an image another is built on or a container uses. As for an untagged
//! image of a failed start, a step is removed through a tag of anvyl's own
//! (its handle), never by id: an engine deletes an image named by id with
//! its one tag, so a tag a user adds at that moment would go with it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::live::Live;
use super::{Cleanup, ItemReport, Kept, Outcome, Plan, Scope, SkipReason, Step};
use crate::backend::{BackendError, ImageSummary, ImageTag};
use crate::ids::StartId;
use crate::name::AgentName;
use crate::state::{StepRecord, LOCAL_HOST};

/// A step image of anvyl's own build the plan will remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStep {
    /// Its record in the state store.
    #[serde(skip)]
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

/// The tag a step is removed through: `anvyl-agent-<name>:step-<short id>`.
/// A crash between tagging and removing leaves it, and a step that carries
/// only its own handle still counts as untagged.
fn handle(agent: &AgentName, image_id: &str) -> String {
    format!("{}:step-{}", agent.resource_name(), short(image_id))
}

/// Whether `image` carries no tag but, perhaps, its own handle.
fn untagged(image: &ImageSummary, agent: &AgentName) -> bool {
    let handle = ImageTag::parse(&handle(agent, &image.id));
    (image.tags.iter()).all(|t| t.repository == handle.repository && t.tag == handle.tag)
}

/// What the listing says of a recorded id.
enum Found<'t> {
    /// Exactly one listed image has it.
    One(&'t ImageSummary),
    /// None: the image is gone.
    Gone,
    /// Several begin with it: none can be judged.
    Ambiguous,
}

/// The listed image whose id begins with `short` (as a builder prints it).
fn find<'t>(tree: &BTreeMap<&str, &'t ImageSummary>, short: &str) -> Found<'t> {
    let short = hex(short);
    let mut matching = tree
        .range(short..)
        .take_while(|(id, _)| id.starts_with(short));
    match (matching.next(), matching.next()) {
        (Some((_, image)), None) => Found::One(image),
        (None, _) => Found::Gone,
        (Some(_), Some(_)) => Found::Ambiguous,
    }
}

/// The images `top` is built on, `top` included.
fn chain<'t>(
    tree: &BTreeMap<&'t str, &'t ImageSummary>,
    top: &'t ImageSummary,
) -> BTreeSet<&'t str> {
    let mut chain = BTreeSet::from([hex(&top.id)]);
    let mut parent = top.parent.as_deref().map(hex);
    while let Some(p) = parent.filter(|p| chain.insert(p)) {
        parent = tree.get(p).and_then(|i| i.parent.as_deref()).map(hex);
    }
    chain
}

/// Why no build step may go now, whatever the records say: another start
/// is in progress (it may be building on one from the cache), or a state
/// row cannot be read (it may be that of one).
fn held(live: &Live) -> Option<String> {
    if let Some((agent, _)) = live.starting.iter().next() {
        return Some(format!(
            "a start of '{agent}' is in progress and may build on it"
        ));
    }
    (!live.unreadable.is_empty() || live.only_listed.is_some() || live.unreadable_starts)
        .then(|| "a state row cannot be read: it may be a start in progress".to_string())
}

/// What the plan is given to judge the records by.
pub(super) struct Judged<'a> {
    /// Every image the engine lists, with its parent.
    pub(super) tree: &'a [ImageSummary],
    /// The images the plan takes with their tags.
    pub(super) taken: &'a BTreeSet<String>,
    /// Every image id the plan names in step 2 (an untagged image of a
    /// failed start is planned there, by id).
    pub(super) planned: &'a BTreeSet<String>,
    /// The labels that make an image this installation's.
    pub(super) ownership: &'a crate::ownership::Ownership,
}

/// Chooses which of `records` — this host's, made on this very engine — a
/// cleanup of `scope` removes.
pub(super) fn choose(
    records: &[StepRecord],
    judged: &Judged<'_>,
    scope: &Scope,
    host: &str,
    live: &Live,
) -> StepChoice {
    let tree = judged.tree;
    let by_id: BTreeMap<&str, &ImageSummary> = tree.iter().map(|i| (hex(&i.id), i)).collect();
    // Each start's own image, where it still is: a record of a start whose
    // image is listed must be on that image's chain (the builder's output
    // can be imitated by a step's own; the image's parents cannot).
    let mut anchors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for image in tree {
        if let Some(start) = image.labels.get(crate::ownership::LABEL_START) {
            if judged.ownership.labelled_agent(&image.labels).is_some() {
                anchors
                    .entry(start)
                    .or_default()
                    .extend(chain(&by_id, image));
            }
        }
    }
    let mut choice = StepChoice::default();
    let held = held(live);
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
        // A live start's records are read after the listing: its newest
        // image may not be listed yet. Judged (and forgotten) only later.
        if live.starts.contains(&record.start) {
            continue;
        }
        let image = match find(&by_id, &record.made.image) {
            Found::One(image) => image,
            Found::Gone => {
                choice.forget.push(record.seq);
                continue;
            }
            Found::Ambiguous => continue,
        };
        // The image a build led to (the last step, with anvyl's labels),
        // tagged or not, is step 2's to judge: its record serves nothing.
        // A step somebody tagged is theirs.
        if judged.ownership.labelled_agent(&image.labels).is_some() {
            choice.forget.push(record.seq);
            continue;
        }
        if !untagged(image, &record.agent) || judged.planned.contains(&image.id) {
            continue;
        }
        let parent = image.parent.as_deref().map(hex).unwrap_or_default();
        let off_chain = (anchors.get(record.start.as_str()))
            .is_some_and(|chain| !chain.contains(hex(&image.id)));
        if record.made.parent.is_empty()
            || !parent.starts_with(hex(&record.made.parent))
            || off_chain
        {
            choice.forget.push(record.seq);
            continue;
        }
        if let Some(reason) = &held {
            choice.kept.push(Kept {
                what: format!("build step {}", short(&image.id)),
                reason: reason.clone(),
            });
            continue;
        }
        candidates.push((record, image));
    }
    // What stays after the plan, and everything it is built on.
    let going: BTreeSet<&str> = (candidates.iter().map(|(_, i)| hex(&i.id)))
        .chain(judged.taken.iter().map(|id| hex(id)))
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
            chain(&by_id, image).len(),
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

impl Plan {
    /// The prune hint counts only what stays: a planned step that is
    /// dangling now (nothing built on it) is anvyl's, not the engine's.
    /// Called once retention has had its say.
    pub(super) fn discount_planned_steps(&mut self, tree: &[ImageSummary]) {
        let parents: BTreeSet<&str> = tree.iter().filter_map(|i| i.parent.as_deref()).collect();
        let dangling = (self.build_steps.iter())
            .filter(|s| !parents.contains(s.image_id.as_str()))
            .count();
        self.dangling_images = self.dangling_images.saturating_sub(dangling);
    }
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
        // Only records of starts made on this very engine: a host name may
        // point at another engine today (see `crate::identity`). One that
        // cannot be told is left, recorded, for a cleanup that can.
        let identity = crate::identity::EngineIdentity::of(self.backend);
        let mut here: BTreeMap<String, bool> = BTreeMap::new();
        let mut mine = Vec::with_capacity(records.len());
        for record in records {
            let Some(engine) = &record.engine else {
                continue;
            };
            let key = engine.to_string();
            if !here.contains_key(&key) {
                let is = identity.is(engine).await.unwrap_or_else(|e| {
                    tracing::warn!("build steps kept: cannot tell which engine this is: {e}");
                    false
                });
                here.insert(key.clone(), is);
            }
            if here[&key] {
                mine.push(record);
            }
        }
        let planned: BTreeSet<String> = plan.images.iter().map(|i| i.image_id.clone()).collect();
        let judged = Judged {
            tree,
            taken: &taken,
            planned: &planned,
            ownership: &self.ownership,
        };
        let choice = choose(&mine, &judged, scope, &self.host, live);
        plan.build_steps = choice.planned;
        plan.kept.extend(choice.kept);
        plan.forget_steps = choice.forget;
        Ok(())
    }

    /// Removes the planned steps, children first, after the images' tags
    /// (step 2). Every record of an image found gone is forgotten.
    pub(super) async fn remove_build_steps(&self, plan: &Plan) -> Vec<ItemReport> {
        for seq in &plan.forget_steps {
            if let Err(e) = self.state.forget_build_step(*seq) {
                tracing::warn!("cannot forget build step record {seq}: {e}");
            }
        }
        let own = match &plan.scope {
            Scope::Start(id) => Some(id),
            _ => None,
        };
        let mut reports = Vec::with_capacity(plan.build_steps.len());
        for step in &plan.build_steps {
            // The state and the engine are asked again before each step: a
            // start may begin, an image be built on it, at any moment.
            let item = match self.live_now(own) {
                Err(e) => ItemReport::failed(&step.display, &step.agent, &e),
                Ok(live) => match held(&live) {
                    Some(why) => {
                        let reason = SkipReason::ChangedSinceThePlan(why);
                        ItemReport::skipped(&step.display, &step.agent, reason)
                    }
                    None => match self.backend.list_image_tree().await {
                        Ok(tree) => self.remove_build_step(step, &tree).await,
                        Err(e) => ItemReport::failed(&step.display, &step.agent, &e),
                    },
                },
            };
            reports.push(self.told(Step::Images, item));
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
            Some(now) if !untagged(now, agent) => {
                return ItemReport::skipped(display, agent, SkipReason::retagged(now))
            }
            Some(now) if now.parent.as_deref() != Some(step.parent.as_str()) => {
                forget();
                return ItemReport::skipped(display, agent, SkipReason::NoLongerOwned);
            }
            Some(_) => {}
        }
        // Docker's containerd store deletes an image others are built on
        // (it checks running containers only): anvyl checks first.
        if let Some(child) = tree
            .iter()
            .find(|i| i.parent.as_ref() == Some(&step.image_id))
        {
            let why = format!("image {} is built on it", short(&child.id));
            return ItemReport::skipped(display, agent, SkipReason::Shared(why));
        }
        // Through the handle: an engine deletes the image only if that was
        // its last tag (and nothing is built on it); otherwise it untags.
        // A container (a user's, run from the step) holds it: the engine
        // would refuse the removal and the handle would stay on it.
        match self
            .backend
            .list_containers(&crate::backend::Query::default())
            .await
        {
            Ok(all) => {
                if let Some(user) = all.iter().find(|c| c.image_id == step.image_id) {
                    let why = format!("container {} uses it", user.name);
                    return ItemReport::skipped(display, agent, SkipReason::InUse(why));
                }
            }
            Err(e) => return ItemReport::failed(display, agent, &e),
        }
        let handle = handle(agent, &step.image_id);
        // Tagging moves a tag that names another image: a handle somebody
        // gave their own image stays theirs.
        match self.backend.inspect_image(&handle).await {
            Ok(other) if other.id != step.image_id => {
                let why = format!("the tag {handle} names another image");
                return ItemReport::skipped(display, agent, SkipReason::ChangedSinceThePlan(why));
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return ItemReport::failed(display, agent, &e),
        }
        if let Err(e) = self.backend.tag_image(&step.image_id, &handle).await {
            if e.is_not_found() {
                forget();
                return ItemReport::of(display, agent, Outcome::AlreadyGone);
            }
            return ItemReport::failed(display, agent, &e);
        }
        let removed = self.backend.remove_image(&handle).await;
        // What counts is what is left of the image now.
        match (removed, self.backend.inspect_image(&step.image_id).await) {
            (_, Err(e)) if e.is_not_found() => {
                forget();
                tracing::info!("Removed {engine} {}", step.display);
                ItemReport::of(display, agent, Outcome::Removed)
            }
            (_, Ok(now)) if !untagged(&now, agent) => {
                ItemReport::skipped(display, agent, SkipReason::retagged(&now))
            }
            // Built on since the plan, or used by a container (a build's):
            // the engine keeps it, and so does the record, for a later
            // cleanup. Docker says so by only untagging.
            (Err(BackendError::Conflict { message, .. }), Ok(_)) => {
                ItemReport::skipped(display, agent, SkipReason::Shared(message))
            }
            (Ok(()), Ok(_)) => {
                let why = "another image is built on it, or a container uses it".to_string();
                ItemReport::skipped(display, agent, SkipReason::Shared(why))
            }
            (Err(e), _) | (Ok(()), Err(e)) => ItemReport::failed(display, agent, &e),
        }
    }
}
