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

use percent_encoding::percent_decode_str;
use tokio::process::{Child, Command};
use url::{Host, Url};

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
    /// path, the engine's usual socket (`default_socket`) is meant. The URI
    /// is read by the `url` crate, as `docker -H` and Podman read theirs
    /// (Go's `net/url`): `[::1]` is an IPv6 address, a password, a query or
    /// a fragment is refused, as Docker refuses them, and the socket path is
    /// %-decoded (Podman stores a space in a connection's path as `%20`).
    pub fn parse(uri: &str, default_socket: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid ssh endpoint {uri:?}: {why}");
        if !uri.starts_with("ssh://") {
            return Err(bad("it must start with ssh://"));
        }
        // The URL standard drops tabs and newlines anywhere and trims spaces
        // and controls at either end: `ho\nst` would reach `host`. What ssh
        // is given must be what the user wrote.
        if uri.chars().any(char::is_control) || uri.trim() != uri {
            return Err(bad(
                "it cannot hold control characters or begin or end with a space",
            ));
        }
        let url = Url::parse(uri).map_err(|e| match e {
            url::ParseError::InvalidPort => bad("the port must be a number"),
            e => bad(&e.to_string()),
        })?;
        if url.password().is_some() {
            return Err(bad(
                "a password cannot be given (ssh runs in batch mode: keys or an agent)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it cannot have a ?query or a #fragment"));
        }
        // Names that ssh would read as options are refused outright. `url`
        // leaves %-escapes in a user and a host name as written; they are
        // refused too rather than decoded into something ssh reads.
        let safe = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        let host = match url.host() {
            Some(Host::Domain(name)) if safe(name) => name.to_string(),
            // ssh takes an IPv6 address bare (`me@::1`), its port by `-p`.
            Some(Host::Ipv6(address)) => address.to_string(),
            // Not met for ssh:// (`url` reads an IPv4 address as a name for
            // schemes it does not know), but as good a destination.
            Some(Host::Ipv4(address)) => address.to_string(),
            _ => return Err(bad("no usable host name")),
        };
        let user = url.username();
        if !user.is_empty() && !safe(user) {
            return Err(bad("no usable user name"));
        }
        let socket = match percent_decode_str(url.path()).decode_utf8() {
            Ok(path) if path.is_empty() || path == "/" => default_socket.to_string(),
            Ok(path) => path.into_owned(),
            Err(_) => return Err(bad("the socket path is not UTF-8")),
        };
        // `-L local:remote` cannot carry a colon in either socket path.
        if socket.contains(':') {
            return Err(bad(
                "the socket path cannot contain ':' (ssh cannot forward it)",
            ));
        }
        Ok(Self {
            destination: match user {
                "" => host,
                user => format!("{user}@{host}"),
            },
            port: url.port(),
            socket,
        })
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An IPv6 address goes back into its brackets.
        let destination = match self.destination.rsplit_once('@') {
            Some((user, host)) if host.contains(':') => format!("{user}@[{host}]"),
            None if self.destination.contains(':') => format!("[{}]", self.destination),
            _ => self.destination.clone(),
        };
        match self.port {
            Some(port) => write!(f, "ssh://{destination}:{port}{}", self.socket),
            None => write!(f, "ssh://{destination}{}", self.socket),
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

    #[test]
    fn an_ipv6_address_is_given_to_ssh_bare_and_shown_in_brackets() {
        let t = SshTarget::parse("ssh://me@[fd00::5]:2222/run/x.sock", "/s").unwrap();
        assert_eq!((t.destination.as_str(), t.port), ("me@fd00::5", Some(2222)));
        assert_eq!(t.to_string(), "ssh://me@[fd00::5]:2222/run/x.sock");
        let t = SshTarget::parse("ssh://[::1]", "/s").unwrap();
        assert_eq!((t.destination.as_str(), t.port), ("::1", None));
        assert_eq!(t.to_string(), "ssh://[::1]/s");
        // A zone, and an address without its closing bracket.
        for bad in ["ssh://[fe80::1%25eth0]/s", "ssh://[::1/s"] {
            let err = SshTarget::parse(bad, "/s").unwrap_err();
            assert!(err.ends_with("invalid IPv6 address"), "{err}");
        }
    }

    #[test]
    fn names_are_taken_as_written_and_the_socket_path_decoded() {
        // Not lowercased: ssh's configuration may match `Host Build-Box`.
        let t = SshTarget::parse("ssh://Me@Build-Box:22", "/s").unwrap();
        assert_eq!(t.destination, "Me@Build-Box");
        assert_eq!(t.to_string(), "ssh://Me@Build-Box:22/s");
        let t = SshTarget::parse("ssh://box/run/my%20engine.sock", "/s").unwrap();
        assert_eq!(t.socket, "/run/my engine.sock");
        // A %-escape in a user or host name is refused, not decoded.
        for (bad, why) in [
            ("ssh://%2Dx@box", "no usable user name"),
            ("ssh://j%C3%B6rg@box", "no usable user name"),
            ("ssh://b%6Fx", "no usable host name"),
            ("ssh://box/a%3Ab.sock", "cannot contain ':'"),
        ] {
            let err = SshTarget::parse(bad, "/s").unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn what_url_reads_but_ssh_cannot_use_is_refused() {
        for (bad, why) in [
            ("ssh://me:secret@box", "a password cannot be given"),
            ("ssh://box/s.sock?x=1", "?query"),
            ("ssh://box/s.sock#x", "#fragment"),
            ("ssh:///run/s.sock", "no usable host name"),
            ("ssh://host:70000", "the port must be a number"),
            // The URL standard would drop the newline and read `host`.
            ("ssh://ho\nst", "control characters"),
            ("ssh://host ", "control characters"),
            ("ssh:host", "it must start with ssh://"),
        ] {
            let err = SshTarget::parse(bad, "/s").unwrap_err();
            assert!(
                err.starts_with(&format!("invalid ssh endpoint {bad:?}: ")) && err.contains(why),
                "{bad}: {err}"
            );
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
