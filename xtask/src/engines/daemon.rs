//! The daemon's command line: `dockerd` or `podman system service` with
//! every root, socket and config file below the engine's own directory, and
//! for a suite other than this machine's, the `unshare` + chroot that runs
//! it from the suite's root as tini's child. Kept apart from starting and
//! stopping it (`live.rs`): what to run is decided (and Podman's
//! `containers.conf` written) once per engine, and every restart reuses it.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anvyl_core::BackendKind;
use anyhow::Result;

use crate::suite::{Suite, CHROOT_PATH};
use crate::tls::TlsSetup;

/// Sets the signal a child gets when xtask dies without tearing it down
/// (kill -9): the engines do not outlive the run.
#[allow(
    unsafe_code,
    reason = "prctl(PR_SET_PDEATHSIG) between fork and exec: no safe API"
)]
pub(crate) fn die_with_parent(cmd: &mut Command, signal: i32) {
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
pub(super) struct Daemon {
    argv: Vec<String>,
    /// `NAME=value` words; the CLI of a Podman needs them too.
    pub(super) env: Vec<String>,
}

impl Daemon {
    pub(super) fn new(
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
    pub(super) fn command(&self, root: Option<&Path>, dir: &Path, keep: bool) -> Command {
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
