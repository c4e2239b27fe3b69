//! `anvyl agent logs -f` prints until the agent stops or the user stops it;
//! stopped by Ctrl-C or SIGTERM it exits 130, as every interrupted command
//! does, so a script can tell logs cut short from logs that ended.

use std::io::{BufRead, BufReader, Read};

use anvyl_tests::{Run, Sandbox};

use crate::unique;

/// Follows `name`'s logs until its first line arrived — so anvyl listens
/// for signals — then sends `signal` and returns how anvyl ended.
async fn follow_then_signal(s: &Sandbox, name: &str, signal: &str) -> Run {
    let mut child = s.spawn_anvyl(&["agent", "logs", name, "-f"]);
    let stdout = child.stdout.take().expect("piped stdout");
    let (mut stdout, first) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).map(|_| (reader, line))
    })
    .await
    .unwrap()
    .expect("read the first line");
    assert_eq!(first, "ready\n", "{signal}: anvyl did not follow the logs");
    Sandbox::signal(&child, signal);
    let output = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        stdout.read_to_string(&mut rest)?;
        child.wait_with_output().map(|o| (o, rest))
    })
    .await
    .unwrap()
    .expect("wait for anvyl");
    let (output, rest) = output;
    let mut run = Run::from(output);
    run.stdout = first + &rest;
    run
}

#[tokio::test]
async fn following_logs_stopped_by_sigint_or_sigterm_exits_130() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let name = unique("follow");
    let start = s.anvyl(&[
        "agent",
        "create",
        &name,
        "--image",
        &base,
        "--command",
        "echo ready; sleep 600",
        "--start",
    ]);
    assert_eq!(start.code, Some(0), "{start:?}");

    for signal in ["-INT", "-TERM"] {
        let run = follow_then_signal(&s, &name, signal).await;
        assert_eq!(run.code, Some(130), "{signal}: {run:?}");
        assert!(
            run.stderr.contains(&format!(
                "interrupted: stopped printing the logs of agent '{name}'"
            )),
            "{signal}: {run:?}"
        );
    }

    let remove = s.anvyl(&["agent", "remove", &name, "--force", "--yes"]);
    assert_eq!(remove.code, Some(0), "{remove:?}");
}
