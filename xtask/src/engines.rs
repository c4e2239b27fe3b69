//! Private engines: a `dockerd` and a `podman system service`, each with its
//! own data root, run root and socket below one directory under `target/`.
//! A suite other than this machine's runs its engine from the suite's root
//! (`suite.rs`) in a private mount and PID namespace, with tini as PID 1.
//! Engines run in their own process group (a Ctrl-C meant for the tests
//! does not kill them mid-write), die with xtask (PDEATHSIG), and are
//! stopped and removed — containers, daemon, namespace, cgroup parent,
//! directory — by `Drop` or by the signal handler in `teardown.rs`.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anvyl_core::BackendKind;
use anyhow::{bail, Context, Result};

use crate::process::{output, run, stop};
use crate::suite::{Suite, CHROOT_PATH};
use crate::teardown;
use crate::tls::TlsSetup;

/// The tag of the base image every test builds on.
pub const BASE_IMAGE: &str = "anvyl-itest-base:latest";

/// A running private engine.
pub struct Engine {
    pub kind: BackendKind,
    pub suite: Suite,
    dir: PathBuf,
    socket: PathBuf,
    /// The daemon as it runs now (a restart replaces its processes).
    live: Arc<Live>,
    /// "28.5.2 (API 1.51, refuses below 1.44)".
    version: String,
    tls: Option<TlsSetup>,
    /// Stops and removes it: on drop, or from the signal handler.
    teardown: Option<teardown::Guard>,
}

/// One HTTP/1.0 GET over the engine's socket: (status, body).
fn get(socket: &Path, path: &str) -> Option<(u16, String)> {
    let mut stream = UnixStream::connect(socket).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .strip_prefix("HTTP/1.")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, body.to_string()))
}

/// The children of `pid`, as /proc lists them.
fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Sets the signal a child gets when xtask dies without tearing it down
/// (kill -9): the engines do not outlive the run.
#[allow(
    unsafe_code,
    reason = "prctl(PR_SET_PDEATHSIG) between fork and exec: no safe API"
)]
fn die_with_parent(cmd: &mut Command, signal: i32) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            Ok(())
        });
    }
}

/// Mounts a suite's root and the engine's directory (at the same path, so
/// sockets and build contexts need no translation) in the new namespace,
/// then becomes the given command chrooted there. Every mount goes with the
/// namespace.
const ENTER_ROOT: &str = r#"set -e; R=$1; D=$2; shift 2
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
mkdir -p "$R$D"
mount --bind "$D" "$R$D"
exec chroot "$R" "$@""#;

/// The daemon's command line and environment.
struct Daemon {
    argv: Vec<String>,
    env: Vec<String>,
}

impl Daemon {
    fn new(
        kind: BackendKind,
        suite: Suite,
        dir: &Path,
        socket: &Path,
        tls: Option<&TlsSetup>,
        cgroup: &str,
    ) -> Result<Self> {
        let path = |p: PathBuf| p.display().to_string();
        let mut argv: Vec<String> = Vec::new();
        let mut env: Vec<String> = Vec::new();
        match kind {
            BackendKind::Docker => {
                argv.push("dockerd".into());
                argv.extend(["--data-root".into(), path(dir.join("data"))]);
                argv.extend(["--exec-root".into(), path(dir.join("exec"))]);
                argv.extend(["--pidfile".into(), path(dir.join("dockerd.pid"))]);
                argv.extend(["-H".into(), format!("unix://{}", socket.display())]);
                argv.extend(
                    ["--bridge=none", "--iptables=false", "--ip6tables=false"].map(String::from),
                );
                if let Some(tls) = tls {
                    argv.extend(["-H".into(), tls.endpoint(), "--tlsverify".into()]);
                    argv.extend(["--tlscacert".into(), path(tls.server.join("ca.pem"))]);
                    argv.extend(["--tlscert".into(), path(tls.server.join("server-cert.pem"))]);
                    argv.extend(["--tlskey".into(), path(tls.server.join("server-key.pem"))]);
                }
                argv.push(format!("--cgroup-parent=/{cgroup}"));
                if suite.is_chroot() {
                    // The root's docker group id means something else here.
                    argv.extend(["--group".into(), "root".into()]);
                }
                argv.extend(suite.docker_flags().iter().map(|f| f.to_string()));
                if let Some(floor) = suite.docker_min_api() {
                    env.push(format!("DOCKER_MIN_API_VERSION={floor}"));
                }
            }
            BackendKind::Podman => {
                let conf = dir.join("containers.conf");
                // File locks live below the private tmpdir. The default shm
                // locks come from one segment shared with every Podman on the
                // machine (/dev/shm/libpod_lock): the thousands of containers
                // a benchmark leaves to go with the directory would leak
                // their locks there, until the user's own Podman could not
                // create a container ("exceeded num_locks"). Podman 5 runs
                // with runc: crun refuses this host's hybrid cgroups.
                let runtime = if suite.is_chroot() {
                    "runtime = \"runc\"\n"
                } else {
                    ""
                };
                fs::write(
                    &conf,
                    format!(
                        "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n\
                         [engine]\nevents_logger = \"file\"\nlock_type = \"file\"\n{runtime}"
                    ),
                )?;
                env.push(format!("CONTAINERS_CONF={}", conf.display()));
                if suite.is_chroot() {
                    env.push("PODMAN_IGNORE_CGROUPSV1_WARNING=1".into());
                }
                argv.push("podman".into());
                argv.extend(podman_storage_args(dir, suite.is_chroot()));
                argv.extend(["system", "service", "--time=0"].map(String::from));
                argv.push(format!("unix://{}", socket.display()));
            }
        }
        Ok(Self { argv, env })
    }

