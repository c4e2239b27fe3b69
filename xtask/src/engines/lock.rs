//! Where the private engines live (`target/itest`, or a short path in /tmp
//! when that would make a socket path too long), and the lock that lets
//! one `itest`, `bench` or `demo` at a time run engines there.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Holds `<engines_dir>/.lock` while a task runs engines: they live at
/// fixed paths, and a second run would clear the first one's directories
/// (the leftovers of an interrupted run) under its engines' feet.
pub fn lock() -> Result<std::fs::File> {
    let dir = engines_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let file = std::fs::File::create(dir.join(".lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another cargo xtask itest, bench or demo is running engines in {}; wait for it to end",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Where the private engines live. A Unix socket path must stay under 108
/// bytes; a deep checkout falls back to a directory in /tmp.
pub fn engines_dir() -> PathBuf {
    let dir = crate::project_root().join("target").join("itest");
    if dir.display().to_string().len() < 80 {
        dir
    } else {
        std::env::temp_dir().join(format!("anvyl-itest-{}", std::process::id()))
    }
}
