//! Retention: what a cleanup keeps although it could remove it, so that
//! restarts stay fast — `--keep-images` (the images and build steps a
//! restart builds from; containers, build directories and statuses still
//! go) and `--older-than` (only agents not started within that time). It
//! applies to a plan once it is made, moving items to `kept` with the
//! reason; a failed start's own cleanup is never held back.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Kept, Plan, Scope};
use crate::name::AgentName;
use crate::state::{AgentRecord, StartRecord};

/// What a cleanup keeps for restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the agents' images and recorded build steps.
    pub keep_images: bool,
    /// Only agents whose last start (or creation, never started) is older.
    pub older_than: Option<Duration>,
}

impl Retention {
    fn holds_anything(&self) -> bool {
        self.keep_images || self.older_than.is_some()
    }
}

/// When each agent the store knows was last started or created, whichever
/// is later: the age `--older-than` judges. An agent the store does not
/// know (removed, with start rows left) has no age and is never held back —
/// its leftovers are orphans of a forgotten agent.
pub(super) fn last_active(
    agents: &[AgentRecord],
    starts: &[StartRecord],
) -> BTreeMap<AgentName, i64> {
    let mut last: BTreeMap<AgentName, i64> =
        agents.iter().map(|a| (a.name.clone(), a.created)).collect();
    for start in starts {
        if let Some(at) = last.get_mut(&start.agent) {
            *at = (*at).max(start.started);
        }
    }
    last
}

/// "3d", "5h", "12m", "40s": an age as people say it, rounded down.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        86_400.. => format!("{}d", s / 86_400),
        3_600.. => format!("{}h", s / 3_600),
        60.. => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

