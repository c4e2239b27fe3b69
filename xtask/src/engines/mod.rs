//! Private engines: a `dockerd` and a `podman system service`, each with its
//! own data root, run root and socket below one directory under `target/`.
//! A suite other than this machine's runs its engine from the suite's root
//! (`suite.rs`) in a private mount and PID namespace, with tini as PID 1.
//! Engines run in their own process group (a Ctrl-C meant for the tests
//! does not kill them mid-write), die with xtask (PDEATHSIG), and are
//! stopped and removed — containers, daemon, namespace, cgroup parent,
//! directory — by `Drop` or by the signal handler in `teardown.rs`.
//!
//! This module is the face the tasks use, [`Engine`]; the parts live apart:
//! the daemon's command line (`daemon`), its processes while it runs and
//! its teardown (`live`), asking it over its socket (`probe`), a test's
//! restart request (`restart`), what it leaves on the machine (`remains`),
//! the base image (`image`) and the engines' directory and lock (`lock`).

mod daemon;
mod image;
mod live;
mod lock;
mod probe;
mod remains;
mod restart;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anvyl_core::BackendKind;
use anyhow::{Context, Result};

use crate::suite::Suite;
use crate::teardown;
use crate::tls::TlsSetup;
use live::Live;

pub(crate) use daemon::die_with_parent;
pub use image::{BASE_IMAGE, BUSYBOX};
pub use lock::{engines_dir, lock};
pub use restart::restart_file;

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
            remains::remove_tree(&dir);
        }
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let tls = tls
            .then(|| crate::tls::generate(&dir.join("tls")))
            .transpose()?;
        let socket = dir.join(format!("{}.sock", kind.as_str()));
        fs::File::create(dir.join("engine.log"))?;
        let live = Live::new(
            kind,
            suite,
            root,
            dir.clone(),
            socket.clone(),
            tls.as_ref(),
            keep,
        )?;
        let live = Arc::new(live);
        let label = live.label().to_string();
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
            std::thread::spawn(move || restart::serve_restarts(&live));
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
        engine.version = probe::version(kind, suite, &engine.socket, &label)?;
        eprintln!(
            "xtask: private {label} {} answers at {}",
            engine.version,
            engine.endpoint()
        );
        Ok(engine)
    }

    /// Starts the daemon again if a test left it stopped.
    pub fn ensure_started(&self) -> Result<()> {
        match self.live.is_stopped() {
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
        let pid = (self.live.daemon_pid()).context("the engine is stopped")?;
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
        self.live.cli_command()
    }

    /// The same CLI as one line for `sh -c`.
    pub fn cli_line(&self) -> String {
        self.live.cli_line()
    }

    /// Builds the base image: `FROM scratch` plus a static busybox.
    pub fn build_base_image(&self) -> Result<()> {
        image::build(self.cli(), &self.dir, &self.label())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(teardown) = self.teardown.take() {
            teardown.undo();
        }
    }
}
