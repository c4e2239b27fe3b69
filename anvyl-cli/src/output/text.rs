//! Plans and reports as people read them: one aligned table of what a
//! cleanup will remove (or a row per agent when long), what it keeps and
//! why, and the summary after it ran.

use anvyl_core::pipeline::{FleetPlan, FleetReport, Outcome, Report, Step};
use anvyl_core::AgentName;

use super::{
    claim, plans, plural, removed, scope_title, table, SUMMARY_ABOVE, SUMMARY_AGENTS, THIS_MACHINE,
};

/// The fleet plan as one table naming each item's host — or, when long and
/// not `full`, one row per agent and host with its items counted by step —
/// then what is kept, the hosts that could not be planned and the other
/// installations seen.
pub fn plan_table(plan: &FleetPlan, full: bool) -> String {
    let mut out = String::new();
    let on = match plan.hosts.as_slice() {
        [one] => format!(" on host '{}'", one.host),
        many => format!(" on {}", plural(many.len(), "host", "hosts")),
    };
    if plan.no_host_reached() && plan.machine.is_empty() {
        out.push_str("No host answered: nothing was planned.\n");
    } else if plan.is_empty() {
        out.push_str(&format!(
            "Nothing to clean up for {}{on}.\n",
            scope_title(&plan.scope)
        ));
    } else {
        out.push_str(&format!(
            "Cleanup plan for {}{on}: {}\n",
            scope_title(&plan.scope),
            plural(plan.len(), "item", "items")
        ));
        if !full && plan.len() > SUMMARY_ABOVE {
            out.push_str(&plan_summary(plan));
        } else {
            out.push_str(&plan_rows(plan));
        }
    }
    out.push_str(&plan_notes(plan));
    out
}

/// Each agent's items on each host, counted by step.
fn plan_summary(plan: &FleetPlan) -> String {
    // (agent, host) -> containers, images, build dirs, status reset
    let mut counts: std::collections::BTreeMap<(String, &str), [usize; 4]> = Default::default();
    for (host, p) in plans(plan) {
        let host = host.unwrap_or(THIS_MACHINE);
        let mut count = |agent: &str, step: usize| {
            counts.entry((agent.to_string(), host)).or_default()[step] += 1;
        };
        let mut count = |agent: &AgentName, step: Step| count(agent.as_str(), step.index());
        p.containers
            .iter()
            .for_each(|c| count(&c.agent, Step::Containers));
        p.images.iter().for_each(|i| count(&i.agent, Step::Images));
        (p.build_steps.iter()).for_each(|s| count(&s.agent, Step::Images));
        p.build_dirs
            .iter()
            .for_each(|d| count(&d.agent, Step::BuildDirs));
        p.resets
            .iter()
            .for_each(|r| count(&r.agent, Step::StatusReset));
    }
    let mut entries: Vec<_> = counts.into_iter().collect();
    entries.sort_by(|((a, ha), _), ((b, hb), _)| natord::compare(a, b).then(ha.cmp(hb)));
    let agents = entries
        .iter()
        .map(|((agent, _), _)| agent)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut rows = table(&[
        "AGENT",
        "HOST",
        &Step::Containers.words().short.to_uppercase(),
        &Step::Images.words().short.to_uppercase(),
        &Step::BuildDirs.words().short.to_uppercase(),
        "STATUS",
    ]);
    for ((agent, host), [containers, images, dirs, resets]) in entries.iter().take(SUMMARY_AGENTS) {
        let status = if *resets > 0 { "reset" } else { "" };
        rows.add_row(vec![
            agent.clone(),
            host.to_string(),
            containers.to_string(),
            images.to_string(),
            dirs.to_string(),
            status.to_string(),
        ]);
    }
    let mut out = rows.trim_fmt() + "\n";
    if entries.len() > SUMMARY_AGENTS {
        out.push_str(&format!(
            "… and {} more (agent, host) rows\n",
            entries.len() - SUMMARY_AGENTS
        ));
    }
    out.push_str(&format!(
        "Shown by agent ({}); every item: -v, --dry-run or --output json\n",
        plural(agents, "agent", "agents")
    ));
    out
}

/// Every item of the plan, one row each.
fn plan_rows(plan: &FleetPlan) -> String {
    {
        let mut rows = table(&["HOST", "STEP", "RESOURCE", "AGENT", "OWNED BY"]);
        for (host, p) in plans(plan) {
            let host = host.unwrap_or(THIS_MACHINE);
            for c in &p.containers {
                rows.add_row(vec![
                    host,
                    Step::Containers.words().kind,
                    &c.name,
                    c.agent.as_str(),
                    claim(c.claim),
                ]);
            }
            for i in &p.images {
                rows.add_row(vec![
                    host,
                    Step::Images.words().kind,
                    &i.display,
                    i.agent.as_str(),
                    claim(i.claim),
                ]);
            }
            for s in &p.build_steps {
                let (kind, what) = (Step::Images.words().kind, &s.display);
                rows.add_row(vec![host, kind, what, s.agent.as_str(), "its build"]);
            }
            for d in &p.build_dirs {
                let path = d.path.display().to_string();
                rows.add_row(vec![
                    host,
                    Step::BuildDirs.words().kind,
                    &path,
                    d.agent.as_str(),
                    "build root",
                ]);
            }
            for r in &p.resets {
                let what = format!("{} -> stopped", r.from.as_str());
                let why = if r.stale { "container gone" } else { "state" };
                let kind = Step::StatusReset.words().kind;
                rows.add_row(vec![host, kind, &what, r.agent.as_str(), why]);
            }
        }
        rows.trim_fmt() + "\n"
    }
}

