//! `anvyl agent list`: every agent as its host shows it now (observed, not
//! only recorded), as a table or one JSON row each.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anvyl_core::lifecycle::Observed;
use anvyl_core::{AgentRecord, AgentStatus};
use serde::Serialize;

use crate::cli::{Cli, OutputFormat};
use crate::config::Config;
use crate::error::CliError;

use super::Session;

/// One row of `agent list`.
#[derive(Debug, Serialize)]
struct Row<'a> {
    name: &'a str,
    provider: Option<&'a str>,
    model: Option<&'a str>,
    /// What is, in the table's words: `running`, `exited (137)`,
    /// `container gone`, `start crashed`, `unknown (host unreachable)`.
    status: String,
    /// What the state store records.
    recorded: AgentStatus,
    /// What is, with its details (exit code, exit time).
    observed: &'a Observed,
    host: Option<&'a str>,
    /// RFC 3339 in JSON; the table shows the age.
    created: String,
    #[serde(skip)]
    age: String,
}

pub(super) fn created(secs: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// "2 minutes ago", as `docker ps` shows CREATED.
fn age(secs: i64, now: i64) -> String {
    let ago = (now - secs).max(0);
    let (n, unit) = match ago {
        0..=1 => return "just now".into(),
        2..=119 => (ago, "second"),
        120..=7199 => (ago / 60, "minute"),
        7200..=172_799 => (ago / 3600, "hour"),
        _ => (ago / 86_400, "day"),
    };
    format!("{n} {unit}s ago")
}

/// The status `agent list` shows: what was observed, an exit with its age.
fn shown(observed: &Observed, now: i64) -> String {
    match observed {
        Observed::Exited {
            finished: Some(at), ..
        } => format!("{observed} {}", age(*at, now)),
        _ => observed.to_string(),
    }
}

/// Lists the agents as they are: each running one is looked at on its host
/// (hosts side by side, each within a few seconds), each starting one by
/// its start's lock, and shown
/// as found — never repaired here, so a listing changes no agent and waits
/// for no other process; the next command that acts on a dead agent
/// cleans it up.
pub(super) async fn run(cli: &Cli, config: &Config, running: bool) -> Result<ExitCode, CliError> {
    let session = Session::reading(config)?;
    let agents: Vec<AgentRecord> = (session.state)
        .agents()?
        .into_iter()
        .filter(|a| !running || a.status == AgentStatus::Running)
        .collect();
    let observed = session.lifecycle().observe_all(&agents).await?;
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut rows: Vec<Row> = (agents.iter().zip(&observed))
        .filter(|(_, o)| !running || o.is_running())
        .map(|(a, o)| Row {
            age: age(a.created, now),
            name: a.name.as_str(),
            provider: a.spec.provider.as_deref(),
            model: a.spec.model.as_deref(),
            status: shown(o, now),
            recorded: a.status,
            observed: o,
            host: a.host.as_deref(),
            created: created(a.created),
        })
        .collect();
    rows.sort_by(|a, b| natord::compare(a.name, b.name));
    if cli.output == OutputFormat::Json {
        super::emit(&crate::output::json(&rows));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        super::emit(if running {
            "No running agents.\n"
        } else {
            "No agents.\n"
        });
        return Ok(ExitCode::SUCCESS);
    }
    let mut table =
        crate::output::table(&["NAME", "PROVIDER", "MODEL", "STATUS", "HOST", "CREATED"]);
    for r in &rows {
        table.add_row(vec![
            comfy_table::Cell::new(r.name),
            comfy_table::Cell::new(r.provider.unwrap_or("-")),
            comfy_table::Cell::new(r.model.unwrap_or("-")),
            crate::output::status_cell(r.observed, &r.status),
            comfy_table::Cell::new(r.host.unwrap_or("-")),
            comfy_table::Cell::new(&r.age),
        ]);
    }
    super::emit(&(table.trim_fmt() + "\n"));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn created_reads_as_an_age() {
        let cases = [
            (0, "just now"),
            (5, "5 seconds ago"),
            (150, "2 minutes ago"),
            (7300, "2 hours ago"),
            (3 * 86_400, "3 days ago"),
        ];
        for (ago, text) in cases {
            assert_eq!(age(1_000_000 - ago, 1_000_000), text);
        }
    }
}
