//! The private engine stopped and started again under a test, as a host's
//! service manager restarts it, through the file `cargo xtask itest`
//! watches for the tests it runs alone with their engine (module
//! `restart` of the end-to-end tests; `ANVYL_ITEST_RESTART`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Stops and starts the engine; one per test. Dropped with the engine
/// stopped (a failed assertion), it starts it again for the tests after.
pub struct EngineSwitch {
    file: PathBuf,
    /// Whether the engine's containers outlive its restart, as xtask says
    /// (`ANVYL_ITEST_RESTART_KEEPS`).
    pub keeps_containers: bool,
    stopped: std::cell::Cell<bool>,
}

/// How long xtask may take: a Docker stops its running containers first
/// (their stop timeout), a suite's root is entered afresh.
const WITHIN: Duration = Duration::from_secs(120);

impl EngineSwitch {
    /// Reads the environment; panics with the reason when run otherwise.
    pub fn from_env() -> Self {
        Self {
            file: PathBuf::from(crate::required("ANVYL_ITEST_RESTART")),
            keeps_containers: crate::required("ANVYL_ITEST_RESTART_KEEPS") == "1",
            stopped: std::cell::Cell::new(false),
        }
    }

    /// Stops the engine; returns once it is down.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.ask("stop");
        self.wait(|answer| answer.as_deref() == Some("stopped"), "stopped");
    }

    /// Starts it again on the same data; returns once it answers.
    pub fn start(&self) {
        self.ask("start");
        self.wait(|answer| answer.is_none(), "started");
        self.stopped.set(false);
    }

    fn ask(&self, what: &str) {
        let partial = self.file.with_extension("request");
        std::fs::write(&partial, what)
            .and_then(|()| std::fs::rename(&partial, &self.file))
            .unwrap_or_else(|e| panic!("ask xtask to {what} the engine: {e}"));
    }

    fn wait(&self, done: impl Fn(&Option<String>) -> bool, what: &str) {
        let began = Instant::now();
        loop {
            let answer = std::fs::read_to_string(&self.file).ok();
            if done(&answer) {
                eprintln!(
                    "restart: engine {what} in {:.1}s",
                    began.elapsed().as_secs_f64()
                );
                return;
            }
            if let Some(failed) = answer.as_deref().filter(|a| a.starts_with("failed")) {
                panic!("xtask could not restart the engine: {failed}");
            }
            assert!(
                began.elapsed() < WITHIN,
                "the engine not {what} in {WITHIN:?}: {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for EngineSwitch {
    fn drop(&mut self) {
        if self.stopped.get() {
            // Best effort, without a second panic: xtask also starts an
            // engine a test left stopped.
            let _ = std::fs::write(&self.file, "start");
        }
    }
}
