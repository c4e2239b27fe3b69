//! The one error type of every backend, and how a client's error chain is
//! cut to the words a one-line message needs.

use super::BackendKind;

/// The one error type of every backend. Engine client errors never cross it;
/// they are mapped by HTTP status and error kind. The few answers only
/// their text tells apart (the containerd store's transient reads, a build
/// broken by a concurrent image removal) are matched by text in the backend
/// crate that knows them, each with a conformance check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The engine cannot be reached at `endpoint`.
    #[error(
        "cannot reach the {} engine at {endpoint}: {message}",
        .engine.map_or("container", BackendKind::engine_name)
    )]
    Unreachable {
        /// Which engine; `None` for anvyl's own stand-ins.
        engine: Option<BackendKind>,
        /// The endpoint tried.
        endpoint: String,
        /// What the transport said.
        message: String,
    },
    /// The container or image does not exist (HTTP 404).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The operation conflicts with the resource's state (HTTP 409, or
    /// Podman's equivalent): in use, name taken, removal in progress.
    #[error("{what}: conflict: {message}")]
    Conflict {
        /// The resource.
        what: String,
        /// The engine's explanation.
        message: String,
    },
    /// An image build failed (a step exited non-zero, a bad base image).
    #[error("image build failed: {message}")]
    BuildFailed {
        /// The engine's explanation, e.g. the failing step.
        message: String,
    },
    /// A base image could not be pulled: said with what to do about it
    /// (see [`crate::pull::explain_pull_failure`]).
    #[error("{}", crate::pull::explain_pull_failure(*engine, reference, *problem, *sent_credentials, message))]
    Pull {
        /// The engine that pulled.
        engine: BackendKind,
        /// The image.
        reference: String,
        /// What kept it, read from the engine's answer.
        problem: crate::pull::PullProblem,
        /// Whether credentials were sent for its registry.
        sent_credentials: bool,
        /// The engine's own words.
        message: String,
    },
    /// Any other answer from the engine.
    #[error("{operation} failed: {message}")]
    Engine {
        /// The operation, e.g. `remove container`.
        operation: &'static str,
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// The engine's explanation.
        message: String,
    },
    /// A local problem before the request (e.g. packing the build context).
    #[error("{operation}: {message}")]
    Local {
        /// The operation.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl BackendError {
    /// True for [`BackendError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for [`BackendError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True when the engine never answered: not reachable at all, or no
    /// HTTP status (refused, dropped, silent past the request timeout).
    /// Nothing can be concluded from such an engine about its resources.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Engine { status: None, .. }
        )
    }
}

/// The innermost message of an error chain — "Connection refused", not
/// "error trying to connect" — for one-line messages from client errors.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}
