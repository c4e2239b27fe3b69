//! Private engines: a `dockerd` and a `podman system service`, each with its
//! own data root, run root and socket below one directory under `target/`.
//! They run in their own process group (a Ctrl-C meant for the tests does
//! not kill them mid-write) and are always stopped and removed by `Drop`.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::install::BUSYBOX;
use crate::process::{output, run, stop};
use crate::tls::TlsSetup;

/// The tag of the base image every test builds on.
pub const BASE_IMAGE: &str = "anvyl-itest-base:latest";

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

impl Kind {
    /// The engines a `--backend docker|podman|all` value names.
    pub fn parse_list(value: Option<&str>) -> anyhow::Result<Vec<Kind>> {
        match value {
            Some("docker") => Ok(vec![Kind::Docker]),
            Some("podman") => Ok(vec![Kind::Podman]),
            Some("all") => Ok(vec![Kind::Docker, Kind::Podman]),
            other => bail!("--backend takes docker, podman or all, not {other:?}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }
}

/// A running private engine.
pub struct Engine {
    pub kind: Kind,
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    keep: bool,
    tls: Option<TlsSetup>,
}

/// Asks the socket for `/_ping` the way any HTTP client would.
fn pings(socket: &Path, path: &str) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
}

impl Engine {
    /// Starts the engine in `dir` (created afresh).
    pub fn start(kind: Kind, dir: PathBuf, keep: bool) -> Result<Self> {
        Self::start_with(kind, dir, keep, false)
    }

    /// Starts the engine in `dir`; with `tls`, a Docker engine also listens
    /// on a loopback TCP port and verifies clients (`--tlsverify`) with
    /// certificates generated for the run.
    pub fn start_with(kind: Kind, dir: PathBuf, keep: bool, tls: bool) -> Result<Self> {
        if dir.exists() {
            // Leftovers of an interrupted run: clear them first.
            remove_tree(&dir);
        }
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let tls = tls
            .then(|| crate::tls::generate(&dir.join("tls")))
            .transpose()?;
        let socket = dir.join(format!("{}.sock", kind.name()));
        let log = fs::File::create(dir.join("engine.log"))?;
        let mut cmd = match kind {
            Kind::Docker => {
                let mut cmd = Command::new("dockerd");
                cmd.arg("--data-root")
                    .arg(dir.join("data"))
                    .arg("--exec-root")
                    .arg(dir.join("exec"))
                    .arg("--pidfile")
                    .arg(dir.join("dockerd.pid"))
                    .arg("-H")
                    .arg(format!("unix://{}", socket.display()))
                    .args(["--bridge=none", "--iptables=false", "--ip6tables=false"]);
                if let Some(tls) = &tls {
                    cmd.arg("-H")
                        .arg(tls.endpoint())
                        .arg("--tlsverify")
                        .arg("--tlscacert")
                        .arg(tls.server.join("ca.pem"))
                        .arg("--tlscert")
                        .arg(tls.server.join("server-cert.pem"))
                        .arg("--tlskey")
                        .arg(tls.server.join("server-key.pem"));
                }
                cmd.arg(format!(
                    "--cgroup-parent=/anvyl-itest-{}",
                    std::process::id()
                ));
                cmd
            }
            Kind::Podman => {
                let conf = dir.join("containers.conf");
                // File locks live below the private tmpdir. The default shm
                // locks come from one segment shared with every Podman on the
                // machine (/dev/shm/libpod_lock): the thousands of containers
                // a benchmark leaves to go with the directory would leak
                // their locks there, until the user's own Podman could not
                // create a container ("exceeded num_locks").
                fs::write(
                    &conf,
                    "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n\
                     [engine]\nevents_logger = \"file\"\nlock_type = \"file\"\n",
                )?;
                let mut cmd = Command::new("podman");
                cmd.env("CONTAINERS_CONF", &conf);
                cmd.args(podman_storage_args(&dir))
                    .args(["system", "service", "--time=0"])
                    .arg(format!("unix://{}", socket.display()));
                cmd
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", kind.name()))?;
        let mut engine = Self {
            kind,
            dir,
            socket,
            child: Some(child),
            keep,
            tls,
        };
        engine.wait_until_ready()?;
        Ok(engine)
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let began = Instant::now();
        let path = match self.kind {
            Kind::Docker => "/_ping",
            Kind::Podman => "/v4.0.0/libpod/_ping",
        };
        while began.elapsed() < Duration::from_secs(60) {
            if pings(&self.socket, path) {
                eprintln!(
                    "xtask: private {} answers at {} after {:.1}s",
                    self.kind.name(),
                    self.endpoint(),
                    began.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                bail!(
                    "{} exited ({status}) before answering; see {}",
                    self.kind.name(),
                    self.dir.join("engine.log").display()
                );
            }
            sleep(Duration::from_millis(200));
        }
        bail!("{} did not answer within 60 s", self.kind.name())
    }

    /// The TLS listener, when started with one.
    pub fn tls(&self) -> Option<&TlsSetup> {
        self.tls.as_ref()
    }

    /// The file dockerd writes its pid to.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("dockerd.pid")
    }

    /// The engine's own directory (data, sockets, logs, the test summary).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `unix://…/<kind>.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The engine's own CLI, pointed at this engine.
    pub fn cli(&self) -> Command {
        match self.kind {
            Kind::Docker => {
                let mut cmd = Command::new("docker");
                cmd.env("DOCKER_HOST", self.endpoint());
                cmd
            }
            Kind::Podman => {
                let mut cmd = Command::new("podman");
                cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"));
                cmd.arg("--remote").arg("--url").arg(self.endpoint());
                cmd
            }
        }
    }

    /// Builds the base image: `FROM scratch` plus a static busybox.
    pub fn build_base_image(&self) -> Result<()> {
        let context = self.dir.join("base-image");
        fs::create_dir_all(&context)?;
        fs::copy(BUSYBOX, context.join("busybox"))?;
        fs::write(
            context.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
        )?;
        let began = Instant::now();
        output(
            self.cli()
                .args(["build", "--network", "none", "-q", "-t", BASE_IMAGE])
                .arg(&context),
        )?;
        eprintln!(
            "xtask: built {BASE_IMAGE} on {} in {:.1}s",
            self.kind.name(),
            began.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn remove_running_containers(&self) {
        // Shutdown otherwise waits each running container's stop timeout.
        // Stopped ones cost nothing at shutdown and go with the directory
        // (removing a benchmark's thousand of them one by one takes minutes).
        let ids = output(self.cli().args(["ps", "-q"])).unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut rm = self.cli();
            rm.args(["rm", "-f"]);
            if self.kind == Kind::Podman {
                rm.args(["-t", "0"]);
            }
            let _ = run(rm.args(&ids).stdout(Stdio::null()));
        }
    }
}

fn podman_storage_args(dir: &Path) -> Vec<String> {
    vec![
        "--root".into(),
        dir.join("root").display().to_string(),
        "--runroot".into(),
        dir.join("run").display().to_string(),
        "--tmpdir".into(),
        dir.join("tmp").display().to_string(),
    ]
}

/// Removes `dir`, unmounting anything an engine left mounted below it.
fn remove_tree(dir: &Path) {
    if let Ok(mounts) = fs::read_to_string("/proc/self/mounts") {
        let prefix = dir.display().to_string();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        // Deepest first.
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = Command::new("umount").arg("-l").arg(point).status();
        }
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        eprintln!("xtask: warning: could not remove {}: {e}", dir.display());
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "xtask: --keep: {} left running at {} (pid {})",
                self.kind.name(),
                self.endpoint(),
                self.child.as_ref().map(Child::id).unwrap_or(0)
            );
            return;
        }
        self.remove_running_containers();
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(20));
        }
        remove_tree(&self.dir);
        eprintln!("xtask: private {} stopped and removed", self.kind.name());
    }
}
