//! Making sure the engines exist. On a Debian-family system as root the
//! packages are installed (saying so); anywhere else the command to run is
//! printed and the task stops.

use std::path::Path;
use std::process::Command;

use anvyl_core::BackendKind;
use anyhow::{bail, Result};

use crate::engines::BUSYBOX;
use crate::process::run;
use crate::suite::Suite;

/// The Debian packages the real-daemon tests need (OpenSSH for the
/// `ssh://` host test: a private sshd, reached with the ssh client;
/// debootstrap for the newer suites' engines; strace to take statx away
/// from a cleanup, as a kernel before 5.8 does; the private registry, its
/// password file and curl to fill it).
pub const PACKAGES: &[&str] = &[
    "docker.io",
    "podman",
    "busybox-static",
    "openssh-client",
    "openssh-server",
    "debootstrap",
    "strace",
    "docker-registry",
    "apache2-utils",
    "curl",
];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(program).is_file()
}

fn busybox_is_static() -> bool {
    // A dynamically linked busybox would not run in a `FROM scratch` image.
    Command::new("ldd")
        .arg(BUSYBOX)
        .output()
        .map(|o| {
            !o.status.success() || String::from_utf8_lossy(&o.stdout).contains("not a dynamic")
        })
        .unwrap_or(false)
        && Path::new(BUSYBOX).is_file()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Ensures `dockerd`, `podman`, a static busybox and OpenSSH are present,
/// and `debootstrap` when a suite other than this machine's is asked for.
pub fn ensure_engines(engines: &[BackendKind], suites: &[Suite]) -> Result<()> {
    let chroots = suites.iter().any(|s| s.is_chroot());
    if chroots && !is_root() {
        bail!("the trixie and sid engines run from debootstrap roots, which needs root; run as root or pass --engines bookworm");
    }
    let (docker, podman) = (
        engines.contains(&BackendKind::Docker),
        engines.contains(&BackendKind::Podman),
    );
    let missing = (docker && !on_path("dockerd"))
        || (podman && !on_path("podman"))
        || !busybox_is_static()
        || !on_path("ssh")
        || !on_path("sshd")
        || !on_path("strace")
        || !on_path("docker-registry")
        || !on_path("htpasswd")
        || !on_path("curl")
        || (chroots && !on_path("debootstrap"));
    if !missing {
        return Ok(());
    }
    let command = format!("apt-get install -y {}", PACKAGES.join(" "));
    if is_root() && Path::new("/etc/debian_version").exists() {
        eprintln!("xtask: engines missing; installing with: apt-get update && {command}");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        return Ok(());
    }
    bail!("the real-daemon tests need Docker, Podman and a static busybox; install them with:\n    sudo apt-get update && sudo {command}")
}
