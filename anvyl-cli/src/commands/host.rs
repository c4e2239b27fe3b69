//! `anvyl host add|list|remove`: the hosts registry agents start on. The
//! local host follows the configuration and is registered on first use.

use std::process::ExitCode;
use std::time::Duration;

use anvyl_core::Connector;
use anvyl_core::{BackendKind, HostAccess, HostRecord, StateStore};

use crate::remote::Route;

use serde::Serialize;

use crate::cli::{Cli, HostCommand, OutputFormat};
use crate::config::Config;
use crate::error::CliError;

/// How long `host list` waits for each engine: a listing must not hang on
/// a host that is down — as long as `agent list` waits for one (an SSH
/// host's tunnel alone took over 3 s on a loaded machine).
const PROBE_TIMEOUT: Duration = anvyl_core::lifecycle::OBSERVE_TIMEOUT;

/// One row of `host list`.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    /// `null` for a host whose recorded backend this anvyl does not know.
    backend: Option<BackendKind>,
    endpoint: String,
    from_config: bool,
    enabled: bool,
    /// Agents whose home is this host.
    agents: usize,
    reachable: bool,
    version: Option<String>,
    api_version: Option<String>,
    error: Option<String>,
}

pub async fn run(cli: &Cli, config: &Config, command: &HostCommand) -> Result<ExitCode, CliError> {
    let super::Session { state, .. } = super::Session::open(config)?;
    match command {
        HostCommand::Add {
            name,
            backend,
            endpoint,
            tls_dir,
            insecure,
            docker_context,
            podman_connection,
        } => {
            let (backend, named) = match (backend, docker_context, podman_connection) {
                (_, Some(context), _) => (BackendKind::Docker, Some(context.clone())),
                (_, _, Some(connection)) => (BackendKind::Podman, Some(connection.clone())),
                (Some(backend), ..) => (*backend, None),
                (None, None, None) => (BackendKind::Docker, None),
            };
            let tls_dir = tls_dir
                .as_deref()
                .map(std::path::absolute)
                .transpose()
                .map_err(|e| CliError::Usage(format!("--tls-dir: {e}")))?;
            let host = HostRecord {
                name: name.clone(),
                backend: Some(backend),
                unusable: None,
                endpoint: endpoint.clone(),
                enabled: true,
                created: 0,
                access: HostAccess {
                    tls_dir: tls_dir.map(|d| d.display().to_string()),
                    insecure: *insecure,
                    named,
                },
            };
            // Decided now, so that a host that could never be reached is
            // refused here rather than at its first start.
            let (_, route) = crate::engine::route(config, &host).map_err(CliError::Usage)?;
            if let Route::Plain(endpoint) = &route {
                tracing::warn!(
                    "host '{name}' uses {endpoint} without TLS: anyone who can reach that port controls the engine and its machine"
                );
            }
            state.add_host(name, backend, host.endpoint.as_deref(), &host.access)?;
            let (_, shown) = crate::engine::effective(config, &host);
            tracing::info!("Added host '{name}' ({backend} at {shown})");
        }
        HostCommand::Remove { name } => {
            state.remove_host(name)?;
            tracing::info!("Removed host '{name}'");
        }
        HostCommand::List => list(cli, config, &state).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Every host with what its engine says now, asked concurrently.
async fn list(cli: &Cli, config: &Config, state: &StateStore) -> Result<(), CliError> {
    let (agents, starts) = (state.agents()?, state.starts()?);
    let connector = crate::engine::HostConnector::new(config);
    let probes = state.hosts()?.into_iter().map(|h| {
        let connector = &connector;
        let agents = agents.iter().filter(|a| a.home(&starts) == h.name).count();
        async move {
            let probe = tokio::time::timeout(PROBE_TIMEOUT, async {
                connector.connect(&h).await?.version().await
            })
            .await
            .unwrap_or_else(|_| {
                Err(anvyl_core::BackendError::Local {
                    operation: "version",
                    message: format!("no answer within {}s", PROBE_TIMEOUT.as_secs()),
                })
            });
            let (backend, endpoint) = crate::engine::effective(config, &h);
            let (version, error) = match probe {
                Ok(info) => (Some(info), None),
                Err(e) => (None, Some(e.to_string())),
            };
            Row {
                from_config: h.backend.is_none() && h.unusable.is_none(),
                name: h.name,
                backend,
                endpoint,
                enabled: h.enabled,
                agents,
                reachable: version.is_some(),
                api_version: version.as_ref().map(|v| v.api_version.clone()),
                version: version.map(|v| v.version),
                error,
            }
        }
    });
    let rows: Vec<Row> = futures::future::join_all(probes).await;
    if cli.output == OutputFormat::Json {
        super::emit(&crate::output::json(&rows));
        return Ok(());
    }
    if rows.is_empty() {
        super::emit("No hosts: add one with `anvyl host add`.\n");
        return Ok(());
    }
    let mut table = crate::output::table(&[
        "NAME", "BACKEND", "ENDPOINT", "AGENTS", "ENGINE", "API", "ENABLED",
    ]);
    for r in &rows {
        let endpoint = if r.from_config {
            format!("{} (from configuration)", r.endpoint)
        } else {
            r.endpoint.clone()
        };
        table.add_row(vec![
            r.name.clone(),
            r.backend
                .map_or_else(|| "unknown".into(), |b| b.to_string()),
            endpoint,
            r.agents.to_string(),
            r.version.clone().unwrap_or_else(|| "unreachable".into()),
            r.api_version.clone().unwrap_or_else(|| "-".into()),
            if r.enabled { "yes".into() } else { "no".into() },
        ]);
    }
    let mut out = table.trim_fmt() + "\n";
    for r in &rows {
        if let Some(error) = &r.error {
            out.push_str(&format!("{}: {error}\n", r.name));
        }
    }
    super::emit(&out);
    Ok(())
}
