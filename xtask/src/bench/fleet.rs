//! The fleet case: three private engines (two Docker, one Podman) as hosts
//! of one installation, N agents' leftovers on each. A fleet cleanup runs
//! the hosts concurrently, so it should take about as long as its slowest
//! host alone: the figure is fleet time ÷ slowest single-host time
//! (`agent cleanup --host H`), each from an identical population.

use std::path::Path;
use std::process::Command;

use anvyl_core::{BackendKind, DynBackend, StateStore};
use anyhow::{bail, Result};

use super::measure::{measure, stats};
use super::populate;
use super::{connect, Record};
use crate::engines::{Engine, BASE_IMAGE};
use crate::suite::Suite;

/// The hosts, as registered: the configured engine is `local`.
const HOSTS: [(&str, BackendKind); 3] = [
    ("local", BackendKind::Docker),
    ("far", BackendKind::Docker),
    ("pod", BackendKind::Podman),
];

struct Fleet {
    engines: Vec<(&'static str, Engine, DynBackend)>,
    state: StateStore,
    state_dir: std::path::PathBuf,
    agents_dir: std::path::PathBuf,
    anvyl: std::path::PathBuf,
}

impl Fleet {
    fn anvyl(&self, args: &[&str]) -> Command {
        let local = &self.engines[0].1;
        let mut cmd = Command::new(&self.anvyl);
        cmd.args(args)
            .env("ANVYL_BACKEND", "docker")
            .env("DOCKER_HOST", local.endpoint())
            .env("ANVYL_STATE_DIR", &self.state_dir)
            .env("ANVYL_NETWORK", "none")
            .env("XDG_CONFIG_HOME", self.state_dir.join("no-config"));
        cmd
    }

    /// N leftovers on each host in `hosts`, all at once.
    async fn populate(&self, hosts: &[&str], n: usize) -> Result<()> {
        let jobs = self
            .engines
            .iter()
            .filter(|(host, ..)| hosts.contains(host))
            .map(|(host, _, client)| {
                let dir = self.agents_dir.join(host);
                async move { populate::leftovers(client, &self.state, BASE_IMAGE, &dir, n).await }
            });
        futures::future::try_join_all(jobs).await?;
        Ok(())
    }

    async fn check_clean(&self) -> Result<()> {
        for (host, _, client) in &self.engines {
            let (c, i, ..) = populate::census(client).await?;
            if c + i > 0 {
                bail!("host {host}: {c} containers and {i} images of anvyl's remain");
            }
        }
        Ok(())
    }
}

/// Runs the fleet case and returns its records, `fleet` (all hosts) and
/// `single-<host>` (one host) wall times per run, and its hosts' engines.
pub async fn bench(
    anvyl: &Path,
    suite: Suite,
    n: usize,
    runs: usize,
) -> Result<(Vec<Record>, Vec<String>)> {
    let work = tempfile::tempdir()?;
    let mut engines = Vec::new();
    for (host, kind) in HOSTS {
        let dir = crate::engines::engines_dir().join(format!("bench-fleet-{host}"));
        let engine = Engine::start(kind, suite, dir, false)?;
        engine.build_base_image()?;
        let client = connect(&engine).await?;
        engines.push((host, engine, client));
    }
    let state_dir = work.path().join("state");
    let fleet = Fleet {
        state: StateStore::open(&state_dir)?,
        state_dir,
        agents_dir: work.path().join("agents"),
        anvyl: anvyl.to_path_buf(),
        engines,
    };
    for (host, engine, _) in &fleet.engines[1..] {
        let backend = engine.kind.as_str();
        let endpoint = engine.endpoint();
        let add = [
            "host",
            "add",
            host,
            "--backend",
            backend,
            "--endpoint",
            &endpoint,
        ];
        crate::process::run(&mut fleet.anvyl(&add))?;
    }
    let mut records = Vec::new();
    let mut record = |case: &'static str, method: String, sample: super::Sample| {
        eprintln!(
            "bench: fleet {method} N={n} per host: {:.3}s wall",
            sample.wall
        );
        records.push(Record {
            engine: "fleet".into(),
            case,
            method,
            n,
            unrelated: false,
            sample,
        });
    };
    let all: Vec<&str> = HOSTS.iter().map(|(h, _)| *h).collect();
    for _ in 0..runs {
        fleet.populate(&all, n).await?;
        let sample = measure(&mut fleet.anvyl(&["-q", "agent", "cleanup", "--yes"]))?;
        fleet.check_clean().await?;
        record("fleet", "fleet".into(), sample);
        for host in &all {
            fleet.populate(&[host], n).await?;
            let args = ["-q", "agent", "cleanup", "--yes", "--host", host];
            let sample = measure(&mut fleet.anvyl(&args))?;
            fleet.check_clean().await?;
            record("fleet", format!("single-{host}"), sample);
        }
    }
    let hosts = (fleet.engines.iter())
        .map(|(host, engine, _)| format!("{host}: {}", super::described(engine)))
        .collect();
    Ok((records, hosts))
}

/// The fleet's section of the report, if the case ran.
pub fn markdown(records: &[Record], n: usize) -> Option<String> {
    let (all, single, slowest, ratio) = ratio(records)?;
    Some(format!(
        "\n### Fleet cleanup: 3 hosts (Docker, Docker, Podman) × {n} agents' leftovers\n\n\
         fleet {all:.2} s, slowest single host ({slowest}) {single:.2} s: ratio {ratio:.2} \
         by medians (target ≤ 1.2: {})\n",
        if ratio <= 1.2 { "met" } else { "missed" }
    ))
}

/// fleet ÷ slowest single host, by medians.
fn ratio(records: &[Record]) -> Option<(f64, f64, String, f64)> {
    let median = |method: &str| {
        let walls: Vec<f64> = (records.iter())
            .filter(|r| r.engine == "fleet" && r.method == method)
            .map(|r| r.sample.wall)
            .collect();
        (!walls.is_empty()).then(|| stats(&walls).median)
    };
    let fleet = median("fleet")?;
    let (slowest, single) = HOSTS
        .iter()
        .filter_map(|(h, _)| Some((h.to_string(), median(&format!("single-{h}"))?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some((fleet, single, slowest, fleet / single))
}
