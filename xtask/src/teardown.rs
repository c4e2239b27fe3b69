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

/// Held by whichever thread runs an undo: the signal handler takes it
/// before it exits, so an undo the main thread is running (an engine's
/// `Drop`) is finished, not cut off halfway.
static UNDOING: Mutex<()> = Mutex::new(());

impl Guard {
    /// Runs the undo now, unless it already ran. The slot stays locked while
    /// it runs: a signal arriving meanwhile waits for it to finish rather
    /// than exiting halfway through.
    pub fn undo(&self) {
        let Ok(mut slot) = self.0.lock() else { return };
        if let Some(undo) = slot.take() {
            let _undoing = UNDOING.lock().unwrap_or_else(|p| p.into_inner());
            undo();
        }
    }
}

struct Registry {
    undos: Vec<Guard>,
    groups: Vec<u32>,
    /// Set by the signal handler: from then on no test command starts.
    /// The main thread goes on while the handler tears the engines down
    /// (the failed test run returns, the next engine's tests would begin):
    /// a group it started then would outlive xtask, testing an engine that
    /// is gone — a CI run stopped by SIGTERM left one so.
    interrupted: bool,
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
            interrupted: false,
        })
    })
}

/// Registers `undo` to run on a signal; the returned guard runs it otherwise.
/// Once interrupted, the handler has taken its list: `undo` runs at once.
pub fn register(undo: Undo) -> Guard {
    let guard = Guard(Arc::new(Mutex::new(Some(undo))));
    let late = match registry().lock() {
        Ok(mut registry) if !registry.interrupted => {
            registry.undos.push(guard.clone());
            false
        }
        _ => true,
    };
    if late {
        guard.undo();
    }
    guard
}

/// Fails once the run is interrupted: nothing new is started then.
pub fn ensure_running() -> Result<()> {
    match registry().lock() {
        Ok(registry) if !registry.interrupted => Ok(()),
        _ => anyhow::bail!("interrupted"),
    }
}

/// Installs the handler before any work starts.
pub fn install() {
    let _ = registry();
}

#[allow(
    unsafe_code,
    reason = "kill(2) on a process group, which std cannot signal"
)]
fn on_signal() {
    eprintln!("xtask: interrupted: stopping the tests and the private engines");
    let Some((groups, undos)) = interrupt() else {
        std::process::exit(130)
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
    // An undo the main thread began (an engine started after the signal,
    // torn down at once) ends before the process does.
    let _undoing = UNDOING.lock();
    std::process::exit(130);
}

/// Marks the run interrupted and takes what is to be stopped and undone.
fn interrupt() -> Option<(Vec<u32>, Vec<Guard>)> {
    let mut registry = registry().lock().ok()?;
    registry.interrupted = true;
    Some((
        std::mem::take(&mut registry.groups),
        std::mem::take(&mut registry.undos),
    ))
}

thread_local! {
    /// The lane this thread runs, when suites run side by side: the test
    /// commands' output lines then begin with `[lane] `.
    static LANE: std::cell::RefCell<Option<&'static str>> = const { std::cell::RefCell::new(None) };
}

/// Marks this thread's test commands' output with `[lane] ` from now on.
pub fn set_lane(lane: &'static str) {
    LANE.with(|l| *l.borrow_mut() = Some(lane));
}

/// Copies `from` line by line to `to`, each line after `prefix`.
fn prefix_lines(
    from: impl std::io::Read + Send + 'static,
    mut to: impl std::io::Write + Send + 'static,
    prefix: &'static str,
) -> std::thread::JoinHandle<()> {
    use std::io::BufRead;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).split(b'\n') {
            let Ok(line) = line else { break };
            let mut whole = format!("[{prefix}] ").into_bytes();
            whole.extend_from_slice(&line);
            whole.push(b'\n');
            // One write per line: lines of two lanes never interleave.
            let _ = to.write_all(&whole);
        }
    })
}

/// Runs `cmd` to the end in its own process group (inheriting output, or
/// with each line marked by its lane, see [`set_lane`]), so that a signal
/// to xtask reaches it through the handler above. Refused once the run is
/// interrupted.
pub fn run_group(cmd: &mut Command) -> Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let lane = LANE.with(|l| *l.borrow());
    if lane.is_some() {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child: Child;
    let pid = {
        // Spawned and registered under the lock: the handler either sees
        // this group or has already refused it.
        let mut registry = registry()
            .lock()
            .map_err(|_| anyhow::anyhow!("teardown registry poisoned"))?;
        if registry.interrupted {
            anyhow::bail!("interrupted: not running {cmd:?}");
        }
        child = cmd
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot run {cmd:?}"))?;
        registry.groups.push(child.id());
        child.id()
    };
    let copies: Vec<_> = match lane {
        Some(lane) => vec![
            (child.stdout.take()).map(|out| prefix_lines(out, std::io::stdout(), lane)),
            (child.stderr.take()).map(|err| prefix_lines(err, std::io::stderr(), lane)),
        ],
        None => Vec::new(),
    };
    let status: std::io::Result<ExitStatus> = child.wait();
    for copy in copies.into_iter().flatten() {
        let _ = copy.join();
    }
    if let Ok(mut registry) = registry().lock() {
        registry.groups.retain(|g| *g != pid);
    }
    let status = status.with_context(|| format!("wait for {cmd:?}"))?;
    if !status.success() {
        anyhow::bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_test_command_starts_once_interrupted() {
        run_group(&mut Command::new("true")).expect("runs before");
        let marker = tempfile::tempdir().unwrap();
        let touched = marker.path().join("ran");
        assert!(interrupt().is_some());
        let refused = run_group(Command::new("touch").arg(&touched));
        assert!(refused.unwrap_err().to_string().contains("interrupted"));
        assert!(!touched.exists(), "the command ran after the interrupt");
        // Nothing new starts, and what registers late is undone at once.
        assert!(ensure_running().is_err());
        let undone = Arc::new(Mutex::new(false));
        let flag = undone.clone();
        register(Box::new(move || *flag.lock().unwrap() = true));
        assert!(*undone.lock().unwrap(), "a late engine was left running");
    }
}