    /// The command that runs it: directly, or as PID 1's child in a new
    /// mount and PID namespace chrooted into the suite's `root`.
    fn command(&self, root: Option<&Path>, dir: &Path, keep: bool) -> Command {
        match root {
            None => {
                let mut cmd = Command::new(&self.argv[0]);
                cmd.args(&self.argv[1..]);
                for (k, v) in self.env.iter().filter_map(|kv| kv.split_once('=')) {
                    cmd.env(k, v);
                }
                if !keep {
                    die_with_parent(&mut cmd, libc::SIGTERM);
                }
                cmd
            }
            Some(root) => {
                // tini is the namespace's PID 1: it reaps the container
                // shims and passes a SIGTERM on to the daemon.
                let mut cmd = Command::new("unshare");
                cmd.args(["--mount", "--propagation", "private", "--pid", "--fork"])
                    .args(["--kill-child=SIGKILL", "sh", "-c", ENTER_ROOT, "sh"])
                    .arg(root)
                    .arg(dir)
                    .args(["/usr/bin/env", "-i", CHROOT_PATH, "HOME=/root"])
                    .args(&self.env)
                    .args(["tini", "-s", "-g", "--"])
                    .args(&self.argv);
                if !keep {
                    die_with_parent(&mut cmd, libc::SIGKILL);
                }
                cmd
            }
        }
    }
}

impl Engine {
    /// Starts the suite's engine in `dir` (created afresh).
    pub fn start(kind: BackendKind, suite: Suite, dir: PathBuf, keep: bool) -> Result<Self> {
        Self::start_with(kind, suite, dir, keep, false)
    }

    /// Starts the engine in `dir`; with `tls`, a Docker engine also listens
    /// on a loopback TCP port and verifies clients (`--tlsverify`) with
    /// certificates generated for the run.
    pub fn start_with(
        kind: BackendKind,
        suite: Suite,
        dir: PathBuf,
        keep: bool,
        tls: bool,
    ) -> Result<Self> {
        // After Ctrl-C or SIGTERM, no engine starts (the main thread goes on
        // while the handler tears the others down).
        teardown::ensure_running()?;
        let root = suite.prepare()?;
        if dir.exists() {
            // Leftovers of an interrupted run: clear them first.
            remove_tree(&dir);
        }
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let tls = tls
            .then(|| crate::tls::generate(&dir.join("tls")))
            .transpose()?;
        let socket = dir.join(format!("{}.sock", kind.as_str()));
        fs::File::create(dir.join("engine.log"))?;
        // dockerd leaves its cgroup parent behind in every hierarchy: a
        // name of this engine's own, removed at teardown.
        let cgroup = format!(
            "anvyl-itest-{}-{}",
            std::process::id(),
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("engine")
        );
        let daemon = Daemon::new(kind, suite, &dir, &socket, tls.as_ref(), &cgroup)?;
        let label = format!("{} ({})", kind.as_str(), suite.name());
        let live = Arc::new(Live {
            kind,
            daemon,
            root,
            dir: dir.clone(),
            socket: socket.clone(),
            keep,
            cgroup,
            label: label.clone(),
            process: Mutex::new(None),
            cli: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
        });
        // Registered before the daemon starts: one that never answers is
        // torn down all the same.
        let teardown = if keep {
            None
        } else {
            let live = live.clone();
            Some(teardown::register(Box::new(move || live.tear_down())))
        };
        let ready = live.start();
        {
            let live = live.clone();
            std::thread::spawn(move || serve_restarts(&live));
        }
        if keep {
            eprintln!(
                "xtask: --keep: {label} will be left running at {}",
                live.endpoint()
            );
        }
        let mut engine = Self {
            kind,
            suite,
            dir,
            socket,
            live,
            version: String::new(),
            tls,
            teardown,
        };
        ready?;
        engine.version = engine.read_version()?;
        eprintln!(
            "xtask: private {label} {} answers at {}",
            engine.version,
            engine.endpoint()
        );
        Ok(engine)
    }

