//! The engine matrix: which Debian suite's Docker and Podman a test run
//! uses. `bookworm` is this machine's own packages (Debian 12); `trixie` and
//! `sid` are root file systems made with `debootstrap`, cached under
//! `/var/cache/anvyl-itest/<suite>` and rebuilt only when the package list or
//! the mirror changes, so a second run starts in seconds. Their engines run
//! inside a private mount and PID namespace (see `engines/daemon.rs`);
//! nothing here mounts anything that outlives the command that made it.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::process::run;

/// One column of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// The machine's own `docker.io` and `podman` (Debian 12).
    Bookworm,
    /// Debian 13: Docker 26, Podman 5.4.
    Trixie,
    /// Debian unstable: Docker 28 (run with Docker 29's API floor and image
    /// store), Podman 5.8.
    Sid,
}

/// What a suite's root file system gets, beyond `debootstrap --variant=minbase`.
/// `tini` is PID 1 of each engine's namespace (it reaps the container shims);
/// `runc` because crun refuses this host's hybrid cgroups.
pub const PACKAGES: &[&str] = &[
    "docker.io",
    "docker-cli",
    "containerd",
    "runc",
    "podman",
    "conmon",
    "netavark",
    "aardvark-dns",
    "catatonit",
    "golang-github-containers-common",
    "iptables",
    "ca-certificates",
    "tini",
];

/// The file in a cached root that says what it was built from.
const STAMP: &str = ".anvyl-itest-stamp";

impl Suite {
    pub const ALL: [Suite; 3] = [Suite::Bookworm, Suite::Trixie, Suite::Sid];

    /// How long the suite's tests take, relative to the others: sid's
    /// newest engines took 1426 s of a 2615 s run (bookworm 621, trixie
    /// 503), so it gets a lane of its own.
    pub fn weight(self) -> u32 {
        match self {
            Suite::Bookworm | Suite::Trixie => 1,
            Suite::Sid => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
            Suite::Sid => "sid",
        }
    }

    /// Whether the engines come from a cached root rather than this machine.
    pub fn is_chroot(self) -> bool {
        self != Suite::Bookworm
    }

    /// The API version floor the suite's dockerd is started with: sid proves
    /// that anvyl works with Docker 29, which refuses every client below 1.44.
    pub fn docker_min_api(self) -> Option<&'static str> {
        (self == Suite::Sid).then_some("1.44")
    }

    /// Extra dockerd flags: sid uses the containerd image store, Docker 29's
    /// default.
    pub fn docker_flags(self) -> &'static [&'static str] {
        match self {
            Suite::Sid => &["--feature", "containerd-snapshotter=true"],
            _ => &[],
        }
    }

    /// Where the suite's root lives.
    pub fn root(self) -> PathBuf {
        cache_dir().join(self.name())
    }

    /// Makes sure the suite's root exists and matches today's package list;
    /// returns it. The machine's own suite has no root.
    pub fn prepare(self) -> Result<Option<PathBuf>> {
        if !self.is_chroot() {
            return Ok(None);
        }
        let root = self.root();
        let mirror = mirror();
        let stamp = format!("{} {} {}\n", self.name(), mirror, PACKAGES.join(" "));
        if fs::read_to_string(root.join(STAMP)).ok().as_deref() == Some(stamp.as_str()) {
            return Ok(Some(root));
        }
        let began = Instant::now();
        eprintln!(
            "xtask: making the {} root in {} from {mirror} (about a minute, once)",
            self.name(),
            root.display()
        );
        // Built aside and renamed into place: an interrupted build never
        // looks finished, and a concurrent run never sees half a root.
        let building = cache_dir().join(format!("{}.building-{}", self.name(), std::process::id()));
        let result = self.build(&building, &mirror, &stamp);
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&building);
            return Err(e);
        }
        if root.exists() {
            fs::remove_dir_all(&root)
                .with_context(|| format!("remove the stale {}", root.display()))?;
        }
        fs::rename(&building, &root)
            .with_context(|| format!("move {} to {}", building.display(), root.display()))?;
        eprintln!(
            "xtask: {} root ready in {:.0}s",
            self.name(),
            began.elapsed().as_secs_f64()
        );
        Ok(Some(root))
    }

    fn build(self, root: &std::path::Path, mirror: &str, stamp: &str) -> Result<()> {
        fs::create_dir_all(cache_dir())?;
        run(Command::new("debootstrap")
            .args(["--variant=minbase", self.name()])
            .arg(root)
            .arg(mirror)
            .stdout(std::process::Stdio::null()))
        .context("debootstrap (apt-get install debootstrap)")?;
        // Nothing starts during the install; unstable's Release files may
        // be past their Valid-Until.
        let policy = root.join("usr/sbin/policy-rc.d");
        fs::write(&policy, "#!/bin/sh\nexit 101\n")?;
        run(Command::new("chmod").arg("+x").arg(&policy))?;
        fs::write(
            root.join("etc/apt/apt.conf.d/99anvyl-itest"),
            "Acquire::Check-Valid-Until \"false\";\n",
        )?;
        // Package scripts want /proc and /dev: mounted in a namespace that
        // vanishes with the install.
        let install = format!(
            "apt-get update -qq && apt-get install -y -qq --no-install-recommends {} >/dev/null && apt-get clean",
            PACKAGES.join(" ")
        );
        run(Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["--kill-child=SIGKILL", "sh", "-c"])
            .arg(
                "set -e; R=$1; shift; mount --bind \"$R\" \"$R\"; mount -t proc proc \"$R/proc\"; \
                 mount --rbind /dev \"$R/dev\"; exec chroot \"$R\" \"$@\"",
            )
            .arg("sh")
            .arg(root)
            .args(["/usr/bin/env", "-i", CHROOT_PATH, "HOME=/root"])
            .args(["DEBIAN_FRONTEND=noninteractive", "sh", "-c", &install]))
        .with_context(|| format!("install the {} engines", self.name()))?;
        fs::write(root.join(STAMP), stamp)?;
        Ok(())
    }
}

/// `PATH` inside a suite's root.
pub const CHROOT_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// `/var/cache/anvyl-itest`, or `ANVYL_ITEST_CACHE`.
fn cache_dir() -> PathBuf {
    std::env::var_os("ANVYL_ITEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/anvyl-itest"))
}

/// The Debian mirror this machine's apt uses (`ANVYL_ITEST_MIRROR` wins):
/// the same archive that installed its own engines.
fn mirror() -> String {
    if let Ok(mirror) = std::env::var("ANVYL_ITEST_MIRROR") {
        return mirror;
    }
    let sources = [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ]
    .iter()
    .filter_map(|f| fs::read_to_string(f).ok())
    .collect::<Vec<_>>()
    .join("\n");
    sources
        .split_whitespace()
        .find(|w| {
            (w.starts_with("http://") || w.starts_with("https://"))
                && w.trim_end_matches('/').ends_with("/debian")
        })
        .map(|w| w.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}
