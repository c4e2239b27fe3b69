//! `cargo xtask itest [--backend docker|podman|all] [--keep] [-- FILTER…]`:
//! for each engine, start it privately, build the base image, run the
//! conformance suite and the end-to-end tests (those matching FILTER, when
//! given) against it, print the reliability summary the tests tallied, and
//! stop it — also when a test fails or the run is interrupted.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::engines::{Engine, Kind, BASE_IMAGE};
use crate::install::ensure_engines;
use crate::process::run as run_cmd;

struct Options {
    engines: Vec<Kind>,
    keep: bool,
    filter: Vec<String>,
}

fn parse(args: Vec<String>) -> Result<Options> {
    let mut options = Options {
        engines: vec![Kind::Docker, Kind::Podman],
        keep: false,
        filter: Vec::new(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep" => options.keep = true,
            "--" => options.filter = args.by_ref().collect(),
            "--backend" => {
                options.engines = Kind::parse_list(args.next().as_deref())?
            }
            other => bail!("unknown argument {other:?}; usage: cargo xtask itest [--backend docker|podman|all] [--keep] [-- FILTER...]"),
        }
    }
    Ok(options)
}

/// Where the private engines live. A Unix socket path must stay under 108
/// bytes; a deep checkout falls back to a directory in /tmp.
pub fn engines_dir() -> PathBuf {
    let dir = crate::project_root().join("target").join("itest");
    if dir.display().to_string().len() < 80 {
        dir
    } else {
        std::env::temp_dir().join(format!("anvyl-itest-{}", std::process::id()))
    }
}

pub fn run(args: Vec<String>) -> Result<()> {
    let options = parse(args)?;
    ensure_engines(&options.engines)?;
    // Ctrl-C reaches the test processes (same process group) and ends them;
    // xtask itself survives to stop the engines, then exits 130.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("install the Ctrl-C handler")?;

    let root = crate::project_root();
    let began = Instant::now();
    // Build everything once before any engine starts.
    run_cmd(
        Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "-p", "anvyl-cli"]),
    )?;
    let anvyl = root.join("target").join("debug").join("anvyl");

    // Engines stay up until the end: the runtime-swap scenario needs both.
    let mut engines = Vec::new();
    let mut failures = Vec::new();
    for kind in &options.engines {
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        eprintln!("xtask: === {} ===", kind.name());
        let dir = engines_dir().join(kind.name());
        match Engine::start(*kind, dir, options.keep) {
            Ok(engine) => {
                if let Err(e) = test_against(&engine, &anvyl, &options.filter) {
                    eprintln!("xtask: {} failed: {e:#}", kind.name());
                    failures.push(kind.name().to_string());
                }
                engines.push(engine);
            }
            Err(e) => {
                eprintln!("xtask: {} failed: {e:#}", kind.name());
                failures.push(kind.name().to_string());
            }
        }
    }
    if engines.len() == 2 && !interrupted.load(Ordering::SeqCst) {
        eprintln!("xtask: === many hosts: a second Docker with TLS, SSH, runtime swap ===");
        let far = Engine::start_with(
            Kind::Docker,
            engines_dir().join("docker-far"),
            options.keep,
            true,
        )
        .and_then(|far| far.build_base_image().map(|()| far));
        match far.and_then(|far| test_hosts(&engines, &far, &anvyl)) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("xtask: many-hosts tests failed: {e:#}");
                failures.push("many hosts".into());
            }
        }
    }
    drop(engines);
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("xtask: interrupted; private engines stopped");
        std::process::exit(130);
    }
    eprintln!(
        "xtask: itest finished in {:.0}s",
        began.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!("real-daemon tests failed on: {}", failures.join(", "));
    }
    Ok(())
}

fn test_against(engine: &Engine, anvyl: &std::path::Path, filter: &[String]) -> Result<()> {
    engine.build_base_image()?;
    let root = crate::project_root();
    let (crate_name, test) = match engine.kind {
        Kind::Docker => ("anvyl-docker", "docker_conformance"),
        Kind::Podman => ("anvyl-podman", "podman_conformance"),
    };
    let endpoint_var = match engine.kind {
        Kind::Docker => "ANVYL_ITEST_DOCKER_HOST",
        Kind::Podman => "ANVYL_ITEST_PODMAN_HOST",
    };
    let with_env = |cmd: &mut Command| {
        cmd.current_dir(&root)
            .env(endpoint_var, engine.endpoint())
            .env("ANVYL_ITEST_BACKEND", engine.kind.name())
            .env("ANVYL_ITEST_ENDPOINT", engine.endpoint())
            .env("ANVYL_ITEST_BASE_IMAGE", BASE_IMAGE)
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
    let conformance = run_cmd(&mut conformance);

    let mut e2e = Command::new(env!("CARGO"));
    // --nocapture: the tests print start-to-clean timings and look-alike counts.
    let args = "test -p anvyl-tests --features itest --test e2e -- --nocapture";
    e2e.args(args.split(' ')).args(filter);
    with_env(&mut e2e);
    let summary = engine.dir().join("reliability.txt");
    let _ = std::fs::remove_file(&summary);
    e2e.env("ANVYL_ITEST_SUMMARY", &summary);
    let e2e = run_cmd(&mut e2e);
    // Printed even when a test failed: the figures say how far it got.
    let line = crate::reliability::summary_line(engine.kind.name(), &summary)?;
    eprintln!("{line}");
    conformance.context("conformance suite")?;
    e2e.context("end-to-end tests")?;
    crate::reliability::check(&line, filter.is_empty())
}

/// The scenarios that need several engines at once: one config file, one
/// key changed; registered hosts of one installation across two Docker
/// engines (one of them also on TCP with TLS) and Podman; an SSH host.
fn test_hosts(engines: &[Engine], far: &Engine, anvyl: &std::path::Path) -> Result<()> {
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
        .env("ANVYL_ITEST_DOCKER2_PIDFILE", far.pid_file());
    if let Some(tls) = far.tls() {
        cmd.env("ANVYL_ITEST_TLS_ENDPOINT", tls.endpoint())
            .env("ANVYL_ITEST_TLS_DIR", &tls.client);
    }
    for engine in engines {
        let var = match engine.kind {
            Kind::Docker => "ANVYL_ITEST_DOCKER_HOST",
            Kind::Podman => "ANVYL_ITEST_PODMAN_HOST",
        };
        cmd.env(var, engine.endpoint());
    }
    run_cmd(&mut cmd)
}
