//! A fault-injecting proxy for an engine's Unix socket. anvyl is pointed at
//! the proxy's socket; every request is recorded by its call — method and
//! path with ids, names and API versions folded (`DELETE
//! /containers/{}`) — and a rule can make the n-th occurrence of a call
//! answer 500 or 409, drop the connection, stall past the request timeout,
//! or hold until the test lets go (to kill `anvyl` at an exact point).
//!
//! Each client connection carries one request: the proxy asks the engine
//! for `Connection: close` and passes that on, so clients never reuse a
//! connection and one request is one connection to judge.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

/// What a rule does to the request it matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP status and a JSON error message.
    Status(u16),
    /// Close the connection without an answer.
    Drop,
    /// Wait this long, then close without an answer.
    Stall(Duration),
    /// Wait until [`Hold::release`], then close without an answer.
    Hold(Hold),
    /// Wait until [`Hold::release`], then pass the request on: a delaying
    /// proxy, to let another command run at this exact point.
    Pause(Hold),
    /// Pass the request on, let the engine act, and close without its
    /// answer: the engine did it, the client cannot know.
    LoseAnswer,
}

impl Fault {
    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Drop => "drop".into(),
            Self::Stall(d) => format!("stall {}s", d.as_secs()),
            Self::Hold(_) => "hold".into(),
            Self::Pause(_) => "pause".into(),
            Self::LoseAnswer => "lost answer".into(),
        }
    }
}

/// A request held by the proxy until the test lets it go.
#[derive(Debug, Clone, Default)]
pub struct Hold(Arc<HoldInner>);

#[derive(Debug, Default)]
struct HoldInner {
    held: Notify,
    released: Notify,
}

impl Hold {
    /// A hold nothing has reached yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves when a request is being held.
    pub async fn held(&self) {
        self.0.held.notified().await;
    }

    /// Lets the held request go: its connection is closed unanswered.
    pub fn release(&self) {
        self.0.released.notify_one();
    }
}

#[derive(Debug)]
struct Rule {
    call: Match,
    nth: usize,
    fault: Fault,
}

/// Which calls a rule counts.
#[derive(Debug, Clone)]
enum Match {
    /// Exactly this call.
    Call(String),
    /// Any call of this method whose path contains this part, on either
    /// engine (`DELETE`, `/images/` matches Podman's libpod path too).
    Containing(String, String),
}

impl Match {
    fn matches(&self, call: &str) -> bool {
        match self {
            Self::Call(c) => c == call,
            Self::Containing(method, part) => call
                .strip_prefix(method.as_str())
                .is_some_and(|path| path.starts_with(' ') && path.contains(part.as_str())),
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    rules: Vec<Rule>,
    /// Per rule, how many calls it has counted.
    counted: Vec<usize>,
    calls: Vec<String>,
    injected: usize,
}

/// The proxy. It runs on a thread and runtime of its own, so a test may
/// block on `anvyl` runs while the proxy serves them; it stops when dropped.
pub struct FaultProxy {
    socket: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<Notify>,
    _dir: tempfile::TempDir,
}

impl FaultProxy {
    /// Starts a proxy in front of the engine at `upstream` (`unix://…`).
    pub fn start(upstream: &str) -> Self {
        let upstream = PathBuf::from(
            upstream
                .strip_prefix("unix://")
                .expect("the private engines listen on Unix sockets"),
        );
        let dir = tempfile::tempdir().expect("proxy dir");
        let socket = dir.path().join("engine.sock");
        let listener =
            std::os::unix::net::UnixListener::bind(&socket).expect("bind the proxy socket");
        listener.set_nonblocking(true).expect("non-blocking socket");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(Notify::new());
        let (for_thread, stop_thread) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = UnixListener::from_std(listener).expect("proxy listener");
                tokio::select! {
                    () = serve(listener, upstream, for_thread) => {}
                    () = stop_thread.notified() => {}
                }
            });
        });
        Self {
            socket,
            shared,
            stop,
            _dir: dir,
        }
    }

    /// The endpoint to give anvyl.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Makes the `nth` (1-based) occurrence of `call` suffer `fault`.
    pub fn inject(&self, call: &str, nth: usize, fault: Fault) {
        self.add(Match::Call(call.to_string()), nth, fault);
    }

    /// Makes the `nth` call of `method` whose path contains `part` suffer
    /// `fault` (`"DELETE", "/images/"`: the first image removal).
    pub fn inject_matching(&self, method: &str, part: &str, nth: usize, fault: Fault) {
        self.add(Match::Containing(method.into(), part.into()), nth, fault);
    }

    fn add(&self, call: Match, nth: usize, fault: Fault) {
        let mut shared = self.shared.lock().unwrap();
        shared.rules.push(Rule { call, nth, fault });
        shared.counted.push(0);
    }

    /// Every call seen so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.shared.lock().unwrap().calls.clone()
    }

    /// How many faults were injected.
    pub fn injected(&self) -> usize {
        self.shared.lock().unwrap().injected
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// `METHOD /path` with the API version, query, ids and names folded, so
/// that one call reads the same on every run and both engines' paths keep
/// their shape (`GET /libpod/containers/{}/json`).
pub fn call_of(method: &str, target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    let words = [
        "_ping",
        "version",
        "info",
        "containers",
        "images",
        "json",
        "create",
        "start",
        "stop",
        "kill",
        "wait",
        "logs",
        "build",
        "tag",
        "untag",
        "libpod",
        "exists",
        "prune",
        "events",
    ];
    let folded: Vec<&str> = path
        .split('/')
        .filter(|seg| !seg.is_empty())
        .filter(|seg| !is_version(seg))
        .map(|seg| if words.contains(&seg) { seg } else { "{}" })
        .collect();
    format!("{method} /{}", folded.join("/"))
}

fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

async fn serve(listener: UnixListener, upstream: PathBuf, shared: Arc<Mutex<Shared>>) {
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(handle(client, upstream.clone(), shared.clone()));
    }
}

