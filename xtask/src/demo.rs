//! `cargo xtask demo [--backend docker|podman]`: the whole story in a
//! minute, on a private engine, printing each `anvyl` command before it runs:
//! an agent with a failing setup is started and cleaned up automatically; a
//! good agent starts, logs and stops; and `anvyl agent cleanup` removes its
//! leftovers while look-alikes and a user's tag survive.

use std::path::Path;
use std::process::Command;

use anvyl_core::BackendKind;
use anyhow::{bail, Context, Result};

use crate::engines::{Engine, BASE_IMAGE};
use crate::install::ensure_engines;
use crate::process::{output, run as run_cmd};
use crate::suite::Suite;

/// `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The engine to tell it on
    #[arg(long, default_value = "docker", value_parser = crate::choice::backend_kind())]
    backend: BackendKind,
}

pub fn run(Args { backend: kind }: Args) -> Result<()> {
    ensure_engines(&[kind], &[Suite::Bookworm])?;
    let root = crate::project_root();
    run_cmd(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "-q",
        "-p",
        "anvyl-cli",
    ]))?;
    let anvyl = root.join("target/debug/anvyl");
    let dir = crate::engines::engines_dir().join(format!("demo-{}", kind.as_str()));
    let engine = Engine::start(kind, Suite::Bookworm, dir.clone(), false)?;
    engine.build_base_image()?;
    let state_dir = dir.join("state");
    story(&engine, &anvyl, &state_dir)
}

fn say(text: &str) {
    println!("\n# {text}");
}

/// Runs and shows `anvyl ARGS`, returning its exit status.
fn anvyl(engine: &Engine, anvyl: &Path, state_dir: &Path, args: &[&str]) -> Result<i32> {
    // As a shell would need it typed, for the reader to paste.
    println!("$ anvyl {}", shlex::try_join(args.iter().copied())?);
    let status = Command::new(anvyl)
        .args(args)
        .env("ANVYL_BACKEND", engine.kind.as_str())
        .env("DOCKER_HOST", engine.endpoint())
        .env("CONTAINER_HOST", engine.endpoint())
        .env("ANVYL_STATE_DIR", state_dir)
        .env("ANVYL_NETWORK", "none")
        .status()
        .context("run anvyl")?;
    let code = status.code().unwrap_or(1);
    println!("(exit status {code})");
    Ok(code)
}

/// Shows the engine's own listing, as a user would check it.
fn engine_ls(engine: &Engine) -> Result<()> {
    let cli = engine.kind.as_str();
    println!("$ {cli} ps -a --format '{{{{.Names}}}}'");
    print!(
        "{}",
        output(engine.cli().args(["ps", "-a", "--format", "{{.Names}}"]))?
    );
    println!("$ {cli} images --format '{{{{.Repository}}}}:{{{{.Tag}}}}'");
    let images = output(
        engine
            .cli()
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]),
    )?;
    for line in images.lines().filter(|l| !l.contains("<none>")) {
        println!("{line}");
    }
    Ok(())
}

fn story(engine: &Engine, bin: &Path, state_dir: &Path) -> Result<()> {
    let run = |args: &[&str]| anvyl(engine, bin, state_dir, args);

    say("An agent whose setup fails: its start must leave nothing behind.");
    run(&[
        "agent",
        "create",
        "broken",
        "--image",
        BASE_IMAGE,
        "--setup",
        "echo installing",
        "--setup",
        "false",
    ])?;
    run(&["agent", "start", "broken"])?;
    say("Nothing of 'broken' is left on the engine:");
    engine_ls(engine)?;

    say("A good agent starts, runs and stops.");
    run(&[
        "agent",
        "create",
        "helper",
        "--image",
        BASE_IMAGE,
        "--provider",
        "anthropic",
        "--model",
        "claude",
        "--command",
        "echo hello from the agent; sleep 600",
    ])?;
    if run(&["agent", "start", "helper"])? != 0 {
        bail!("the good agent did not start");
    }
    run(&["agent", "list"])?;
    run(&["agent", "logs", "helper"])?;
    run(&["agent", "stop", "helper"])?;

    say("Its image stays as a leftover, next to things that only look like anvyl's:");
    for name in ["anvyl-agent-helper2", "my-anvyl-agent-helper"] {
        output(engine.cli().args([
            "create",
            "--network",
            "none",
            "--name",
            name,
            BASE_IMAGE,
            "true",
        ]))?;
    }
    output(
        engine
            .cli()
            .args(["tag", "anvyl-agent-helper:latest", "mine/helper:keep"]),
    )?;
    engine_ls(engine)?;

    say("See what anvyl would remove (nothing is touched):");
    run(&["agent", "cleanup", "--dry-run"])?;
    say("Without --yes and without a terminal to ask on, anvyl refuses:");
    run(&["agent", "cleanup"])?;
    say("Remove them:");
    let code = run(&["agent", "cleanup", "--yes"])?;
    if code != 0 {
        bail!("cleanup failed with exit status {code}");
    }
    say("Only anvyl's leftovers went away; the look-alikes and your tag remain:");
    engine_ls(engine)?;
    Ok(())
}
