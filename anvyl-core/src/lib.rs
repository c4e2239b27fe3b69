//! anvyl's domain, free of any container client: validated agent names, the
//! ownership labels and rule that decide what is anvyl's, the [`Backend`]
//! trait every engine implements, the cleanup pipeline (plan, then apply, in
//! four steps), the SQLite state store, and — for tests only, behind the
//! `memory`, `conformance` and `testing` features — an in-memory backend,
//! the conformance suite every backend passes, and state-store calls that
//! stage what no command would.

#![warn(missing_docs)]

pub mod backend;
pub mod build_root;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod connector;
pub mod identity;
pub mod ids;
pub mod lifecycle;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod name;
pub mod no_engine;
pub mod ownership;
pub mod pipeline;
pub mod pull;
pub mod resources;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use backend::{
    Backend, BackendError, BackendKind, BuildSpec, ContainerSpec, ContainerState, ContainerSummary,
    DynBackend, EngineInfo, ImageSummary, ImageTag, Labels, LogStream, Query,
};
pub use connector::Connector;
pub use ids::{InstanceId, StartId};
pub use name::{AgentName, InvalidAgentName};
pub use ownership::{Claim, Ownership};
pub use pipeline::{
    BuildCache, Cleanup, CleanupSettings, Outcome, Plan, PlannedStep, Report, Scope, Step,
    StepWords,
};
pub use state::{
    AgentRecord, AgentSpec, AgentStatus, HostAccess, HostRecord, StateError, StateStore, LOCAL_HOST,
};
