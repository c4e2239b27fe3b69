//! An agent's mounts, limits, restart policy, user and working directory:
//! what `agent create` takes is what the engine gives the container — the
//! command sees its workspace, runs as the user, in the directory — and
//! the engine's own `inspect` shows the limits. A bind source that does not
//! exist fails the start with the engine's reason and leaves nothing.

use anvyl_tests::Sandbox;

use crate::lifecycle::{assert_cleaned, create};
use crate::unique;

#[tokio::test]
async fn mounts_limits_user_and_workdir_reach_the_container() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let (input, output) = (s.shared_dir(), s.shared_dir());
    std::fs::write(input.path().join("hello"), "hello from the host\n").unwrap();
    // The user the command runs as must be able to write its output.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(output.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mount_in = format!(
        "type=bind,source={},target=/in,readonly",
        input.path().display()
    );
    let mount_out = format!("type=bind,source={},target=/out", output.path().display());
    let agent = create(
        &s,
        &unique("limits"),
        &[
            "--image", &base,
            "--mount", &mount_in,
            "--mount", &mount_out,
            "--memory", "64m",
            "--cpus", "0.5",
            "--pids-limit", "100",
            "--restart", "on-failure:3",
            "--user", "1234:1234",
            "--workdir", "/in",
            "--command",
            "{ cat hello; pwd; id -u; touch /in/x 2>/dev/null && echo writable || echo read-only; } > /out/seen; sleep 600",
        ],
    );
    let container = s.started(&agent);
    let seen = output.path().join("seen");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&seen).map_or(true, |t| t.lines().count() < 4) {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never wrote {}",
            seen.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "hello from the host\n/in\n1234\nread-only\n"
    );

    let inspect = s.engine_inspect(&container);
    let host = &inspect["HostConfig"];
    assert_eq!(host["Memory"], 64 << 20, "{host}");
    assert_eq!(host["PidsLimit"], 100, "{host}");
    // Docker keeps NanoCpus; Podman a quota over a period.
    let cpus = match host["NanoCpus"].as_i64() {
        Some(nano) if nano > 0 => nano as f64 / 1e9,
        _ => host["CpuQuota"].as_f64().unwrap() / host["CpuPeriod"].as_f64().unwrap(),
    };
    assert_eq!(cpus, 0.5, "{host}");
    assert_eq!(host["RestartPolicy"]["Name"], "on-failure", "{host}");
    assert_eq!(host["RestartPolicy"]["MaximumRetryCount"], 3, "{host}");
    assert_eq!(inspect["Config"]["User"], "1234:1234");

    let gone = s.anvyl(&["agent", "remove", agent.as_str(), "--force", "--yes"]);
    assert_eq!(gone.code, Some(0), "{gone:?}");
    // The host's files are the user's: nothing of them is removed.
    assert!(input.path().join("hello").exists() && seen.exists());
}

#[tokio::test]
async fn a_bind_source_that_does_not_exist_fails_the_start_and_leaves_nothing() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let missing = format!(
        "type=bind,source=/nonexistent/{},target=/work",
        unique("dir")
    );
    let agent = create(
        &s,
        &unique("nosource"),
        &[
            "--image",
            &base,
            "--mount",
            &missing,
            "--command",
            "sleep 600",
        ],
    );
    let run = s.anvyl(&["agent", "start", agent.as_str()]);
    assert_cleaned(&s, &agent, &run, 1).await;
    assert!(run.stderr.contains("/nonexistent/"), "{run:?}");
}

/// A command that exits at once under `--restart on-failure` does not
/// keep running, whatever its engine shows between two of its runs: the
/// start fails and is cleaned up.
#[tokio::test]
async fn a_command_its_engine_must_restart_at_once_fails_the_start() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let agent = create(
        &s,
        &unique("crashloop"),
        &[
            "--image",
            &base,
            "--restart",
            "on-failure",
            "--command",
            "exit 3",
        ],
    );
    let run = s.anvyl(&["agent", "start", agent.as_str()]);
    assert_cleaned(&s, &agent, &run, 1).await;
    assert!(run.stderr.contains("it must keep running"), "{run:?}");
}

