//! `cargo xtask <task>`: project automation that needs real engines.
//! `itest` starts private Docker and Podman engines under `target/` and runs
//! the real-daemon tests against them; `bench` times anvyl against the
//! engines' own tools on such engines; `demo` tells the cleanup story on
//! one. None of them ever touches the system's engines.

mod bench;
mod choice;
mod demo;
mod engines;
mod install;
mod itest;
mod process;
mod registry;
mod reliability;
mod suite;
mod teardown;
mod tidy;
mod tls;

use std::path::PathBuf;

/// Project automation that needs real engines; never the system's own.
#[derive(Debug, clap::Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", max_term_width = 100)]
enum Task {
    /// Show anvyl's cleanup on a private engine
    Demo(demo::Args),
    /// Time anvyl against the engines' own tools
    Bench(bench::Args),
    /// Run the conformance suite and end-to-end tests against private
    /// engines under target/itest: this machine's (bookworm) and Debian 13's
    /// and unstable's from debootstrap roots
    Itest(itest::Args),
}

/// The workspace root.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() {
    let result = match <Task as clap::Parser>::parse() {
        Task::Itest(args) => itest::run(args),
        Task::Demo(args) => demo::run(args),
        Task::Bench(args) => bench::run(args),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
