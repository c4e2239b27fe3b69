//! What the reliability suite shares: running `anvyl` through the fault
//! proxy, converging after a fault or a crash, counting what an
//! installation still owns, and the tallies `cargo xtask itest` sums into
//! one summary line per engine.

use std::io::Write;
use std::process::{Child, Stdio};

use anvyl_core::{AgentName, AgentStatus, Query};

use crate::proxy::FaultProxy;
use crate::{Run, Sandbox};

/// The request timeout given to `anvyl` runs through the proxy, so that a
/// stalled call fails in seconds (a stall lasts longer than this).
pub const REQUEST_TIMEOUT_S: u64 = 2;

/// Adds `n` to the summary figure `key` (`faults_injected`,
/// `live_removed`, …) for the engine under test. Without `cargo xtask
/// itest`'s summary file nothing is written.
pub fn tally(key: &str, n: usize) {
    let Ok(path) = std::env::var("ANVYL_ITEST_SUMMARY") else {
        return;
    };
    // One short line per write with O_APPEND: concurrent tests never
    // interleave within a line.
    let line = format!("{key} {n}\n");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open the summary {path}: {e}"));
    file.write_all(line.as_bytes())
        .unwrap_or_else(|e| panic!("write the summary {path}: {e}"));
}

impl Sandbox {
    /// Runs `anvyl ARGS` against the engine through `proxy`, with a short
    /// request timeout so that a stalled call fails in seconds.
    pub fn anvyl_via(&self, proxy: &FaultProxy, args: &[&str]) -> Run {
        let endpoint = proxy.endpoint();
        let timeout = REQUEST_TIMEOUT_S.to_string();
        self.anvyl_with(
            args,
            &[
                ("DOCKER_HOST", &endpoint),
                ("CONTAINER_HOST", &endpoint),
                ("ANVYL_REQUEST_TIMEOUT", &timeout),
            ],
        )
    }

    /// Starts `anvyl ARGS` through `proxy` in the background, to pause or
    /// kill it at a call; the usual request timeout, so that a pause is
    /// never mistaken for a stalled engine.
    pub fn spawn_anvyl_via(&self, proxy: &FaultProxy, args: &[&str]) -> Child {
        self.spawn_anvyl_via_with(proxy, args, &[])
    }

    /// [`Sandbox::spawn_anvyl_via`] with extra environment.
    pub fn spawn_anvyl_via_with(
        &self,
        proxy: &FaultProxy,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Child {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("DOCKER_HOST", proxy.endpoint())
            .env("CONTAINER_HOST", proxy.endpoint())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn anvyl")
    }

    /// Starts `anvyl ARGS` in a PID namespace of its own (`unshare -pf`), as
    /// from a sandboxed terminal sharing the state directory: its pid there
    /// means another process out here.
    pub fn spawn_anvyl_in_pid_namespace(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc"])
            .arg(&self.itest.anvyl)
            .args(args);
        self.environment(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unshare")
    }

    /// `anvyl agent create NAME` with a command that keeps running.
    pub fn create(&self, name: &str) -> AgentName {
        let base = self.itest.base_image.clone();
        let run = self.anvyl(&[
            "agent",
            "create",
            name,
            "--image",
            &base,
            "--setup",
            "echo ready > /ready",
            "--command",
            "sleep 600",
        ]);
        assert_eq!(run.code, Some(0), "create {name}: {run:?}");
        AgentName::new(name).expect("valid name")
    }

    /// What this installation owns on the engine, the live containers and
    /// images of running agents aside, described for an assertion.
    pub async fn owned_leftovers(&self) -> Vec<String> {
        let mut live_containers = Vec::new();
        let mut live_images = Vec::new();
        for agent in self.state().agents().expect("agents") {
            if agent.status != AgentStatus::Running {
                continue;
            }
            if let Some(id) = agent.container_id {
                if let Ok(c) = self.engine.inspect_container(&id).await {
                    live_images.push(c.image_id.clone());
                    live_containers.push(c.id);
                }
            }
        }
        let query = Query::labelled(self.ownership.selector(None, None));
        let mut left = Vec::new();
        for c in self.engine.list_containers(&query).await.expect("list") {
            if !live_containers.contains(&c.id) && c.name.starts_with("anvyl-agent-") {
                left.push(format!("container {}", c.name));
            }
        }
        // An image says which start made it and how the state says that
        // start ended: what decides whether a cleanup may take it.
        let starts = self.state().starts().expect("starts");
        for i in self.engine.list_images(&query).await.expect("list") {
            if !live_images.contains(&i.id) {
                let start = i.labels.get(anvyl_core::ownership::LABEL_START);
                let ended = start.map(|s| {
                    starts
                        .iter()
                        .find(|r| r.id.as_str() == s.as_str())
                        .map_or("no record".to_string(), |r| format!("{:?}", r.outcome))
                });
                left.push(format!(
                    "image {} {:?} start {start:?} outcome {ended:?}",
                    i.id, i.tags
                ));
            }
        }
        for entry in std::fs::read_dir(self.build_root()).into_iter().flatten() {
            left.push(format!("build dir {:?}", entry.expect("entry").file_name()));
        }
        left
    }

    /// Stops every running agent and cleans up, straight at the engine (no
    /// faults), as a user would after a failure; returns what remains.
    pub async fn converge(&self) -> Vec<String> {
        for agent in self.state().agents().expect("agents") {
            if agent.status == AgentStatus::Running {
                let run = self.anvyl(&["agent", "stop", agent.name.as_str()]);
                assert_eq!(run.code, Some(0), "stop {}: {run:?}", agent.name);
            }
        }
        let run = self.anvyl(&["agent", "cleanup", "--yes"]);
        assert_eq!(run.code, Some(0), "the converging cleanup: {run:?}");
        for agent in self.state().agents().expect("agents") {
            assert_eq!(
                agent.status,
                AgentStatus::Stopped,
                "{} after converging: {run:?}",
                agent.name
            );
        }
        self.owned_leftovers().await
    }
}

/// A run that failed did so as the CLI promises: no panic, no backtrace,
/// one `error:` line, an exit status from the documented set.
pub fn assert_clean_failure(run: &Run, allowed: &[i32]) {
    assert!(
        run.code.is_some_and(|c| allowed.contains(&c)),
        "exit status not in {allowed:?}: {run:?}"
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("stack backtrace"),
        "a panic reached the user: {run:?}"
    );
    let errors = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .count();
    assert!(errors <= 1, "more than one error line: {run:?}");
}
