//! The watcher's case: N running agents (100 by default) and one `anvyl
//! agent cleanup --watch --grace 0` beside them. First its CPU time and
//! peak RSS over 60 idle seconds (read from /proc: it is a long-running
//! process, not one to `wait4`), then each agent's container killed in
//! turn through the engine's API and the time from the kill request to the
//! watcher's `failed` line for it, and to its `cleaned` line (its leftovers
//! removed, the agent `stopped`). Targets (issue 19): p95 ≤ 2 s to
//! `failed`, idle CPU ≤ 1 %, peak RSS ≤ 30 MiB.

use std::fmt::Write as _;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anvyl_core::{AgentName, StateStore};
use anyhow::{bail, Context, Result};

use super::measure::Sample;
use super::Bench;

/// How long the watcher is watched doing nothing.
const IDLE: Duration = Duration::from_secs(60);

/// The longest a kill may take to be seen and cleaned before the case fails.
const WITHIN: Duration = Duration::from_secs(60);

/// What the case measured on one engine.
pub struct Figures {
    pub agents: usize,
    /// Seconds from each kill request to `failed`, and to `cleaned`.
    pub to_failed: Vec<f64>,
    pub to_cleaned: Vec<f64>,
    /// CPU seconds (user + system) over [`IDLE`].
    pub idle_cpu: f64,
    /// Peak RSS (VmHWM) after the idle minute, and after all the kills.
    pub idle_rss_mib: f64,
    pub final_rss_mib: f64,
}

/// The watcher as a child, and its JSON lines as they came, timestamped.
struct Watcher {
    child: Child,
    lines: Receiver<(Instant, serde_json::Value)>,
}

impl Watcher {
    /// Waits for `action` of `agent` (any agent when `None`); when it came.
    fn wait_for(&self, action: &str, agent: Option<&str>) -> Result<Instant> {
        let deadline = Instant::now() + WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let of_agent = agent.is_none_or(|a| line["agent"] == a);
                    if line["action"] == action && of_agent {
                        return Ok(at);
                    }
                    if line["action"] == "not_cleaned" {
                        bail!("the watcher could not clean up: {line}");
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("no {action} of {agent:?} within {WITHIN:?}")
                }
                Err(RecvTimeoutError::Disconnected) => bail!("the watcher ended"),
            }
        }
    }

    /// CPU seconds so far (user + system), from /proc/PID/stat.
    #[allow(
        unsafe_code,
        reason = "sysconf(_SC_CLK_TCK): the unit of /proc's CPU times"
    )]
    fn cpu(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // The fields after the command name, which may hold spaces.
        let after = stat.rsplit_once(')').context("a /proc stat line")?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15, counted from 1 with the
        // pid and the name as 1 and 2.
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / per_second)
    }

    /// Peak resident set size so far (VmHWM), MiB.
    fn peak_rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = (status.lines())
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .context("VmHWM in /proc status")?
            .parse()?;
        Ok(kib / 1024.0)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bench<'_> {
    /// The watcher's case with `n` running agents.
    pub(super) async fn watcher(&mut self, n: usize) -> Result<Figures> {
        let names: Vec<String> = (0..n).map(|i| format!("watched-{i}")).collect();
        let began = Instant::now();
        for name in &names {
            crate::process::output(&mut self.anvyl(&[
                "-q",
                "agent",
                "create",
                name,
                "--image",
                crate::engines::BASE_IMAGE,
                "--command",
                "sleep 3600",
            ]))?;
            crate::process::output(
                self.anvyl(&["-q", "agent", "start", name])
                    .env("ANVYL_SETTLE_MS", "0"),
            )?;
        }
        eprintln!(
            "bench: {}: {n} agents started in {:.0}s",
            self.engine.label(),
            began.elapsed().as_secs_f64()
        );
        let watcher = self.spawn_watcher()?;
        watcher.wait_for("cleanup", None)?;
        // The first pass (100 inspections) is not idling.
        std::thread::sleep(Duration::from_secs(2));
        let cpu_before = watcher.cpu()?;
        std::thread::sleep(IDLE);
        let idle_cpu = watcher.cpu()? - cpu_before;
        let idle_rss_mib = watcher.peak_rss_mib()?;

        let state = StateStore::open(&self.state_dir)?;
        let mut to_failed = Vec::with_capacity(n);
        let mut to_cleaned = Vec::with_capacity(n);
        for name in &names {
            let agent = AgentName::new(name)?;
            let container = (state.agent(&agent)?.container_id)
                .with_context(|| format!("{name} has no container"))?;
            let killed = Instant::now();
            self.client
                .stop_container(&container, Duration::ZERO)
                .await?;
            let failed = watcher.wait_for("failed", Some(name))?;
            let cleaned = watcher.wait_for("cleaned", Some(name))?;
            to_failed.push((failed - killed).as_secs_f64());
            to_cleaned.push((cleaned - killed).as_secs_f64());
        }
        let final_rss_mib = watcher.peak_rss_mib()?;
        drop(watcher);
        for name in &names {
            crate::process::output(&mut self.anvyl(&["-q", "agent", "remove", name, "--yes"]))?;
        }
        let figures = Figures {
            agents: n,
            to_failed,
            to_cleaned,
            idle_cpu,
            idle_rss_mib,
            final_rss_mib,
        };
        for (case, series) in [
            ("watch-failed", &figures.to_failed),
            ("watch-cleaned", &figures.to_cleaned),
        ] {
            for &wall in series {
                let sample = Sample {
                    wall,
                    cpu: 0.0,
                    rss_mib: 0.0,
                };
                self.push(case, "anvyl", n, true, sample);
            }
        }
        let idle = Sample {
            wall: IDLE.as_secs_f64(),
            cpu: figures.idle_cpu,
            rss_mib: figures.idle_rss_mib,
        };
        self.push("watch-idle", "anvyl", n, true, idle);
        eprintln!("{}", figures.markdown(&self.engine.label()));
        Ok(figures)
    }

    fn spawn_watcher(&self) -> Result<Watcher> {
        let mut child = self
            .anvyl(&[
                "--output", "json", "agent", "cleanup", "--watch", "--grace", "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn the watcher")?;
        let stdout = child.stdout.take().context("the watcher's stdout")?;
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(value) = serde_json::from_str(&line) else {
                    continue;
                };
                if send.send((Instant::now(), value)).is_err() {
                    break;
                }
            }
        });
        Ok(Watcher { child, lines })
    }
}

