//! `anvyl agent cleanup [NAME] [--yes] [--dry-run]`: plan, show, confirm,
//! apply, summarise. Without `--yes` it asks on a terminal and refuses (exit
//! 2) when nothing can answer, so a script never deletes by surprise.

use std::process::ExitCode;

use anvyl_core::pipeline::{Cleanup, Scope};
use anvyl_core::{AgentName, InstanceId};

use crate::cli::{CleanupArgs, Cli, OutputFormat};
use crate::config::Config;
use crate::error::CliError;
use crate::output;

pub async fn run(cli: &Cli, config: &Config, args: &CleanupArgs) -> Result<ExitCode, CliError> {
    // The name is checked before any state or engine is touched.
    let scope = match &args.name {
        Some(name) => Scope::Agent(AgentName::new(name.as_str())?),
        None => Scope::All,
    };
    let (state, build_root) = super::open_state(config)?;
    // One agent's cleanup goes to the host it is registered on; the others,
    // to the configured engine (`local`).
    let host = match &scope {
        Scope::Agent(name) => state
            .agent(name)
            .ok()
            .and_then(|a| a.host)
            .and_then(|h| state.hosts().ok()?.into_iter().find(|r| r.name == h)),
        _ => None,
    };
    let backend = match &host {
        Some(host) => {
            use anvyl_core::lifecycle::Connector;
            crate::engine::HostConnector(config).connect(host).await?
        }
        None => crate::engine::connect(config).await?,
    };
    let adopt = args.instance.as_deref().map(parse_instance).transpose()?;
    if adopt.as_ref() == Some(state.instance_id()) {
        return Err(CliError::Usage(format!(
            "{} is this installation's own id: run `anvyl agent cleanup` without --instance",
            state.instance_id()
        )));
    }
    let settings = anvyl_core::CleanupSettings {
        include_unlabelled: args.include_unlabelled,
        adopt,
        ..config.cleanup_settings()
    };
    let host_name = host.map_or_else(|| anvyl_core::LOCAL_HOST.to_string(), |h| h.name);
    let cleanup = Cleanup::new(backend.as_ref(), &state, build_root, settings).on_host(&host_name);
    let plan = cleanup.plan(scope).await?;
    let json = cli.output == OutputFormat::Json;
    let emit = |text: String| super::emit(&text);
    let document = |report, remaining| output::CleanupDocument {
        dry_run: args.dry_run,
        plan: &plan,
        report,
        remaining_owned: remaining,
        prune_hint: (plan.dangling_images > 0).then(|| backend.kind().prune_hint()),
    };

    if plan.is_empty() || args.dry_run {
        if json {
            emit(output::json(&document(None, 0)));
        } else {
            emit(output::plan_table(&plan));
            if args.dry_run && !plan.is_empty() {
                emit("Dry run: nothing was removed.\n".into());
            }
            emit(output::prune_hint(&plan, backend.kind()));
        }
        return Ok(ExitCode::SUCCESS);
    }

    if !json {
        emit(output::plan_table(&plan));
    }
    if !args.yes {
        super::confirm(&format!("remove {} item(s)", plan.len()))?;
    }
    let report = tokio::select! {
        report = cleanup.apply(&plan) => report,
        _ = super::interrupted() => {
            return Err(CliError::Interrupted(
                "cleanup stopped part-way; run `anvyl agent cleanup` again to finish".into(),
            ))
        }
    };
    let remaining = report.remaining_owned();
    if json {
        emit(output::json(&document(Some(&report), remaining)));
    } else {
        emit(output::report_summary(&report, &plan, backend.kind()));
    }
    if remaining > 0 {
        return Err(CliError::Failed(format!(
            "{remaining} resource(s) owned by anvyl could not be removed"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// An instance id as anvyl makes them: 16 lowercase hex digits.
fn parse_instance(id: &str) -> Result<InstanceId, CliError> {
    if id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(InstanceId::from_stored(id))
    } else {
        Err(CliError::Usage(format!(
            "invalid instance id {id:?} (16 lowercase hex digits, as a plan's \"Not this installation's\" line shows)"
        )))
    }
}
