//! Mapping bollard's errors to anvyl's, by HTTP status and error kind:
//! no message text decides a variant here.

use anvyl_core::backend::root_cause;
use anvyl_core::BackendError;
use bollard::errors::Error;

/// Maps `e` from `operation` on `what` against `endpoint`.
pub(crate) fn map(operation: &'static str, what: &str, endpoint: &str, e: Error) -> BackendError {
    match e {
        Error::DockerResponseServerError {
            status_code: 404, ..
        } => BackendError::NotFound {
            what: what.to_string(),
        },
        Error::DockerResponseServerError {
            status_code: 409,
            message,
        } => BackendError::Conflict {
            what: what.to_string(),
            message,
        },
        Error::DockerResponseServerError {
            status_code,
            message,
        } => BackendError::Engine {
            operation,
            status: Some(status_code),
            message,
        },
        Error::IOError { .. }
        | Error::HyperLegacyError { .. }
        | Error::SocketNotFoundError(_)
        | Error::UnsupportedURISchemeError { .. } => BackendError::Unreachable {
            engine: Some(anvyl_core::BackendKind::Docker),
            endpoint: endpoint.to_string(),
            message: root_cause(&e),
        },
        other => BackendError::Engine {
            operation,
            status: None,
            message: root_cause(&other),
        },
    }
}
