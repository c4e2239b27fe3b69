//! Asking a daemon over its socket, with nothing but std: whether it
//! answers yet (`_ping`) and what it is (`version`, and for a suite with an
//! API floor, proof that the floor holds). A raw HTTP/1.0 GET needs no
//! client library, and works before anvyl's backends could connect.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anvyl_core::BackendKind;
use anyhow::{bail, Context, Result};

use crate::suite::Suite;

/// One HTTP/1.0 GET over the engine's socket: (status, body).
fn get(socket: &Path, path: &str) -> Option<(u16, String)> {
    let mut stream = UnixStream::connect(socket).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .strip_prefix("HTTP/1.")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, body.to_string()))
}

/// Waits up to 60 s for the daemon just started as `child` to answer;
/// fails at once if it exits first, pointing at its log in `dir`.
pub(super) fn wait_until_ready(
    kind: BackendKind,
    socket: &Path,
    child: &mut Child,
    dir: &Path,
    label: &str,
) -> Result<()> {
    let began = Instant::now();
    let path = match kind {
        BackendKind::Docker => "/_ping",
        BackendKind::Podman => "/v4.0.0/libpod/_ping",
    };
    while began.elapsed() < Duration::from_secs(60) {
        if matches!(get(socket, path), Some((200, _))) {
            eprintln!(
                "xtask: {label} answered after {:.1}s",
                began.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{label} exited ({status}) before answering; see {}",
                dir.join("engine.log").display()
            );
        }
        sleep(Duration::from_millis(200));
    }
    bail!("{label} did not answer within 60 s")
}

/// What the engine says it is, "28.5.2 (API 1.51, refuses below 1.44)";
/// for a suite with an API floor, proves that the floor is in force (a
/// request at 1.41 is refused).
pub(super) fn version(
    kind: BackendKind,
    suite: Suite,
    socket: &Path,
    label: &str,
) -> Result<String> {
    let path = match kind {
        BackendKind::Docker => "/version",
        BackendKind::Podman => "/v4.0.0/libpod/version",
    };
    let (_, body) = get(socket, path).context("ask the engine its version")?;
    let v: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("the engine's {path} answer: {body}"))?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string();
    if let Some(floor) = (suite.docker_min_api()).filter(|_| kind == BackendKind::Docker) {
        match get(socket, "/v1.41/version") {
            Some((400, body)) if body.contains("too old") => {}
            other => bail!(
                "{label}: dockerd was started with DOCKER_MIN_API_VERSION={floor} but answered {other:?} at /v1.41/version"
            ),
        }
    }
    Ok(match kind {
        BackendKind::Docker => format!(
            "{} (API {}, refuses below {})",
            field("Version"),
            field("ApiVersion"),
            field("MinAPIVersion")
        ),
        BackendKind::Podman => field("Version"),
    })
}
