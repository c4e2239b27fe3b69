//! Mapping podman-api's errors to anvyl's, by HTTP status and error kind:
//! no message text decides a variant here.

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

/// A failed build's message once: libpod sends it both as `error` and as
/// `errorDetail.message`, and podman-api's display joins the two with `-`.
/// `fields` is the answer's JSON form (podman-api's `JsonError` keeps its
/// fields private; its serde form names them).
pub(crate) fn build_error(fields: &serde_json::Value) -> String {
    let error = fields["error"].as_str().unwrap_or_default().trim();
    let detail = fields["errorDetail"]["message"]
        .as_str()
        .unwrap_or_default()
        .trim();
    match (error, detail) {
        ("", detail) => detail.to_string(),
        (error, "") => error.to_string(),
        (error, detail) if detail.contains(error) => detail.to_string(),
        (error, detail) if error.contains(detail) => error.to_string(),
        (error, detail) => format!("{error}: {detail}"),
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
                engine: Some(anvyl_core::BackendKind::Podman),
                endpoint: endpoint.to_string(),
                message: root_cause(&e),
            },
            Error::ServerError(answer) => BackendError::BuildFailed {
                message: build_error(&serde_json::to_value(&answer).unwrap_or_default()),
            },
            other => BackendError::Engine {
                operation,
                status: None,
                message: root_cause(&other),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::build_error;

    #[test]
    fn a_build_error_is_said_once() {
        let answer = |json: &str| -> serde_json::Value { serde_json::from_str(json).unwrap() };
        let same = answer(
            r#"{"error":"building at STEP \"RUN false\": exit status 1","errorDetail":{"message":"building at STEP \"RUN false\": exit status 1"}}"#,
        );
        assert_eq!(
            build_error(&same),
            r#"building at STEP "RUN false": exit status 1"#
        );
        assert_eq!(build_error(&answer(r#"{"error":"boom"}"#)), "boom");
        assert_eq!(
            build_error(&answer(r#"{"error":"a","errorDetail":{"message":"b"}}"#)),
            "a: b"
        );
    }
}
