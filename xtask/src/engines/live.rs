//! A private engine's daemon while it runs: starting it (and again after a
//! test stopped it), the processes of each start as this machine sees them,
//! the engine's own CLI pointed at it, and its teardown — running containers
//! removed, daemon stopped, cgroup parent and directory gone. The teardown
//! and a test's restart share one `Live`, so its processes sit behind a
//! lock.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anvyl_core::BackendKind;
use anyhow::{bail, Context, Result};

use super::daemon::Daemon;
use super::probe::wait_until_ready;
use super::remains::{remove_cgroups, remove_tree};
use crate::process::{output, run, stop};
use crate::suite::{Suite, CHROOT_PATH};
use crate::tls::TlsSetup;

/// A private engine's daemon: how it is started, and its processes while
/// it runs. Its teardown, and a test that restarts it, share it.
pub(super) struct Live {
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
    /// The daemon of `kind` from `suite` (run from its `root`, if it has
    /// one) in `dir`, listening on `socket`: not started yet.
    pub(super) fn new(
        kind: BackendKind,
        suite: Suite,
        root: Option<PathBuf>,
        dir: PathBuf,
        socket: PathBuf,
        tls: Option<&TlsSetup>,
        keep: bool,
    ) -> Result<Self> {
        // dockerd leaves its cgroup parent behind in every hierarchy: a
        // name of this engine's own, removed at teardown.
        let cgroup = format!(
            "anvyl-itest-{}-{}",
            std::process::id(),
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("engine")
        );
        let daemon = Daemon::new(kind, suite, &dir, &socket, tls, &cgroup)?;
        Ok(Self {
            kind,
            daemon,
            root,
            dir,
            socket,
            keep,
            cgroup,
            label: format!("{} ({})", kind.as_str(), suite.name()),
            process: Mutex::new(None),
            cli: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
        })
    }

    pub(super) fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// "docker (sid)".
    pub(super) fn label(&self) -> &str {
        &self.label
    }

    /// Torn down: it never starts again.
    pub(super) fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    fn cli(&self) -> Vec<String> {
        self.cli
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The engine's own CLI, pointed at the daemon's latest start.
    pub(super) fn cli_command(&self) -> Command {
        cli_command(&self.cli())
    }

    /// The same CLI as one line for `sh -c`.
    pub(super) fn cli_line(&self) -> String {
        self.cli().join(" ")
    }

    /// The daemon's process id as this machine sees it; `None` while it is
    /// stopped.
    pub(super) fn daemon_pid(&self) -> Option<u32> {
        (self.process.lock().unwrap_or_else(PoisonError::into_inner))
            .as_ref()
            .map(|p| p.daemon_pid)
    }

    /// Whether a test left the daemon stopped (or it is torn down).
    pub(super) fn is_stopped(&self) -> bool {
        (self.process.lock().unwrap_or_else(PoisonError::into_inner)).is_none()
    }

    /// Starts the daemon on its directory's data (kept from a previous
    /// start), unless it runs, and waits until it answers. A daemon that
    /// does not answer stays recorded, for the teardown to stop.
    pub(super) fn start(&self) -> Result<()> {
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

    /// Stops the daemon for a test, which starts it again with `start`.
    pub(super) fn stop_for_test(&self) {
        // Locked until it is down: a teardown meanwhile waits.
        let mut slot = self.process.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut process) = slot.take() {
            Self::stop(&mut process);
        }
    }

    /// Containers, daemon, cgroups, directory: all of it, once.
    pub(super) fn tear_down(&self) {
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

/// The children of `pid`, as /proc lists them.
fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn cli_command(words: &[String]) -> Command {
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}
