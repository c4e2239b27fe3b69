//! Rendering plans and reports: aligned tables for people, one JSON document
//! for programs. Rendering returns strings so snapshots can pin them.

use anvyl_core::pipeline::{
    FleetPlan, FleetReport, ItemReport, Kept, OtherInstance, Outcome, Plan, PlannedContainer,
    PlannedDir, PlannedImage, PlannedReset, Report, Scope, Step,
};
use anvyl_core::{AgentName, BackendKind, Claim};
use comfy_table::{presets, Table};
use serde::Serialize;

/// A borderless table whose first column starts at the line's start.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.to_vec());
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    // Colour only on a terminal (comfy-table checks), never with NO_COLOR.
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        table.force_no_tty();
    }
    table
}

/// An observed status, coloured as people scan for it: running green,
/// failed or dead red, starting or unknown yellow.
pub fn status_cell(observed: &anvyl_core::lifecycle::Observed, text: &str) -> comfy_table::Cell {
    use anvyl_core::lifecycle::Observed;
    use comfy_table::Color;
    let cell = comfy_table::Cell::new(text);
    match observed {
        Observed::Running => cell.fg(Color::Green),
        Observed::Starting { .. } => cell.fg(Color::Yellow),
        Observed::Failed
        | Observed::StartCrashed { .. }
        | Observed::Exited { .. }
        | Observed::ContainerGone => cell.fg(Color::Red),
        Observed::Unknown { .. } => cell.fg(Color::Yellow),
        Observed::Stopped => cell,
    }
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

/// Where an item of a fleet plan is: a host, or (build directories) this
/// machine.
const THIS_MACHINE: &str = "(this machine)";

/// Every plan of a fleet with the host it was made on (`None`: this
/// machine's build root).
fn plans(plan: &FleetPlan) -> impl Iterator<Item = (Option<&str>, &Plan)> {
    (plan.hosts.iter())
        .filter_map(|h| Some((Some(h.host.as_str()), h.plan.as_ref()?)))
        .chain(std::iter::once((None, &plan.machine)))
}

/// Above this many items a plan is shown by agent (unless `full`): hundreds
/// of rows before a question hide the question.
pub const SUMMARY_ABOVE: usize = 20;

/// The most agents a summary names one by one.
const SUMMARY_AGENTS: usize = 20;

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
    let mut out = trimmed(&rows);
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
        trimmed(&rows)
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

/// Items removed or already gone in `step` of `report`.
fn removed(report: &Report, step: Step) -> usize {
    (report.steps.iter())
        .filter(|s| s.step == step)
        .flat_map(|s| &s.items)
        .filter(|i| matches!(i.outcome, Outcome::Removed | Outcome::AlreadyGone))
        .count()
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

/// An item of a plan or report with the host it is on (`null`: this
/// machine's build root).
#[derive(Debug, Serialize)]
struct OnHost<'a, T> {
    host: Option<&'a str>,
    #[serde(flatten)]
    item: &'a T,
}

/// Every item of `pick` over the plans of a fleet, with its host.
fn on_hosts<'a, T>(plan: &'a FleetPlan, pick: impl Fn(&'a Plan) -> &'a [T]) -> Vec<OnHost<'a, T>> {
    plans(plan)
        .flat_map(|(host, p)| pick(p).iter().map(move |item| OnHost { host, item }))
        .collect()
}

/// The merged plan of the JSON document: each step's items over all hosts.
#[derive(Debug, Serialize)]
struct MergedPlan<'a> {
    scope: &'a Scope,
    containers: Vec<OnHost<'a, PlannedContainer>>,
    images: Vec<OnHost<'a, PlannedImage>>,
    build_dirs: Vec<OnHost<'a, PlannedDir>>,
    resets: Vec<OnHost<'a, PlannedReset>>,
    kept: Vec<OnHost<'a, Kept>>,
    other_instances: Vec<OnHost<'a, OtherInstance>>,
    build_root_error: Option<&'a str>,
}

/// One step of the merged report.
#[derive(Debug, Serialize)]
struct MergedStep<'a> {
    step: Step,
    items: Vec<OnHost<'a, ItemReport>>,
}

#[derive(Debug, Serialize)]
struct MergedReport<'a> {
    steps: Vec<MergedStep<'a>>,
}

