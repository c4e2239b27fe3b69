//! `cargo xtask itest [--engines S] [--backend docker|podman|all] [--keep] [-- FILTER…]`:
//! for each engine, start it privately, build the base image, run the
//! conformance suite and the end-to-end tests (those matching FILTER, when
//! given) against it, print the reliability summary the tests tallied, and
//! stop it — also when a test fails or the run is interrupted.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use anvyl_core::BackendKind;

use crate::choice::{EngineChoice, SuiteChoice};
use crate::engines::{engines_dir, restart_file, Engine, BASE_IMAGE};
use crate::install::ensure_engines;
use crate::registry::Registry;
use crate::suite::Suite;
use crate::teardown::run_group;

/// `cargo xtask itest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whose engines, one suite or a comma list (bookworm,sid)
    #[arg(
        long,
        value_name = "SUITES",
        value_enum,
        value_delimiter = ',',
        default_value = "all"
    )]
    engines: Vec<SuiteChoice>,
    /// Which engines of each suite
    #[arg(long, value_name = "BACKEND", value_enum, default_value = "all")]
    backend: EngineChoice,
    /// Leave the engines running afterwards, for a look by hand
    #[arg(long)]
    keep: bool,
    /// How many suites run side by side (each with its own engines); 1
    /// runs them one after another. Two lanes: sid in one, bookworm then
    /// trixie in the other
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    lanes: u32,
    /// Run only the end-to-end tests whose names contain one of these
    #[arg(last = true, value_name = "FILTER")]
    filter: Vec<String>,
}

struct Options {
    suites: Vec<Suite>,
    engines: Vec<BackendKind>,
    keep: bool,
    lanes: u32,
    filter: Vec<String>,
}

impl From<Args> for Options {
    fn from(args: Args) -> Self {
        Self {
            suites: crate::choice::suites(&args.engines),
            engines: args.backend.kinds(),
            keep: args.keep,
            lanes: args.lanes,
            filter: args.filter,
        }
    }
}

/// The end-to-end tests that stop and start their engine.
const RESTART_TESTS: &str = "restart::";

/// One row of the matrix: which tests passed on which engine.
struct Row {
    engine: String,
    version: String,
    conformance: Option<bool>,
    e2e: Option<bool>,
    hosts: Option<bool>,
}

pub fn run(args: Args) -> Result<()> {
    let options = Options::from(args);
    let _lock = crate::engines::lock()?;
    ensure_engines(&options.engines, &options.suites)?;
    // Ctrl-C or SIGTERM: the handler stops the test processes and every
    // private engine, then exits 130.
    crate::teardown::install();

    let root = crate::project_root();
    let began = Instant::now();
    // Build everything once before any engine starts.
    run_group(
        Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "-p", "anvyl-cli"]),
    )?;
    let anvyl = root.join("target").join("debug").join("anvyl");
    // One private registry for every engine of the run.
    let registry = Registry::start(&engines_dir().join("registry"))?;
    let lanes = lanes(&options.suites, options.lanes);
    let prefixed = lanes.len() > 1;
    let mut rows: Vec<(usize, Vec<Row>)> = std::thread::scope(|scope| {
        let running: Vec<_> = (lanes.into_iter())
            .map(|lane| {
                let (options, anvyl, registry) = (&options, &anvyl, &registry);
                scope.spawn(move || {
                    let mut rows = Vec::new();
                    for suite in lane {
                        if prefixed {
                            crate::teardown::set_lane(suite.name());
                        }
                        let suite_began = Instant::now();
                        let order = options.suites.iter().position(|s| *s == suite);
                        rows.push((
                            order.unwrap_or(0),
                            test_suite(suite, options, anvyl, registry),
                        ));
                        eprintln!(
                            "xtask: {} done in {:.0}s",
                            suite.name(),
                            suite_began.elapsed().as_secs_f64()
                        );
                    }
                    rows
                })
            })
            .collect();
        (running.into_iter())
            .flat_map(|lane| lane.join().expect("a lane's thread panicked"))
            .collect()
    });
    rows.sort_by_key(|(order, _)| *order);
    let rows: Vec<Row> = rows.into_iter().flat_map(|(_, rows)| rows).collect();
    eprintln!(
        "xtask: itest finished in {:.0}s\n{}",
        began.elapsed().as_secs_f64(),
        matrix(&rows)
    );
    let failed: Vec<&str> = (rows.iter())
        .filter(|r| [r.conformance, r.e2e, r.hosts].contains(&Some(false)))
        .map(|r| r.engine.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("real-daemon tests failed on: {}", failed.join(", "));
    }
    Ok(())
}

