//! One verb over several agents (`agent start|stop|remove|logs A B C`):
//! each agent on its own, `parallelism` at a time, a line for each as it
//! ends, a summary, and the worst status of them all. An agent's failure
//! does not stop the others; Ctrl-C stops those in progress (each cleans
//! up as a single one would) and leaves the ones not begun as they were.

use std::future::Future;
use std::process::ExitCode;

use anvyl_core::AgentName;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use futures::StreamExt;
use serde::Serialize;

use crate::cli::{Cli, OutputFormat};
use crate::error::{
    CliError, Interruption, EXIT_DECLINED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_UNREACHABLE,
    EXIT_USAGE,
};

/// The signal every agent's part listens to: one for all, so that an agent
/// whose turn comes after Ctrl-C is not begun.
pub(crate) type Interrupt = Shared<LocalBoxFuture<'static, ()>>;

/// What one agent's part did, when it succeeded.
pub(crate) struct Done {
    /// The line said for it (without a newline), or none.
    pub line: Option<String>,
    /// What `-o json` says of it.
    pub json: serde_json::Value,
}

/// One agent's row of `-o json`.
#[derive(Serialize)]
struct Row<'a> {
    agent: &'a str,
    ok: bool,
    exit: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    result: serde_json::Value,
}

/// Statuses from the worst down: an interruption, a failure (something
/// may remain), an engine that did not answer, bad input, a "no".
const WORST_FIRST: [u8; 5] = [
    EXIT_INTERRUPTED,
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    EXIT_DECLINED,
];

/// The worst of `statuses` (0 when there is none).
fn worst(statuses: impl IntoIterator<Item = u8>) -> u8 {
    let statuses: Vec<u8> = statuses.into_iter().collect();
    (WORST_FIRST.into_iter())
        .find(|s| statuses.contains(s))
        .or_else(|| statuses.into_iter().find(|s| *s != 0))
        .unwrap_or(0)
}

/// `names` without repeats, in their order: naming an agent twice does not
/// run it twice.
pub(crate) fn distinct(names: &[String]) -> Result<Vec<AgentName>, CliError> {
    let mut out: Vec<AgentName> = Vec::new();
    for name in names {
        let name = AgentName::new(name.as_str())?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Runs `act` for each of `names`, at most `parallelism` at once, and says
/// each outcome as it comes; `verb` ("started") words the summary.
pub(crate) async fn each<'a, F, Fut>(
    cli: &Cli,
    parallelism: usize,
    names: &'a [AgentName],
    verb: &str,
    act: F,
) -> ExitCode
where
    F: Fn(&'a AgentName, Interrupt) -> Fut,
    Fut: Future<Output = Result<Done, CliError>> + 'a,
{
    let json = cli.output == OutputFormat::Json;
    let interrupt: Interrupt = super::interrupted().boxed_local().shared();
    let parts = names.iter().map(|name| {
        let interrupt = interrupt.clone();
        let act = &act;
        async move {
            // Ctrl-C came before this agent's turn: it is left as it was.
            if interrupt.peek().is_some() {
                let e = CliError::Interrupted(Interruption::NotBegun(name.clone()));
                return (name, Err(e));
            }
            (name, act(name, interrupt).await)
        }
    });
    let mut outcomes = futures::stream::iter(parts).buffer_unordered(parallelism.max(1));
    let mut rows = Vec::new();
    let mut statuses = Vec::new();
    while let Some((name, outcome)) = outcomes.next().await {
        let (status, row) = match outcome {
            Ok(done) => {
                if let (false, Some(line)) = (json, &done.line) {
                    super::emit(&format!("{line}\n"));
                }
                (0, (name, None, done.json))
            }
            Err(e) => {
                // On stderr as a single agent's error is, JSON or not.
                eprint!("{}", e.printed());
                (
                    e.exit_status(),
                    (name, Some(e.to_string()), serde_json::Value::Null),
                )
            }
        };
        statuses.push(status);
        rows.push((status, row));
    }
    let failed = statuses.iter().filter(|s| **s != 0).count();
    if json {
        let mut rows: Vec<Row<'_>> = (rows.into_iter())
            .map(|(exit, (name, error, result))| Row {
                agent: name.as_str(),
                ok: exit == 0,
                exit,
                error,
                result,
            })
            .collect();
        rows.sort_by_key(|r| names.iter().position(|n| n.as_str() == r.agent));
        super::emit(&crate::output::json(&rows));
    } else if failed == 0 {
        tracing::info!("{verb} {} agents", names.len());
    } else {
        tracing::warn!(
            "{verb} {} of {} agents; {failed} did not succeed (see above)",
            names.len() - failed,
            names.len()
        );
    }
    ExitCode::from(worst(statuses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_status_wins_and_all_good_is_0() {
        assert_eq!(worst([0, 0]), 0);
        assert_eq!(worst([]), 0);
        assert_eq!(worst([0, 2, 3]), EXIT_UNREACHABLE);
        assert_eq!(worst([3, 1, 2]), EXIT_FAILED);
        assert_eq!(worst([1, 130, 0]), EXIT_INTERRUPTED);
        assert_eq!(worst([4, 2]), EXIT_USAGE);
    }

    #[test]
    fn a_name_given_twice_is_one_agent_and_a_bad_one_refuses_all() {
        let names = ["w1", "w2", "w1"].map(String::from);
        let agents = distinct(&names).unwrap();
        assert_eq!(agents.len(), 2);
        let bad = ["w1", "Bad!"].map(String::from);
        assert_eq!(distinct(&bad).unwrap_err().exit_status(), EXIT_USAGE);
    }
}
