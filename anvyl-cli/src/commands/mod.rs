//! Dispatch: parse the arguments, set up logging and the runtime, run one
//! command, and turn its error into one line and an exit status.

mod cleanup;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{AgentCommand, Cli, Command};
use crate::config::Config;
use crate::error::CliError;

/// Parses the process arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.verbose, cli.quiet);
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

fn dispatch(cli: &Cli) -> Result<ExitCode, CliError> {
    if let Command::Completions { shell } = &cli.command {
        let mut command = Cli::command();
        clap_complete::generate(*shell, &mut command, "anvyl", &mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        match &cli.command {
            Command::Agent(AgentCommand::Cleanup(args)) => cleanup::run(cli, &config, args).await,
            Command::Completions { .. } => unreachable!("handled above"),
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