/// What follows the items: the hosts that could not be planned, a broken
/// build root, what is kept and why, other installations seen.
fn plan_notes(plan: &FleetPlan) -> String {
    let mut out = String::new();
    for (host, error) in plan.failed_hosts() {
        let what = if error.unreachable {
            "unreachable"
        } else {
            "cannot be planned"
        };
        out.push_str(&format!(
            "Host '{host}' {what}: {} — nothing of its agents is changed.\n",
            error.message
        ));
    }
    if let Some(error) = &plan.machine.build_root_error {
        out.push_str(&format!("Build directories cannot be cleaned: {error}\n"));
    }
    let kept: Vec<_> = plans(plan)
        .flat_map(|(host, p)| p.kept.iter().map(move |k| (host, k)))
        .collect();
    if !kept.is_empty() {
        out.push_str("Kept:\n");
        for (host, k) in kept {
            let host = host.unwrap_or(THIS_MACHINE);
            out.push_str(&format!("  {host}: {} ({})\n", k.what, k.reason));
        }
    }
    for (host, p) in plans(plan) {
        for other in &p.other_instances {
            out.push_str(&format!(
                "Not this installation's: {} of anvyl installation {} on host '{}' (after a lost state store, `anvyl agent cleanup --instance {}` removes them).\n",
                plural(other.resources, "resource", "resources"),
                other.instance,
                host.unwrap_or(THIS_MACHINE),
                other.instance
            ));
        }
    }
    out
}

/// "2 containers, 1 image, 0 build directories; reset 1 agent".
fn removed_counts(reports: &[&Report]) -> String {
    let sum = |step| reports.iter().map(|r| removed(r, step)).sum::<usize>();
    let [containers, images, dirs, resets] = Step::ALL.map(|step| {
        let (one, many) = step.words().counted;
        plural(sum(step), one, many)
    });
    format!("{containers}, {images}, {dirs}; reset {resets}")
}

/// The summary after applying: totals, per-host counts when there are
/// several hosts, every item that was skipped or failed, the hosts left
/// alone, and the prune hint of each engine with dangling images.
pub fn report_summary(report: &FleetReport, plan: &FleetPlan) -> String {
    let all: Vec<&Report> = report.reports().collect();
    let mut out = format!("Removed {}.\n", removed_counts(&all));
    if plan.hosts.len() > 1 {
        for (planned, host) in plan.hosts.iter().zip(&report.hosts) {
            match (&host.report, &planned.error) {
                (Some(r), _) => out.push_str(&format!(
                    "  {}: removed {}.\n",
                    host.host,
                    removed_counts(&[r])
                )),
                (None, Some(e)) if e.unreachable => {
                    out.push_str(&format!("  {}: unreachable, not cleaned.\n", host.host))
                }
                (None, _) => out.push_str(&format!("  {}: not cleaned.\n", host.host)),
            }
        }
    }
    let reports = (report.hosts.iter())
        .filter_map(|h| Some((h.host.as_str(), h.report.as_ref()?)))
        .chain(std::iter::once((THIS_MACHINE, &report.machine)));
    for (host, r) in reports {
        for (step, item) in r.items() {
            match &item.outcome {
                Outcome::Skipped { reason } => out.push_str(&format!(
                    "Skipped {} {} on {host}: {reason}\n",
                    step.words().noun,
                    item.target
                )),
                Outcome::Failed { error } => out.push_str(&format!(
                    "Failed {} {} on {host}: {error}\n",
                    step.words().noun,
                    item.target
                )),
                _ => {}
            }
        }
    }
    for (host, error) in plan.failed_hosts() {
        out.push_str(&format!(
            "Host '{host}' was not cleaned: {}; its agents keep their status. Run `anvyl agent cleanup` again once it answers.\n",
            error.message
        ));
    }
    let remaining = report.remaining_owned();
    if remaining > 0 {
        out.push_str(&format!(
            "{} owned by anvyl remain.\n",
            plural(remaining, "resource", "resources")
        ));
    }
    out.push_str(&prune_hints(plan));
    out
}

/// The hint about each engine's own dangling images, or nothing.
pub fn prune_hints(plan: &FleetPlan) -> String {
    let mut out = String::new();
    for host in &plan.hosts {
        let (Some(p), Some(hint)) = (&host.plan, host.prune_hint) else {
            continue;
        };
        if p.dangling_images == 0 {
            continue;
        }
        let (verb, them) = if p.dangling_images == 1 {
            ("is", "it")
        } else {
            ("are", "them")
        };
        out.push_str(&format!(
            "Hint: {} on host '{}' {verb} not anvyl's to remove; `{}` removes {them}.\n",
            plural(p.dangling_images, "dangling image", "dangling images"),
            host.host,
            hint
        ));
    }
    out
}