/// `suites` in at most `n` lanes that run side by side, heaviest first,
/// each to the lane with the least weight so far; a lane keeps the order
/// the suites were given in.
fn lanes(suites: &[Suite], n: u32) -> Vec<Vec<Suite>> {
    let mut lanes: Vec<Vec<Suite>> = vec![Vec::new(); (n as usize).min(suites.len()).max(1)];
    let mut heaviest = suites.to_vec();
    heaviest.sort_by_key(|s| std::cmp::Reverse(s.weight()));
    for suite in heaviest {
        let lightest = (lanes.iter_mut())
            .min_by_key(|lane| lane.iter().map(|s| s.weight()).sum::<u32>())
            .expect("at least one lane");
        lightest.push(suite);
    }
    for lane in &mut lanes {
        lane.sort_by_key(|s| suites.iter().position(|t| t == s));
    }
    lanes.retain(|lane| !lane.is_empty());
    lanes
}

/// Every test against one suite's engines: each engine alone, then the
/// scenarios that need both kinds (and a second Docker) at once. The
/// engines stay up until the suite is done.
fn test_suite(suite: Suite, options: &Options, anvyl: &Path, registry: &Registry) -> Vec<Row> {
    eprintln!("xtask: === {} ===", suite.name());
    let mut engines = Vec::new();
    let mut rows = Vec::new();
    for kind in &options.engines {
        let label = format!("{} ({})", kind.as_str(), suite.name());
        let dir = engines_dir().join(format!("{}-{}", suite.name(), kind.as_str()));
        let mut row = Row {
            engine: label.clone(),
            version: "did not start".into(),
            conformance: None,
            e2e: None,
            hosts: None,
        };
        let started = Engine::start(*kind, suite, dir, options.keep).and_then(|engine| {
            // The suite's root exists now: its engines trust the registry.
            registry.trust(suite.is_chroot().then(|| suite.root()).as_deref())?;
            Ok(engine)
        });
        match started {
            Ok(engine) => {
                row.version = engine.version().to_string();
                test_against(&engine, anvyl, &options.filter, registry, &mut row);
                engines.push(engine);
            }
            Err(e) => {
                eprintln!("xtask: {label} failed: {e:#}");
                row.conformance = Some(false);
            }
        }
        rows.push(row);
    }
    if engines.len() == 2 {
        eprintln!(
            "xtask: === {}: many hosts: a second Docker with TLS, SSH, runtime swap ===",
            suite.name()
        );
        let far = Engine::start_with(
            BackendKind::Docker,
            suite,
            engines_dir().join(format!("{}-docker-far", suite.name())),
            options.keep,
            true,
        )
        .and_then(|far| far.build_base_image().map(|()| far));
        let passed = match far.and_then(|far| test_hosts(&engines, &far, anvyl)) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("xtask: many-hosts tests on {} failed: {e:#}", suite.name());
                false
            }
        };
        for row in &mut rows {
            row.hosts = Some(passed);
        }
    }
    rows
}

/// The tests × engines table printed at the end of a run.
fn matrix(rows: &[Row]) -> String {
    let mark = |r: Option<bool>| match r {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "-",
    };
    let mut out = format!(
        "{:<16} {:<44} {:<12} {:<11} {}\n",
        "engine", "version", "conformance", "end-to-end", "hosts+swap"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<16} {:<44} {:<12} {:<11} {}\n",
            r.engine,
            r.version,
            mark(r.conformance),
            mark(r.e2e),
            mark(r.hosts)
        ));
    }
    out
}

