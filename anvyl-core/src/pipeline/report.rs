//! The outcome of applying a plan: per step and per item, what happened.

use std::fmt;

use serde::Serialize;

use super::Step;
use crate::name::AgentName;

/// Why an item was not removed although it was planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
pub enum SkipReason {
    /// On re-check it no longer carries our ownership.
    NoLongerOwned,
    /// The tag now names a different image than when planned (a newer build).
    ReplacedAfterPlan,
    /// A container that is not ours still uses the image.
    InUse(String),
    /// The path is a symlink or not a directory below the build root.
    NotABuildDir,
    /// A mount lies at or below the build directory (this path): nothing
    /// of the mounted filesystem is removed; unmount it and clean again.
    HoldsAMount(String),
    /// Its start became live, or its agent changed, after the plan: a race
    /// with another `anvyl` that costs at most a leftover for the next
    /// cleanup, never a live resource.
    ChangedSinceThePlan(String),
    /// A build step the engine keeps: an image is built on it, or a
    /// container (a build's) uses it. It stays recorded for a later cleanup.
    Shared(String),
}

impl SkipReason {
    /// An untagged image someone tagged after the plan is theirs to keep.
    pub(crate) fn retagged(image: &crate::backend::ImageSummary) -> Self {
        let tags: Vec<String> = image.tags.iter().map(ToString::to_string).collect();
        Self::ChangedSinceThePlan(format!("tagged {} since the plan", tags.join(", ")))
    }
}

impl SkipReason {
    /// Whether something owned remains because of this skip.
    pub fn leaves_owned(&self) -> bool {
        matches!(self, Self::InUse(_) | Self::HoldsAMount(_))
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLongerOwned => f.write_str("no longer anvyl's"),
            Self::ReplacedAfterPlan => f.write_str("the tag names a newer image than planned"),
            Self::InUse(detail) => write!(f, "in use: {detail}"),
            Self::NotABuildDir => f.write_str("not a directory below the build root"),
            Self::HoldsAMount(mount) => {
                write!(f, "{mount} is a mount point: unmount it, then clean again")
            }
            Self::ChangedSinceThePlan(detail) => write!(f, "changed since the plan: {detail}"),
            Self::Shared(detail) => write!(f, "still used: {detail}"),
        }
    }
}

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Removed (or reset) now.
    Removed,
    /// It was gone already (404): counts as done.
    AlreadyGone,
    /// Deliberately left.
    Skipped {
        /// Why.
        #[serde(flatten)]
        reason: SkipReason,
    },
    /// The engine or filesystem refused.
    Failed {
        /// The error.
        error: String,
    },
}

impl Outcome {
    /// True when an owned resource remains because of this outcome.
    pub fn leaves_owned(&self) -> bool {
        match self {
            Self::Removed | Self::AlreadyGone => false,
            Self::Skipped { reason } => reason.leaves_owned(),
            Self::Failed { .. } => true,
        }
    }
}

/// One item of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemReport {
    /// Container name, image tag, directory or agent.
    pub target: String,
    /// The agent it belonged to (none for the build root itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentName>,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl ItemReport {
    /// What happened to `target` of `agent`.
    pub(crate) fn of(target: &str, agent: &AgentName, outcome: Outcome) -> Self {
        Self {
            target: target.to_string(),
            agent: Some(agent.clone()),
            outcome,
        }
    }

    /// `target` of `agent` left alone, and why.
    pub(crate) fn skipped(target: &str, agent: &AgentName, reason: SkipReason) -> Self {
        Self::of(target, agent, Outcome::Skipped { reason })
    }

    /// `target` of `agent` could not be removed: logged as it happens,
    /// reported with the others.
    pub(crate) fn failed(target: &str, agent: &AgentName, e: &dyn std::fmt::Display) -> Self {
        tracing::warn!("Failed to remove {target}: {e}");
        Self::of(
            target,
            agent,
            Outcome::Failed {
                error: e.to_string(),
            },
        )
    }
}

/// One step's items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Which step.
    pub step: Step,
    /// Its items, in plan order.
    pub items: Vec<ItemReport>,
}

/// The whole apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The four steps, in order.
    pub steps: Vec<StepReport>,
}

impl Report {
    /// Items of every step.
    pub fn items(&self) -> impl Iterator<Item = (Step, &ItemReport)> {
        self.steps
            .iter()
            .flat_map(|s| s.items.iter().map(move |i| (s.step, i)))
    }

    /// How many items ended with an outcome matching `pred`.
    pub fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.items().filter(|(_, i)| pred(&i.outcome)).count()
    }

    /// How many owned resources remain (failed, or skipped while in use).
    pub fn remaining_owned(&self) -> usize {
        self.count(Outcome::leaves_owned)
    }
}
