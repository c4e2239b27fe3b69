//! Teardown that also happens on Ctrl-C and SIGTERM. Every private engine
//! and every test process group registers here while it lives; the first
//! SIGINT, SIGTERM or SIGHUP stops the test processes, tears every
//! registered engine down (containers, daemon, namespace, cgroups,
//! directories) and exits 130. A normal end unregisters through `Drop`, so
//! each engine is torn down exactly once, by whoever takes it first.
//!
//! Test commands run in their own process group: a `timeout` or a CI runner
//! that signals only xtask still reaches them, and xtask never signals the
//! shell that started it.

use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};

/// Something that must be undone: called at most once.
pub type Undo = Box<dyn FnOnce() + Send>;

/// A registered undo; taking it out of the slot is what makes it run once.
#[derive(Clone)]
pub struct Guard(Arc<Mutex<Option<Undo>>>);

impl Guard {
    /// Runs the undo now, unless it already ran. The slot stays locked while
    /// it runs: a signal arriving meanwhile waits for it to finish rather
    /// than exiting halfway through.
    pub fn undo(&self) {
        let Ok(mut slot) = self.0.lock() else { return };
        if let Some(undo) = slot.take() {
            undo();
        }
    }
}

struct Registry {
    undos: Vec<Guard>,
    groups: Vec<u32>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // The handler is installed with the first registration.
        if let Err(e) = ctrlc::set_handler(on_signal) {
            eprintln!("xtask: warning: no teardown on Ctrl-C/SIGTERM: {e}");
        }
        Mutex::new(Registry {
            undos: Vec::new(),
            groups: Vec::new(),
        })
    })
}

/// Registers `undo` to run on a signal; the returned guard runs it otherwise.
pub fn register(undo: Undo) -> Guard {
    let guard = Guard(Arc::new(Mutex::new(Some(undo))));
    if let Ok(mut registry) = registry().lock() {
        registry.undos.push(guard.clone());
    }
    guard
}

/// Installs the handler before any work starts.
pub fn install() {
    let _ = registry();
}

fn on_signal() {
    eprintln!("xtask: interrupted: stopping the tests and the private engines");
    let (groups, undos) = match registry().lock() {
        Ok(mut registry) => (
            std::mem::take(&mut registry.groups),
            std::mem::take(&mut registry.undos),
        ),
        Err(_) => std::process::exit(130),
    };
    for group in groups {
        // SAFETY: kill(2) on a process group this process created.
        unsafe { libc::kill(-(group as i32), libc::SIGTERM) };
    }
    // Newest first: a TLS Docker started for the many-hosts tests goes
    // before the engines it was started next to.
    for guard in undos.into_iter().rev() {
        guard.undo();
    }
    std::process::exit(130);
}

/// Runs `cmd` to the end in its own process group (inheriting output), so
/// that a signal to xtask reaches it through the handler above.
pub fn run_group(cmd: &mut Command) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut child: Child = cmd
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let pid = child.id();
    if let Ok(mut registry) = registry().lock() {
        registry.groups.push(pid);
    }
    let status: std::io::Result<ExitStatus> = child.wait();
    if let Ok(mut registry) = registry().lock() {
        registry.groups.retain(|g| *g != pid);
    }
    let status = status.with_context(|| format!("wait for {cmd:?}"))?;
    if !status.success() {
        anyhow::bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
