//! `anvyl agent create|start|stop|logs|remove`: each opens one [`Session`]
//! and is a thin call into `anvyl_core::lifecycle` plus rendering (`list`,
//! `cleanup` and several agents at once, `many`, have their own modules); a
//! failed start's cleanup has already happened in core by the time an error
//! reaches this module.

use std::io::Write;

use futures::FutureExt;
use std::process::ExitCode;

use anvyl_core::lifecycle::{validate_spec, LifecycleError, Removed, Stopped};
use anvyl_core::{AgentName, AgentSpec, AgentStatus, LogStream};

use crate::cli::{AgentCommand, Cli, CreateArgs, OutputFormat, UpdateArgs};
use crate::config::Config;
use crate::error::{CliError, Interruption};

use super::many::{self, Done};
use super::Session;

pub async fn run(cli: &Cli, config: &Config, command: &AgentCommand) -> Result<ExitCode, CliError> {
    match command {
        AgentCommand::Create(args) => create(cli, config, args).await,
        AgentCommand::Start { names } => match many::distinct(names)?.as_slice() {
            [name] => start(cli, config, name).await,
            names => start_many(cli, config, names).await,
        },
        AgentCommand::Stop { names, all } => {
            // Names are checked before the store is opened: bad input
            // changes nothing, not even a first run's state directory.
            let named = many::distinct(names)?;
            let session = Session::open(config)?;
            let names = match all {
                true => (session.state.agents()?.into_iter())
                    .filter(|a| a.status != AgentStatus::Stopped)
                    .map(|a| a.name)
                    .collect(),
                false => named,
            };
            let lifecycle = session.lifecycle();
            if let ([name], false) = (names.as_slice(), all) {
                // One agent: a dead agent's stop is said by core, in the
                // cleanup's words, and one that was not running in the log.
                let stopped = lifecycle.stop(name).await?;
                if let Stopped::NotRunning(_) = stopped {
                    tracing::info!("{}", stopped_line(name, &stopped));
                }
                return Ok(ExitCode::SUCCESS);
            }
            Ok(
                many::each(cli, config.parallelism, &names, "stopped", |name, _| {
                    let lifecycle = &lifecycle;
                    async move {
                        let stopped = lifecycle.stop(name).await?;
                        Ok(Done {
                            line: Some(stopped_line(name, &stopped)),
                            json: serde_json::Value::Null,
                        })
                    }
                })
                .await,
            )
        }
        AgentCommand::Logs {
            names,
            follow,
            tail,
        } => logs(config, &many::distinct(names)?, *follow, *tail).await,
        AgentCommand::List { running } => super::list::run(cli, config, *running).await,
        AgentCommand::Inspect { name } => super::inspect::run(cli, config, name).await,
        AgentCommand::Update(args) => update(config, args),
        AgentCommand::Remove { names, force, yes } => {
            remove(cli, config, &many::distinct(names)?, *force, *yes).await
        }
        AgentCommand::Cleanup(args) => super::cleanup::run(cli, config, args).await,
    }
}

/// What the stop of `name` says.
fn stopped_line(name: &AgentName, stopped: &Stopped) -> String {
    match stopped {
        Stopped::NotRunning(status) => format!(
            "Agent '{name}' is not running ({}): nothing to stop",
            status.as_str()
        ),
        _ => format!("Stopped agent '{name}'."),
    }
}

