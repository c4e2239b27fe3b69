//! `cargo xtask <task>`: project automation that needs real engines.
//! `itest` starts private Docker and Podman engines under `target/` and runs
//! the real-daemon tests against them; `demo` tells the cleanup story on one.
//! Neither ever touches the system's engines.

mod bench;
mod demo;
mod engines;
mod install;
mod itest;
mod process;
mod reliability;
mod suite;
mod teardown;
mod tidy;
mod tls;

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: cargo xtask <task>\n\n\
         tasks:\n  \
         demo [--backend docker|podman]                  show anvyl's cleanup on a private engine\n  \
         bench [--engines S] [--backend B] [--sizes 10,100,500] [--runs 5] [--only fleet|engines]\n                                                  time anvyl against the engines' own tools\n  \
         itest [--engines bookworm|trixie|sid|all] [--backend docker|podman|all] [--keep] [-- FILTER]\n                                                  run the conformance suite and end-to-end tests\n                                                  against private engines under target/itest:\n                                                  this machine's (bookworm) and Debian 13's and\n                                                  unstable's from debootstrap roots (default all)"
    );
    std::process::exit(2)
}

/// The workspace root.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("itest") => itest::run(args.collect()),
        Some("demo") => demo::run(args.collect()),
        Some("bench") => bench::run(args.collect()),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
