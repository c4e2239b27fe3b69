//! Dynamic shell completion: `source <(COMPLETE=bash anvyl)` (or zsh, fish,
//! elvish, powershell) registers completions that ask anvyl itself, through
//! clap_complete's `CompleteEnv`, so agent and host names come from the
//! state store the configuration names. Completing never creates or
//! changes anything: without a store yet, or with one it cannot read, it
//! offers no names.

use std::ffi::OsStr;

use anvyl_core::StateStore;
use clap_complete::CompletionCandidate;

use crate::config::Config;

/// The agents' names that start with what was typed.
pub fn agent_names(current: &OsStr) -> Vec<CompletionCandidate> {
    names(current, |store| {
        let agents = store.agents().ok()?;
        Some(agents.into_iter().map(|a| a.name.to_string()).collect())
    })
}

/// The registered hosts' names that start with what was typed.
pub fn host_names(current: &OsStr) -> Vec<CompletionCandidate> {
    names(current, |store| {
        let hosts = store.hosts().ok()?;
        Some(hosts.into_iter().map(|h| h.name).collect())
    })
}

fn names(
    current: &OsStr,
    list: impl FnOnce(&StateStore) -> Option<Vec<String>>,
) -> Vec<CompletionCandidate> {
    let typed = current.to_str().unwrap_or_default();
    let Some(store) = existing_store() else {
        return Vec::new();
    };
    let mut names = list(&store).unwrap_or_default();
    names.retain(|n| n.starts_with(typed));
    names.sort_by(|a, b| natord::compare(a, b));
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The configured store, if it exists: configuration files and `ANVYL_*`
/// variables count, the half-typed command line does not.
fn existing_store() -> Option<StateStore> {
    let dir = Config::load(None, None).ok()?.state_dir().ok()?;
    // Pressing Tab must not create, migrate or lock a store.
    StateStore::open_current(&dir).ok().flatten()
}
