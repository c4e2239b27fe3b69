//! libpod's streaming endpoints (build, pull) requested over one HTTP/1
//! connection of anvyl's own, with the headers podman-api cannot send
//! (`X-Registry-Config`, `X-Registry-Auth`): each answer line's `stream` is
//! progress, an `error` line or a refusal document is the failure.

use anvyl_core::backend::{root_cause, BuildProgress, Result};
use anvyl_core::BackendError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

/// What a streaming endpoint answered: its status, and the failure its
/// lines (or its one refusal document) said, if any.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) failure: Option<String>,
}

/// Posts `body` to libpod's `path` (`build?…`, `images/pull?…`) at
/// `endpoint` with `headers`, passing each `stream` line of the answer to
/// `progress`. A connection that cannot be made or breaks is
/// `Unreachable`; everything else is in the [`Answer`].
pub(crate) async fn post(
    endpoint: &str,
    path: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    progress: BuildProgress<'_>,
) -> Result<Answer> {
    let unreachable = |message: String| BackendError::Unreachable {
        engine: Some(anvyl_core::BackendKind::Podman),
        endpoint: endpoint.to_string(),
        message,
    };
    let mut sender = connect(endpoint)
        .await
        .map_err(|e| unreachable(root_cause(&e)))?;
    let mut request = Request::post(format!(
        "/v{}/libpod/{path}",
        podman_api::LATEST_API_VERSION
    ))
    .header("Host", "localhost")
    .header("Content-Type", "application/x-tar");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| BackendError::Local {
            operation: "engine request",
            message: e.to_string(),
        })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(root_cause(&e)))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut failure = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unreachable(root_cause(&e)))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            failure = failure.or(read_line(status, &line, progress));
        }
    }
    failure = failure.or(read_line(status, &pending, progress));
    Ok(Answer { status, failure })
}

/// One line of the answer: progress passed on, or why it failed.
/// A refused request's answer is one JSON document (`cause`, `message`);
/// a build's is a line per event (`stream`), a failing step an `error`
/// with its `errorDetail`.
fn read_line(status: StatusCode, line: &[u8], progress: BuildProgress<'_>) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let Ok(event) = serde_json::from_str::<serde_json::Value>(text) else {
        return (!status.is_success()).then(|| refused(status, text));
    };
    if !status.is_success() {
        let message = event["message"].as_str().unwrap_or(text);
        return Some(refused(status, message));
    }
    if event.get("error").is_some() || event.get("errorDetail").is_some() {
        return Some(crate::errors::build_error(&event));
    }
    if let Some(stream) = event["stream"].as_str() {
        let stream = stream.trim_end();
        if !stream.is_empty() {
            progress(stream);
        }
    }
    None
}

/// A request the engine refused, said as Docker's backend says it.
fn refused(status: StatusCode, message: &str) -> String {
    format!("{} (HTTP {})", message.trim(), status.as_u16())
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One HTTP/1 connection to `endpoint` (`unix://PATH`, or `tcp://HOST:PORT`
/// and `http://HOST:PORT` as podman-api takes them).
async fn connect(endpoint: &str) -> std::io::Result<Sender> {
    if let Some(path) = endpoint.strip_prefix("unix://") {
        return over(tokio::net::UnixStream::connect(path).await?).await;
    }
    let address = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("http://"));
    match address {
        Some(address) => {
            over(tokio::net::TcpStream::connect(address.trim_end_matches('/')).await?).await
        }
        None => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("no build through {endpoint}: unix://, tcp:// and http:// only"),
        )),
    }
}

/// The HTTP/1 handshake on `stream`; the connection is driven in the
/// background and ends with it (its error reaches the request or the body).
async fn over<S>(stream: S) -> std::io::Result<Sender>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress_of(status: StatusCode, lines: &[&str]) -> (Vec<String>, Option<String>) {
        let seen = std::sync::Mutex::new(Vec::new());
        let sink = |line: &str| seen.lock().unwrap().push(line.to_string());
        let failure = lines
            .iter()
            .fold(None, |f, l| f.or(read_line(status, l.as_bytes(), &sink)));
        (seen.into_inner().unwrap(), failure)
    }

    #[test]
    fn a_builds_lines_are_progress_and_its_error_the_failure() {
        let (seen, failure) = progress_of(
            StatusCode::OK,
            &[
                r#"{"stream":"STEP 1/2: FROM base\n"}"#,
                r#"{"stream":"\n"}"#,
                r#"{"error":"building at STEP \"RUN false\": exit status 1","errorDetail":{"message":"building at STEP \"RUN false\": exit status 1"}}"#,
            ],
        );
        assert_eq!(seen, vec!["STEP 1/2: FROM base"]);
        assert_eq!(
            failure.as_deref(),
            Some(r#"building at STEP "RUN false": exit status 1"#)
        );
    }

    #[test]
    fn a_refused_request_says_the_engines_message_and_status() {
        let refusal = r#"{"cause":"unhandled tar header type 83","message":"unhandled tar header type 83","response":500}"#;
        let (_, failure) = progress_of(StatusCode::INTERNAL_SERVER_ERROR, &[refusal]);
        assert_eq!(
            failure.as_deref(),
            Some("unhandled tar header type 83 (HTTP 500)")
        );
        let (_, failure) = progress_of(StatusCode::BAD_REQUEST, &["not json"]);
        assert_eq!(failure.as_deref(), Some("not json (HTTP 400)"));
    }
}
