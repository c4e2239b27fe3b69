//! `cargo xtask bench [--engines bookworm|trixie|sid|all] [--backend
//! docker|podman|all] [--sizes 10,100,500] [--runs 5] [--only
//! fleet|engines|watcher|starts] [--write-docs]`: anvyl against the engines' own
//! tools, on the same private engine, in the same run. For each engine and
//! size N it populates N agents' leftovers (untimed, through anvyl's
//! library) next to 1000 unrelated containers and image tags, then times —
//! alternating the order every run, each from an identical population —
//! `anvyl agent cleanup --yes`, the CLI pipeline a user would type, and the
//! prune endpoints. It also times the dry run with nothing to clean, the
//! largest N without the unrelated crowd (anvyl and prune), and `anvyl
//! agent start` against `build` + `run`, and of twenty agents at once
//! against twenty CLI builds and runs in a row and side by side (`many.rs`).
//! The fleet case times one cleanup
//! of three hosts against the slowest of them alone; the watcher's case
//! (`watcher.rs`) measures `agent cleanup --watch` beside 100 running
//! agents (`--only fleet|engines|watcher|starts` runs one part).
//! Results: a Markdown report on stdout, `target/bench/results.json` and
//! `target/bench/cleanup.svg`; with `--write-docs`, the report's sections
//! also go into docs/benchmarks.md (`docs.rs`).

mod docs;
mod fleet;
mod many;
mod measure;
mod options;
mod populate;
mod report;
mod watcher;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anvyl_core::{BackendKind, DynBackend, StateStore};
use anyhow::{bail, Result};
use serde::Serialize;

use crate::engines::{Engine, BASE_IMAGE};
use crate::install::ensure_engines;
use crate::process::run as run_cmd;
use measure::{measure, Sample};
use options::{Only, Options};

pub use options::Args;

/// Leftovers per host in the fleet case.
const FLEET_SIZE: usize = 100;

/// Running agents in the watcher's case.
const WATCHED: usize = 100;

/// How many unrelated containers, and image tags, share the engine.
const UNRELATED: usize = 1000;
const LABEL: &str = "io.anvyl.managed-by=anvyl";

/// The three ways of removing anvyl's leftovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Anvyl,
    Cli,
    Prune,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Anvyl, Method::Cli, Method::Prune];

    pub fn title(self) -> &'static str {
        match self {
            Method::Anvyl => "anvyl agent cleanup --yes",
            Method::Cli => "rm -f $(ps -aq …); rmi $(images -q …)",
            Method::Prune => "container prune + image prune -a",
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// "docker (sid)", or "fleet".
    pub engine: String,
    pub case: &'static str,
    pub method: String,
    pub n: usize,
    pub unrelated: bool,
    pub sample: Sample,
}

/// Everything one engine needs during the benchmark.
struct Bench<'a> {
    engine: &'a Engine,
    client: DynBackend,
    state_dir: PathBuf,
    state: StateStore,
    context: PathBuf,
    /// The build contexts of the leftovers' images, one per agent.
    agents_dir: PathBuf,
    anvyl: PathBuf,
    records: Vec<Record>,
    /// The main series run beside the 1000 unrelated resources (not with
    /// `--quick`): what each record says as `unrelated`.
    crowd: bool,
}

