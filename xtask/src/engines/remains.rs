//! What a private engine leaves on this machine once its daemon is
//! stopped, and its removal: the cgroup parent dockerd leaves in every
//! hierarchy, mounts below the engine's directory, and the directory.
//! They outlive the processes that made them, so only xtask removes them,
//! at teardown and before a start that finds an interrupted run's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Removes the cgroup `name` from every hierarchy, deepest first (a cgroup
/// directory goes with rmdir once it has no tasks and no children).
pub(super) fn remove_cgroups(name: &str) {
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut tops: Vec<PathBuf> = vec![PathBuf::from("/sys/fs/cgroup").join(name)];
    tops.extend(hierarchies.flatten().map(|h| h.path().join(name)));
    for top in tops {
        let mut dirs = Vec::new();
        let mut pending = vec![top];
        while let Some(dir) = pending.pop() {
            if let Ok(entries) = fs::read_dir(&dir) {
                pending.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                        .map(|e| e.path()),
                );
                dirs.push(dir);
            }
        }
        for dir in dirs.iter().rev() {
            if let Err(e) = fs::remove_dir(dir) {
                eprintln!("xtask: warning: cgroup {} stays: {e}", dir.display());
            }
        }
    }
}

/// Removes `dir`, unmounting anything an engine left mounted below it.
pub(super) fn remove_tree(dir: &Path) {
    if let Ok(mounts) = fs::read_to_string("/proc/self/mounts") {
        let prefix = dir.display().to_string();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        // Deepest first.
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = Command::new("umount").arg("-l").arg(point).status();
        }
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        eprintln!("xtask: warning: could not remove {}: {e}", dir.display());
    }
}
