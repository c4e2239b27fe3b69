//! Rendering plans and reports: aligned tables for people, one JSON document
//! for programs. Rendering returns strings so snapshots can pin them.

use anvyl_core::pipeline::{Outcome, Plan, Report, Scope, Step};
use anvyl_core::{BackendKind, Claim};
use comfy_table::{presets, Table};
use serde::Serialize;

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.to_vec());
    table
}

fn claim(claim: Claim) -> &'static str {
    match claim {
        Claim::Labelled => "labels",
        Claim::LegacyName => "exact legacy name",
    }
}

fn scope_title(scope: &Scope) -> String {
    match scope {
        Scope::Start(id) => format!("start {id}"),
        Scope::Agent(agent) => format!("agent '{agent}'"),
        Scope::All => "all agents".to_string(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A table as text, without the blanks comfy-table pads the last column
/// with (they only hurt diffs and snapshots).
pub fn trimmed(table: &Table) -> String {
    let mut out = String::new();
    for line in table.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The plan as a table, followed by what is deliberately kept.
pub fn plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str(&format!(
            "Nothing to clean up for {}.\n",
            scope_title(&plan.scope)
        ));
    } else {
        out.push_str(&format!(
            "Cleanup plan for {}: {}\n",
            scope_title(&plan.scope),
            plural(plan.len(), "item", "items")
        ));
        let mut rows = table(&["STEP", "RESOURCE", "AGENT", "OWNED BY"]);
        for c in &plan.containers {
            rows.add_row(vec!["container", &c.name, c.agent.as_str(), claim(c.claim)]);
        }
        for i in &plan.images {
            rows.add_row(vec!["image", &i.display, i.agent.as_str(), claim(i.claim)]);
        }
        for d in &plan.build_dirs {
            let path = d.path.display().to_string();
            rows.add_row(vec!["build dir", &path, d.agent.as_str(), "build root"]);
        }
        for r in &plan.resets {
            let what = format!("{} -> stopped", r.from.as_str());
            let why = if r.stale { "container gone" } else { "state" };
            rows.add_row(vec!["status", &what, r.agent.as_str(), why]);
        }
        out.push_str(&trimmed(&rows));
    }
    if let Some(error) = &plan.build_root_error {
        out.push_str(&format!(
            "Build directories cannot be cleaned: {error}
"
        ));
    }
    if !plan.kept.is_empty() {
        out.push_str("Kept:\n");
        for k in &plan.kept {
            out.push_str(&format!("  {} ({})\n", k.what, k.reason));
        }
    }
    for other in &plan.other_instances {
        out.push_str(&format!(
            "Not this installation's: {} of anvyl installation {} (after a lost state store, `anvyl agent cleanup --instance {}` removes them).\n",
            plural(other.resources, "resource", "resources"),
            other.instance,
            other.instance
        ));
    }
    out
}

/// The summary after applying: counts per step, then every item that was
/// skipped or failed, then the prune hint when the engine has dangling images.
pub fn report_summary(report: &Report, plan: &Plan, engine: BackendKind) -> String {
    let removed = |step: Step| {
        report
            .steps
            .iter()
            .filter(|s| s.step == step)
            .flat_map(|s| &s.items)
            .filter(|i| matches!(i.outcome, Outcome::Removed | Outcome::AlreadyGone))
            .count()
    };
    let mut out = format!(
        "Removed {}, {}, {}; reset {}.\n",
        plural(removed(Step::Containers), "container", "containers"),
        plural(removed(Step::Images), "image", "images"),
        plural(
            removed(Step::BuildDirs),
            "build directory",
            "build directories"
        ),
        plural(removed(Step::StatusReset), "agent", "agents"),
    );
    for (step, item) in report.items() {
        match &item.outcome {
            Outcome::Skipped { reason } => out.push_str(&format!(
                "Skipped {} {}: {reason}\n",
                step_noun(step),
                item.target
            )),
            Outcome::Failed { error } => out.push_str(&format!(
                "Failed {} {}: {error}\n",
                step_noun(step),
                item.target
            )),
            _ => {}
        }
    }
    let remaining = report.remaining_owned();
    if remaining > 0 {
        out.push_str(&format!(
            "{} owned by anvyl remain.\n",
            plural(remaining, "resource", "resources")
        ));
    }
    out.push_str(&prune_hint(plan, engine));
    out
}

fn step_noun(step: Step) -> &'static str {
    match step {
        Step::Containers => "container",
        Step::Images => "image",
        Step::BuildDirs => "build directory",
        Step::StatusReset => "status reset of",
    }
}

/// The hint about the engine's own dangling images, or nothing.
pub fn prune_hint(plan: &Plan, engine: BackendKind) -> String {
    if plan.dangling_images == 0 {
        return String::new();
    }
    let (verb, them) = if plan.dangling_images == 1 {
        ("is", "it")
    } else {
        ("are", "them")
    };
    format!(
        "Hint: {} on the engine {verb} not anvyl's to remove; `{}` removes {them}.\n",
        plural(plan.dangling_images, "dangling image", "dangling images"),
        engine.prune_hint()
    )
}

/// The JSON document of `agent cleanup`.
#[derive(Debug, Serialize)]
pub struct CleanupDocument<'a> {
    /// True when nothing was removed on purpose.
    pub dry_run: bool,
    /// What was planned.
    pub plan: &'a Plan,
    /// What happened; absent on a dry run or an empty plan.
    pub report: Option<&'a Report>,
    /// Owned resources still present afterwards.
    pub remaining_owned: usize,
    /// The engine's prune command when it has dangling images.
    pub prune_hint: Option<&'static str>,
}

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("output types always serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use anvyl_core::pipeline::{
        Kept, OtherInstance, PlannedContainer, PlannedDir, PlannedImage, PlannedReset,
    };
    use anvyl_core::{AgentName, AgentStatus};

    fn sample_plan() -> Plan {
        let web = AgentName::new("web").unwrap();
        Plan {
            scope: Scope::All,
            containers: vec![PlannedContainer {
                id: "c0ffee".into(),
                name: "anvyl-agent-web".into(),
                agent: web.clone(),
                start: Some(anvyl_core::StartId::from_stored("5a1")),
                claim: Claim::Labelled,
            }],
            images: vec![PlannedImage {
                reference: "anvyl-agent-web:latest".into(),
                display: "anvyl-agent-web:latest".into(),
                image_id: "sha256:1".into(),
                agent: web.clone(),
                start: None,
                claim: Claim::LegacyName,
            }],
            build_dirs: vec![PlannedDir {
                path: "/state/builds/web.5a1".into(),
                name: "web.5a1".into(),
                agent: web.clone(),
                start: anvyl_core::StartId::from_stored("5a1"),
            }],
            resets: vec![PlannedReset {
                agent: web,
                from: AgentStatus::Failed,
                start: Some(anvyl_core::StartId::from_stored("5a1")),
                stale: false,
            }],
            kept: vec![Kept {
                what: "container anvyl-agent-api".into(),
                reason: "in use by running agent 'api'".into(),
            }],
            dangling_images: 2,
            build_root_error: None,
            other_instances: vec![OtherInstance {
                instance: "0badc0de0badc0de".into(),
                resources: 3,
            }],
        }
    }

    #[test]
    fn a_plan_renders_as_a_table() {
        insta::assert_snapshot!(plan_table(&sample_plan()));
    }

    #[test]
    fn a_plan_renders_as_json() {
        insta::assert_snapshot!(json(&sample_plan()));
    }

    #[test]
    fn the_hint_names_the_engines_prune() {
        let plan = sample_plan();
        assert!(prune_hint(&plan, BackendKind::Docker).contains("`docker system prune -f`"));
        assert!(prune_hint(&plan, BackendKind::Podman).contains("`podman system prune -f`"));
        let clean = Plan {
            dangling_images: 0,
            ..plan
        };
        assert_eq!(prune_hint(&clean, BackendKind::Docker), "");
    }
}