/// What to do with one request, decided and recorded under the lock.
fn decide(shared: &Mutex<Shared>, call: &str) -> Option<Fault> {
    let mut shared = shared.lock().unwrap();
    shared.calls.push(call.to_string());
    let mut fault = None;
    let Shared { rules, counted, .. } = &mut *shared;
    for (rule, count) in rules.iter().zip(counted.iter_mut()) {
        if rule.call.matches(call) {
            *count += 1;
            if *count == rule.nth && fault.is_none() {
                fault = Some(rule.fault.clone());
            }
        }
    }
    if fault.is_some() {
        shared.injected += 1;
    }
    fault
}

async fn handle(mut client: UnixStream, upstream: PathBuf, shared: Arc<Mutex<Shared>>) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut first = text.lines().next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let call = call_of(method, target);
    match decide(&shared, &call) {
        None => forward(client, &upstream, &text, rest, true).await,
        Some(Fault::LoseAnswer) => forward(client, &upstream, &text, rest, false).await,
        Some(Fault::Status(code)) => {
            let body = format!("{{\"message\":\"injected fault: {code} on {call}\"}}");
            let reason = if code == 409 {
                "Conflict"
            } else {
                "Internal Server Error"
            };
            let answer = format!(
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Some(Fault::Drop) => {}
        Some(Fault::Stall(d)) => tokio::time::sleep(d).await,
        Some(Fault::Hold(hold)) => {
            hold.0.held.notify_one();
            hold.0.released.notified().await;
        }
        Some(Fault::Pause(hold)) => {
            hold.0.held.notify_one();
            hold.0.released.notified().await;
            forward(client, &upstream, &text, rest, true).await;
        }
    }
}

/// Reads up to the end of the request head; returns it and what followed.
async fn read_head(client: &mut UnixStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        if buf.len() > 256 * 1024 {
            return None;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Passes the request on with `Connection: close`, and the answer back
/// unless `deliver` is false.
async fn forward(
    mut client: UnixStream,
    upstream: &Path,
    head: &str,
    rest: Vec<u8>,
    deliver: bool,
) {
    let Ok(mut engine) = UnixStream::connect(upstream).await else {
        return;
    };
    let mut rewritten = String::with_capacity(head.len() + 24);
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    if engine.write_all(rewritten.as_bytes()).await.is_err()
        || engine.write_all(&rest).await.is_err()
    {
        return;
    }
    let (mut client_read, mut client_write) = client.split();
    let (mut engine_read, mut engine_write) = engine.split();
    // The answer ends when the engine closes; the request body (a build
    // context) flows the other way until then.
    let upload = tokio::io::copy(&mut client_read, &mut engine_write);
    let answer = async {
        if deliver {
            let _ = tokio::io::copy(&mut engine_read, &mut client_write).await;
        } else {
            let _ = tokio::io::copy(&mut engine_read, &mut tokio::io::sink()).await;
        }
        let _ = client_write.shutdown().await;
    };
    tokio::select! {
        () = answer => {}
        _ = async { let _ = upload.await; std::future::pending::<()>().await } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::call_of;

    #[test]
    fn calls_fold_ids_names_and_versions() {
        assert_eq!(
            call_of("DELETE", "/v1.41/containers/4f3a9c?force=true&v=true"),
            "DELETE /containers/{}"
        );
        assert_eq!(
            call_of("GET", "/v4.3.1/libpod/containers/anvyl-agent-web/json"),
            "GET /libpod/containers/{}/json"
        );
        assert_eq!(
            call_of("POST", "/images/anvyl-agent-web:ab12/tag?repo=x"),
            "POST /images/{}/tag"
        );
        assert_eq!(call_of("GET", "/_ping"), "GET /_ping");
    }
}