impl Bench<'_> {
    fn anvyl(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.anvyl);
        cmd.args(args)
            .env("ANVYL_BACKEND", self.engine.kind.as_str())
            .env("DOCKER_HOST", self.engine.endpoint())
            .env("CONTAINER_HOST", self.engine.endpoint())
            .env("ANVYL_STATE_DIR", &self.state_dir)
            .env("ANVYL_NETWORK", "none")
            .env("XDG_CONFIG_HOME", self.state_dir.join("no-config"));
        cmd
    }

    /// `sh -c SCRIPT` with `$E` as the engine's CLI.
    fn shell(&self, script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).env("E", self.engine.cli_line());
        cmd
    }

    fn method_command(&self, method: Method) -> Command {
        let force = if self.engine.kind == BackendKind::Podman {
            "-f -t 0"
        } else {
            "-f"
        };
        match method {
            Method::Anvyl => self.anvyl(&["-q", "agent", "cleanup", "--yes"]),
            Method::Cli => self.shell(&format!(
                "$E rm {force} $($E ps -aq --filter label={LABEL}) >/dev/null && $E rmi $($E images -q --filter label={LABEL}) >/dev/null"
            )),
            Method::Prune => self.shell(&format!(
                "$E container prune -f --filter label={LABEL} >/dev/null && $E image prune -a -f --filter label={LABEL} >/dev/null"
            )),
        }
    }

    fn record(
        &mut self,
        case: &'static str,
        method: &str,
        n: usize,
        unrelated: bool,
        sample: Sample,
    ) {
        eprintln!(
            "bench: {} {case} {method} N={n}{}: {:.3}s wall, {:.3}s cpu, {:.1} MiB",
            self.engine.label(),
            if unrelated { " +1000" } else { "" },
            sample.wall,
            sample.cpu,
            sample.rss_mib
        );
        self.push(case, method, n, unrelated, sample);
    }

    /// Records a sample without a line of its own.
    fn push(
        &mut self,
        case: &'static str,
        method: &str,
        n: usize,
        unrelated: bool,
        sample: Sample,
    ) {
        self.records.push(Record {
            engine: self.engine.label(),
            case,
            method: method.to_string(),
            n,
            unrelated,
            sample,
        });
    }

    /// Populates N leftovers, times one method, checks that it removed all
    /// of anvyl's and nothing else.
    async fn cleanup_run(&mut self, method: Method, n: usize, unrelated: bool) -> Result<()> {
        populate::leftovers(&self.client, &self.state, BASE_IMAGE, &self.agents_dir, n).await?;
        let (_, _, containers_before, images_before) = populate::census(&self.client).await?;
        let sample = measure(&mut self.method_command(method))?;
        let (c, i, containers_after, images_after) = populate::census(&self.client).await?;
        if c + i > 0 {
            populate::sweep(&self.client).await?;
            bail!("{method:?} left {c} containers and {i} images of anvyl's at N={n}");
        }
        let unrelated_lost = (containers_before - n).saturating_sub(containers_after)
            + (images_before - n).saturating_sub(images_after);
        if unrelated_lost > 0 {
            bail!("{method:?} removed {unrelated_lost} resources that were not anvyl's");
        }
        self.record(
            "cleanup",
            &format!("{method:?}").to_lowercase(),
            n,
            unrelated,
            sample,
        );
        Ok(())
    }

    async fn cleanup_series(
        &mut self,
        sizes: &[usize],
        runs: usize,
        methods: &[Method],
        unrelated: bool,
    ) -> Result<()> {
        for &n in sizes {
            for run in 0..runs {
                // Alternate the order so no method always runs first.
                let mut order = methods.to_vec();
                let shift = run % order.len();
                order.rotate_left(shift);
                for method in order {
                    self.cleanup_run(method, n, unrelated).await?;
                }
            }
        }
        Ok(())
    }

    fn dry_run_latency(&mut self, runs: usize) -> Result<()> {
        for _ in 0..runs {
            let anvyl = measure(&mut self.anvyl(&["-q", "agent", "cleanup", "--dry-run"]))?;
            self.record("dry-run", "anvyl", 0, self.crowd, anvyl);
            let cli = measure(&mut self.shell(&format!("$E ps -aq --filter label={LABEL}")))?;
            self.record("dry-run", "cli", 0, self.crowd, cli);
        }
        Ok(())
    }

    fn start_overhead(&mut self, runs: usize) -> Result<()> {
        let setup = "echo setup > /setup.txt";
        let dir = self.state_dir.join("start-context");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM {BASE_IMAGE}\nRUN {setup}\nCMD [\"/bin/sh\",\"-c\",\"sleep 600\"]\n"),
        )?;
        run_cmd(&mut self.anvyl(&[
            "-q",
            "agent",
            "create",
            "bench-start",
            "--image",
            BASE_IMAGE,
            "--setup",
            setup,
            "--command",
            "sleep 600",
        ]))?;
        let force = if self.engine.kind == BackendKind::Podman {
            "-f -t 0"
        } else {
            "-f"
        };
        for _ in 0..runs {
            for (label, settle) in [("anvyl", "1000"), ("anvyl-settle-0", "0")] {
                let sample = measure(
                    self.anvyl(&["-q", "agent", "start", "bench-start"])
                        .env("ANVYL_SETTLE_MS", settle),
                )?;
                self.record("start", label, 1, self.crowd, sample);
                run_cmd(&mut self.anvyl(&["-q", "agent", "stop", "bench-start"]))?;
            }
            let sample = measure(&mut self.shell(&format!(
                "$E build -q --network none -t benchcli:latest {} >/dev/null && $E run -d --network none --name benchcli benchcli:latest >/dev/null",
                dir.display()
            )))?;
            self.record("start", "cli", 1, self.crowd, sample);
            run_cmd(&mut self.shell(&format!("$E rm {force} benchcli >/dev/null")))?;
        }
        run_cmd(&mut self.shell("$E rmi benchcli:latest >/dev/null"))?;
        run_cmd(&mut self.anvyl(&["-q", "agent", "remove", "bench-start", "--yes"]))?;
        Ok(())
    }
}

