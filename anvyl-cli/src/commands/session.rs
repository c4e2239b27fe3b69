//! [`Session`]: what every agent and host command opens, one way — the
//! state store of the configuration (the local host registered on first
//! use), its build root, and the connector that reaches each host's engine
//! (and holds an SSH host's tunnel for as long as the command runs).

use anvyl_core::build_root::BuildRoot;
use anvyl_core::lifecycle::Lifecycle;
use anvyl_core::StateStore;

use crate::config::Config;
use crate::engine::HostConnector;
use crate::error::CliError;

/// The state and engine access of one command.
pub(crate) struct Session<'c> {
    pub config: &'c Config,
    pub state: StateStore,
    pub build_root: BuildRoot,
    pub connector: HostConnector<'c>,
}

impl<'c> Session<'c> {
    /// Opens the configuration's state store and build root, registering
    /// the local host on first use. Callers check what needs no store
    /// first (names, ids, option syntax), so such bad input changes
    /// nothing; an input only the store can judge (an unknown agent or
    /// host) may leave a new, empty store behind.
    pub fn open(config: &'c Config) -> Result<Self, CliError> {
        let session = Self::reading(config)?;
        session.state.ensure_local_host()?;
        Ok(session)
    }

    /// Opens them for a command that only reads (`agent list`, `logs`): it
    /// writes no agent, host or start, and never waits for another
    /// process's write lock. Opening may still create the store, switch
    /// it to WAL or migrate an older one's schema (`StateStore::open`).
    pub fn reading(config: &'c Config) -> Result<Self, CliError> {
        let dir = config.state_dir()?;
        let build_root = BuildRoot::new(&dir).map_err(|e| CliError::Config(e.to_string()))?;
        let state = StateStore::open(&dir)?;
        Ok(Self {
            config,
            state,
            build_root,
            connector: HostConnector::new(config),
        })
    }

    /// The agent lifecycle over this session.
    pub fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle::new(
            &self.state,
            &self.connector,
            self.build_root.clone(),
            self.config.lifecycle_settings(),
        )
        .with_credentials(&crate::credentials::EngineLogins)
    }
}
