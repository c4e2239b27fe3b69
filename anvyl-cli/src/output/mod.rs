//! Rendering plans and reports: aligned tables for people (`text`), one
//! JSON document for programs (`document`). Rendering returns strings so
//! snapshots can pin them; what both need (which plan is on which host, how
//! much a report removed) is here.

mod document;
#[cfg(test)]
mod tests;
mod text;

pub use document::{json, json_line, CleanupDocument, Opening};
pub use text::{plan_table, prune_hints, report_summary};

use anvyl_core::pipeline::{FleetPlan, Outcome, Plan, Report, Scope, Step};
use anvyl_core::Claim;
use comfy_table::{presets, Table};

/// A borderless table whose first column starts at the line's start.
/// Rendered with `trim_fmt`, without the blanks comfy-table pads the last
/// column with (they only hurt diffs and snapshots).
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
        Observed::Starting { .. } | Observed::Restarting { .. } => cell.fg(Color::Yellow),
        Observed::Failed
        | Observed::StartCrashed { .. }
        | Observed::Exited { .. }
        | Observed::ContainerGone => cell.fg(Color::Red),
        Observed::Unknown { .. } => cell.fg(Color::Yellow),
        Observed::Stopped => cell,
    }
}

pub(crate) fn claim(claim: Claim) -> &'static str {
    match claim {
        Claim::Labelled => "labels",
        Claim::LegacyName => "exact legacy name",
    }
}

pub(crate) fn scope_title(scope: &Scope) -> String {
    match scope {
        Scope::Start(id) => format!("start {id}"),
        Scope::Agent(agent) => format!("agent '{agent}'"),
        Scope::All => "all agents".to_string(),
    }
}

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Where an item of a fleet plan is: a host, or (build directories) this
/// machine.
pub(crate) const THIS_MACHINE: &str = "(this machine)";

/// Every plan of a fleet with the host it was made on (`None`: this
/// machine's build root).
pub(crate) fn plans(plan: &FleetPlan) -> impl Iterator<Item = (Option<&str>, &Plan)> {
    (plan.hosts.iter())
        .filter_map(|h| Some((Some(h.host.as_str()), h.plan.as_ref()?)))
        .chain(std::iter::once((None, &plan.machine)))
}

/// Above this many items a plan is shown by agent (unless `full`): hundreds
/// of rows before a question hide the question.
pub const SUMMARY_ABOVE: usize = 20;

/// The most agents a summary names one by one.
pub(crate) const SUMMARY_AGENTS: usize = 20;

/// Items removed or already gone in `step` of `report`.
pub(crate) fn removed(report: &Report, step: Step) -> usize {
    (report.steps.iter())
        .filter(|s| s.step == step)
        .flat_map(|s| &s.items)
        .filter(|i| matches!(i.outcome, Outcome::Removed | Outcome::AlreadyGone))
        .count()
}
