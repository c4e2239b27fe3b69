//! Mapping podman-api's errors to anvyl's, by HTTP status and error kind,
//! never by message text.

use anvyl_core::backend::root_cause;
use anvyl_core::BackendError;
use podman_api::Error;

/// The HTTP status of an error answer, if it was one.
pub(crate) fn status(e: &Error) -> Option<u16> {
    match e {
        Error::Fault { code, .. } => Some(code.as_u16()),
        Error::Error(podman_api::conn::Error::Fault { code, .. }) => Some(code.as_u16()),
        _ => None,
    }
}

fn message(e: &Error) -> String {
    match e {
        Error::Fault { message, .. } => message.clone(),
        Error::Error(podman_api::conn::Error::Fault { message, .. }) => message.clone(),
        other => other.to_string(),
    }
}

/// Maps `e` from `operation` on `what` against `endpoint`.
pub(crate) fn map(operation: &'static str, what: &str, endpoint: &str, e: Error) -> BackendError {
    match status(&e) {
        Some(404) => BackendError::NotFound {
            what: what.to_string(),
        },
        Some(409) => BackendError::Conflict {
            what: what.to_string(),
            message: message(&e),
        },
        Some(code) => BackendError::Engine {
            operation,
            status: Some(code),
            message: message(&e),
        },
        None => match e {
            Error::IO(_)
            | Error::Error(podman_api::conn::Error::IO(_))
            | Error::Error(podman_api::conn::Error::Hyper(_)) => BackendError::Unreachable {
                engine: "Podman",
                endpoint: endpoint.to_string(),
                message: root_cause(&e),
            },
            Error::ServerError(_) => BackendError::BuildFailed {
                message: e.to_string(),
            },
            other => BackendError::Engine {
                operation,
                status: None,
                message: root_cause(&other),
            },
        },
    }
}
