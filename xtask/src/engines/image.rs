//! The base image every test and benchmark builds on: `FROM scratch` plus
//! the static busybox of this machine's `busybox-static`. Built on each
//! private engine with the engine's own CLI and no network, so a run needs
//! no registry and every engine gets byte-identical layers.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Result;

use crate::process::output;

/// The tag of the base image every test builds on.
pub const BASE_IMAGE: &str = "anvyl-itest-base:latest";

/// The statically linked busybox `busybox-static` installs: the test
/// images are built from scratch with it.
pub const BUSYBOX: &str = "/bin/busybox";

/// Builds [`BASE_IMAGE`] with `cli` (the engine's CLI), from a context in
/// `dir`; `label` names the engine in the log line.
pub(super) fn build(mut cli: Command, dir: &Path, label: &str) -> Result<()> {
    let context = dir.join("base-image");
    fs::create_dir_all(&context)?;
    fs::copy(BUSYBOX, context.join("busybox"))?;
    fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )?;
    let began = Instant::now();
    output(
        cli.args(["build", "--network", "none", "-q", "-t", BASE_IMAGE])
            .arg(&context),
    )?;
    eprintln!(
        "xtask: built {BASE_IMAGE} on {label} in {:.1}s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
