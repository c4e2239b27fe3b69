//! Fixtures for the end-to-end tests: the private engine that `cargo xtask
//! itest` started (read from the environment, failing loudly when absent),
//! a sandbox per test with its own state directory — so its own
//! installation id — and helpers that run the real `anvyl` binary and make
//! anvyl-like resources through the backend library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub mod proxy;
pub mod reliability;
pub mod restart;

use anvyl_core::backend::{BuildSpec, ContainerSpec, Labels};
use anvyl_core::{AgentName, AgentSpec, AgentStatus, DynBackend, Ownership, StartId, StateStore};

/// What `cargo xtask itest` passes in.
#[derive(Debug, Clone)]
pub struct Itest {
    /// `docker` or `podman`.
    pub backend: String,
    /// The private engine's endpoint.
    pub endpoint: String,
    /// A local image with busybox.
    pub base_image: String,
    /// The `anvyl` binary under test.
    pub anvyl: PathBuf,
}

pub(crate) use anvyl_core::testing::required;

impl Itest {
    /// Reads the environment; panics with the reason when run by hand.
    pub fn from_env() -> Self {
        Self {
            backend: required("ANVYL_ITEST_BACKEND"),
            endpoint: required("ANVYL_ITEST_ENDPOINT"),
            base_image: required("ANVYL_ITEST_BASE_IMAGE"),
            anvyl: PathBuf::from(required("ANVYL_BIN")),
        }
    }

    /// A client of the private engine, for setting up and checking.
    pub async fn connect(&self) -> DynBackend {
        let timeout = Duration::from_secs(120);
        match self.backend.as_str() {
            "docker" => std::sync::Arc::new(
                anvyl_docker::DockerBackend::connect(&self.endpoint, timeout)
                    .await
                    .expect("connect to the private dockerd"),
            ),
            "podman" => std::sync::Arc::new(
                anvyl_podman::PodmanBackend::connect(
                    &self.endpoint,
                    timeout,
                    anvyl_podman::Limits {
                        nofile: 4096,
                        nproc: 4096,
                    },
                )
                .await
                .expect("connect to the private podman service"),
            ),
            other => panic!("unknown ANVYL_ITEST_BACKEND {other:?}"),
        }
    }

    /// The engine's name in log lines (`Removed Docker image: …`).
    pub fn engine_name(&self) -> &'static str {
        match self.backend.as_str() {
            "podman" => "Podman",
            _ => "Docker",
        }
    }
}

/// One test's world: an engine client, and a state directory of its own.
pub struct Sandbox {
    /// The environment.
    pub itest: Itest,
    /// The engine.
    pub engine: DynBackend,
    /// The state directory (database and build root).
    pub state_dir: tempfile::TempDir,
    /// This sandbox's installation.
    pub ownership: Ownership,
}

/// What an `anvyl` run produced.
#[derive(Debug)]
pub struct Run {
    /// Exit status.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the log).
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Sandbox {
    /// A fresh sandbox on the engine `cargo xtask itest` started.
    pub async fn new() -> Self {
        let itest = Itest::from_env();
        let engine = itest.connect().await;
        let state_dir = tempfile::tempdir().expect("state dir");
        let ownership = Ownership::new(self_state(state_dir.path()).instance_id().clone());
        Self {
            itest,
            engine,
            state_dir,
            ownership,
        }
    }

    /// The state store, opened as anvyl opens it.
    pub fn state(&self) -> StateStore {
        self_state(self.state_dir.path())
    }

    /// The build root inside the state directory.
    pub fn build_root(&self) -> PathBuf {
        self.state_dir.path().join("builds")
    }

    /// Runs `anvyl ARGS` against the private engine, with no terminal.
    pub fn anvyl(&self, args: &[&str]) -> Run {
        self.anvyl_with(args, &[])
    }

    /// `anvyl ARGS` aimed at the private engine and this sandbox's state,
    /// with no terminal and no user configuration.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.itest.anvyl);
        cmd.args(args);
        self.environment(&mut cmd);
        cmd
    }

    /// The environment of every `anvyl` run of this sandbox.
    fn environment(&self, cmd: &mut Command) {
        cmd.env("ANVYL_STATE_DIR", self.state_dir.path())
            .env("ANVYL_BACKEND", &self.itest.backend)
            .env("DOCKER_HOST", &self.itest.endpoint)
            .env("CONTAINER_HOST", &self.itest.endpoint)
            .env("XDG_CONFIG_HOME", self.state_dir.path().join("no-config"))
            // No registry logins but those a test makes.
            .env("DOCKER_CONFIG", self.state_dir.path().join("no-config"))
            .env("XDG_RUNTIME_DIR", self.state_dir.path().join("no-config"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env("ANVYL_NETWORK", "none")
            .env("ANVYL_SETTLE_MS", "500")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
    }

    /// `anvyl ARGS` for a pseudo-terminal: the sandbox's environment, its
    /// standard streams left to whoever spawns it, a capable `TERM`.
    pub fn terminal_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::inherit())
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR");
        cmd
    }

