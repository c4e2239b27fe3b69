//! End-to-end tests of the `anvyl` binary against the private engine that
//! `cargo xtask itest` started. Every test owns a state directory (so an
//! installation id) and uniquely named agents, so tests share the engine.

mod build_cache;
mod cleanup;
mod crashes;
mod faults;
mod hostile;
mod lifecycle;
mod logs;
mod lookalikes;
mod many;
mod output;
mod races;
mod registry;
mod resources;
mod restart;
mod secrets;
mod stress;
mod terminal;
mod truth;
mod watch;

/// A unique agent name with a readable stem.
pub fn unique(stem: &str) -> String {
    format!("{stem}-{}", anvyl_core::StartId::random())
}