/// Removes `names` after one question: an agent that runs (not one that
/// only looks running: its container died or vanished) is refused before
/// the question unless `force`, and the others go on.
async fn remove(
    cli: &Cli,
    config: &Config,
    names: &[AgentName],
    force: bool,
    yes: bool,
) -> Result<ExitCode, CliError> {
    let session = Session::open(config)?;
    let lifecycle = session.lifecycle();
    let mut refused = Vec::new();
    for name in names {
        let agent = session.state.agent(name)?;
        if agent.status == AgentStatus::Running
            && !force
            && !lifecycle.observe(&agent).await?.is_dead()
        {
            refused.push(name.clone());
        }
    }
    if let ([name], [_]) = (refused.as_slice(), names) {
        return Err(LifecycleError::Running(name.clone()).into());
    }
    let asked: Vec<&AgentName> = names.iter().filter(|n| !refused.contains(n)).collect();
    if !yes && !asked.is_empty() {
        let listed: Vec<String> = asked.iter().map(|n| format!("'{n}'")).collect();
        super::confirm(&match listed.as_slice() {
            [one] => format!("remove agent {one} and everything of it"),
            many => format!("remove agents {} and everything of them", many.join(", ")),
        })?;
    }
    let removed = |name: &AgentName| {
        let lifecycle = &lifecycle;
        let refused = refused.contains(name);
        let name = name.clone();
        async move {
            if refused {
                return Err(LifecycleError::Running(name).into());
            }
            // Forgotten, not cleaned: exit 0 would promise that nothing of
            // the agent remains, which nobody could check.
            match lifecycle.remove(&name, force).await? {
                Removed::Forgotten { host, cause } => Err(CliError::Forgotten {
                    agent: name,
                    host,
                    cause,
                }),
                _ => Ok(format!("Removed agent '{name}'.")),
            }
        }
    };
    if let [name] = names {
        removed(name).await?;
        return Ok(ExitCode::SUCCESS);
    }
    Ok(
        many::each(cli, config.parallelism, names, "removed", |name, _| {
            let removed = &removed;
            async move {
                Ok(Done {
                    line: Some(removed(name).await?),
                    json: serde_json::Value::Null,
                })
            }
        })
        .await,
    )
}