fn test_against(
    engine: &Engine,
    anvyl: &Path,
    filter: &[String],
    registry: &Registry,
    row: &mut Row,
) {
    if let Err(e) = engine.build_base_image() {
        eprintln!("xtask: {}: {e:#}", engine.label());
        row.conformance = Some(false);
        return;
    }
    let root = crate::project_root();
    let (crate_name, test) = match engine.kind {
        BackendKind::Docker => ("anvyl-docker", "docker_conformance"),
        BackendKind::Podman => ("anvyl-podman", "podman_conformance"),
    };
    let endpoint_var = match engine.kind {
        BackendKind::Docker => "ANVYL_ITEST_DOCKER_HOST",
        BackendKind::Podman => "ANVYL_ITEST_PODMAN_HOST",
    };
    let with_env = |cmd: &mut Command| {
        cmd.current_dir(&root)
            .env(endpoint_var, engine.endpoint())
            .env("ANVYL_ITEST_BACKEND", engine.kind.as_str())
            .env("ANVYL_ITEST_ENDPOINT", engine.endpoint())
            .env("ANVYL_ITEST_BASE_IMAGE", BASE_IMAGE)
            .env("ANVYL_ITEST_ENGINE_CLI", engine.cli_line())
            .env("ANVYL_ITEST_REGISTRY", &registry.address)
            .env("ANVYL_ITEST_REGISTRY_USER", crate::registry::USER)
            .env("ANVYL_ITEST_REGISTRY_PASSWORD", &registry.password)
            .env(
                "ANVYL_ITEST_REGISTRY_TRICKY_USER",
                crate::registry::TRICKY_USER,
            )
            .env(
                "ANVYL_ITEST_REGISTRY_TRICKY_PASSWORD",
                crate::registry::tricky(&registry.password),
            )
            .env("ANVYL_BIN", anvyl);
    };
    let mut conformance = Command::new(env!("CARGO"));
    conformance.args([
        "test",
        "-p",
        crate_name,
        "--features",
        "itest",
        "--test",
        test,
        "--",
        "--nocapture",
    ]);
    with_env(&mut conformance);
    let conformance = run_group(&mut conformance);
    if let Err(e) = &conformance {
        eprintln!("xtask: {} conformance suite: {e:#}", engine.label());
    }
    row.conformance = Some(conformance.is_ok());

    // --nocapture: the tests print start-to-clean timings and look-alike counts.
    let args = "test -p anvyl-tests --features itest --test e2e -- --nocapture";
    let summary = engine.dir().join("reliability.txt");
    let _ = std::fs::remove_file(&summary);
    // The tests share the engine, side by side; those that restart it
    // (module `restart`) run afterwards, one at a time, alone with it.
    let mut e2e = Command::new(env!("CARGO"));
    e2e.args(args.split(' '))
        .args(filter)
        .args(["--skip", RESTART_TESTS]);
    with_env(&mut e2e);
    e2e.env("ANVYL_ITEST_SUMMARY", &summary);
    let mut e2e = run_group(&mut e2e).context("end-to-end tests");
    let restarts: Vec<&str> = match filter.is_empty() {
        true => vec![RESTART_TESTS],
        false => (filter.iter())
            .filter(|f| f.contains("restart"))
            .map(String::as_str)
            .collect(),
    };
    if !restarts.is_empty() {
        let mut alone = Command::new(env!("CARGO"));
        alone
            .args(args.split(' '))
            .args(["--test-threads", "1"])
            .args(restarts);
        with_env(&mut alone);
        alone
            .env("ANVYL_ITEST_SUMMARY", &summary)
            .env("ANVYL_ITEST_RESTART", restart_file(engine.dir()))
            .env("ANVYL_ITEST_RESTART_KEEPS", keeps_containers(engine));
        let alone = run_group(&mut alone).context("end-to-end tests that restart the engine");
        // A test that failed with its engine stopped left it so.
        let alone = alone.and(engine.ensure_started());
        e2e = e2e.and(alone);
    }
    // Printed even when a test failed: the figures say how far it got.
    let reliability =
        crate::reliability::summary_line(&engine.label(), &summary).and_then(|line| {
            eprintln!("{line}");
            crate::reliability::check(&line, filter.is_empty())
        });
    if let Err(e) = e2e.and(reliability) {
        eprintln!("xtask: {}: {e:#}", engine.label());
        row.e2e = Some(false);
    } else {
        row.e2e = Some(true);
    }
}

/// Whether the engine's containers outlive its restart: a Podman service's
/// do (conmon keeps them); a dockerd stops them on its way down (no live
/// restore), and a suite's namespace ends with every process in it, as a
/// reboot would. "1" or "0", for the restart tests to assert.
fn keeps_containers(engine: &Engine) -> &'static str {
    match engine.kind == BackendKind::Podman && !engine.suite.is_chroot() {
        true => "1",
        false => "0",
    }
}

/// The scenarios that need several engines at once: one config file, one
/// key changed; registered hosts of one installation across two Docker
/// engines (one of them also on TCP with TLS) and Podman; an SSH host.
fn test_hosts(engines: &[Engine], far: &Engine, anvyl: &Path) -> Result<()> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(crate::project_root())
        .args([
            "test",
            "-p",
            "anvyl-tests",
            "--features",
            "itest",
            "--test",
            "swap",
            "--test",
            "hosts",
            "--test",
            "fleet",
            "--",
            "--nocapture",
        ])
        .env("ANVYL_ITEST_BASE_IMAGE", BASE_IMAGE)
        .env("ANVYL_BIN", anvyl)
        .env("ANVYL_ITEST_DOCKER2_HOST", far.endpoint())
        .env("ANVYL_ITEST_DOCKER2_PIDFILE", far.pid_file()?);
    if let Some(tls) = far.tls() {
        cmd.env("ANVYL_ITEST_TLS_ENDPOINT", tls.endpoint())
            .env("ANVYL_ITEST_TLS_DIR", &tls.client);
    }
    for engine in engines {
        let var = match engine.kind {
            BackendKind::Docker => "ANVYL_ITEST_DOCKER_HOST",
            BackendKind::Podman => "ANVYL_ITEST_PODMAN_HOST",
        };
        cmd.env(var, engine.endpoint());
    }
    run_group(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_gets_a_lane_of_its_own() {
        assert_eq!(
            lanes(&Suite::ALL, 2),
            vec![vec![Suite::Sid], vec![Suite::Bookworm, Suite::Trixie]]
        );
        assert_eq!(lanes(&Suite::ALL, 1), vec![Suite::ALL.to_vec()]);
        assert_eq!(lanes(&[Suite::Trixie], 2), vec![vec![Suite::Trixie]]);
        assert_eq!(lanes(&Suite::ALL, 5).len(), 3);
    }
}
