//! `ssh://` hosts through the user's own OpenSSH client — its config, its
//! agent, its known hosts — the way `docker -H ssh://` and `podman --url
//! ssh://` reach a remote engine. anvyl forwards a private local socket to
//! the engine's socket on the far side (`ssh -L local.sock:remote.sock`)
//! and talks to the local one. The client runs in batch mode: a password
//! prompt would hang a fleet cleanup, so keys (or the agent) are required.
//! The tunnel lives as long as the command: it is killed when dropped and,
//! should anvyl itself be killed, when its parent dies.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::os::unix::fs::PermissionsExt;

use tokio::process::{Child, Command};

/// Where an `ssh://` endpoint points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `user@host` or `host`, as ssh takes it.
    pub destination: String,
    /// The port, when the URI names one.
    pub port: Option<u16>,
    /// The engine's socket on the far side.
    pub socket: String,
}

impl SshTarget {
    /// Parses `ssh://[user@]host[:port][/path/to/engine.sock]`; without a
    /// path, the engine's usual socket (`default_socket`) is meant.
    pub fn parse(uri: &str, default_socket: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid ssh endpoint {uri:?}: {why}");
        let rest = uri
            .strip_prefix("ssh://")
            .ok_or_else(|| bad("it must start with ssh://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, hp)) => (Some(user), hp),
            None => (None, authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| bad("the port must be a number"))?;
                (host, Some(port))
            }
            None => (host_port, None),
        };
        // Names that ssh would read as options are refused outright.
        let safe = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c))
        };
        if !safe(host) {
            return Err(bad("no usable host name"));
        }
        if let Some(user) = user {
            if !safe(user) {
                return Err(bad("no usable user name"));
            }
        }
        let socket = if path.is_empty() || path == "/" {
            default_socket.to_string()
        } else {
            path.to_string()
        };
        // `-L local:remote` cannot carry a colon in either socket path.
        if socket.contains(':') {
            return Err(bad(
                "the socket path cannot contain ':' (ssh cannot forward it)",
            ));
        }
        Ok(Self {
            destination: match user {
                Some(user) => format!("{user}@{host}"),
                None => host.to_string(),
            },
            port,
            socket,
        })
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "ssh://{}:{port}{}", self.destination, self.socket),
            None => write!(f, "ssh://{}{}", self.destination, self.socket),
        }
    }
}