async fn create(cli: &Cli, config: &Config, args: &CreateArgs) -> Result<ExitCode, CliError> {
    let name = AgentName::new(args.name.as_str())?;
    let spec = AgentSpec {
        image: args.image.clone(),
        setup: args.setup.clone(),
        command: args.command.clone(),
        env: args.env.clone(),
        network: args.network.clone(),
        pull: args.pull,
        resources: {
            let mut resources = anvyl_core::resources::Resources::default();
            args.resources.apply(&mut resources);
            resources
        },
        provider: args.provider.clone(),
        model: args.model.clone(),
        api_key_env: args.api_key_env.clone(),
    };
    validate_spec(&spec).map_err(|e| CliError::Usage(e.to_string()))?;
    let Session { state, .. } = Session::open(config)?;
    if let Some(host) = &args.host {
        state.host(host)?;
    }
    state.create_agent(&name, &spec)?;
    if let Some(host) = &args.host {
        state.assign_host(&name, host)?;
    }
    tracing::info!("Created agent '{name}'");
    drop(state);
    if args.start {
        return start(cli, config, &name).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// `agent update`: the spec with what was given, checked as at create,
/// written only while the agent is stopped.
fn update(config: &Config, args: &UpdateArgs) -> Result<ExitCode, CliError> {
    let name = AgentName::new(args.name.as_str())?;
    let session = Session::open(config)?;
    session.state.update_spec(&name, |spec| {
        if let Some(image) = &args.image {
            spec.image = image.clone();
        }
        spec.pull = args.pull.or(spec.pull);
        if let Some(command) = &args.command {
            spec.command = Some(command.clone());
        }
        if let Some(network) = &args.network {
            spec.network = Some(network.clone());
        }
        args.resources.apply(&mut spec.resources);
        validate_spec(spec).map_err(|e| CliError::Usage(e.to_string()))
    })??;
    tracing::info!("Updated agent '{name}'");
    Ok(ExitCode::SUCCESS)
}

async fn start(cli: &Cli, config: &Config, name: &AgentName) -> Result<ExitCode, CliError> {
    let session = Session::open(config)?;
    let bar = crate::progress::start_line(name, cli.output == OutputFormat::Json, cli.quiet);
    // One status line, replaced as the start moves on.
    let settle = humantime::format_duration(config.settle);
    let image = (session.state.agent(name).map(|a| a.spec.image)).unwrap_or_default();
    let phases = |phase: anvyl_core::lifecycle::Phase| {
        use anvyl_core::lifecycle::Phase;
        if let Some(bar) = &bar {
            bar.set_message(String::new());
            bar.set_prefix(match phase {
                Phase::Pulling(None) => format!("pulling {image}"),
                Phase::Pulling(Some(progress)) => format!("pulling {image}: {progress}"),
                Phase::Building => format!("building {}", name.image_tag()),
                Phase::Creating => format!("creating container {}", name.resource_name()),
                Phase::Settling => format!("checking that it keeps running ({settle})"),
            });
        }
    };
    let lifecycle = session.lifecycle().with_phases(&phases);
    let progress = |line: &str| match &bar {
        Some(bar) => bar.set_message(line.to_string()),
        None => tracing::debug!("build: {line}"),
    };
    let result = lifecycle.start(name, &progress, super::interrupted()).await;
    if bar.is_some() {
        crate::logging::hide_progress();
    }
    match result {
        Ok(started) => {
            if cli.output == OutputFormat::Json {
                super::emit(&crate::output::json(&started));
            } else {
                super::emit(&format!("{}\n", running_line(&started)));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}

/// What a start that ended running says.
fn running_line(started: &anvyl_core::lifecycle::Started) -> String {
    format!(
        "Agent '{}' is running on host '{}' (container {}).",
        started.agent,
        started.host,
        &started.container_id[..started.container_id.len().min(12)]
    )
}

/// Starts `names` side by side: no status line (they would overwrite each
/// other); each build's output is logged at -v, named by its agent.
async fn start_many(cli: &Cli, config: &Config, names: &[AgentName]) -> Result<ExitCode, CliError> {
    let session = Session::open(config)?;
    let lifecycle = session.lifecycle();
    Ok(many::each(
        cli,
        config.parallelism,
        names,
        "started",
        |name, interrupt| {
            let lifecycle = &lifecycle;
            async move {
                let progress = |line: &str| tracing::debug!("build of '{name}': {line}");
                let started = lifecycle.start(name, &progress, interrupt).await?;
                Ok(Done {
                    line: Some(running_line(&started)),
                    json: serde_json::to_value(&started).expect("a start always serialises"),
                })
            }
        },
    )
    .await)
}

async fn logs(
    config: &Config,
    names: &[AgentName],
    follow: bool,
    tail: Option<usize>,
) -> Result<ExitCode, CliError> {
    // The session's connector holds an SSH host's tunnel: it lives as long
    // as the logs.
    let session = Session::reading(config)?;
    let state = &session.state;
    // Every agent is found before any line is printed: a name that has no
    // logs refuses the command, not a part of its output.
    let mut sources = Vec::new();
    for name in names {
        let agent = state.agent(name)?;
        let Some(container) = agent.container_id.clone() else {
            return Err(CliError::Usage(format!(
                "agent '{name}' has no container (it is {})",
                agent.status.as_str()
            )));
        };
        let host = session.lifecycle().registered_home(&agent)?;
        let backend = anvyl_core::Connector::connect(&session.connector, &host).await?;
        sources.push((name, backend, container));
    }
    let prefixed = names.len() > 1;
    let printed = futures::future::try_join_all(sources.iter().map(
        |(name, backend, container)| async move {
            let lines = crate::prefixed::Lines::new(prefixed.then_some(name.as_str()));
            let sink = |stream: LogStream, bytes: &[u8]| lines.write(stream, bytes);
            let printed = backend.logs(container, follow, tail, &sink).await;
            lines.finish();
            printed
        },
    ))
    .map(|printed| printed.map(drop));
    let outcome = until_interrupted(names, printed, super::interrupted()).await;
    let _ = std::io::stdout().flush();
    outcome
}

/// The outcome of printing `name`'s logs: success when they end, exit 130
/// when `interrupted` comes first. Ctrl-C is how a `-f` usually ends, yet it
/// is an interruption as for every other command, so that a script (`anvyl
/// agent logs -f web | grep -m1 ready`, a supervisor's SIGTERM) can tell
/// logs cut short from logs that ended with the agent.
async fn until_interrupted(
    names: &[AgentName],
    printed: impl std::future::Future<Output = Result<(), anvyl_core::BackendError>>,
    interrupted: impl std::future::Future<Output = ()>,
) -> Result<ExitCode, CliError> {
    tokio::select! {
        result = printed => {
            result?;
            Ok(ExitCode::SUCCESS)
        }
        () = interrupted => Err(CliError::Interrupted(Interruption::Logs(names.to_vec()))),
    }
}

#[cfg(test)]
mod tests {
    use std::future::{pending, ready};
    use std::process::ExitCode;

    use anvyl_core::{AgentName, BackendError};

    use super::until_interrupted;
    use crate::error::{EXIT_FAILED, EXIT_INTERRUPTED};

    /// A start whose host does not answer, or answers nothing in time, at
    /// any of its engine calls exits 3, as a cleanup of that host does; an
    /// answer that refuses is 1.
    #[test]
    fn a_start_on_a_hung_engine_is_unreachable_as_for_a_cleanup() {
        use crate::error::CliError;
        use anvyl_core::lifecycle::{StartCause, StartError};
        let failed = |cause| StartError::Failed {
            agent: AgentName::new("web").unwrap(),
            start: anvyl_core::StartId::random(),
            cause,
            report: anvyl_core::pipeline::Report { steps: Vec::new() },
        };
        let sources: [(fn() -> BackendError, bool); 3] = [
            (
                || BackendError::Engine {
                    operation: "ping",
                    status: None,
                    message: "no answer".into(),
                },
                true,
            ),
            (
                || BackendError::Engine {
                    operation: "ping",
                    status: Some(500),
                    message: "no answer".into(),
                },
                false,
            ),
            (
                || BackendError::Unreachable {
                    engine: None,
                    endpoint: "unix:///d.sock".into(),
                    message: "connection refused".into(),
                },
                true,
            ),
        ];
        let causes: [fn(BackendError) -> StartCause; 4] = [
            |cause| StartCause::Host {
                host: "local".into(),
                cause,
            },
            StartCause::CreateContainer,
            StartCause::StartContainer,
            StartCause::Settle,
        ];
        for (source, unreachable) in sources {
            assert_eq!(source().is_unreachable(), unreachable, "{}", source());
            for cause in causes {
                let e = CliError::from(failed(cause(source())));
                let status = if unreachable { 3 } else { 1 };
                assert_eq!(e.exit_status(), status, "{e}");
            }
        }
        let exited = failed(StartCause::Exited {
            after_ms: 100,
            exit_code: Some(1),
            last_output: Vec::new(),
        });
        assert_eq!(CliError::from(exited).exit_status(), 1);
    }

    #[tokio::test]
    async fn logs_cut_short_by_a_signal_exit_130_and_logs_that_end_exit_0() {
        let web = AgentName::new("web").unwrap();
        let cut = until_interrupted(std::slice::from_ref(&web), pending(), ready(())).await;
        let cut = cut.unwrap_err();
        assert_eq!(cut.exit_status(), EXIT_INTERRUPTED, "{cut}");
        assert_eq!(
            cut.to_string(),
            "interrupted: stopped printing the logs of agent 'web'"
        );
        let ended = until_interrupted(std::slice::from_ref(&web), ready(Ok(())), pending()).await;
        assert_eq!(ended.unwrap(), ExitCode::SUCCESS);
        let failed = until_interrupted(
            std::slice::from_ref(&web),
            ready(Err(BackendError::Engine {
                operation: "container logs",
                status: Some(500),
                message: "boom".into(),
            })),
            pending(),
        )
        .await;
        assert_eq!(failed.unwrap_err().exit_status(), EXIT_FAILED);
    }
}
