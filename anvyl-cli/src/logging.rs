//! Log lines on stderr through `tracing`, in the plain shape users grep for
//! (`Removed container by name: anvyl-agent-web`): no timestamps or targets,
//! a `warning:`/`error:` prefix only where it matters. Whatever filter the
//! user asks for, other crates' debug and trace events are never written:
//! the engine clients print whole request and response bodies there, and a
//! container's body holds the provider API key.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

use indicatif::ProgressBar;

use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match *event.metadata().level() {
            Level::ERROR => write!(w, "error: ")?,
            Level::WARN => write!(w, "warning: ")?,
            Level::INFO => {}
            _ => write!(w, "debug: ")?,
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// The progress line on screen, if any: log lines are written around it
/// (`ProgressBar::suspend`), so no spinner frame is left in the scrollback.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Shows `bar` until [`hide_progress`]; log lines print above it.
pub fn show_progress(bar: &ProgressBar) {
    *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
}

/// Removes the progress line.
pub fn hide_progress() {
    if let Some(bar) = ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bar.finish_and_clear();
    }
}

/// Standard error, written around the active progress line. `fmt` hands
/// over one formatted event per write.
struct AroundProgress;

impl Write for AroundProgress {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match active {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the subscriber: info by default, `-v` debug, `-vv` trace, `-q`
/// warnings, `-qq` errors. `RUST_LOG` overrides for anvyl's own developers,
/// within the cap of [`capped`].
pub fn init(verbose: u8, quiet: u8) {
    let requested = requested(std::env::var("RUST_LOG").ok().as_deref(), verbose, quiet);
    let _ = subscriber(requested, || AroundProgress).try_init();
}

/// The filter the user asks for: `rust_log` when it parses, else the flags'
/// level for anvyl's crates and warnings from the others.
fn requested(rust_log: Option<&str>, verbose: u8, quiet: u8) -> EnvFilter {
    let level = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v > 1 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let own = format!(
        "anvyl_core={level},anvyl_cli={level},anvyl_docker={level},anvyl_podman={level},warn"
    );
    rust_log
        .and_then(|text| EnvFilter::builder().parse(text).ok())
        .unwrap_or_else(|| EnvFilter::new(own))
}

/// The subscriber, writing plain lines to `writer`: an event is written when
/// `requested` enables it *and* it passes [`capped`].
fn subscriber<W>(requested: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .event_format(Plain);
    tracing_subscriber::registry().with(lines.with_filter(requested.and(filter_fn(capped))))
}

/// The crates whose events may be written at any level.
const OWN_CRATES: &[&str] = &["anvyl_core", "anvyl_cli", "anvyl_docker", "anvyl_podman"];

/// Whether an event may be written at all: anvyl's own at any level, every
/// other crate's at info and above only. bollard logs a container-create
/// body (`"Env":["MY_PROVIDER_KEY=sk-…"]`) at debug and every request body
/// at trace; containers-api (under podman-api) traces every JSON response,
/// an inspected container's environment included; podman-api traces error
/// bodies. The cap is a filter of its own rather than directives added to
/// `RUST_LOG`'s, because no directive can hold there: a more specific one
/// wins (`bollard::docker=trace` beats `bollard=info`), and a span
/// directive (`[start]=trace`) enables every event inside that span. It
/// also covers a client crate added later, which a list of names would not.
fn capped(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    let own = OWN_CRATES.iter().any(|krate| {
        target
            .strip_prefix(krate)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    own || *metadata.level() <= Level::INFO
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::{requested, subscriber};

    /// A provider key as a container-create body carries it.
    const BODY: &str = r#"{"Env":["MY_PROVIDER_KEY=sk-anvyl-fake-7f3a9c"]}"#;
    const KEY: &str = "sk-anvyl-fake-7f3a9c";

    /// What the subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Emits the body as the engine clients do — bollard, podman-api and
    /// containers-api through `log`, hyper through `tracing` — and anvyl's
    /// own debug line, all inside a span named like a start's, and returns
    /// what was written under `RUST_LOG=rust_log` and `-v` × `verbose`.
    fn written(rust_log: Option<&str>, verbose: u8) -> String {
        // The clients log through `log`; anvyl's subscriber forwards it.
        let _ = tracing_log::LogTracer::init();
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = subscriber(requested(rust_log, verbose, 0), move || sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            let _start = tracing::info_span!(target: "anvyl_core::lifecycle", "start").entered();
            log::debug!(target: "bollard::docker", "{BODY}");
            log::trace!(target: "bollard::docker", "request: {BODY}");
            log::trace!(target: "podman_api::podman", "{BODY}");
            log::trace!(target: "containers_api::conn::client", "{BODY}");
            tracing::trace!(target: "hyper::proto::h1::io", "{BODY}");
            tracing::debug!(target: "hyper_util::client::legacy", "{BODY}");
            tracing::debug!(target: "anvyl_docker::backend", "Docker API 1.41");
            tracing::info!(target: "hyper_util::client::legacy", "a client's info line");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn no_filter_a_user_can_set_writes_an_engine_clients_body() {
        // (RUST_LOG, -v count, whether that filter shows anvyl's debug line)
        let filters = [
            (Some("trace"), 0, true),
            (Some("debug"), 0, true),
            (Some("bollard=trace"), 0, false),
            (Some("bollard::docker=trace"), 0, false),
            (Some("debug,podman_api=trace,containers_api=trace"), 0, true),
            (
                Some("bollard=trace,podman_api=trace,containers_api=trace,hyper=trace,hyper_util=trace"),
                0,
                false,
            ),
            (Some("warn,[start]=trace"), 0, true),
            (Some("trace,bollard=off"), 0, true),
            (None, 1, true),
            (None, 2, true),
            (None, 3, true),
            (Some("trace"), 3, true),
        ];
        for (rust_log, verbose, debug) in filters {
            let text = written(rust_log, verbose);
            assert!(
                !text.contains(KEY),
                "RUST_LOG={rust_log:?} -v×{verbose} wrote the key:\n{text}"
            );
            assert_eq!(
                text.contains("debug: Docker API 1.41"),
                debug,
                "RUST_LOG={rust_log:?} -v×{verbose}:\n{text}"
            );
        }
        // A cap, not a mute: the clients' info lines still come through.
        assert!(written(Some("trace"), 0).contains("a client's info line"));
    }
}