    /// Runs `anvyl ARGS` under `wrapper` (e.g. `strace -e inject=…`), or
    /// alone when `wrapper` is empty.
    pub fn anvyl_under(&self, wrapper: &[&str], args: &[&str]) -> Run {
        let Some((program, options)) = wrapper.split_first() else {
            return self.anvyl(args);
        };
        let mut cmd = Command::new(program);
        cmd.args(options).arg(&self.itest.anvyl).args(args);
        self.environment(&mut cmd);
        cmd.output().expect("run anvyl").into()
    }

    /// Runs `anvyl ARGS` with extra environment.
    pub fn anvyl_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run anvyl").into()
    }

    /// Runs `anvyl ARGS` from the directory `cwd`, with extra environment.
    pub fn anvyl_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.current_dir(cwd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run anvyl").into()
    }

    /// Starts `anvyl ARGS` in the background (for signals).
    pub fn spawn_anvyl(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn anvyl")
    }

    /// `agent start NAME`, which must succeed; the container it recorded.
    pub fn started(&self, agent: &AgentName) -> String {
        let run = self.anvyl(&["agent", "start", agent.as_str()]);
        assert_eq!(run.code, Some(0), "{run:?}");
        self.container_of(agent)
    }

    /// A running agent's container id, as recorded.
    pub fn container_of(&self, agent: &AgentName) -> String {
        let record = self.state().agent(agent).expect("agent");
        record
            .container_id
            .expect("a running agent has a container")
    }

    /// Sends `signal` (`-INT`, `-TERM`, as `kill` takes it) to a command
    /// started with [`Sandbox::spawn_anvyl`].
    pub fn signal(child: &std::process::Child, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {}", child.id());
    }

    /// Build directories of `agent` below the build root.
    pub fn build_dirs_of(&self, agent: &AgentName) -> Vec<PathBuf> {
        let prefix = format!("{agent}.");
        std::fs::read_dir(self.build_root())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Containers and images on the engine that carry `agent`'s label or its
    /// exact name, described for an assertion message.
    pub async fn traces_of(&self, agent: &AgentName) -> Vec<String> {
        let mut labels = Labels::new();
        labels.insert("io.anvyl.agent".into(), agent.to_string());
        let query = anvyl_core::Query::labelled(labels);
        let mut found: Vec<String> = Vec::new();
        for c in self
            .engine
            .list_containers(&query)
            .await
            .expect("list containers")
        {
            found.push(format!("container {} (labelled)", c.name));
        }
        for i in self.engine.list_images(&query).await.expect("list images") {
            found.push(format!("image {} (labelled)", i.id));
        }
        if self.has_container(&agent.resource_name()).await {
            found.push(format!("container {}", agent.resource_name()));
        }
        if self.has_image(&agent.image_tag()).await {
            found.push(format!("image {}", agent.image_tag()));
        }
        found
    }

    /// Containers and images of this installation on the engine.
    pub async fn owned_counts(&self) -> (usize, usize) {
        let query = anvyl_core::Query::labelled(self.ownership.selector(None, None));
        (
            self.engine
                .list_containers(&query)
                .await
                .expect("list")
                .len(),
            self.engine.list_images(&query).await.expect("list").len(),
        )
    }

    /// Records an agent in this sandbox's state.
    pub fn agent(&self, name: &str) -> AgentName {
        let name = AgentName::new(name).expect("valid test agent name");
        self.state()
            .create_agent(&name, &AgentSpec::default())
            .expect("record agent");
        name
    }

    /// Sets an agent's recorded status.
    pub fn set_status(&self, agent: &AgentName, status: AgentStatus, container: Option<&str>) {
        self.state()
            .force_status(agent, status, container, None)
            .expect("set status");
    }

    /// Builds `tag` from the base image with `labels`; returns the image id.
    pub async fn image(&self, tag: &str, labels: Labels) -> String {
        let dir = tempfile::tempdir().expect("context");
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {}\nLABEL test.tag=\"{tag}\"\n", self.itest.base_image),
        )
        .expect("write Dockerfile");
        let spec = BuildSpec {
            context_dir: dir.path().to_path_buf(),
            tag: tag.to_string(),
            labels,
            network: Some("none".into()),
            credentials: Default::default(),
        };
        // Podman 4.3 can fail a build's commit with "layer not known", and
        // Docker 20.10's classic builder a step with "unable to find image"
        // (once in a fresh-clone CI run), while other tests remove images.
        // The fixture only sets a scene, so it tries again; a start of
        // anvyl's own that met it would fail and be cleaned up.
        let engine_race = |e: &anvyl_core::BackendError| {
            let text = e.to_string();
            (anvyl_docker::BUILD_RACES.iter())
                .chain(anvyl_podman::BUILD_RACES)
                .any(|m| text.contains(m))
        };
        let mut attempt = 1;
        loop {
            match self.engine.build_image(&spec, &|_| {}).await {
                Ok(output) => return output.image_id,
                Err(e) if attempt < 3 && engine_race(&e) => {
                    eprintln!("build {tag}: attempt {attempt} met the engine's race: {e}");
                    attempt += 1;
                }
                Err(e) => panic!("build {tag}: {e}"),
            }
        }
    }

    /// Creates (does not start) a container `name` from `image`.
    pub async fn container(&self, name: &str, image: &str, labels: Labels) -> String {
        let spec = ContainerSpec {
            name: name.to_string(),
            image: image.to_string(),
            command: Some(vec!["true".into()]),
            env: Vec::new(),
            labels,
            network: Some("none".into()),
            resources: Default::default(),
        };
        self.engine
            .create_container(&spec)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"))
    }

    /// Creates and starts a container `name` that keeps running.
    pub async fn running_container(&self, name: &str, image: &str, labels: Labels) -> String {
        let spec = ContainerSpec {
            name: name.to_string(),
            image: image.to_string(),
            command: Some(vec!["sleep".into(), "600".into()]),
            env: Vec::new(),
            labels,
            network: Some("none".into()),
            resources: Default::default(),
        };
        let id = self
            .engine
            .create_container(&spec)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        self.engine
            .start_container(&id)
            .await
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        id
    }

    /// This installation's labels for `agent`.
    pub fn labels(&self, agent: &AgentName) -> Labels {
        self.ownership
            .stamp(&Labels::new(), agent, &StartId::random())
    }

    /// An orphan of `agent`: its labelled image and a stopped container of it.
    pub async fn leftovers(&self, agent: &AgentName) -> (String, String) {
        let labels = self.labels(agent);
        let image = self.image(&agent.image_tag(), labels.clone()).await;
        let container = self
            .container(&agent.resource_name(), &agent.image_tag(), labels)
            .await;
        (container, image)
    }

    /// A leftover build directory of `agent`.
    pub fn build_dir(&self, agent: &AgentName, suffix: &str) -> PathBuf {
        let dir = self.build_root().join(format!("{agent}.{suffix}"));
        std::fs::create_dir_all(&dir).expect("build dir");
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").expect("Dockerfile");
        dir
    }

    /// Whether a container exists.
    pub async fn has_container(&self, id: &str) -> bool {
        match self.engine.inspect_container(id).await {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => panic!("inspect {id}: {e}"),
        }
    }

    /// Whether an image reference exists.
    pub async fn has_image(&self, reference: &str) -> bool {
        match self.engine.inspect_image(reference).await {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => panic!("inspect {reference}: {e}"),
        }
    }

    /// A directory the engine sees at the same path: below its own
    /// directory (where its socket is), which a suite's engine in its
    /// chroot has bound at the same place — unlike this machine's /tmp.
    pub fn shared_dir(&self) -> tempfile::TempDir {
        let socket = self
            .itest
            .endpoint
            .strip_prefix("unix://")
            .expect("the private engine listens on a unix socket");
        let dir = Path::new(socket).parent().expect("the socket's directory");
        tempfile::tempdir_in(dir).expect("a directory beside the engine's socket")
    }

    /// The engine's own CLI, aimed at the private engine: its suite's
    /// `docker -H …` or `podman --remote --url …`, run in the engine's
    /// namespace for a suite other than this machine's (paths it is given
    /// must be ones it sees: [`Sandbox::shared_dir`]).
    pub fn engine_cli(&self) -> Command {
        let line = required("ANVYL_ITEST_ENGINE_CLI");
        let words: Vec<&str> = line.split(' ').collect();
        let mut cmd = Command::new(words[0]);
        cmd.args(&words[1..]);
        cmd
    }

    /// The engine CLI's `inspect` of a container, as JSON.
    pub fn engine_inspect(&self, id: &str) -> serde_json::Value {
        let out = self
            .engine_cli()
            .args(["container", "inspect", id])
            .output()
            .expect("run the engine's CLI");
        assert!(out.status.success(), "inspect {id}: {out:?}");
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
        all[0].clone()
    }

    /// Removes what a test made, best effort.
    pub async fn discard(&self, containers: &[&str], images: &[&str]) {
        for c in containers {
            let _ = self.engine.remove_container(c, Duration::ZERO).await;
        }
        for i in images {
            let _ = self.engine.remove_image(i).await;
        }
    }
}

fn self_state(dir: &Path) -> StateStore {
    StateStore::open(dir).expect("open state store")
}
