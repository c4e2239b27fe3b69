//! The provider API key reaches the agent's container and nowhere else in
//! anvyl's output, at every log level a user can ask for: the engine
//! clients print request and response bodies — a container's environment
//! among them — at debug and trace, and anvyl caps them whatever `RUST_LOG`
//! or `-vvv` says.

use anvyl_core::StartId;
use anvyl_tests::{Run, Sandbox};

use crate::unique;

/// The variable `--api-key-env` names.
const KEY_VAR: &str = "ANVYL_E2E_PROVIDER_KEY";

/// The filters a user can set: `RUST_LOG` (none: the sandbox removes it),
/// the flags, and whether anvyl's own debug lines must show, which proves
/// the filter took effect. Two lifecycles per engine: everything at trace
/// (which enables all that `debug` or `-vvv` alone would), and the engine
/// clients' own targets; the logging unit test drives twelve filters.
const FILTERS: &[(Option<&str>, &[&str], bool)] = &[
    (Some("trace"), &["-vvv"], true),
    (
        Some("bollard=trace,podman_api=trace,containers_api=trace,hyper=trace"),
        &[],
        false,
    ),
];

fn assert_no_key(run: &Run, key: &str, what: &str) {
    assert!(
        !run.stdout.contains(key) && !run.stderr.contains(key),
        "{what} printed the key: {run:?}"
    );
}

#[tokio::test]
async fn the_api_key_is_never_printed_at_any_log_level() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    // Unique to this run: a match can only be this key.
    let key = format!("sk-anvyl-e2e-{}", StartId::random());
    for &(rust_log, flags, own_debug) in FILTERS {
        let name = unique("secret");
        let what = |command: &str| format!("{command} with RUST_LOG={rust_log:?} {flags:?}");
        let mut env = vec![(KEY_VAR, key.as_str())];
        if let Some(filter) = rust_log {
            env.push(("RUST_LOG", filter));
        }
        let run = |args: &[&str]| {
            let mut argv = flags.to_vec();
            argv.extend(args);
            s.anvyl_with(&argv, &env)
        };
        // The command proves the key arrived without printing it.
        let start = run(&[
            "agent",
            "create",
            &name,
            "--image",
            &base,
            "--api-key-env",
            KEY_VAR,
            "--command",
            &format!("echo key length ${{#{KEY_VAR}}}; sleep 600"),
            "--start",
        ]);
        assert_eq!(start.code, Some(0), "{}: {start:?}", what("start"));
        assert_no_key(&start, &key, &what("start"));
        assert_eq!(
            start.stderr.contains("debug: "),
            own_debug,
            "{}: {start:?}",
            what("start")
        );
        // Each command that inspects or lists the container, whose
        // environment the engine returns.
        for args in [
            &["agent", "list"][..],
            &["agent", "logs", &name],
            &["agent", "stop", &name],
            &["agent", "remove", &name, "--yes"],
        ] {
            let done = run(args);
            assert_eq!(done.code, Some(0), "{}: {done:?}", what(args[1]));
            assert_no_key(&done, &key, &what(args[1]));
            if args[1] == "logs" {
                assert!(
                    done.stdout.contains(&format!("key length {}", key.len())),
                    "the key did not reach the container: {done:?}"
                );
            }
        }
    }
}
