//! `agent cleanup --watch` on a real engine: a container killed under a
//! running agent makes it `failed` on the engine's event (long before the
//! resync), and with `--grace 0` its leftovers go at once; a start killed
//! with -9 while the watcher runs is left alone while it builds and reaped
//! once it is dead; a running agent is never touched; SIGTERM ends the
//! watcher with exit 0. Each action is one JSON line.

use std::io::BufRead;
use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anvyl_core::{AgentName, AgentStatus};
use anvyl_tests::reliability::tally;
use anvyl_tests::Sandbox;

use crate::crashes::kill_at;
use crate::unique;

/// A watcher in the background and the JSON lines it said.
pub(crate) struct Watcher {
    child: Child,
    lines: Receiver<serde_json::Value>,
    said: Vec<serde_json::Value>,
    /// Said, and not yet awaited by [`Watcher::expect`].
    unclaimed: Vec<serde_json::Value>,
}

impl Watcher {
    /// A watcher with `--grace 0`: what fails is removed at once.
    pub(crate) fn spawn(s: &Sandbox, resync: &str) -> Self {
        Self::spawn_with_grace(s, resync, "0")
    }

    pub(crate) fn spawn_with_grace(s: &Sandbox, resync: &str, grace: &str) -> Self {
        let args = ["--output", "json", "agent", "cleanup", "--watch"];
        let mut child =
            s.spawn_anvyl(&[&args[..], &["--grace", grace, "--resync", resync]].concat());
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
                if send.send(value).is_err() {
                    break;
                }
            }
        });
        let mut watcher = Self {
            child,
            lines,
            said: Vec::new(),
            unclaimed: Vec::new(),
        };
        watcher.expect("cleanup", None, Duration::from_secs(60));
        watcher
    }

    /// The first action `action` (of `agent`, when given) not awaited yet:
    /// one said already, or the next within `within`.
    pub(crate) fn expect(
        &mut self,
        action: &str,
        agent: Option<&AgentName>,
        within: Duration,
    ) -> serde_json::Value {
        let wanted = |line: &serde_json::Value| {
            line["action"] == action && agent.is_none_or(|a| line["agent"] == a.as_str())
        };
        // Said earlier, while another action was awaited.
        if let Some(at) = self.unclaimed.iter().position(wanted) {
            return self.unclaimed.remove(at);
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    assert!(line["time"].is_string(), "{line}");
                    self.said.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                    self.unclaimed.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {action} of {agent:?} within {within:?}; said {:?}",
                        self.said
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let out = self.child.wait_with_output_now();
                    panic!("the watcher ended: {out}; said {:?}", self.said)
                }
            }
        }
    }

    /// What it said of `agent` so far (taking what came meanwhile), and
    /// leaves it to [`Watcher::expect`].
    pub(crate) fn said_of(&mut self, agent: &AgentName) -> Vec<serde_json::Value> {
        for line in self.lines.try_iter() {
            self.said.push(line.clone());
            self.unclaimed.push(line);
        }
        (self.said.iter())
            .filter(|l| l["agent"] == agent.as_str())
            .cloned()
            .collect()
    }

    /// SIGTERM, then the exit status and how long it took; what it did
    /// counts in the reliability summary.
    pub(crate) fn terminate(mut self) -> (Option<i32>, Duration, Vec<serde_json::Value>) {
        let began = Instant::now();
        Sandbox::signal(&self.child, "-TERM");
        let status = self.child.wait().expect("reap the watcher");
        let took = began.elapsed();
        self.said.extend(self.lines.try_iter());
        let acted = self
            .said
            .iter()
            .filter(|l| l["action"] != "cleanup")
            .count();
        tally("watcher_actions", acted);
        (status.code(), took, self.said)
    }
}

trait WaitNow {
    fn wait_with_output_now(&mut self) -> String;
}

impl WaitNow for Child {
    /// The exit status and stderr of a child that ended.
    fn wait_with_output_now(&mut self) -> String {
        let status = self.wait().map(|s| s.to_string()).unwrap_or_default();
        let mut stderr = String::new();
        if let Some(mut err) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        format!("{status}: {stderr}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_fails_a_dead_agent_on_its_event_and_ends_on_sigterm() {
    let s = Sandbox::new().await;
    let live = s.create(&unique("live"));
    let live_container = s.started(&live);
    let dies = s.create(&unique("dies"));
    let dying = s.started(&dies);

    // A resync of a minute: what happens sooner came from an event.
    let mut watcher = Watcher::spawn(&s, "60s");
    let killed = Instant::now();
    s.engine
        .stop_container(&dying, Duration::ZERO)
        .await
        .expect("kill the container");
    let failed = watcher.expect("failed", Some(&dies), Duration::from_secs(30));
    let to_failed = killed.elapsed();
    assert!(
        failed["finding"]
            .as_str()
            .is_some_and(|f| f.contains("exited")),
        "{failed}"
    );
    watcher.expect("cleaned", Some(&dies), Duration::from_secs(30));
    let to_cleaned = killed.elapsed();
    eprintln!(
        "watch: {} kill to failed {:.2}s, to cleaned {:.2}s",
        s.itest.backend,
        to_failed.as_secs_f64(),
        to_cleaned.as_secs_f64()
    );
    assert!(
        to_failed < Duration::from_secs(30),
        "failed only with the resync"
    );
    assert_eq!(
        s.state().agent(&dies).expect("agent").status,
        AgentStatus::Stopped
    );
    assert_eq!(s.traces_of(&dies).await, Vec::<String>::new());

    let (code, took, said) = watcher.terminate();
    eprintln!("watch: SIGTERM to exit {:.2}s", took.as_secs_f64());
    assert_eq!(code, Some(0), "said {said:?}");
    assert!(
        !said.iter().any(|l| l["agent"] == live.as_str()),
        "the live agent was acted on: {said:?}"
    );
    assert_eq!(
        s.state().agent(&live).expect("agent").status,
        AgentStatus::Running
    );
    assert!(s.has_container(&live_container).await, "the live container");
    assert_eq!(s.converge().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_killed_under_the_watcher_is_reaped_and_never_touched_while_it_runs() {
    let s = Sandbox::new().await;
    let mut watcher = Watcher::spawn(&s, "1s");
    let crashed = s.create(&unique("crashed"));
    // The start holds its lock while it builds: passes every second meet it
    // as `starting` until it is killed, right at its build request.
    kill_at(
        &s,
        &["agent", "start", crashed.as_str()],
        "POST",
        "/build",
        1,
    )
    .await;
    let cleaned = watcher.expect("cleaned", Some(&crashed), Duration::from_secs(30));
    assert!(
        cleaned["finding"]
            .as_str()
            .is_some_and(|f| f.contains("crashed")),
        "{cleaned}"
    );
    assert_eq!(
        s.state().agent(&crashed).expect("agent").status,
        AgentStatus::Stopped
    );
    // A start while the watcher runs is not the watcher's.
    let again = s.started(&crashed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, _, said) = watcher.terminate();
    assert_eq!(code, Some(0), "said {said:?}");
    assert_eq!(
        said.iter()
            .filter(|l| l["agent"] == crashed.as_str() && l["action"] != "cleanup")
            .count(),
        1,
        "one action, the reaping: {said:?}"
    );
    assert!(s.has_container(&again).await, "the new start's container");
    assert_eq!(s.converge().await, Vec::<String>::new());
}
