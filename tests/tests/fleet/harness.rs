//! One anvyl installation of the fleet tests (its own state, configuration
//! and client homes), the engines behind it for checking behind anvyl's
//! back, and the far engine frozen on demand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anvyl_core::backend::{Labels, Query};
use anvyl_core::ownership::LABEL_INSTANCE;
use anvyl_core::StateStore;
use anvyl_tests::Itest;

use anvyl_core::testing::required;

/// One installation with its own state, configuration and client homes.
pub struct Installation {
    pub home: tempfile::TempDir,
    pub config: PathBuf,
}

impl Installation {
    pub fn new(extra: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join("anvyl.toml");
        std::fs::write(
            &config,
            format!(
                "backend = \"docker\"\nnetwork = \"none\"\nsettle_ms = 300\n{extra}\n\n[docker]\nendpoint = \"{}\"\n\n[podman]\nendpoint = \"{}\"\n",
                required("ANVYL_ITEST_DOCKER_HOST"),
                required("ANVYL_ITEST_PODMAN_HOST")
            ),
        )
        .unwrap();
        Self { home, config }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(required("ANVYL_BIN"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("ANVYL_STATE_DIR", self.path("state"))
            // The Docker CLI's contexts and Podman's connections of this
            // installation's user, nobody else's.
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .env_remove("ANVYL_BACKEND")
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("CONTAINER_HOST");
        cmd
    }

    pub fn anvyl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run anvyl")
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        let run = self.anvyl(args);
        assert!(run.status.success(), "{args:?}: {}", text(&run));
        run
    }

    pub fn json(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut all = vec!["--output", "json"];
        all.extend(args);
        let run = self.anvyl(&all);
        let doc = serde_json::from_slice(&run.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&run)));
        (run.status.code(), doc)
    }

    /// Registers the other engines: `far` (Docker) and `pod` (Podman).
    pub fn add_hosts(&self) {
        let far = required("ANVYL_ITEST_DOCKER2_HOST");
        let pod = required("ANVYL_ITEST_PODMAN_HOST");
        self.ok(&[
            "host",
            "add",
            "far",
            "--backend",
            "docker",
            "--endpoint",
            &far,
        ]);
        self.ok(&[
            "host",
            "add",
            "pod",
            "--backend",
            "podman",
            "--endpoint",
            &pod,
        ]);
    }

    /// Creates agent `name` on `host`, and starts it.
    pub fn started(&self, name: &str, host: &str) {
        let base = required("ANVYL_ITEST_BASE_IMAGE");
        self.ok(&[
            "agent",
            "create",
            name,
            "--image",
            &base,
            "--command",
            "sleep 600",
            "--host",
            host,
        ]);
        self.ok(&["agent", "start", name]);
    }

    /// An agent whose image stays on `host` after it stopped: an orphan for
    /// the next cleanup.
    pub fn leftover(&self, name: &str, host: &str) {
        self.started(name, host);
        self.ok(&["agent", "stop", name]);
    }

    /// The agent's status as recorded in the state store.
    pub fn status(&self, name: &str) -> String {
        self.listed(name, "recorded")
    }

    /// The agent's status as `agent list` shows it: observed on its host.
    pub fn shown(&self, name: &str) -> String {
        self.listed(name, "status")
    }

    pub fn listed(&self, name: &str, field: &str) -> String {
        let (_, rows) = self.json(&["agent", "list"]);
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r[field].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{name} is not listed: {rows}"))
    }

    pub fn instance(&self) -> String {
        StateStore::open(&self.path("state"))
            .unwrap()
            .instance_id()
            .to_string()
    }
}

pub fn text(run: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        run.status.code(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    )
}

/// The three engines, for checking behind anvyl's back.
pub fn engine(var: &str, backend: &str) -> Itest {
    Itest {
        backend: backend.into(),
        endpoint: required(var),
        base_image: required("ANVYL_ITEST_BASE_IMAGE"),
        anvyl: required("ANVYL_BIN").into(),
    }
}

pub fn engines() -> [(&'static str, Itest); 3] {
    [
        ("local", engine("ANVYL_ITEST_DOCKER_HOST", "docker")),
        ("far", engine("ANVYL_ITEST_DOCKER2_HOST", "docker")),
        ("pod", engine("ANVYL_ITEST_PODMAN_HOST", "podman")),
    ]
}

/// Containers and images of `instance` on `engine`, by name or tag.
pub fn owned(engine: &Itest, instance: &str) -> Vec<String> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let backend = engine.connect().await;
        let query = Query::labelled(Labels::from([(LABEL_INSTANCE.into(), instance.into())]));
        let mut found: Vec<String> = (backend.list_containers(&query).await.unwrap())
            .into_iter()
            .map(|c| format!("container {}", c.name))
            .collect();
        for image in backend.list_images(&query).await.unwrap() {
            found.extend(image.tags.iter().map(|t| format!("image {t}")));
        }
        found
    })
}

/// Sends `signal` to the far dockerd; continues it again when dropped, so
/// a failing assertion never leaves the engine frozen for the next test.
pub struct Frozen(i32);

impl Frozen {
    pub fn far() -> Self {
        let pid: i32 = std::fs::read_to_string(required("ANVYL_ITEST_DOCKER2_PIDFILE"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(kill(pid, "STOP"));
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        kill(self.0, "CONT");
    }
}

pub fn kill(pid: i32, signal: &str) -> bool {
    // A negative pid is a process group (`kill -INT -- -PGID`).
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success()
}

pub fn planned_hosts(doc: &serde_json::Value) -> Vec<String> {
    let mut hosts: Vec<String> = ["containers", "images", "resets"]
        .iter()
        .flat_map(|step| doc["plan"][step].as_array().unwrap().clone())
        .map(|item| item["host"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// A client certificate and key no CA of the engine signed.
pub fn stranger_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["stranger".to_string()]).unwrap();
    std::fs::write(dir.join("ca.pem"), stranger.cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), stranger.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), stranger.signing_key.serialize_pem()).unwrap();
}

pub fn host_row(a: &Installation, name: &str) -> serde_json::Value {
    let (_, hosts) = a.json(&["host", "list"]);
    hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("host {name} is not listed: {hosts}"))
        .clone()
}
