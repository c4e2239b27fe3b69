//! Two hosts, one installation: the configured engine (`local`, Docker)
//! and a registered one (`far`, Podman). A cleanup of the configured
//! engine must not judge an agent running on `far` by Docker's listings —
//! it used to reset it to stopped ("container gone"), and the next cleanup
//! aimed at `far` then removed its live container.

use std::process::{Command, Output};

fn required(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run this through `cargo xtask itest`"))
}

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
                "backend = \"docker\"\nnetwork = \"none\"\nsettle_ms = 300\n\n[docker]\nendpoint = \"{}\"\n",
                required("ANVYL_ITEST_DOCKER_HOST")
            ),
        )
        .unwrap();
        Self { state, config }
    }

    fn anvyl(&self, args: &[&str]) -> Output {
        Command::new(required("ANVYL_BIN"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("ANVYL_STATE_DIR", self.state.path())
            .env("XDG_CONFIG_HOME", self.state.path().join("no-config"))
            .env_remove("ANVYL_BACKEND")
            .env_remove("DOCKER_HOST")
            .env_remove("CONTAINER_HOST")
            .output()
            .expect("run anvyl")
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
    let base = required("ANVYL_ITEST_BASE_IMAGE");
    let far = required("ANVYL_ITEST_PODMAN_HOST");
    let name = format!("remote-{}", std::process::id());
    a.ok(&[
        "host",
        "add",
        "far",
        "--backend",
        "podman",
        "--endpoint",
        &far,
    ]);
    a.ok(&[
        "agent",
        "create",
        &name,
        "--image",
        &base,
        "--command",
        "sleep 600",
        "--host",
        "far",
        "--start",
    ]);

    let cleanup = a.ok(&["agent", "cleanup", "--yes"]);

    let list = a.ok(&["--output", "json", "agent", "list"]);
    assert_eq!(status_of(&list, &name), "running", "{cleanup:?}");
    // Stopping it works, on its own host.
    a.ok(&["agent", "stop", &name]);
    let list = a.ok(&["--output", "json", "agent", "list"]);
    assert_eq!(status_of(&list, &name), "stopped");
    a.ok(&["agent", "remove", &name, "--yes"]);
}
