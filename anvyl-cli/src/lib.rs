//! The `anvyl` command line: parses arguments, layers configuration, connects
//! the configured engine, calls `anvyl-core` and renders the outcome for a
//! person (tables) or a program (JSON). Each subcommand has its own module.

mod cli;
mod commands;
mod complete;
mod config;
mod config_error;
mod credentials;
mod engine;
mod error;
mod logging;
mod output;
mod prefixed;
mod progress;
mod remote;

pub use cli::Cli;
pub use error::CliError;

/// Runs `anvyl` with the process arguments and returns its exit status.
pub fn main() -> std::process::ExitCode {
    commands::run()
}