    /// Asks the engine its version; for a suite with an API floor, proves
    /// that the floor is in force (a request at 1.41 is refused).
    fn read_version(&self) -> Result<String> {
        let path = match self.kind {
            BackendKind::Docker => "/version",
            BackendKind::Podman => "/v4.0.0/libpod/version",
        };
        let (_, body) = get(&self.socket, path).context("ask the engine its version")?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("the engine's {path} answer: {body}"))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string();
        if let Some(floor) = self
            .suite
            .docker_min_api()
            .filter(|_| self.kind == BackendKind::Docker)
        {
            match get(&self.socket, "/v1.41/version") {
                Some((400, body)) if body.contains("too old") => {}
                other => bail!(
                    "{}: dockerd was started with DOCKER_MIN_API_VERSION={floor} but answered {other:?} at /v1.41/version",
                    self.label()
                ),
            }
        }
        Ok(match self.kind {
            BackendKind::Docker => format!(
                "{} (API {}, refuses below {})",
                field("Version"),
                field("ApiVersion"),
                field("MinAPIVersion")
            ),
            BackendKind::Podman => field("Version"),
        })
    }

    /// Starts the daemon again if a test left it stopped.
    pub fn ensure_started(&self) -> Result<()> {
        let stopped = (self
            .live
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
        .is_none();
        match stopped {
            true => {
                let _ = fs::remove_file(restart_file(&self.dir));
                self.live.start()
            }
            false => Ok(()),
        }
    }

    /// "docker (sid)".
    pub fn label(&self) -> String {
        format!("{} ({})", self.kind.as_str(), self.suite.name())
    }

    /// The engine's version as it reports it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The TLS listener, when started with one.
    pub fn tls(&self) -> Option<&TlsSetup> {
        self.tls.as_ref()
    }

    /// A file holding the daemon's process id as this machine sees it (for
    /// tests that freeze it; dockerd's own pid file holds its namespace's).
    pub fn pid_file(&self) -> Result<PathBuf> {
        let file = self.dir.join("host.pid");
        let pid = (self
            .live
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
        .as_ref()
        .map(|p| p.daemon_pid)
        .context("the engine is stopped")?;
        fs::write(&file, pid.to_string())?;
        Ok(file)
    }

    /// The engine's own directory (data, sockets, logs, the test summary).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `unix://…/<kind>.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The engine's own CLI, pointed at this engine: a suite's root brings
    /// its own (Debian 12's docker CLI is refused by Docker 29's floor).
    pub fn cli(&self) -> Command {
        cli_command(&self.live.cli())
    }

    /// The same CLI as one line for `sh -c`.
    pub fn cli_line(&self) -> String {
        self.live.cli().join(" ")
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
            self.label(),
            began.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn cli_command(words: &[String]) -> Command {
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}

fn wait_until_ready(
    kind: BackendKind,
    socket: &Path,
    child: &mut Child,
    dir: &Path,
    label: &str,
) -> Result<()> {
    let began = Instant::now();
    let path = match kind {
        BackendKind::Docker => "/_ping",
        BackendKind::Podman => "/v4.0.0/libpod/_ping",
    };
    while began.elapsed() < Duration::from_secs(60) {
        if matches!(get(socket, path), Some((200, _))) {
            eprintln!(
                "xtask: {label} answered after {:.1}s",
                began.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{label} exited ({status}) before answering; see {}",
                dir.join("engine.log").display()
            );
        }
        sleep(Duration::from_millis(200));
    }
    bail!("{label} did not answer within 60 s")
}

/// A private engine's daemon: how it is started, and its processes while
/// it runs. Its teardown, and a test that restarts it, share it.
struct Live {
    kind: BackendKind,
    daemon: Daemon,
    /// The suite's root, for an engine run in a namespace of its own.
    root: Option<PathBuf>,
    dir: PathBuf,
    socket: PathBuf,
    keep: bool,
    cgroup: String,
    label: String,
    /// `None` while a test holds it stopped, and once torn down.
    process: Mutex<Option<Process>>,
    /// The engine's own CLI, as words (a suite root's CLI enters the
    /// namespace of the daemon's latest start).
    cli: Mutex<Vec<String>>,
    /// Torn down: never started again.
    ended: AtomicBool,
}

/// The processes of one start of the daemon.
struct Process {
    child: Child,
    /// The namespace's PID 1, for a suite's root.
    init: Option<u32>,
    /// The daemon's process id as this machine sees it.
    daemon_pid: u32,
}

impl Live {
    fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn cli(&self) -> Vec<String> {
        self.cli
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts the daemon on its directory's data (kept from a previous
    /// start), unless it runs, and waits until it answers. A daemon that
    /// does not answer stays recorded, for the teardown to stop.
    fn start(&self) -> Result<()> {
        let mut slot = self.process.lock().unwrap_or_else(PoisonError::into_inner);
        if self.ended.load(Ordering::SeqCst) {
            bail!("{} is torn down", self.label);
        }
        match slot.as_mut().map(|p| p.child.try_wait()) {
            // It runs: nothing to start.
            Some(Ok(None)) => return Ok(()),
            // A start that never answered, or a daemon that died since.
            Some(_) => *slot = None,
            None => {}
        }
        let log = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("engine.log"))?;
        let mut child = (self.daemon)
            .command(self.root.as_deref(), &self.dir, self.keep)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", self.label))?;
        let ready = wait_until_ready(self.kind, &self.socket, &mut child, &self.dir, &self.label);
        // The namespace's PID 1 and the daemon, as this machine sees them.
        let init = (self.root.as_ref()).and_then(|_| children(child.id()).first().copied());
        let daemon_pid = match init {
            Some(init) => children(init).first().copied().unwrap_or(init),
            None => child.id(),
        };
        let mut cli: Vec<String> = Vec::new();
        match init {
            Some(init) => {
                cli.extend(["nsenter".into(), "-t".into(), init.to_string()]);
                cli.extend(
                    [
                        "-m",
                        "-p",
                        "-r",
                        "--",
                        "/usr/bin/env",
                        "-i",
                        CHROOT_PATH,
                        "HOME=/root",
                    ]
                    .map(String::from),
                );
            }
            None => cli.push("env".into()),
        }
        if self.kind == BackendKind::Podman {
            cli.extend(self.daemon.env.iter().cloned());
        }
        match self.kind {
            BackendKind::Docker => cli.extend(["docker".into(), "-H".into(), self.endpoint()]),
            BackendKind::Podman => cli.extend([
                "podman".into(),
                "--remote".into(),
                "--url".into(),
                self.endpoint(),
            ]),
        }
        *self.cli.lock().unwrap_or_else(PoisonError::into_inner) = cli;
        *slot = Some(Process {
            child,
            init,
            daemon_pid,
        });
        ready
    }

    /// Stops the daemon as a host's service manager would: SIGTERM, and
    /// what the engine does with running containers then is the engine's
    /// (dockerd stops them; a Podman service leaves them to conmon).
    #[allow(
        unsafe_code,
        reason = "kill(2) on the namespace's PID 1, which std cannot signal"
    )]
    fn stop(process: &mut Process) {
        match process.init {
            // SIGTERM to the namespace's PID 1 (unshare ignores it); if the
            // daemon is not gone in time, killing unshare kills PID 1, and
            // with it every process of the namespace.
            Some(init) => {
                // SAFETY: kill(2) on the namespace's PID 1, our grandchild.
                unsafe { libc::kill(init as i32, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline && matches!(process.child.try_wait(), Ok(None)) {
                    sleep(Duration::from_millis(100));
                }
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
            None => stop(&mut process.child, Duration::from_secs(20)),
        }
    }

    /// Containers, daemon, cgroups, directory: all of it, once.
    fn tear_down(&self) {
        // A test holds it stopped: started again, so that its containers
        // are removed through it (a Podman's run on under conmon).
        if self.process.lock().map(|p| p.is_none()).unwrap_or(false) {
            let _ = self.start();
        }
        let mut slot = self.process.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut process) = slot.take() {
            self.remove_running_containers();
            Self::stop(&mut process);
        }
        // Only now: a daemon that the restart thread started dies with that
        // thread (PR_SET_PDEATHSIG), which ends once this is set.
        self.ended.store(true, Ordering::SeqCst);
        drop(slot);
        remove_cgroups(&self.cgroup);
        remove_tree(&self.dir);
        eprintln!("xtask: private {} stopped and removed", self.label);
    }

    fn remove_running_containers(&self) {
        // Shutdown otherwise waits each running container's stop timeout.
        // Stopped ones cost nothing at shutdown and go with the directory
        // (removing a benchmark's thousand of them one by one takes minutes).
        let ids = output(cli_command(&self.cli()).args(["ps", "-q"])).unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut rm = cli_command(&self.cli());
            rm.args(["rm", "-f"]);
            if self.kind == BackendKind::Podman {
                rm.args(["-t", "0"]);
            }
            let _ = run(rm.args(&ids).stdout(Stdio::null()));
        }
    }
}

/// Where a test asks for the engine to be stopped and started again
/// (`ANVYL_ITEST_RESTART`): it writes `stop` there and waits for
/// `stopped`, then writes `start` and waits for the file to go, which it
/// does once the engine answers again (or it says `failed: …`).
pub fn restart_file(dir: &Path) -> PathBuf {
    dir.join("restart")
}

/// Answers restart requests until the engine is torn down.
fn serve_restarts(live: &Live) {
    let file = restart_file(&live.dir);
    let answer = |text: &str| {
        let partial = file.with_extension("answer");
        let _ = fs::write(&partial, text).and_then(|()| fs::rename(&partial, &file));
    };
    while !live.ended.load(Ordering::SeqCst) {
        sleep(Duration::from_millis(100));
        match fs::read_to_string(&file).as_deref().map(str::trim) {
            Ok("stop") => {
                // Locked until it is down: a teardown meanwhile waits.
                let mut slot = live.process.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(mut process) = slot.take() {
                    Live::stop(&mut process);
                }
                drop(slot);
                eprintln!("xtask: {} stopped for a test", live.label);
                answer("stopped");
            }
            Ok("start") => match live.start() {
                Ok(()) => {
                    let _ = fs::remove_file(&file);
                }
                Err(e) => answer(&format!("failed: {e:#}")),
            },
            _ => {}
        }
    }
}

/// Removes the cgroup `name` from every hierarchy, deepest first (a cgroup
/// directory goes with rmdir once it has no tasks and no children).
fn remove_cgroups(name: &str) {
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut tops: Vec<PathBuf> = vec![PathBuf::from("/sys/fs/cgroup").join(name)];
    tops.extend(hierarchies.flatten().map(|h| h.path().join(name)));
    for top in tops {
        let mut dirs = Vec::new();
        let mut pending = vec![top];
        while let Some(dir) = pending.pop() {
            if let Ok(entries) = fs::read_dir(&dir) {
                pending.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                        .map(|e| e.path()),
                );
                dirs.push(dir);
            }
        }
        for dir in dirs.iter().rev() {
            if let Err(e) = fs::remove_dir(dir) {
                eprintln!("xtask: warning: cgroup {} stays: {e}", dir.display());
            }
        }
    }
}

/// Podman's storage below `dir`. In a suite's namespace, its run root and
/// tmpdir are on the namespace's own tmpfs, as a host's are on /run: the
/// namespace's end kills every container, as a reboot would, and a
/// restarted Podman must see the reboot (no `alive` file) and refresh its
/// containers' states — not trust states whose processes are gone, as it
/// would with both kept on disk.
fn podman_storage_args(dir: &Path, in_namespace: bool) -> Vec<String> {
    let volatile = match in_namespace {
        true => PathBuf::from("/run/anvyl-itest"),
        false => dir.to_path_buf(),
    };
    vec![
        "--root".into(),
        dir.join("root").display().to_string(),
        "--runroot".into(),
        volatile.join("run").display().to_string(),
        "--tmpdir".into(),
        volatile.join("tmp").display().to_string(),
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
        if let Some(teardown) = self.teardown.take() {
            teardown.undo();
        }
    }
}

/// The statically linked busybox `busybox-static` installs: the test
/// images are built from scratch with it.
pub const BUSYBOX: &str = "/bin/busybox";

/// Holds `<engines_dir>/.lock` while a task runs engines: they live at
/// fixed paths, and a second run would clear the first one's directories
/// (the leftovers of an interrupted run) under its engines' feet.
pub fn lock() -> Result<std::fs::File> {
    let dir = engines_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let file = std::fs::File::create(dir.join(".lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another cargo xtask itest, bench or demo is running engines in {}; wait for it to end",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Where the private engines live. A Unix socket path must stay under 108
/// bytes; a deep checkout falls back to a directory in /tmp.
pub fn engines_dir() -> PathBuf {
    let dir = crate::project_root().join("target").join("itest");
    if dir.display().to_string().len() < 80 {
        dir
    } else {
        std::env::temp_dir().join(format!("anvyl-itest-{}", std::process::id()))
    }
}
