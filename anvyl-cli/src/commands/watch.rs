//! `anvyl agent cleanup --watch`: one cleanup, as `agent cleanup --yes`
//! makes it, then a watcher that keeps every enabled host true until Ctrl-C
//! or SIGTERM. Each host's container events (this installation's only, by
//! label) wake a pass of [`Lifecycle::watch_pass`] at once; a full pass
//! also runs every `--resync`, events or not, for what an event stream
//! cannot say: events lost while it reconnected, an engine that restarted,
//! a host that came back. Every action is one line on stdout (one JSON
//! object per line with `--output json`); the cleanup's own log lines go
//! to stderr, as for every command.

use std::process::ExitCode;
use std::time::Duration;

use anvyl_core::lifecycle::{Lifecycle, Watch, WatchAction};
use anvyl_core::Connector;
use anvyl_core::{HostRecord, Ownership, Query};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Session;
use crate::cli::{CleanupArgs, Cli, OutputFormat};
use crate::config::Config;
use crate::error::CliError;
use crate::output;

/// Events come in bursts (a container's `die`, then `destroy`): one pass
/// after the burst rather than one per event.
const SETTLE: Duration = Duration::from_millis(100);

/// The longest wait before a lost event stream is asked for again.
const MOST_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(cli: &Cli, config: &Config, args: &CleanupArgs) -> Result<ExitCode, CliError> {
    let json = cli.output == OutputFormat::Json;
    // Taken now, so that a SIGTERM during the opening cleanup is not lost
    // between its handler and this one.
    let stop = stop_signals().map_err(|cause| CliError::Io {
        doing: "watch for SIGTERM",
        cause,
    })?;
    // The opening cleanup is the ordinary one, without a prompt. A host
    // that does not answer is the watcher's to retry, not a reason to end.
    let opening = CleanupArgs {
        yes: true,
        watch: false,
        opening: true,
        ..args.clone()
    };
    match super::cleanup::run(cli, config, &opening).await {
        // What it left (a host that did not answer) it has said.
        Ok(_) => {}
        Err(CliError::Interrupted(_)) => return Ok(ExitCode::SUCCESS),
        Err(
            e @ (CliError::Engine(_)
            | CliError::Unreached { .. }
            | CliError::Remaining(_)
            | CliError::HostsNotCleaned(_)),
        ) => {
            tracing::warn!("the opening cleanup did not finish: {e}; watching all the same")
        }
        // The store, the configuration, the input: nothing to watch with.
        Err(e) => return Err(e),
    }
    let session = Session::open(config)?;
    let hosts: Vec<HostRecord> = (session.state.hosts()?.into_iter())
        .filter(|h| h.enabled && args.host.as_deref().is_none_or(|only| h.name == only))
        .collect();
    let ours = Ownership::new(session.state.instance_id().clone()).selector(None, None);
    let wake = Notify::new();
    // With no enabled host there is nothing to listen to: passes go on.
    let listeners = async {
        futures::future::join_all(
            (hosts.iter()).map(|host| listen(&session, host, Query::labelled(ours.clone()), &wake)),
        )
        .await;
        std::future::pending::<()>().await
    };
    let lifecycle = session.lifecycle();
    let watching = watch(&lifecycle, args, &wake, json);
    tracing::info!(
        "Watching {} host(s); a failed agent's leftovers go after {}",
        hosts.len(),
        humantime::format_duration(args.grace)
    );
    tokio::select! {
        () = listeners => unreachable!("listeners listen until the end"),
        ended = watching => ended.map(|()| ExitCode::SUCCESS),
        () = stop => Ok(ExitCode::SUCCESS),
    }
}

/// Passes, one after each burst of events, each due confirmation or
/// grace, and each resync, until a pass cannot read the state store.
async fn watch(
    lifecycle: &Lifecycle<'_>,
    args: &CleanupArgs,
    wake: &Notify,
    json: bool,
) -> Result<(), CliError> {
    let mut watch = Watch::new(args.grace).on_host(args.host.clone());
    let mut resync = Instant::now() + args.resync;
    loop {
        for action in lifecycle.watch_pass(&mut watch).await? {
            say(&action, json);
        }
        let due = watch.next_due().map_or(resync, |due| due.min(resync));
        tokio::select! {
            () = wake.notified() => tokio::time::sleep(SETTLE).await,
            () = tokio::time::sleep_until(due) => {}
        }
        if Instant::now() >= resync {
            resync = Instant::now() + args.resync;
        }
    }
}

/// One action on stdout, at once (a tool reading the stream waits for it).
fn say(action: &WatchAction, json: bool) {
    match json {
        true => super::emit(&output::json_line(action)),
        false => super::emit(&format!("{action}\n")),
    }
}

/// Follows `host`'s container events, waking the watcher on each; a stream
/// that ends or cannot be had is said once and asked for again, waiting
/// longer each time (up to [`MOST_BACKOFF`]). Never returns.
async fn listen(session: &Session<'_>, host: &HostRecord, query: Query, wake: &Notify) {
    let mut backoff = Duration::from_secs(1);
    let mut lost = false;
    loop {
        let why = match session.connector.connect(host).await {
            Ok(backend) => {
                let mut events = backend.container_events(&query);
                let mut why = "the engine ended it".to_string();
                while let Some(event) = events.next().await {
                    match event {
                        Ok(_) => {
                            if std::mem::take(&mut lost) {
                                tracing::info!("Host '{}': events again", host.name);
                            }
                            backoff = Duration::from_secs(1);
                            wake.notify_one();
                        }
                        Err(e) => {
                            why = e.to_string();
                            break;
                        }
                    }
                }
                why
            }
            Err(e) => e.to_string(),
        };
        if !lost {
            tracing::warn!(
                "Host '{}': no events ({why}); asking again, and looking every resync meanwhile",
                host.name
            );
            lost = true;
        }
        // What happened meanwhile is looked at now.
        wake.notify_one();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MOST_BACKOFF);
    }
}

/// Resolves on the first SIGINT or SIGTERM from now on (one that came
/// while the opening cleanup ran included).
fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
