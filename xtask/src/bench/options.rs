//! What `cargo xtask bench` is asked to do: its command line as clap
//! parses it (`Args`), and the options a run reads (`Options`), among them
//! the run spelled out as a command with every default, so the published
//! figures say exactly what measured them.

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
    /// The start cases (part of the per-engine ones, or alone).
    pub(super) starts: bool,
    pub(super) fleet: bool,
    pub(super) watcher: bool,
    /// Write the report's sections into docs/benchmarks.md too.
    pub(super) write_docs: bool,
    /// The main series beside the 1000 unrelated resources (all but `--quick`).
    pub(super) crowd: bool,
    /// The run as a command with every option spelled out, defaults too:
    /// the published figures say exactly what measured them.
    pub(super) command: String,
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
    /// Only the per-engine cases, only the fleet case, only the watcher's
    /// case, or only the starts of the per-engine cases (default: all)
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Also write the report's sections that ran into docs/benchmarks.md
    ///
    /// Each section that ran replaces the text between its markers there,
    /// with the command, the date and the engines under it. Off by default:
    /// the figures there are the published ones
    // Opt-in, never a default, not even for a full run: whether a run is
    // worth publishing (enough runs, every engine, a quiet machine) is a
    // judgement the options cannot make, and a developer measuring a change
    // must not rewrite the published figures by the way.
    #[arg(long)]
    write_docs: bool,
    /// A developer's loop: each engine's cleanups at N=10 with nothing else
    /// on the engine, the dry run and one agent's start, one run each
    ///
    /// Not comparable with the published figures (no crowd, one run), and
    /// never written to the docs
    #[arg(long, conflicts_with_all = ["sizes", "runs", "only", "write_docs"])]
    quick: bool,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Only {
    /// Three hosts at once
    Fleet,
    /// Each engine alone
    Engines,
    /// The watcher beside 100 running agents, on each engine
    Watcher,
    /// Only the starts of each engine: one agent, and twenty at once
    Starts,
}

impl Only {
    /// As `--only` and the docs' markers name it.
    pub(super) fn name(self) -> String {
        let value = clap::ValueEnum::to_possible_value(&self).expect("no part is hidden");
        value.get_name().to_string()
    }
}

impl From<Args> for Options {
    fn from(mut args: Args) -> Self {
        if args.quick {
            (args.sizes, args.runs, args.only) = (vec![10], 1, Some(Only::Engines));
        }
        let suites = crate::choice::suites(&args.engines);
        let sizes: Vec<usize> = args.sizes.into_iter().map(|n| n as usize).collect();
        let suite_names: Vec<&str> = suites.iter().map(|s| s.name()).collect();
        let size_words: Vec<String> = sizes.iter().map(usize::to_string).collect();
        let backend =
            clap::ValueEnum::to_possible_value(&args.backend).expect("no choice is hidden");
        let mut command = format!(
            "cargo xtask bench --engines {} --backend {} --sizes {} --runs {}",
            suite_names.join(","),
            backend.get_name(),
            size_words.join(","),
            args.runs
        );
        match args.only {
            _ if args.quick => {
                command = format!(
                    "cargo xtask bench --quick --engines {} --backend {}",
                    suite_names.join(","),
                    backend.get_name()
                )
            }
            Some(only) => command.push_str(&format!(" --only {}", only.name())),
            None => {}
        }
        Self {
            engines: args.backend.kinds(),
            suites,
            sizes,
            runs: args.runs as usize,
            per_engine: args.only.is_none_or(|o| o == Only::Engines),
            starts: args
                .only
                .is_none_or(|o| o == Only::Engines || o == Only::Starts),
            fleet: args.only.is_none_or(|o| o == Only::Fleet),
            watcher: args.only.is_none_or(|o| o == Only::Watcher),
            write_docs: args.write_docs,
            crowd: !args.quick,
            command,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        #[derive(clap::Parser)]
        struct Bench {
            #[command(flatten)]
            args: Args,
        }
        let argv = std::iter::once("bench").chain(args.iter().copied());
        Options::from(<Bench as clap::Parser>::parse_from(argv).args)
    }

    #[test]
    fn the_command_spells_out_every_default() {
        let defaults = options(&[]);
        assert_eq!(
            defaults.command,
            "cargo xtask bench --engines bookworm --backend all --sizes 10,100,500 --runs 5"
        );
        assert!(defaults.per_engine && defaults.fleet && defaults.watcher);
        assert!(!defaults.write_docs);
        let some = options(&[
            "--engines",
            "sid,all",
            "--backend",
            "podman",
            "--sizes",
            "10",
            "--runs",
            "1",
            "--only",
            "watcher",
            "--write-docs",
        ]);
        assert_eq!(
            some.command,
            "cargo xtask bench --engines sid,bookworm,trixie --backend podman --sizes 10 --runs 1 --only watcher"
        );
        assert_eq!(some.engines, [BackendKind::Podman]);
        assert!(some.watcher && !some.per_engine && !some.fleet && some.write_docs);
    }

    #[test]
    fn quick_is_ten_leftovers_once_without_the_crowd_and_says_so() {
        let quick = options(&["--quick", "--backend", "docker"]);
        assert_eq!(
            quick.command,
            "cargo xtask bench --quick --engines bookworm --backend docker"
        );
        assert_eq!((quick.sizes.as_slice(), quick.runs), (&[10][..], 1));
        assert!(quick.per_engine && quick.starts && !quick.crowd);
        assert!(!quick.fleet && !quick.watcher && !quick.write_docs);
        assert!(options(&[]).crowd);
    }
}