async fn connect(engine: &Engine) -> Result<DynBackend> {
    let timeout = Duration::from_secs(300);
    Ok(match engine.kind {
        BackendKind::Docker => {
            Arc::new(anvyl_docker::DockerBackend::connect(&engine.endpoint(), timeout).await?)
        }
        BackendKind::Podman => {
            let limits = anvyl_podman::Limits {
                nofile: 4096,
                nproc: 4096,
            };
            Arc::new(
                anvyl_podman::PodmanBackend::connect(&engine.endpoint(), timeout, limits).await?,
            )
        }
    })
}

/// One engine's records, and the watcher's figures when its case ran.
async fn bench_engine(
    engine: &Engine,
    anvyl: &Path,
    options: &Options,
) -> Result<(Vec<Record>, Option<watcher::Figures>)> {
    engine.build_base_image()?;
    // Inside the engine's directory: a suite's engine and CLI see it at the
    // same path (their /tmp is their own).
    let work = tempfile::tempdir_in(engine.dir())?;
    let context = work.path().join("context");
    std::fs::create_dir_all(&context)?;
    std::fs::write(context.join("Dockerfile"), format!("FROM {BASE_IMAGE}\n"))?;
    let state_dir = work.path().join("state");
    let mut bench = Bench {
        engine,
        client: connect(engine).await?,
        state: StateStore::open(&state_dir)?,
        state_dir,
        context,
        agents_dir: work.path().join("agents"),
        anvyl: anvyl.to_path_buf(),
        records: Vec::new(),
        crowd: options.crowd,
    };
    if options.per_engine {
        bench.cleanups(options).await?;
    }
    if options.starts {
        bench.start_overhead(options.runs)?;
        // Twenty agents side by side take a minute: not in `--quick`.
        if options.crowd {
            bench.start_many(options.runs)?;
        }
    }
    let figures = match options.watcher {
        true => Some(bench.watcher(WATCHED).await?),
        false => None,
    };
    Ok((bench.records, figures))
}

impl Bench<'_> {
    /// The cleanup and dry-run cases.
    async fn cleanups(&mut self, options: &Options) -> Result<()> {
        let kind = self.engine.kind.as_str();
        if !options.crowd {
            eprintln!("bench: {kind}: --quick, nothing else on the engine");
            self.cleanup_series(&options.sizes, options.runs, &Method::ALL, false)
                .await?;
            return self.dry_run_latency(options.runs.max(5));
        }
        let largest = *options.sizes.iter().max().expect("at least one size");
        eprintln!("bench: {kind}: N={largest} without unrelated resources");
        // Prune too, so the engine's own sensitivity to the crowd is on record.
        self.cleanup_series(
            &[largest],
            options.runs,
            &[Method::Anvyl, Method::Prune],
            false,
        )
        .await?;
        eprintln!(
            "bench: {}: adding {UNRELATED} unrelated containers and image tags",
            kind
        );
        populate::unrelated(
            &self.client,
            &self.context,
            BASE_IMAGE,
            UNRELATED,
            UNRELATED,
        )
        .await?;
        self.cleanup_series(&options.sizes, options.runs, &Method::ALL, true)
            .await?;
        self.dry_run_latency(options.runs.max(5))?;
        Ok(())
    }
}