/// One host's line of the JSON summary.
#[derive(Debug, Serialize)]
struct HostSummary<'a> {
    host: &'a str,
    backend: Option<BackendKind>,
    reachable: bool,
    error: Option<&'a str>,
    planned: usize,
    removed: usize,
    remaining_owned: usize,
    dangling_images: usize,
    prune_hint: Option<&'static str>,
}

/// The JSON document of `agent cleanup`: the plan and report merged over
/// hosts, each item naming its host, and one summary line per host.
#[derive(Debug, Serialize)]
pub struct CleanupDocument<'a> {
    dry_run: bool,
    hosts: Vec<HostSummary<'a>>,
    plan: MergedPlan<'a>,
    report: Option<MergedReport<'a>>,
    remaining_owned: usize,
}

/// The opening cleanup of `agent cleanup --watch`, as a line of its stream.
#[derive(Debug, Serialize)]
pub struct Opening<'a> {
    action: &'static str,
    #[serde(flatten)]
    document: CleanupDocument<'a>,
}

impl<'a> Opening<'a> {
    /// `document` as the `cleanup` action.
    pub fn new(document: CleanupDocument<'a>) -> Self {
        Self {
            action: "cleanup",
            document,
        }
    }
}

impl<'a> CleanupDocument<'a> {
    /// The document of `plan`, and of `report` once applied.
    pub fn new(dry_run: bool, plan: &'a FleetPlan, report: Option<&'a FleetReport>) -> Self {
        let host_report = |name: &str| {
            report.and_then(|r| r.hosts.iter().find(|h| h.host == name)?.report.as_ref())
        };
        let hosts = (plan.hosts.iter())
            .map(|h| {
                let r = host_report(&h.host);
                let dangling = h.plan.as_ref().map_or(0, |p| p.dangling_images);
                HostSummary {
                    host: &h.host,
                    backend: h.backend,
                    reachable: !h.error.as_ref().is_some_and(|e| e.unreachable),
                    error: h.error.as_ref().map(|e| e.message.as_str()),
                    planned: h.plan.as_ref().map_or(0, Plan::len),
                    removed: r.map_or(0, |r| Step::ALL.iter().map(|s| removed(r, *s)).sum()),
                    remaining_owned: r.map_or(0, Report::remaining_owned),
                    dangling_images: dangling,
                    prune_hint: h.prune_hint.filter(|_| dangling > 0),
                }
            })
            .collect();
        let merged_report = report.map(|report| {
            let reports: Vec<(Option<&str>, &Report)> = (report.hosts.iter())
                .filter_map(|h| Some((Some(h.host.as_str()), h.report.as_ref()?)))
                .chain(std::iter::once((None, &report.machine)))
                .collect();
            MergedReport {
                steps: Step::ALL
                    .iter()
                    .map(|&step| MergedStep {
                        step,
                        items: (reports.iter())
                            .flat_map(|&(host, r)| {
                                (r.steps.iter()).filter(move |s| s.step == step).flat_map(
                                    move |s| s.items.iter().map(move |item| OnHost { host, item }),
                                )
                            })
                            .collect(),
                    })
                    .collect(),
            }
        });
        Self {
            dry_run,
            hosts,
            plan: MergedPlan {
                scope: &plan.scope,
                containers: on_hosts(plan, |p| &p.containers),
                images: on_hosts(plan, |p| &p.images),
                build_dirs: on_hosts(plan, |p| &p.build_dirs),
                resets: on_hosts(plan, |p| &p.resets),
                kept: on_hosts(plan, |p| &p.kept),
                other_instances: on_hosts(plan, |p| &p.other_instances),
                build_root_error: plan.machine.build_root_error.as_deref(),
            },
            report: merged_report,
            remaining_owned: report.map_or(0, FleetReport::remaining_owned),
        }
    }
}

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("output types always serialise");
    text.push('\n');
    text
}

