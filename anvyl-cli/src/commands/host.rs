//! `anvyl host add|list|remove`: the hosts registry agents start on. The
//! local host follows the configuration and is registered on first use.

use std::process::ExitCode;

use comfy_table::{presets, Table};
use serde::Serialize;

use crate::cli::{Cli, HostCommand, OutputFormat};
use crate::config::Config;
use crate::error::CliError;

/// One row of `host list`.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    backend: String,
    endpoint: String,
    from_config: bool,
    enabled: bool,
}

pub async fn run(cli: &Cli, config: &Config, command: &HostCommand) -> Result<ExitCode, CliError> {
    let (state, _) = super::open_state(config)?;
    state.ensure_local_host()?;
    let usage = |e: anvyl_core::StateError| CliError::Usage(e.to_string());
    match command {
        HostCommand::Add {
            name,
            backend,
            endpoint,
        } => {
            let backend = match backend {
                crate::cli::BackendArg::Docker => "docker",
                crate::cli::BackendArg::Podman => "podman",
            };
            state.add_host(name, backend, endpoint).map_err(usage)?;
            tracing::info!("Added host '{name}' ({backend} at {endpoint})");
        }
        HostCommand::Remove { name } => {
            state.remove_host(name).map_err(usage)?;
            tracing::info!("Removed host '{name}'");
        }
        HostCommand::List => {
            let rows: Vec<Row> = state
                .hosts()?
                .into_iter()
                .map(|h| {
                    let (backend, endpoint) = crate::engine::effective(config, &h);
                    Row {
                        from_config: h.backend.is_none(),
                        name: h.name,
                        backend,
                        endpoint,
                        enabled: h.enabled,
                    }
                })
                .collect();
            if cli.output == OutputFormat::Json {
                super::emit(&crate::output::json(&rows));
            } else if rows.is_empty() {
                super::emit("No hosts: add one with `anvyl host add`.\n");
            } else {
                let mut table = Table::new();
                table
                    .load_preset(presets::NOTHING)
                    .set_header(vec!["NAME", "BACKEND", "ENDPOINT", "ENABLED"]);
                for r in &rows {
                    let endpoint = if r.from_config {
                        format!("{} (from configuration)", r.endpoint)
                    } else {
                        r.endpoint.clone()
                    };
                    table.add_row(vec![
                        r.name.clone(),
                        r.backend.clone(),
                        endpoint,
                        if r.enabled { "yes".into() } else { "no".into() },
                    ]);
                }
                super::emit(&crate::output::trimmed(&table));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
