//! What the engine options of `itest`, `bench` and `demo` accept, and what
//! it expands to. clap parses the words (`--engines sid,trixie`, `--backend
//! all`) and lists them in `--help`; these selectors only say which suites
//! and engine kinds a word stands for. The kinds themselves are
//! `anvyl_core::BackendKind`, the concept anvyl's users choose between too.

use anvyl_core::BackendKind;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::suite::Suite;

/// A `--backend` value of `itest` and `bench`: which engines of each suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineChoice {
    /// The suite's dockerd
    Docker,
    /// The suite's `podman system service`
    Podman,
    /// Both, Docker first
    All,
}

impl EngineChoice {
    pub fn kinds(self) -> Vec<BackendKind> {
        match self {
            EngineChoice::Docker => vec![BackendKind::Docker],
            EngineChoice::Podman => vec![BackendKind::Podman],
            EngineChoice::All => BackendKind::ALL.to_vec(),
        }
    }
}

/// One word of an `--engines` list: whose Docker and Podman.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteChoice {
    /// This machine's own packages (Debian 12)
    Bookworm,
    /// Debian 13's, from a debootstrap root
    Trixie,
    /// Debian unstable's, from a debootstrap root
    Sid,
    /// bookworm, trixie and sid
    All,
}

impl SuiteChoice {
    fn suites(self) -> &'static [Suite] {
        match self {
            SuiteChoice::Bookworm => &[Suite::Bookworm],
            SuiteChoice::Trixie => &[Suite::Trixie],
            SuiteChoice::Sid => &[Suite::Sid],
            SuiteChoice::All => &Suite::ALL,
        }
    }
}

/// The suites an `--engines` list names, each once, in the order first
/// named: the order is the order of the report's rows.
pub fn suites(choices: &[SuiteChoice]) -> Vec<Suite> {
    let mut suites = Vec::new();
    for &suite in choices.iter().flat_map(|c| c.suites()) {
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    suites
}

/// A value parser for one engine kind (`demo --backend`), with the names
/// and the list `--help` shows taken from core's own.
pub fn backend_kind() -> impl TypedValueParser<Value = BackendKind> {
    PossibleValuesParser::new(BackendKind::ALL.map(BackendKind::as_str)).map(|name| {
        name.parse::<BackendKind>()
            .expect("every possible value is a kind's name")
    })
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    fn engines(value: &str) -> Result<Vec<Suite>, String> {
        let choices: Result<Vec<SuiteChoice>, String> = value
            .split(',')
            .map(|word| SuiteChoice::from_str(word, false))
            .collect();
        choices.map(|c| suites(&c))
    }

    #[test]
    fn engines_values() {
        assert_eq!(engines("all").unwrap(), Suite::ALL);
        assert_eq!(
            engines("sid,trixie,sid").unwrap(),
            vec![Suite::Sid, Suite::Trixie]
        );
        assert_eq!(
            engines("sid,all").unwrap(),
            vec![Suite::Sid, Suite::Bookworm, Suite::Trixie]
        );
        assert!(engines("forky").is_err());
        assert!(engines("Sid").is_err());
    }

    #[test]
    fn every_suite_has_its_word() {
        for suite in Suite::ALL {
            assert_eq!(engines(suite.name()).unwrap(), vec![suite]);
        }
    }

    #[test]
    fn engine_words_are_cores_names() {
        for kind in BackendKind::ALL {
            let choice = EngineChoice::from_str(kind.as_str(), false).unwrap();
            assert_eq!(choice.kinds(), vec![kind]);
        }
        assert_eq!(EngineChoice::All.kinds(), BackendKind::ALL);
    }

    /// The options as the subcommands declare them, parsed by clap.
    #[derive(Debug, clap::Parser)]
    struct Options {
        #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
        engines: Vec<SuiteChoice>,
        #[arg(long, value_enum, default_value = "all")]
        backend: EngineChoice,
        #[arg(long, default_value = "docker", value_parser = backend_kind())]
        kind: BackendKind,
    }

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        <Options as clap::Parser>::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn clap_accepts_what_the_hand_parsers_did() {
        let defaults = parse(&[]).unwrap();
        assert_eq!(suites(&defaults.engines), Suite::ALL);
        assert_eq!(defaults.backend.kinds(), BackendKind::ALL);
        assert_eq!(defaults.kind, BackendKind::Docker);
        let given = parse(&[
            "--engines",
            "trixie,bookworm",
            "--backend",
            "podman",
            "--kind",
            "podman",
        ])
        .unwrap();
        assert_eq!(suites(&given.engines), [Suite::Trixie, Suite::Bookworm]);
        assert_eq!(given.backend.kinds(), [BackendKind::Podman]);
        assert_eq!(given.kind, BackendKind::Podman);
        for bad in [
            &["--engines", "forky"][..],
            &["--backend", "lxc"],
            &["--kind", "all"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue, "{bad:?}");
        }
    }
}