/// The nearest-rank percentile `p` (0–100) of a series.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Figures {
    /// The engine's section of the report.
    pub fn markdown(&self, engine: &str) -> String {
        let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
        let row = |series: &[f64]| {
            format!(
                "{:.2} | {:.2} | {:.2}",
                percentile(series, 50.0),
                percentile(series, 95.0),
                percentile(series, 100.0)
            )
        };
        let cpu_share = self.idle_cpu / IDLE.as_secs_f64() * 100.0;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n### Watcher on {engine}: {} running agents, {} kills\n",
            self.agents,
            self.to_failed.len()
        );
        let _ = writeln!(out, "| from a kill to | p50 s | p95 s | max s |");
        let _ = writeln!(out, "|---|---|---|---|");
        let _ = writeln!(out, "| `failed` | {} |", row(&self.to_failed));
        let _ = writeln!(
            out,
            "| `cleaned` (`--grace 0`) | {} |",
            row(&self.to_cleaned)
        );
        let _ = writeln!(
            out,
            "\np95 to `failed` {:.2} s (target ≤ 2 s: {}); idle {} s: {:.3} CPU s = {:.2} % (target ≤ 1 %: {}); \
             peak RSS {:.1} MiB idle, {:.1} MiB after the kills (target ≤ 30 MiB: {})",
            percentile(&self.to_failed, 95.0),
            verdict(percentile(&self.to_failed, 95.0) <= 2.0),
            IDLE.as_secs(),
            self.idle_cpu,
            cpu_share,
            verdict(cpu_share <= 1.0),
            self.idle_rss_mib,
            self.final_rss_mib,
            verdict(self.final_rss_mib <= 30.0),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 95.0), 95.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 95.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
