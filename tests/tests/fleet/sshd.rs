//! A private OpenSSH server for the SSH host test: one generated key let
//! in, on a loopback port, and the tunnels anvyl left to it counted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn sha256_hex(text: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A private sshd on a loopback port that lets one generated key in.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub config: PathBuf,
}

impl Sshd {
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let keygen = |file: &str| {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(file))
                .status()
                .unwrap();
            assert!(status.success());
        };
        keygen("host_key");
        keygen("client_key");
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // Privilege separation needs this directory (absent where no sshd
        // ever ran as a service).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 AllowStreamLocalForwarding yes\nX11Forwarding no\n"
            ),
        )
        .unwrap();
        let host_key = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let key = host_key
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {key}\n"),
        )
        .unwrap();
        // The client trusts exactly this host key: no blind acceptance.
        let config = dir.join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host *\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n"
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("start sshd");
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "sshd did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            config,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ssh processes still forwarding to this sshd's port.
pub fn tunnels_to(port: u16) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", &format!("anvyl-ssh-.* -p {port} ")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Registers the Podman engine behind `uri` (an `ssh://` endpoint) as host
/// `sshpod` of `installation`; its row of `host list`.
pub fn add_ssh_host(installation: &super::Installation, uri: &str) -> serde_json::Value {
    installation.ok(&[
        "host",
        "add",
        "sshpod",
        "--backend",
        "podman",
        "--endpoint",
        uri,
    ]);
    super::host_row(installation, "sshpod")
}
