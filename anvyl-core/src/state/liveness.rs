//! Whether a start is still in progress. The starting process holds an
//! exclusive lock on `<state_dir>/starts/<start>.lock` for as long as it
//! runs; the kernel drops the lock when the process ends, kill -9 included.
//! A lock answers across PID namespaces — a start in a sandboxed terminal
//! (`unshare`, bwrap, flatpak) records pid 1, which the host's `/proc`
//! knows as another process — where a pid check cannot. Records without a
//! lock file (an in-memory store, an older anvyl) fall back to the pid and
//! its start time.

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::ids::StartId;

/// The directory of the start locks inside the state directory.
pub const LOCKS: &str = "starts";

/// Held by the process running a start; dropping it ends the claim.
#[derive(Debug)]
pub struct StartLock {
    path: PathBuf,
    _file: File,
}

impl Drop for StartLock {
    fn drop(&mut self) {
        // The start has ended (its record says so) before this runs: a
        // reader that finds no file falls back to the record.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lock file of `start` below `locks`.
pub fn lock_path(locks: &Path, start: &StartId) -> PathBuf {
    locks.join(format!("{start}.lock"))
}

/// Takes the lock of `start`; fails when it cannot be made or is held.
pub fn hold(locks: &Path, start: &StartId) -> io::Result<StartLock> {
    std::fs::create_dir_all(locks)?;
    let path = lock_path(locks, start);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(StartLock { path, _file: file }),
        Err(TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is held by another process", path.display()),
        )),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// `Some(true)` while a process holds the lock at `path`, `Some(false)` when
/// the file is there unheld (its process ended), `None` without a file.
pub fn held(path: &Path) -> Option<bool> {
    let file = File::open(path).ok()?;
    // A shared probe: two commands probing at once (a listing, a stop) do
    // not see each other's probe as the start's own exclusive lock.
    match file.try_lock_shared() {
        Ok(()) => Some(false),
        Err(TryLockError::WouldBlock) => Some(true),
        // A lock that cannot be tested is taken as held: spare it.
        Err(TryLockError::Error(_)) => Some(true),
    }
}

/// State and start time of a process, from `/proc/<pid>/stat` (Linux).
pub(super) fn process_stat(pid: u32) -> Option<(char, u64)> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    Some((stat.state, stat.starttime))
}

/// The start time of this process, as [`StartRecord::pid_start`](super::StartRecord::pid_start) records it.
pub fn own_process_start() -> Option<u64> {
    process_stat(std::process::id()).map(|(_, start)| start)
}

/// Whether `pid` runs and, when `start` is known, is still the same process.
/// A zombie (killed, not yet reaped) does not run.
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    match process_stat(pid) {
        Some(('Z' | 'X', _)) | None => false,
        Some((_, started)) => start.is_none_or(|s| s == started),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_while_its_guard_lives() {
        let dir = tempfile::tempdir().unwrap();
        let start = StartId::random();
        let path = lock_path(dir.path(), &start);
        assert_eq!(held(&path), None);
        let guard = hold(dir.path(), &start).unwrap();
        assert_eq!(held(&path), Some(true));
        assert!(hold(dir.path(), &start).is_err(), "one holder only");
        drop(guard);
        assert_eq!(held(&path), None, "the file goes with the guard");
        // A holder that died (kill -9) leaves the file, unlocked.
        File::create(&path).unwrap();
        assert_eq!(held(&path), Some(false));
        // Another command probing it at the same moment (a listing) does
        // not make it look held.
        let probe = File::open(&path).unwrap();
        probe.try_lock_shared().unwrap();
        assert_eq!(held(&path), Some(false));
    }
}
