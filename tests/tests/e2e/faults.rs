//! Faults on every engine call: for each command (start, cleanup, stop,
//! remove), one clean run through the proxy records the calls it makes;
//! then, for every one of those calls and every fault kind (500, 409, a
//! dropped connection, a stall past the request timeout, an answer lost
//! after the engine acted; on a later occurrence 500 and a lost answer
//! only), a fresh world
//! runs the command with that fault on the call's first, second and third
//! occurrence (as many as the clean run made), two worlds at a time. The
//! command must report it as the CLI promises (no panic, one error line,
//! a documented exit status), lose no state, and one ordinary cleanup
//! afterwards must converge to nothing owned left.

use std::time::Duration;

use anvyl_core::{AgentName, AgentStatus, StateError};
use anvyl_tests::proxy::{Fault, FaultProxy};
use anvyl_tests::reliability::{assert_clean_failure, tally, REQUEST_TIMEOUT_S};
use anvyl_tests::{Run, Sandbox};

use crate::unique;

#[derive(Debug, Clone, Copy)]
enum Command {
    Start,
    Cleanup,
    Stop,
    Remove,
}

impl Command {
    /// A fresh world ready for the command, and its arguments.
    async fn prepare(self) -> (Sandbox, Vec<String>) {
        let s = Sandbox::new().await;
        let name = unique("fault");
        let agent = s.create(&name);
        let args = match self {
            Self::Start => vec!["agent", "start", &name],
            Self::Cleanup => {
                // What a crashed start leaves: a container, an image, a
                // build directory, a failed status.
                s.leftovers(&agent).await;
                s.build_dir(&agent, "c0ffee");
                s.set_status(&agent, AgentStatus::Failed, None);
                vec!["agent", "cleanup", "--yes"]
            }
            Self::Stop | Self::Remove => {
                let run = s.anvyl(&["agent", "start", &name]);
                assert_eq!(run.code, Some(0), "{run:?}");
                match self {
                    Self::Stop => vec!["agent", "stop", &name],
                    _ => vec!["agent", "remove", &name, "--yes", "--force"],
                }
            }
        };
        let args = args.into_iter().map(String::from).collect();
        (s, args)
    }
}

impl Command {
    /// What an exit status 0 promises.
    async fn assert_done(self, s: &Sandbox, agent: &AgentName, what: &str, run: &Run) {
        let record = s.state().agent(agent);
        match self {
            Self::Start => {
                let record = record.expect("agent");
                assert_eq!(record.status, AgentStatus::Running, "{what}: {run:?}");
                let id = record.container_id.expect("container id");
                assert!(s.has_container(&id).await, "{what}: no container: {run:?}");
            }
            Self::Stop => {
                let record = record.expect("agent");
                assert_eq!(record.status, AgentStatus::Stopped, "{what}: {run:?}");
                assert!(
                    !s.has_container(&agent.resource_name()).await,
                    "{what}: the container remains: {run:?}"
                );
            }
            Self::Cleanup | Self::Remove => {
                if matches!(self, Self::Remove) {
                    assert!(record.is_err(), "{what}: still recorded: {run:?}");
                }
                let left = s.owned_leftovers().await;
                assert_eq!(
                    left,
                    Vec::<String>::new(),
                    "{what}: exit 0 with leftovers: {run:?}"
                );
            }
        }
    }
}

/// The faults for the `nth` occurrence of a call: every kind on the first;
/// on a later one (the second image, the next settle poll) the two that
/// differ in what the engine did — it refused, or it acted and the answer
/// was lost. A dropped connection, a stall and a 409 behave there as on
/// the first occurrence, and each case costs a world and an engine build
/// (the matrix was the largest part of a 54-minute CI run).
fn faults(nth: usize) -> Vec<Fault> {
    let every = [
        Fault::Status(500),
        Fault::Status(409),
        Fault::Drop,
        Fault::Stall(Duration::from_secs(REQUEST_TIMEOUT_S + 1)),
        Fault::LoseAnswer,
    ];
    match nth {
        1 => every.to_vec(),
        _ => vec![Fault::Status(500), Fault::LoseAnswer],
    }
}