impl Plan {
    /// Moves what `retention` keeps from the planned items to `kept`, judged
    /// at `now` (seconds since the epoch) by each agent's `last` activity.
    pub(super) fn retain(
        &mut self,
        retention: &Retention,
        last: &BTreeMap<AgentName, i64>,
        now: i64,
    ) {
        if !retention.holds_anything() || matches!(self.scope, Scope::Start(_)) {
            return;
        }
        let recent = |agent: &AgentName| -> Option<String> {
            let window = retention.older_than?;
            // A start dated after now (a clock set back) is as recent as can be.
            let since = now.saturating_sub(*last.get(agent)?).max(0);
            ((since as u64) < window.as_secs()).then(|| {
                format!(
                    "'{agent}' started {} ago, within --older-than {}",
                    age(since),
                    age(window.as_secs() as i64)
                )
            })
        };
        const RESTARTS: &str = "kept for restarts (--keep-images)";
        let kept = &mut self.kept;
        // Keeps `what` for `reason`: false, for `retain`, when there is one.
        let mut keep = |what: String, reason: Option<String>| match reason {
            Some(reason) => {
                kept.push(Kept { what, reason });
                false
            }
            None => true,
        };
        (self.containers).retain(|c| keep(format!("container {}", c.name), recent(&c.agent)));
        self.images.retain(|i| {
            let why = (retention.keep_images && !i.is_untagged())
                .then(|| RESTARTS.to_string())
                .or_else(|| recent(&i.agent));
            keep(format!("image {}", i.display), why)
        });
        self.build_steps.retain(|s| {
            let why = (retention.keep_images)
                .then(|| RESTARTS.to_string())
                .or_else(|| recent(&s.agent));
            keep(s.display.clone(), why)
        });
        (self.build_dirs).retain(|d| {
            keep(
                format!("build directory {}", d.path.display()),
                recent(&d.agent),
            )
        });
        // A status reset of a recent agent waits too; a stale "running"
        // one is the truth corrected, never held back.
        (self.resets).retain(|r| {
            let why = recent(&r.agent).filter(|_| !r.stale);
            keep(format!("status of '{}'", r.agent), why)
        });
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::StartId;
    use crate::ownership::Claim;
    use crate::pipeline::{PlannedContainer, PlannedImage, PlannedStep};

    const NOW: i64 = 1_800_000_000;

    /// A plan with, for each agent, a container, a tagged image, an
    /// untagged one and a build step.
    fn plan_of(agents: &[AgentName]) -> Plan {
        let mut plan = Plan {
            scope: Scope::All,
            containers: Vec::new(),
            images: Vec::new(),
            build_steps: Vec::new(),
            forget_steps: Vec::new(),
            build_dirs: Vec::new(),
            resets: Vec::new(),
            kept: Vec::new(),
            dangling_images: 0,
            build_root_error: None,
            other_instances: Vec::new(),
        };
        for (n, agent) in agents.iter().enumerate() {
            let start = Some(StartId::from_stored(format!("s{n}")));
            plan.containers.push(PlannedContainer {
                id: format!("c{n}"),
                name: agent.resource_name(),
                agent: agent.clone(),
                start: start.clone(),
                claim: Claim::Labelled,
            });
            for (reference, id) in [
                (agent.image_tag(), format!("t{n}")),
                (format!("u{n}"), format!("u{n}")),
            ] {
                plan.images.push(PlannedImage {
                    display: reference.clone(),
                    reference,
                    image_id: id,
                    agent: agent.clone(),
                    start: start.clone(),
                    claim: Claim::Labelled,
                });
            }
            plan.build_steps.push(PlannedStep {
                seq: n as i64,
                image_id: format!("b{n}"),
                parent: String::new(),
                display: format!("build step b{n}"),
                agent: agent.clone(),
                start: StartId::from_stored(format!("s{n}")),
            });
        }
        plan
    }

    proptest! {
        /// Over random ages and windows: an agent active within the window
        /// keeps all four of its items, an older one (or one the store does
        /// not know) loses all; nothing is lost from the count; with
        /// `--keep-images` no tagged image or step is planned.
        #[test]
        fn older_than_and_keep_images_hold_exactly_the_right_items(
            ages in proptest::collection::vec(proptest::option::of(0i64..30 * 86_400), 1..8),
            window_days in 0u64..20,
            keep_images: bool,
        ) {
            let agents: Vec<AgentName> =
                (0..ages.len()).map(|n| AgentName::new(format!("a{n}")).unwrap()).collect();
            let last: BTreeMap<AgentName, i64> = (agents.iter().zip(&ages))
                .filter_map(|(a, age)| Some((a.clone(), NOW - (*age)?)))
                .collect();
            let window = Duration::from_secs(window_days * 86_400);
            let retention = Retention { keep_images, older_than: Some(window) };
            let mut plan = plan_of(&agents);
            let before = plan.len();
            plan.retain(&retention, &last, NOW);
            prop_assert_eq!(plan.len() + plan.kept.len(), before);
            for (agent, age) in agents.iter().zip(&ages) {
                let recent = age.is_some_and(|age| (age as u64) < window.as_secs());
                let planned = plan.containers.iter().filter(|c| &c.agent == agent).count()
                    + plan.images.iter().filter(|i| &i.agent == agent).count()
                    + plan.build_steps.iter().filter(|s| &s.agent == agent).count();
                let expected = match (recent, keep_images) {
                    (true, _) => 0,
                    (false, true) => 2,
                    (false, false) => 4,
                };
                prop_assert_eq!(planned, expected, "{} aged {:?}", agent, age);
            }
            if keep_images {
                prop_assert!(plan.images.iter().all(|i| i.is_untagged()));
                prop_assert!(plan.build_steps.is_empty());
            }
        }
    }

    /// A start dated after now (a clock set back) is recent; an agent the
    /// store no longer knows is never held back, whatever its start rows.
    #[test]
    fn a_future_start_is_recent_and_a_forgotten_agent_is_not_held() {
        let (web, gone) = (
            AgentName::new("web").unwrap(),
            AgentName::new("gone").unwrap(),
        );
        let last = BTreeMap::from([(web.clone(), NOW + 600)]);
        let mut plan = plan_of(&[web, gone.clone()]);
        let retention = Retention {
            keep_images: false,
            older_than: Some(Duration::from_secs(7 * 86_400)),
        };
        plan.retain(&retention, &last, NOW);
        assert!(plan.containers.iter().all(|c| c.agent == gone), "{plan:#?}");
        assert_eq!(plan.containers.len(), 1);
        assert!(plan
            .kept
            .iter()
            .any(|k| k.reason.starts_with("'web' started 0s ago")));
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(40), "40s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(5 * 3600 + 1), "5h");
        assert_eq!(age(7 * 86_400), "7d");
        assert_eq!(age(-3), "0s");
    }
}