/// `value` as one JSON object on one line, after the time it is said: the
/// event stream `agent cleanup --watch` writes, a line per action.
pub fn json_line<T: Serialize>(value: &T) -> String {
    #[derive(Serialize)]
    struct Line<'a, T> {
        time: String,
        #[serde(flatten)]
        value: &'a T,
    }
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut text =
        serde_json::to_string(&Line { time, value }).expect("output types always serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use anvyl_core::pipeline::{HostError, HostPlan, HostReport, StepReport};
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

    /// The sample plan on `local`, its build directory on this machine,
    /// and a host that did not answer.
    fn sample_fleet() -> FleetPlan {
        let plan = sample_plan();
        let machine = Plan {
            containers: vec![],
            images: vec![],
            resets: vec![],
            kept: vec![],
            dangling_images: 0,
            other_instances: vec![],
            ..plan.clone()
        };
        FleetPlan {
            scope: Scope::All,
            hosts: vec![
                HostPlan {
                    host: "local".into(),
                    backend: Some(BackendKind::Docker),
                    prune_hint: Some("docker system prune -f"),
                    plan: Some(Plan {
                        build_dirs: vec![],
                        ..plan
                    }),
                    error: None,
                },
                HostPlan {
                    host: "far".into(),
                    backend: None,
                    prune_hint: None,
                    plan: None,
                    error: Some(HostError {
                        unreachable: true,
                        message:
                            "cannot reach the Docker engine at unix:///far.sock: connection refused"
                                .into(),
                    }),
                },
            ],
            machine,
        }
    }

    #[test]
    fn a_plan_renders_as_a_table() {
        insta::assert_snapshot!(plan_table(&sample_fleet(), false));
    }

    #[test]
    fn a_long_plan_is_shown_by_agent_unless_full() {
        // 12 agents (web2 … web13) with a container and an image each: 24
        // items, naturally sorted, the same notes below.
        let mut fleet = sample_fleet();
        let local = fleet.hosts[0].plan.as_mut().unwrap();
        let (container, image) = (local.containers[0].clone(), local.images[0].clone());
        local.containers.clear();
        local.images.clear();
        local.resets.clear();
        for n in 2..=13 {
            let agent = AgentName::new(format!("web{n}")).unwrap();
            local.containers.push(PlannedContainer {
                agent: agent.clone(),
                name: format!("anvyl-agent-web{n}"),
                ..container.clone()
            });
            local.images.push(PlannedImage {
                agent,
                display: format!("anvyl-agent-web{n}:latest"),
                ..image.clone()
            });
        }
        let summary = plan_table(&fleet, false);
        insta::assert_snapshot!(summary);
        let full = plan_table(&fleet, true);
        assert_eq!(full.matches("anvyl-agent-web").count(), 24, "{full}");
    }

    #[test]
    fn a_plan_renders_as_json() {
        insta::assert_snapshot!(json(&CleanupDocument::new(false, &sample_fleet(), None)));
    }

    #[test]
    fn a_report_names_each_host_and_the_one_left_alone() {
        let plan = sample_fleet();
        let local = plan.hosts[0].plan.as_ref().unwrap();
        let item = |target: &str| ItemReport {
            target: target.into(),
            agent: None,
            outcome: Outcome::Removed,
        };
        let report = FleetReport {
            hosts: vec![
                HostReport {
                    host: "local".into(),
                    report: Some(Report {
                        steps: vec![StepReport {
                            step: Step::Containers,
                            items: local.containers.iter().map(|c| item(&c.name)).collect(),
                        }],
                    }),
                },
                HostReport {
                    host: "far".into(),
                    report: None,
                },
            ],
            machine: Report { steps: vec![] },
        };
        let text = report_summary(&report, &plan);
        assert!(text.contains("  local: removed 1 container,"), "{text}");
        assert!(text.contains("  far: unreachable, not cleaned."), "{text}");
        assert!(
            text.contains("Host 'far' was not cleaned: cannot reach"),
            "{text}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&json(&CleanupDocument::new(false, &plan, Some(&report))))
                .unwrap();
        assert_eq!(doc["hosts"][0]["removed"], 1, "{doc}");
        assert_eq!(doc["hosts"][1]["reachable"], false, "{doc}");
        assert_eq!(
            doc["report"]["steps"][0]["items"][0]["host"], "local",
            "{doc}"
        );
    }

    #[test]
    fn the_hint_names_the_engines_prune() {
        let mut plan = sample_fleet();
        assert!(prune_hints(&plan)
            .contains("on host 'local' are not anvyl's to remove; `docker system prune -f`"));
        plan.hosts[0].prune_hint = None;
        assert_eq!(
            prune_hints(&plan),
            "",
            "no hint without the engine's command"
        );
        plan.hosts[0].prune_hint = Some("podman system prune -f");
        assert!(prune_hints(&plan).contains("`podman system prune -f`"));
        plan.hosts[0].plan.as_mut().unwrap().dangling_images = 0;
        assert_eq!(prune_hints(&plan), "");
    }
}
