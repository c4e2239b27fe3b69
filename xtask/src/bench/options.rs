//! What `cargo xtask bench` is asked to do: its command line as clap
//! parses it (`Args`), and the options a run reads (`Options`).

use anvyl_core::BackendKind;

use crate::choice::{EngineChoice, SuiteChoice};
use crate::suite::Suite;

/// The run as the cases read it: the command line with its lists expanded.
pub(super) struct Options {
    pub(super) engines: Vec<BackendKind>,
    pub(super) suites: Vec<Suite>,
    pub(super) sizes: Vec<usize>,
    pub(super) runs: usize,
    /// Per-engine cleanup cases, the fleet case, the watcher's case: any
    /// one, or all (the default).
    pub(super) per_engine: bool,
    pub(super) fleet: bool,
    pub(super) watcher: bool,
}

/// `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whose engines, one suite or a comma list (bookworm,sid)
    #[arg(
        long,
        value_name = "SUITES",
        value_enum,
        value_delimiter = ',',
        default_value = "bookworm"
    )]
    engines: Vec<SuiteChoice>,
    /// Which engines of each suite
    #[arg(long, value_name = "BACKEND", value_enum, default_value = "all")]
    backend: EngineChoice,
    /// Leftovers per cleanup, one series each
    #[arg(long, value_name = "N,…", value_delimiter = ',', default_value = "10,100,500",
          value_parser = clap::value_parser!(u32).range(1..))]
    sizes: Vec<u32>,
    /// Runs per measurement
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Only the per-engine cases, only the fleet case, or only the
    /// watcher's case (default: all three)
    #[arg(long, value_enum)]
    only: Option<Only>,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    /// Three hosts at once
    Fleet,
    /// Each engine alone
    Engines,
    /// The watcher beside 100 running agents, on each engine
    Watcher,
}

impl From<Args> for Options {
    fn from(args: Args) -> Self {
        Self {
            engines: args.backend.kinds(),
            suites: crate::choice::suites(&args.engines),
            sizes: args.sizes.into_iter().map(|n| n as usize).collect(),
            runs: args.runs as usize,
            per_engine: args.only.is_none_or(|o| o == Only::Engines),
            fleet: args.only.is_none_or(|o| o == Only::Fleet),
            watcher: args.only.is_none_or(|o| o == Only::Watcher),
        }
    }
}