async fn every_fault_on_every_call_of(command: Command) {
    // The calls the command makes when nothing goes wrong.
    let (s, args) = command.prepare().await;
    let proxy = FaultProxy::start(&s.itest.endpoint);
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let clean = s.anvyl_via(&proxy, &args_ref);
    assert_eq!(clean.code, Some(0), "{command:?} without faults: {clean:?}");
    // Each call with how often it came, in order of first appearance.
    let mut calls: Vec<(String, usize)> = Vec::new();
    for call in proxy.calls() {
        match calls.iter_mut().find(|(c, _)| *c == call) {
            Some((_, n)) => *n += 1,
            None => calls.push((call, 1)),
        }
    }
    assert_eq!(s.converge().await, Vec::<String>::new());
    eprintln!(
        "faults: {command:?} makes {} distinct calls: {calls:?}",
        calls.len()
    );

    // Each case is a world of its own: two run at a time, so one's waits
    // (a stall past the timeout, a start's settle) overlap the other's work.
    let cases: Vec<(String, usize, Fault)> = calls
        .iter()
        .flat_map(|(call, n)| (1..=(*n).min(3)).map(move |nth| (call.clone(), nth)))
        .flat_map(|(call, nth)| {
            faults(nth)
                .into_iter()
                .map(move |fault| (call.clone(), nth, fault))
        })
        .collect();
    let mut running = tokio::task::JoinSet::new();
    let mut injected = 0;
    for (call, nth, fault) in cases {
        if running.len() == CASES_AT_ONCE {
            injected += joined(running.join_next().await);
        }
        running.spawn(one_case(command, call, nth, fault));
    }
    while let Some(case) = running.join_next().await {
        injected += joined(Some(case));
    }
    eprintln!("faults: {command:?}: {injected} injected, {injected} survived");
    tally("faults_injected", injected);
    tally("faults_survived", injected);
    tally("owned_leftovers", 0);
}

/// How many fault cases run side by side.
const CASES_AT_ONCE: usize = 2;

/// Whether a finished case injected its fault; a case that broke a promise
/// fails the test with its own message.
fn joined(case: Option<Result<bool, tokio::task::JoinError>>) -> usize {
    match case.expect("a case was running") {
        Ok(injected) => usize::from(injected),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a fault case was cancelled: {e}"),
    }
}

/// Runs `command` in a fresh world with `fault` on the `nth` `call`, and
/// judges it (see the module's words). Whether the fault was injected: the
/// call happens only on some paths (a retry, a second settle poll).
async fn one_case(command: Command, call: String, nth: usize, fault: Fault) -> bool {
    let (s, args) = command.prepare().await;
    let agent = s.state().agents().expect("agents")[0].name.clone();
    let proxy = FaultProxy::start(&s.itest.endpoint);
    proxy.inject(&call, nth, fault.clone());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = s.anvyl_via(&proxy, &args);
    if proxy.injected() == 0 {
        return false;
    }
    let what = format!("{command:?} with {} on {call} #{nth}", fault.name());
    assert_clean_failure(&run, &[0, 1, 3]);
    // No state lost: the agent is still known unless a removal really
    // completed, and never left `starting` by a process that has exited.
    match s.state().agent(&agent) {
        Ok(record) => assert_ne!(
            record.status,
            AgentStatus::Starting,
            "{what}: left starting: {run:?}"
        ),
        Err(StateError::UnknownAgent(_)) => assert!(
            matches!(command, Command::Remove) && run.code == Some(0),
            "{what}: the agent was forgotten: {run:?}"
        ),
        Err(e) => panic!("{what}: {e}"),
    }
    if run.code == Some(0) {
        // A fault the command absorbed (a retried 409, a removal that
        // happened after all) must not hide a failure: exit 0 means the
        // command's goal holds.
        command.assert_done(&s, &agent, &what, &run).await;
    } else {
        assert!(
            run.stderr.lines().any(|l| l.starts_with("error:")),
            "{what}: failed without saying why: {run:?}"
        );
    }
    let left = s.converge().await;
    assert_eq!(left, Vec::<String>::new(), "{what}: {run:?}");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_on_every_call_of_start() {
    every_fault_on_every_call_of(Command::Start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_on_every_call_of_cleanup() {
    every_fault_on_every_call_of(Command::Cleanup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_on_every_call_of_stop() {
    every_fault_on_every_call_of(Command::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_on_every_call_of_remove() {
    every_fault_on_every_call_of(Command::Remove).await;
}

/// An engine that refuses anvyl's preferred API version (Docker 29 below
/// 1.44, or one older than 20.10) answers the versioned ping with 400:
/// anvyl then asks `/version` for the engine's range and speaks a version
/// inside it — here the engine's own answer says 1.41 is fine again.
#[tokio::test]
async fn a_refused_api_version_is_negotiated_from_the_engines_range() {
    let s = Sandbox::new().await;
    if s.itest.backend != "docker" {
        return;
    }
    let proxy = FaultProxy::start(&s.itest.endpoint);
    proxy.inject_matching("GET", "/_ping", 1, Fault::Status(400));
    let run = s.anvyl_via(&proxy, &["agent", "cleanup", "--dry-run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let calls = proxy.calls();
    let version = calls.iter().position(|c| c == "GET /version");
    assert!(
        version.is_some_and(|v| calls[..v].iter().any(|c| c == "GET /_ping")),
        "a refused ping, then /version: {calls:?}"
    );
}
