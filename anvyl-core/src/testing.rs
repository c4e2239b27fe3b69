//! What the test harnesses of every crate share (feature `testing`, which
//! `conformance` turns on); anvyl's commands never call it.

/// The environment variable `var`, which `cargo xtask itest` sets for the
/// real-engine tests; a test run by hand without it fails loudly, never
/// skips.
pub fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the real-engine tests through `cargo xtask itest`")
    })
}
