//! `anvyl agent inspect NAME`: one agent in full — its spec, where it
//! runs, what its host shows now (observed, as `agent list` does, writing
//! nothing), its image and container, its current start — as aligned
//! lines for people or one JSON document with `-o json`.

use std::process::ExitCode;

use anvyl_core::lifecycle::Observed;
use anvyl_core::pull::PullPolicy;
use anvyl_core::resources::{show_cpus, Resources};
use anvyl_core::{AgentName, AgentRecord, AgentSpec, AgentStatus};
use serde::Serialize;

use crate::cli::{Cli, OutputFormat};
use crate::config::Config;
use crate::error::CliError;

use super::Session;

/// What `agent inspect -o json` prints.
#[derive(Debug, Serialize)]
struct Inspected<'a> {
    name: &'a str,
    /// What is, as `agent list` shows it.
    status: String,
    /// What the state store records.
    recorded: AgentStatus,
    /// What is, with its details.
    observed: &'a Observed,
    host: Option<&'a str>,
    /// The image tag a start moves to its newest build.
    image: String,
    container: Container<'a>,
    current_start: Option<&'a str>,
    created: String,
    spec: &'a AgentSpec,
}

#[derive(Debug, Serialize)]
struct Container<'a> {
    name: String,
    /// While it runs.
    id: Option<&'a str>,
}

/// Prints `name` as it is.
pub(super) async fn run(cli: &Cli, config: &Config, name: &str) -> Result<ExitCode, CliError> {
    let name = AgentName::new(name)?;
    let session = Session::reading(config)?;
    let agent = session.state.agent(&name)?;
    let observed = session
        .lifecycle()
        .observe_all(std::slice::from_ref(&agent))
        .await?
        .pop()
        .expect("one agent, one observation");
    let inspected = Inspected {
        name: agent.name.as_str(),
        status: observed.to_string(),
        recorded: agent.status,
        observed: &observed,
        host: agent.host.as_deref(),
        image: agent.name.image_tag(),
        container: Container {
            name: agent.name.resource_name(),
            id: agent.container_id.as_deref(),
        },
        current_start: agent.current_start.as_ref().map(|s| s.as_str()),
        created: super::list::created(agent.created),
        spec: &agent.spec,
    };
    match cli.output {
        OutputFormat::Json => super::emit(&crate::output::json(&inspected)),
        OutputFormat::Table => super::emit(&text(&agent, &inspected, config.pull)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `key: value` lines, the keys aligned; what is unset is left out.
fn text(agent: &AgentRecord, i: &Inspected, configured: PullPolicy) -> String {
    let spec = &agent.spec;
    let mut lines: Vec<(&str, String)> = vec![
        ("name", i.name.to_string()),
        ("status", i.status.clone()),
        ("recorded", agent.status.as_str().to_string()),
        ("host", i.host.unwrap_or("-").to_string()),
        ("created", i.created.clone()),
        ("base image", spec.image.clone()),
        (
            "pull",
            match spec.pull {
                Some(policy) => policy.as_str().to_string(),
                None => format!("{} (the configuration's)", configured.as_str()),
            },
        ),
        ("image", i.image.clone()),
        (
            "container",
            match i.container.id {
                Some(id) => format!("{} ({})", i.container.name, short(id)),
                None => i.container.name.clone(),
            },
        ),
    ];
    if let Some(start) = i.current_start {
        lines.push(("start", start.to_string()));
    }
    for step in &spec.setup {
        lines.push(("setup", step.clone()));
    }
    if let Some(command) = &spec.command {
        lines.push(("command", command.clone()));
    }
    for kv in &spec.env {
        lines.push(("env", kv.clone()));
    }
    let optional = [
        ("network", spec.network.clone()),
        ("provider", spec.provider.clone()),
        ("model", spec.model.clone()),
        ("api key from", spec.api_key_env.clone()),
    ];
    lines.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    lines.extend(resources(&spec.resources));
    let width = lines.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    lines
        .iter()
        .map(|(k, v)| format!("{:width$}  {v}\n", format!("{k}:")))
        .collect()
}

/// The mounts, limits and the rest, as `agent create` takes them.
fn resources(r: &Resources) -> Vec<(&'static str, String)> {
    let mut lines: Vec<(&str, String)> = (r.mounts.iter())
        .map(|m| ("mount", m.to_string()))
        .collect();
    if let Some(bytes) = r.memory {
        lines.push(("memory", memory(bytes)));
    }
    if let Some(c) = r.millicpus {
        lines.push(("cpus", show_cpus(c)));
    }
    if let Some(p) = r.pids_limit {
        lines.push(("pids limit", p.to_string()));
    }
    if r.restart != anvyl_core::resources::Restart::No {
        lines.push(("restart", r.restart.to_string()));
    }
    if let Some(user) = &r.user {
        lines.push(("user", user.clone()));
    }
    if let Some(dir) = &r.workdir {
        lines.push(("workdir", dir.clone()));
    }
    lines
}

/// `512m`, `2g`, or bytes: as `--memory` would take it back.
fn memory(bytes: u64) -> String {
    for (unit, size) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::memory;

    #[test]
    fn memory_reads_as_it_was_given() {
        assert_eq!(memory(512 << 20), "512m");
        assert_eq!(memory(2 << 30), "2g");
        assert_eq!(memory(6_291_457), "6291457");
    }
}
