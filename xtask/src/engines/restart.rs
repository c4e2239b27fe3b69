//! Restarting an engine for a test: the test process cannot reach xtask's
//! `Live`, so it asks through a file in the engine's directory, which a
//! thread per engine serves until the engine is torn down.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use super::live::Live;

/// Where a test asks for the engine to be stopped and started again
/// (`ANVYL_ITEST_RESTART`): it writes `stop` there and waits for
/// `stopped`, then writes `start` and waits for the file to go, which it
/// does once the engine answers again (or it says `failed: …`).
pub fn restart_file(dir: &Path) -> PathBuf {
    dir.join("restart")
}

/// Answers restart requests until the engine is torn down.
pub(super) fn serve_restarts(live: &Live) {
    let file = restart_file(live.dir());
    let answer = |text: &str| {
        let partial = file.with_extension("answer");
        let _ = fs::write(&partial, text).and_then(|()| fs::rename(&partial, &file));
    };
    while !live.ended() {
        sleep(Duration::from_millis(100));
        match fs::read_to_string(&file).as_deref().map(str::trim) {
            Ok("stop") => {
                live.stop_for_test();
                eprintln!("xtask: {} stopped for a test", live.label());
                answer("stopped");
            }
            Ok("start") => match live.start() {
                Ok(()) => {
                    let _ = fs::remove_file(&file);
                }
                Err(e) => answer(&format!("failed: {e:#}")),
            },
            _ => {}
        }
    }
}
