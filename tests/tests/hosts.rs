//! Two hosts, one installation: the configured engine (`local`, Docker)
//! and a registered one (`far`, Podman). A cleanup of the configured
//! engine must not judge an agent running on `far` by Docker's listings —
//! it used to reset it to stopped ("container gone"), and the next cleanup
//! aimed at `far` then removed its live container.

use std::process::{Command, Output};

use anvyl_core::testing::required;

struct Installation {
    state: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Installation {
    fn new() -> Self {
        let state = tempfile::tempdir().unwrap();
        let config = state.path().join("anvyl.toml");
        std::fs::write(
            &config,
            format!(
                "backend = \"docker\"\nnetwork = \"none\"\nsettle_ms = 300\n\n[docker]\nendpoint = \"{}\"\n\n[podman]\nendpoint = \"{}\"\n",
                required("ANVYL_ITEST_DOCKER_HOST"),
                required("ANVYL_ITEST_PODMAN_HOST")
            ),
        )
        .unwrap();
        Self { state, config }
    }

    /// `anvyl ARGS` with this installation's file and state only.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(required("ANVYL_BIN"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("ANVYL_STATE_DIR", self.state.path())
            .env("XDG_CONFIG_HOME", self.state.path().join("no-config"))
            .env_remove("ANVYL_BACKEND")
            .env_remove("DOCKER_HOST")
            .env_remove("CONTAINER_HOST");
        cmd
    }

    fn anvyl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run anvyl")
    }

    /// Registers Podman as host `far` and creates agent `name` on it.
    fn agent_on_far(&self, name: &str, extra: &[&str]) {
        let base = required("ANVYL_ITEST_BASE_IMAGE");
        let far = required("ANVYL_ITEST_PODMAN_HOST");
        self.ok(&[
            "host",
            "add",
            "far",
            "--backend",
            "podman",
            "--endpoint",
            &far,
        ]);
        let mut args = vec![
            "agent",
            "create",
            name,
            "--image",
            &base,
            "--command",
            "sleep 600",
            "--host",
            "far",
        ];
        args.extend(extra);
        self.ok(&args);
    }

    fn ok(&self, args: &[&str]) -> Output {
        let run = self.anvyl(args);
        assert!(run.status.success(), "{args:?}: {run:?}");
        run
    }
}

fn status_of(list: &Output, name: &str) -> String {
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON");
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .expect("the agent is listed")
}

#[test]
fn a_cleanup_of_one_host_leaves_an_agent_running_on_another() {
    let a = Installation::new();
    let name = format!("remote-{}", std::process::id());
    a.agent_on_far(&name, &["--start"]);

    let cleanup = a.ok(&["agent", "cleanup", "--yes"]);

    let list = a.ok(&["--output", "json", "agent", "list"]);
    assert_eq!(status_of(&list, &name), "running", "{cleanup:?}");
    // Stopping it works, on its own host.
    a.ok(&["agent", "stop", &name]);
    let list = a.ok(&["--output", "json", "agent", "list"]);
    assert_eq!(status_of(&list, &name), "stopped");
    a.ok(&["agent", "remove", &name, "--yes"]);
}

/// `local` follows the configuration: a cleanup or a stop while it points at
/// Podman must not judge an agent that was started on Docker.
#[test]
fn switching_the_configured_engine_leaves_a_running_agent_alone() {
    let a = Installation::new();
    let base = required("ANVYL_ITEST_BASE_IMAGE");
    let name = format!("switch-{}", std::process::id());
    a.ok(&[
        "agent",
        "create",
        &name,
        "--image",
        &base,
        "--command",
        "sleep 600",
        "--start",
    ]);

    let cleanup = a.ok(&["--backend", "podman", "agent", "cleanup", "--yes"]);
    let list = a.ok(&["--output", "json", "agent", "list"]);
    assert_eq!(status_of(&list, &name), "running", "{cleanup:?}");
    let stop = a.anvyl(&["--backend", "podman", "agent", "stop", &name]);
    assert_eq!(stop.status.code(), Some(2), "{stop:?}");
    let list = a.ok(&["--output", "json", "agent", "list"]);
    assert_eq!(status_of(&list, &name), "running");

    a.ok(&["agent", "stop", &name]);
    a.ok(&["agent", "remove", &name, "--yes"]);
}

/// A start on another host killed midway: `agent cleanup NAME` goes to the
/// agent's own host and converges there.
#[test]
fn a_start_killed_on_another_host_is_cleaned_by_cleaning_the_agent() {
    let a = Installation::new();
    let name = format!("farcrash-{}", std::process::id());
    a.agent_on_far(&name, &[]);
    let mut start = a
        .command(&["agent", "start", &name])
        .env("ANVYL_SETTLE_MS", "20000")
        .spawn()
        .expect("start");
    // Killed while it settles: its container runs on `far`.
    let began = std::time::Instant::now();
    while !a
        .state
        .path()
        .join("builds")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        assert!(began.elapsed().as_secs() < 60, "the start never began");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(4));
    start.kill().expect("kill -9");
    start.wait().expect("reap");

    let cleanup = a.ok(&["agent", "cleanup", &name, "--yes"]);
    let list = a.ok(&["--output", "json", "agent", "list"]);
    assert_eq!(status_of(&list, &name), "stopped", "{cleanup:?}");
    let again = a.ok(&["--output", "json", "agent", "cleanup", &name, "--dry-run"]);
    let doc: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON");
    for step in ["containers", "images", "build_dirs", "resets"] {
        assert_eq!(doc["plan"][step], serde_json::json!([]), "{step}: {doc}");
    }
    a.ok(&["agent", "remove", &name, "--yes"]);
}