/// A running `ssh -L` forwarding a local socket to an engine's socket.
#[derive(Debug)]
pub struct Tunnel {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tunnel {
    /// Starts `ssh` (the words of `command`, e.g. `ssh -F ~/.ssh/work`) and
    /// waits until the forwarded socket accepts a connection, at most
    /// `wait`. That the socket exists is not enough: ssh binds it before it
    /// listens, and a connection in between is refused (seen in CI, on a
    /// loaded machine, as "Connection refused" on the first request).
    pub async fn open(
        target: &SshTarget,
        command: &[String],
        identity: Option<&Path>,
        wait: Duration,
    ) -> Result<Self, String> {
        let (program, options) = command
            .split_first()
            .ok_or("the ssh command is empty (setting ssh_command)")?;
        // Only this user may reach the forwarded socket, whatever bind mask
        // the user's ssh configuration asks for.
        let dir = tempfile::Builder::new()
            .prefix("anvyl-ssh-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| format!("cannot make a directory for the ssh tunnel: {e}"))?;
        let socket = dir.path().join("engine.sock");
        // ssh's messages go to a file, not a pipe: a pipe nobody reads once
        // the tunnel is up fills (`ssh -v`) and stalls the tunnel.
        let log_path = dir.path().join("ssh.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot make the ssh log: {e}"))?;
        let mut ssh = Command::new(program);
        ssh.args(options)
            .args([
                "-nNT",
                "-o",
                "BatchMode=yes",
                "-o",
                "ExitOnForwardFailure=yes",
            ])
            .args(["-o", "StreamLocalBindUnlink=yes", "-o", "ControlPath=none"])
            .arg("-L")
            .arg(format!("{}:{}", socket.display(), target.socket));
        if let Some(port) = target.port {
            ssh.arg("-p").arg(port.to_string());
        }
        if let Some(identity) = identity {
            ssh.arg("-i").arg(identity);
        }
        ssh.arg("--")
            .arg(&target.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C at the terminal is anvyl's to
            // handle, and anvyl still needs the tunnel to clean up after it.
            .process_group(0);
        die_with_parent(&mut ssh);
        let child = ssh
            .spawn()
            .map_err(|e| format!("cannot run {program:?}: {e}"))?;
        // A tunnel from here on: a timeout, an error or a cancelled wait
        // drops it, and its Drop ends the whole process group.
        let mut tunnel = Self {
            child,
            socket,
            _dir: dir,
        };
        let began = Instant::now();
        loop {
            if tokio::net::UnixStream::connect(&tunnel.socket)
                .await
                .is_ok()
            {
                return Ok(tunnel);
            }
            if let Some(status) = tunnel.child.try_wait().map_err(|e| e.to_string())? {
                let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
                let said = stderr.lines().rev().find(|l| !l.trim().is_empty());
                return Err(format!(
                    "ssh to {} exited ({status}){}",
                    target.destination,
                    said.map(|l| format!(": {}", l.trim())).unwrap_or_default()
                ));
            }
            if began.elapsed() > wait {
                return Err(format!(
                    "ssh to {} did not forward {} within {}s",
                    target.destination,
                    target.socket,
                    wait.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The local end: `unix://…`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Whether its ssh process still runs (and so still forwards).
    pub fn is_open(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // The whole process group it was started in: an `ssh_command` that
        // wraps ssh (a script, strace) must not leave its ssh behind.
        if let Some(pid) = self.child.id() {
            kill_group(pid);
        }
        let _ = self.child.start_kill();
    }
}

#[allow(
    unsafe_code,
    reason = "kill(2) of a process group, which std cannot signal"
)]
fn kill_group(leader: u32) {
    // SAFETY: kill(2) touches no memory of ours. The group is the tunnel's
    // own (`process_group(0)`), and its leader is not reaped yet (`Child`
    // holds it), so the id cannot have been reused.
    unsafe { libc::kill(-(leader as i32), libc::SIGKILL) };
}

/// Asks the kernel to end the tunnel when anvyl dies, even by kill -9: a
/// forwarded socket must not outlive the command that needed it.
#[allow(
    unsafe_code,
    reason = "prctl(PR_SET_PDEATHSIG) between fork and exec: no safe API"
)]
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec here.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ssh_uri_names_destination_port_and_socket() {
        let t = SshTarget::parse("ssh://core@10.0.0.5:2222/run/podman/podman.sock", "/x").unwrap();
        assert_eq!(t.destination, "core@10.0.0.5");
        assert_eq!(t.port, Some(2222));
        assert_eq!(t.socket, "/run/podman/podman.sock");
        let t = SshTarget::parse("ssh://build-box", "/var/run/docker.sock").unwrap();
        assert_eq!((t.destination.as_str(), t.port), ("build-box", None));
        assert_eq!(t.socket, "/var/run/docker.sock");
    }

    #[test]
    fn an_ssh_uri_that_ssh_would_read_as_an_option_is_refused() {
        for bad in [
            "ssh://-oProxyCommand=sh",
            "ssh://me@-x",
            "ssh://host:port",
            "ssh://",
            "tcp://host",
            "ssh://a b@host",
            "ssh://host/tmp/a:b.sock",
        ] {
            assert!(SshTarget::parse(bad, "/s").is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_tunnel_that_cannot_start_says_what_ssh_said() {
        let target = SshTarget::parse("ssh://nobody@127.0.0.1:1", "/s").unwrap();
        let command = vec![
            "sh".to_string(),
            "-c".into(),
            "echo 'ssh: connect to host 127.0.0.1 port 1: Connection refused' >&2; exit 255".into(),
        ];
        let err = Tunnel::open(&target, &command, None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.contains("Connection refused"), "{err}");
        assert!(err.contains("exit status: 255"), "{err}");
    }
}
