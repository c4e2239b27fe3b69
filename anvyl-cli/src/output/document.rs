//! Plans and reports as programs read them: one JSON document per cleanup
//! (`-o json`), items merged across hosts with the host they are on, and
//! one JSON line per event of a watcher.

use anvyl_core::pipeline::{
    FleetPlan, FleetReport, ItemReport, Kept, OtherInstance, Plan, PlannedContainer, PlannedDir,
    PlannedImage, PlannedReset, Report, Scope, Step,
};
use anvyl_core::BackendKind;
use serde::Serialize;

use super::{plans, removed};

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
    /// Only with an owned build cache: absent otherwise, as before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    build_steps: Vec<OnHost<'a, anvyl_core::PlannedStep>>,
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
                build_steps: on_hosts(plan, |p| &p.build_steps),
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
