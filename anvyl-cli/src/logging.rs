//! Log lines on stderr through `tracing`, in the plain shape users grep for
//! (`Removed container by name: anvyl-agent-web`): no timestamps or targets,
//! a `warning:`/`error:` prefix only where it matters.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

use indicatif::ProgressBar;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
/// warnings, `-qq` errors. `RUST_LOG` overrides for anvyl's own developers.
pub fn init(verbose: u8, quiet: u8) {
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(own));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| AroundProgress)
        .event_format(Plain)
        .try_init();
}
