//! Dispatch: parse the arguments, set up logging and the runtime, run one
//! command, and turn its error into one line and an exit status.

mod agent;
mod cleanup;
mod host;
mod inspect;
mod list;
mod many;
mod session;
mod watch;

pub(crate) use session::Session;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::CliError;

/// Parses the process arguments and runs the command.
pub fn run() -> ExitCode {
    // `COMPLETE=<shell> anvyl …`: a shell asking for completions (see
    // complete.rs); answered and exited here, before anything else runs.
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    crate::logging::init(cli.verbose, cli.quiet);
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

/// Help and version print as clap renders them; a usage error is one line
/// with the documented exit status 2, like every other bad input.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => CliError::Usage(format!("{} (see --help)", one_line_usage(&e.to_string()))).report(),
    }
}

/// clap's multi-line usage error as one line: its message, then what it
/// lists below (the missing arguments, a "did you mean" tip), without the
/// usage block and the "try --help" footer.
fn one_line_usage(text: &str) -> String {
    let mut parts = (text.lines().map(str::trim)).filter(|l| {
        !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
    });
    let first = parts.next().unwrap_or("invalid arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    for part in parts {
        line.push_str(if line.ends_with(':') { " " } else { "; " });
        line.push_str(part);
    }
    line
}

fn dispatch(cli: &Cli) -> Result<ExitCode, CliError> {
    if let Command::Completions { shell } = &cli.command {
        let mut command = Cli::command();
        // Rendered first, then written like every result: a closed pipe
        // (`anvyl completions bash | head -1`) is not a panic.
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut command, "anvyl", &mut script);
        emit(&String::from_utf8_lossy(&script));
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(cli.config.as_deref(), cli.backend)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|cause| CliError::Io {
            doing: "start the async runtime",
            cause,
        })?;
    runtime.block_on(async {
        match &cli.command {
            Command::Agent(command) => agent::run(cli, &config, command).await,
            Command::Host(command) => host::run(cli, &config, command).await,
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

/// Writes to stdout, ignoring a closed pipe (`anvyl … | head`).
pub(crate) fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Asks `[y/N]` on a terminal; refuses (exit 2) when no terminal can answer.
pub(crate) fn confirm(question: &str) -> Result<(), CliError> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CliError::Usage(format!(
            "refusing to {question} without --yes: no terminal to confirm on (nothing was removed)"
        )));
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!(
            "{}{}?",
            question[..1].to_uppercase(),
            &question[1..]
        ))
        .default(false)
        .interact_on(&dialoguer::console::Term::stderr())
        .map_err(|e| CliError::Io {
            doing: "read the answer",
            cause: match e {
                dialoguer::Error::IO(cause) => cause,
            },
        })?;
    if yes {
        Ok(())
    } else {
        Err(CliError::Declined)
    }
}