pub fn run(args: Args) -> Result<()> {
    let options = Options::from(args);
    let _lock = crate::engines::lock()?;
    ensure_engines(&options.engines, &options.suites)?;
    let root = crate::project_root();
    // A release build: the engines' CLIs are optimised Go binaries.
    run_cmd(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "-q",
        "--release",
        "-p",
        "anvyl-cli",
    ]))?;
    let anvyl = root.join("target/release/anvyl");
    let runtime = tokio::runtime::Runtime::new()?;
    let mut records = Vec::new();
    let mut watched = Vec::new();
    // "docker (bookworm) 20.10.24 (API 1.41, refuses below 1.12)", for the
    // docs' line under each table.
    let mut engines = Vec::new();
    for suite in
        (options.suites.iter()).filter(|_| options.per_engine || options.starts || options.watcher)
    {
        for kind in &options.engines {
            let dir = format!("bench-{}-{}", suite.name(), kind.as_str());
            let engine = Engine::start(
                *kind,
                *suite,
                crate::engines::engines_dir().join(dir),
                false,
            )?;
            let (engine_records, figures) =
                runtime.block_on(bench_engine(&engine, &anvyl, &options))?;
            engines.push(described(&engine));
            records.extend(engine_records);
            watched.extend(figures.map(|f| (engine.label(), f)));
        }
    }
    // The fleet needs both kinds of engine (two Docker, one Podman).
    let fleet = options.fleet && options.engines.len() == 2;
    let mut fleet_hosts = Vec::new();
    if fleet {
        let (fleet_records, hosts) = runtime.block_on(fleet::bench(
            &anvyl,
            options.suites[0],
            FLEET_SIZE,
            options.runs.min(3),
        ))?;
        records.extend(fleet_records);
        fleet_hosts = hosts;
    }
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&records)?,
    )?;
    std::fs::write(
        out.join("cleanup.svg"),
        report::svg(&records, options.crowd),
    )?;
    // The report: one section per part that ran.
    let section = |part: Only, markdown: String, engines: Vec<String>| docs::Section {
        name: part.name(),
        markdown,
        engines,
    };
    let mut sections = Vec::new();
    if options.per_engine || options.starts {
        let per_engine: Vec<Record> = (records.iter())
            .filter(|r| r.engine != "fleet" && !r.case.starts_with("watch"))
            .cloned()
            .collect();
        let markdown = report::markdown(&per_engine, &options.sizes, options.runs, options.crowd);
        let part = if options.per_engine {
            Only::Engines
        } else {
            Only::Starts
        };
        sections.push(section(part, markdown, engines.clone()));
    }
    if options.watcher {
        let markdown = (watched.iter())
            .map(|(engine, figures)| figures.markdown(engine))
            .collect();
        sections.push(section(Only::Watcher, markdown, engines));
    }
    if let Some(markdown) = fleet::markdown(&records, FLEET_SIZE) {
        sections.push(section(Only::Fleet, markdown, fleet_hosts));
    }
    for section in &sections {
        print!("{}", section.markdown);
    }
    eprintln!(
        "bench: wrote {}/results.json and cleanup.svg",
        out.display()
    );
    if options.write_docs {
        let doc = root.join("docs/benchmarks.md");
        docs::write(&doc, &sections, &options.command)?;
    }
    Ok(())
}

/// "docker (bookworm) 20.10.24 (API 1.41, refuses below 1.12)".
fn described(engine: &Engine) -> String {
    format!("{} {}", engine.label(), engine.version())
}
