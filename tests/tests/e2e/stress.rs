//! Concurrency stress: eight `anvyl` processes at a time mixing create,
//! start, stop, remove, cleanup and list over shared and private agents of
//! one installation, for several rounds. No command may see "database is
//! locked" or panic; at each round's end, with everything quiet, the state
//! must agree with the engine (a running agent has its container and
//! image), one cleanup must leave nothing owned but the live, and the
//! look-alikes that are not anvyl's must all still be there — all with an
//! `agent cleanup --watch --grace 0` alive throughout.

use std::sync::Arc;

use anvyl_core::backend::Labels;
use anvyl_core::{AgentStatus, InstanceId, Ownership, StartId};
use anvyl_tests::reliability::tally;
use anvyl_tests::{Run, Sandbox};

use crate::unique;

const WORKERS: usize = 8;
const ROUNDS: usize = 3;
const OPS_PER_ROUND: usize = 5;

/// A small deterministic generator: the same interleaving of intents on
/// every run (the timing still varies; the invariants must hold anyway).
fn pick(seed: &mut u64, n: usize) -> usize {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % n as u64) as usize
}

/// The outcome of one operation is judged on its own: never a locked
/// database, never a panic, and only the exit statuses that operation may
/// give under contention (2: refused — already running, starting, exists).
fn judge(op: &str, run: &Run) {
    // What went wrong in passing (a build race retried, an image kept in
    // use) is what explains a leftover when a round's check fails.
    for line in run.stderr.lines().filter(|l| l.starts_with("warning:")) {
        eprintln!("stress: {op}: {line}");
    }
    assert!(
        !run.stderr.contains("database is locked") && !run.stderr.contains("panicked"),
        "{op}: {run:?}"
    );
    let allowed: &[i32] = match op {
        "list" | "cleanup" => &[0],
        _ => &[0, 2],
    };
    assert!(
        run.code.is_some_and(|c| allowed.contains(&c)),
        "{op} exited {:?}: {run:?}",
        run.code
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_mixing_commands_keep_state_and_engine_in_agreement() {
    let s = Arc::new(Sandbox::new().await);
    let shared: Vec<String> = (0..3).map(|i| unique(&format!("shared{i}"))).collect();
    for name in &shared {
        s.create(name);
    }
    // Not anvyl's: a user's container under a look-alike name, and another
    // installation's labelled container under a shared agent's name + x.
    let base = s.itest.base_image.clone();
    let theirs = Ownership::new(InstanceId::random()).stamp(
        &Labels::new(),
        &anvyl_core::AgentName::new(shared[0].as_str()).unwrap(),
        &StartId::random(),
    );
    let foreign = vec![
        s.container(&format!("anvyl-agent-{}2", shared[0]), &base, Labels::new())
            .await,
        s.container(&format!("anvyl-agent-{}x", shared[1]), &base, theirs)
            .await,
    ];

    // A watcher alive through every round, cleaning at once whatever dies
    // and passing every second: it may never touch a live agent or what is
    // not anvyl's either, nor make a command fail.
    let watcher = crate::watch::Watcher::spawn(&s, "1s");
    let mut operations = 0;
    for round in 0..ROUNDS {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let s = s.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let own = unique(&format!("own{w}"));
                    s.create(&own);
                    let mut seed = 0x9e37_79b9_7f4a_7c15 ^ ((round * WORKERS + w + 1) as u64);
                    let mut ops = 1;
                    for _ in 0..OPS_PER_ROUND {
                        let agent = if pick(&mut seed, 2) == 0 {
                            shared[pick(&mut seed, shared.len())].clone()
                        } else {
                            own.clone()
                        };
                        let (op, run) = match pick(&mut seed, 6) {
                            0 | 1 => ("start", s.anvyl(&["agent", "start", &agent])),
                            2 => ("stop", s.anvyl(&["agent", "stop", &agent])),
                            3 => ("cleanup", s.anvyl(&["agent", "cleanup", "--yes"])),
                            4 => ("list", s.anvyl(&["--output", "json", "agent", "list"])),
                            _ => {
                                let run = s.anvyl(&["agent", "remove", &agent, "--yes", "--force"]);
                                if run.code == Some(0) {
                                    judge("remove", &run);
                                    ops += 1;
                                    let base = s.itest.base_image.clone();
                                    // Re-create it, racing the others' starts of it.
                                    let again = s.anvyl(&[
                                        "agent",
                                        "create",
                                        &agent,
                                        "--image",
                                        &base,
                                        "--command",
                                        "sleep 600",
                                    ]);
                                    ("create", again)
                                } else {
                                    ("remove", run)
                                }
                            }
                        };
                        judge(op, &run);
                        ops += 1;
                    }
                    ops
                })
            })
            .collect();
        for worker in workers {
            operations += worker.join().expect("a worker's operation broke a promise");
        }

        // Quiet now: the state agrees with the engine.
        for agent in s.state().agents().expect("agents") {
            assert_ne!(
                agent.status,
                AgentStatus::Starting,
                "round {round}: {agent:?}"
            );
            if agent.status == AgentStatus::Running {
                let id = agent.container_id.clone().expect("container id");
                let container = s.engine.inspect_container(&id).await;
                let alive = container
                    .as_ref()
                    .is_ok_and(|c| c.state == anvyl_core::ContainerState::Running);
                tally("live_removed", usize::from(!alive));
                assert!(
                    alive,
                    "round {round}: {} runs without its container",
                    agent.name
                );
            }
        }
        let run = s.anvyl(&["agent", "cleanup", "--yes"]);
        assert_eq!(run.code, Some(0), "round {round}: {run:?}");
        let left = s.owned_leftovers().await;
        tally("owned_leftovers", left.len());
        assert_eq!(left, Vec::<String>::new(), "round {round}");
        let mut gone = 0;
        for id in &foreign {
            gone += usize::from(!s.has_container(id).await);
        }
        tally("foreign_removed", gone);
        assert_eq!(gone, 0, "round {round}: a resource not anvyl's was removed");
        eprintln!("stress: round {round} done, {operations} operations so far");
    }
    tally("concurrent_ops", operations);
    let (code, _, said) = watcher.terminate();
    assert_eq!(code, Some(0), "the watcher: {said:?}");
    assert_eq!(s.converge().await, Vec::<String>::new());
    let foreign: Vec<&str> = foreign.iter().map(String::as_str).collect();
    s.discard(&foreign, &[]).await;
}
