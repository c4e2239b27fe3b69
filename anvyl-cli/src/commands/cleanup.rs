//! `anvyl agent cleanup [NAME] [--host H] [--yes] [--dry-run]`: plan on every
//! host concerned, show one merged plan, confirm, apply, summarise. Without `--yes` it asks on a terminal and refuses (exit
//! 2) when nothing can answer, so a script never deletes by surprise.

use std::process::ExitCode;

use anvyl_core::pipeline::{Fleet, FleetPlan, ItemReport, Progress, Scope};
use anvyl_core::{AgentName, HostRecord, InstanceId, Step};

use crate::cli::{CleanupArgs, Cli, OutputFormat};
use crate::config::Config;
use crate::error::{CliError, Interruption};
use crate::output;

pub async fn run(cli: &Cli, config: &Config, args: &CleanupArgs) -> Result<ExitCode, CliError> {
    if args.watch {
        return Box::pin(super::watch::run(cli, config, args)).await;
    }
    // The name and the instance id are checked before any state or engine
    // is touched.
    let scope = match &args.name {
        Some(name) => Scope::Agent(AgentName::new(name.as_str())?),
        None => Scope::All,
    };
    let adopt = args.instance.as_deref().map(parse_instance).transpose()?;
    let session = super::Session::open(config)?;
    let state = &session.state;
    if adopt.as_ref() == Some(state.instance_id()) {
        return Err(CliError::Usage(format!(
            "{} is this installation's own id: run `anvyl agent cleanup` without --instance",
            state.instance_id()
        )));
    }
    let hosts = hosts_of(&session, &scope, args.host.as_deref())?;
    let mut settings = anvyl_core::CleanupSettings {
        include_unlabelled: args.include_unlabelled,
        adopt,
        ..config.cleanup_settings()
    };
    if args.build_cache {
        settings.build_cache = anvyl_core::BuildCache::Remove;
    }
    settings.retention = anvyl_core::pipeline::Retention {
        keep_images: args.keep_images,
        older_than: args.older_than,
    };
    let build_root = session.build_root.clone();
    let fleet = Fleet::connect(state, build_root, settings, hosts, &session.connector).await;
    let plan = fleet.plan(scope).await?;
    let json = cli.output == OutputFormat::Json;
    let emit = |text: String| super::emit(&text);
    // A watcher's opening cleanup is one line of its stream.
    let document = |document: output::CleanupDocument| match args.opening {
        true => output::json_line(&output::Opening::new(document)),
        false => output::json(&document),
    };

    if plan.is_empty() || args.dry_run {
        if json {
            emit(document(output::CleanupDocument::new(
                args.dry_run,
                &plan,
                None,
            )));
        } else {
            emit(output::plan_table(&plan, true));
            if args.dry_run && !plan.is_empty() {
                emit("Dry run: nothing was removed.\n".into());
            }
            emit(output::prune_hints(&plan));
        }
        return hosts_outcome(&plan, 0);
    }

    if !json {
        // Before the question, a long plan is shown by agent (-v: every item).
        emit(output::plan_table(&plan, cli.verbose > 0));
    }
    if !args.yes {
        super::confirm(&format!("remove {} item(s)", plan.len()))?;
    }
    let bar = crate::progress::Removals::show(&plan, json, cli.quiet);
    let tell = |step: Step, _: &ItemReport| {
        if let Some(bar) = &bar {
            bar.done(step);
        }
    };
    let report = tokio::select! {
        report = fleet.apply_reporting(&plan, Progress::new(&tell)) => report,
        _ = super::interrupted() => {
            return Err(CliError::Interrupted(Interruption::Cleanup))
        }
    };
    drop(bar);
    if json {
        emit(document(output::CleanupDocument::new(
            false,
            &plan,
            Some(&report),
        )));
    } else {
        emit(output::report_summary(&report, &plan));
    }
    hosts_outcome(&plan, report.remaining_owned())
}

/// The hosts a cleanup of `scope` covers: `--host`'s; else one agent's own
/// host (an agent anvyl does not know any more may have left resources on
/// any host); else every enabled host.
fn hosts_of(
    session: &super::Session,
    scope: &Scope,
    only: Option<&str>,
) -> Result<Vec<HostRecord>, CliError> {
    let state = &session.state;
    let hosts = state.hosts()?;
    if let Some(only) = only {
        return match hosts.into_iter().find(|h| h.name == only) {
            Some(host) => Ok(vec![host]),
            None => Err(CliError::Usage(format!(
                "no host named '{only}' (see `anvyl host list`)"
            ))),
        };
    }
    if let Scope::Agent(name) = scope {
        match state.agent(name) {
            Ok(agent) => return Ok(vec![session.lifecycle().registered_home(&agent)?]),
            Err(anvyl_core::StateError::UnknownAgent(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(hosts.into_iter().filter(|h| h.enabled).collect())
}

/// The exit status once every reachable host is done: 3 when no host
/// answered, 1 when one did not or owned resources remain, else 0.
fn hosts_outcome(plan: &FleetPlan, remaining: usize) -> Result<ExitCode, CliError> {
    let failed: Vec<&str> = plan.failed_hosts().map(|(host, _)| host).collect();
    if plan.no_host_reached() {
        let (_, error) = plan.failed_hosts().next().expect("hosts were planned");
        return Err(CliError::Unreached {
            first: error.message.clone(),
            hosts: failed.into_iter().map(str::to_owned).collect(),
        });
    }
    if remaining > 0 {
        return Err(CliError::Remaining(remaining));
    }
    if !failed.is_empty() {
        return Err(CliError::HostsNotCleaned(
            failed.into_iter().map(str::to_owned).collect(),
        ));
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