#[tokio::test]
async fn bad_resources_are_refused_at_create_with_one_line() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    for (flag, value, said) in [
        ("--mount", "type=volume,source=v,target=/w", "type=bind"),
        ("--mount", "type=bind,source=rel,target=/w", "absolute"),
        ("--memory", "1k", "at least 6m"),
        ("--cpus", "0", "--cpus"),
        ("--restart", "always", "on-failure"),
        ("--workdir", "work", "absolute"),
    ] {
        let name = unique("bad");
        let run = s.anvyl(&["agent", "create", &name, "--image", &base, flag, value]);
        assert_eq!(run.code, Some(2), "{flag} {value}: {run:?}");
        assert!(run.stderr.contains(said), "{flag} {value}: {run:?}");
        assert_eq!(
            run.stderr.trim_end().lines().count(),
            1,
            "{flag} {value}: {run:?}"
        );
        assert!(s
            .state()
            .agent(&anvyl_core::AgentName::new(&name).unwrap())
            .is_err());
    }
}

#[tokio::test]
async fn inspect_shows_the_spec_and_update_changes_it_only_while_stopped() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let agent = create(
        &s,
        &unique("update"),
        &[
            "--image",
            &base,
            "--memory",
            "64m",
            "--command",
            "sleep 600",
        ],
    );
    let run = s.anvyl(&[
        "agent",
        "update",
        agent.as_str(),
        "--memory",
        "128m",
        "--pids-limit",
        "50",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let container = s.started(&agent);
    let host = s.engine_inspect(&container)["HostConfig"].clone();
    assert_eq!(host["Memory"], 128 << 20, "{host}");
    assert_eq!(host["PidsLimit"], 50, "{host}");

    // Running: refused, and nothing changes.
    let refused = s.anvyl(&["agent", "update", agent.as_str(), "--memory", "256m"]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(refused.stderr.contains("stop it first"), "{refused:?}");
    let inspect = s.anvyl(&["-o", "json", "agent", "inspect", agent.as_str()]);
    assert_eq!(inspect.code, Some(0), "{inspect:?}");
    let doc: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(doc["spec"]["resources"]["memory"], 128 << 20, "{doc}");
    assert_eq!(doc["observed"]["state"], "running", "{doc}");
    assert_eq!(doc["container"]["id"], container.as_str(), "{doc}");
    let text = s.anvyl(&["agent", "inspect", agent.as_str()]);
    assert!(
        text.stdout.contains("memory:") && text.stdout.contains("128m"),
        "{text:?}"
    );

    let gone = s.anvyl(&["agent", "remove", agent.as_str(), "--force", "--yes"]);
    assert_eq!(gone.code, Some(0), "{gone:?}");
}

/// An agent whose command fails is started again by its engine under
/// `--restart on-failure`: it is shown restarting, never dead, and a
/// cleanup leaves it be; `agent stop` ends it like any other.
#[tokio::test]
async fn an_agent_its_engine_restarts_is_alive_and_said_restarting() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let agent = create(
        &s,
        &unique("restarts"),
        &[
            "--image",
            &base,
            "--restart",
            "on-failure",
            "--command",
            "sleep 1; exit 3",
        ],
    );
    let container = s.started(&agent);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = std::collections::BTreeSet::new();
    while !seen.iter().any(|s: &String| s.starts_with("restarting (")) {
        assert!(
            std::time::Instant::now() < deadline,
            "never restarting: {seen:?}"
        );
        let list = s.anvyl(&["-o", "json", "agent", "list"]);
        let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
        let row = (rows.as_array().unwrap().iter())
            .find(|r| r["name"] == agent.as_str())
            .unwrap()
            .clone();
        seen.insert(row["status"].as_str().unwrap().to_string());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        seen.iter()
            .all(|s| s == "running" || s.starts_with("restarting (")),
        "{seen:?}"
    );
    let cleanup = s.anvyl(&["agent", "cleanup", "--yes"]);
    assert_eq!(cleanup.code, Some(0), "{cleanup:?}");
    assert!(
        s.has_container(&container).await,
        "a cleanup removed it: {cleanup:?}"
    );
    assert_eq!(
        s.state().agent(&agent).unwrap().status,
        anvyl_core::AgentStatus::Running
    );

    let stop = s.anvyl(&["agent", "stop", agent.as_str()]);
    assert_eq!(stop.code, Some(0), "{stop:?}");
    assert!(!s.has_container(&container).await);
}
