//! `cargo xtask demo [--backend docker|podman]`: the whole cleanup story in
//! a minute, on a private engine. It leaves behind what a failed start
//! leaves (a container, an image, a build directory, a `failed` status) next
//! to resources that only look like anvyl's, then runs `anvyl agent cleanup`
//! — printing each command first — and shows that only anvyl's went away.

use std::path::Path;
use std::process::Command;

use anvyl_core::{AgentName, AgentSpec, AgentStatus, Ownership, StartId, StateStore};
use anyhow::{bail, Context, Result};

use crate::engines::{Engine, Kind, BASE_IMAGE};
use crate::install::ensure_engines;
use crate::process::{output, run as run_cmd};

pub fn run(args: Vec<String>) -> Result<()> {
    let kind = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] | ["--backend", "docker"] => Kind::Docker,
        ["--backend", "podman"] => Kind::Podman,
        _ => bail!("usage: cargo xtask demo [--backend docker|podman]"),
    };
    ensure_engines(kind == Kind::Docker, kind == Kind::Podman)?;
    let root = crate::project_root();
    run_cmd(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "-q",
        "-p",
        "anvyl-cli",
    ]))?;
    let anvyl = root.join("target/debug/anvyl");
    let dir = crate::itest::engines_dir().join(format!("demo-{}", kind.name()));
    let engine = Engine::start(kind, dir.clone(), false)?;
    engine.build_base_image()?;
    let state_dir = dir.join("state");
    story(&engine, &anvyl, &state_dir)
}

fn say(text: &str) {
    println!("\n# {text}");
}

/// Runs and shows `anvyl ARGS`, returning its exit status.
fn anvyl(engine: &Engine, anvyl: &Path, state_dir: &Path, args: &[&str]) -> Result<i32> {
    println!("$ anvyl {}", args.join(" "));
    let status = Command::new(anvyl)
        .args(args)
        .env("ANVYL_BACKEND", engine.kind.name())
        .env("DOCKER_HOST", engine.endpoint())
        .env("CONTAINER_HOST", engine.endpoint())
        .env("ANVYL_STATE_DIR", state_dir)
        .status()
        .context("run anvyl")?;
    let code = status.code().unwrap_or(1);
    println!("(exit status {code})");
    Ok(code)
}

/// Shows the engine's own listing, as a user would check it.
fn engine_ls(engine: &Engine) -> Result<()> {
    let cli = engine.kind.name();
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
    let state = StateStore::open(state_dir)?;
    let agent = AgentName::new("demo")?;
    state.create_agent(&agent, &AgentSpec::default())?;
    state.transition(
        &agent,
        &[AgentStatus::Stopped],
        AgentStatus::Failed,
        None,
        None,
    )?;
    let labels = Ownership::new(state.instance_id().clone()).stamp(
        &Default::default(),
        &agent,
        &StartId::random(),
    );
    let label_args: Vec<String> = labels
        .iter()
        .flat_map(|(k, v)| ["--label".into(), format!("{k}={v}")])
        .collect();

    say("A start of agent 'demo' failed half-way and left its image, container and build directory:");
    let context = state_dir.join("builds").join("demo.k3x9");
    std::fs::create_dir_all(&context)?;
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nCMD [\"sleep\", \"600\"]\n"),
    )?;
    output(
        engine
            .cli()
            .args(["build", "-q", "--network", "none", "-t", &agent.image_tag()])
            .args(&label_args)
            .arg(&context),
    )?;
    output(
        engine
            .cli()
            .args([
                "create",
                "--network",
                "none",
                "--name",
                &agent.resource_name(),
            ])
            .args(&label_args)
            .arg(agent.image_tag()),
    )?;

    say("Next to them, things that only look like anvyl's — and a tag you added to anvyl's image:");
    for name in ["anvyl-agent-demo2", "my-anvyl-agent-demo"] {
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
            .args(["tag", &agent.image_tag(), "mine/demo:keep"]),
    )?;
    engine_ls(engine)?;

    say("See what anvyl would remove (nothing is touched):");
    anvyl(engine, bin, state_dir, &["agent", "cleanup", "--dry-run"])?;

    say("Without --yes and without a terminal to ask on, anvyl refuses:");
    anvyl(engine, bin, state_dir, &["agent", "cleanup"])?;

    say("Remove them:");
    let code = anvyl(engine, bin, state_dir, &["agent", "cleanup", "--yes"])?;
    if code != 0 {
        bail!("cleanup failed with exit status {code}");
    }

    say("Only anvyl's resources went away; the look-alikes and your tag remain:");
    engine_ls(engine)?;

    say("Nothing is left for anvyl, in JSON for scripts:");
    anvyl(
        engine,
        bin,
        state_dir,
        &["--output", "json", "agent", "cleanup", "--dry-run"],
    )?;
    Ok(())
}
