//! anvyl as a person sees it. In a pseudo-terminal (rexpect): the `[y/N]`
//! prompt, where "n" is respected (exit 4, nothing removed) and "y" removes
//! under a bar counting n/N per step, gone from the screen at the end; the
//! live status line of a start; Ctrl-C during its build, after which nothing
//! of that start remains. Snapshots, one for all six engines (ids, names,
//! paths and timings filtered), of what start, stop, remove and cleanup
//! show — on a terminal (its final screen, through a terminal emulator)
//! and piped.

use std::time::Duration;

use anvyl_tests::{Run, Sandbox};
use rexpect::process::wait::WaitStatus;
use rexpect::session::{spawn_command, PtySession};

use crate::lifecycle::{assert_cleaned, create, create_slow, wait_for_the_slow_step};
use crate::unique;

/// Answers a `[y/N]` prompt with one key, as a person does (no Enter), once
/// the prompt reads keys: it is drawn before the terminal is switched to
/// raw mode. Returns what the terminal was sent up to the answer.
fn answer(p: &mut PtySession, key: &str) -> String {
    let before = p.exp_string("[y/N]").expect("the prompt");
    std::thread::sleep(Duration::from_millis(500));
    p.send(key).expect("answer");
    p.flush().expect("answer");
    format!("{before}[y/N]")
}

/// `anvyl ARGS` in a fresh pseudo-terminal.
fn in_terminal(s: &Sandbox, args: &[&str]) -> PtySession {
    spawn_command(s.terminal_command(args), Some(60_000)).expect("spawn anvyl in a pty")
}

/// What a terminal shows after `output`, as lines a test can compare: the
/// bytes run through a terminal emulator (vt100), so a status line redrawn
/// in place or cleared for a log line looks as it does to a person.
fn plain(output: &str) -> String {
    let mut terminal = vt100::Parser::new(500, 200, 0);
    terminal.process(&bytes(output));
    terminal.screen().contents()
}

/// The bytes anvyl wrote: rexpect hands over each byte as one char.
fn bytes(output: &str) -> Vec<u8> {
    output.chars().map(|c| c as u32 as u8).collect()
}

fn exit_code(p: &PtySession) -> Option<i32> {
    match p.process.wait().expect("wait for anvyl") {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => panic!("anvyl died of {signal}"),
        other => panic!("anvyl did not exit: {other:?}"),
    }
}

#[tokio::test]
async fn a_terminal_gets_the_prompt_the_status_line_and_a_clean_ctrl_c() {
    let s = Sandbox::new().await;
    // The prompt: "n" keeps everything and is not an error.
    let web = s.agent(&unique("tty"));
    let (container, _) = s.leftovers(&web).await;
    let mut p = in_terminal(&s, &["agent", "cleanup", web.as_str()]);
    answer(&mut p, "n");
    let rest = plain(&p.exp_eof().expect("anvyl ends"));
    assert_eq!(exit_code(&p), Some(4), "{rest}");
    assert!(rest.contains("Nothing was removed."), "{rest}");
    assert!(
        !rest.contains("error:"),
        "a declined prompt is no error: {rest}"
    );
    assert!(
        s.has_container(&container).await,
        "'n' removed the container"
    );
    // "y" removes, with a bar of n/N per step while it does, which is
    // gone from the screen once the summary is printed.
    s.build_dir(&web, "s1");
    let mut p = in_terminal(&s, &["agent", "cleanup", web.as_str()]);
    let asked = answer(&mut p, "y");
    let raw = asked + &p.exp_eof().expect("anvyl ends");
    let screen = plain(&raw);
    let raw = String::from_utf8_lossy(&bytes(&raw)).into_owned();
    assert_eq!(exit_code(&p), Some(0), "{screen}");
    assert!(!s.has_container(&container).await, "'y' left the container");
    assert!(
        raw.contains("] 0/3 containers 0/1 · images 0/1 · build dirs 0/1")
            && raw.contains("] 3/3 containers 1/1 · images 1/1 · build dirs 1/1"),
        "no progress bar counted the removals: {raw:?}"
    );
    assert!(
        !screen.contains("containers 1/1"),
        "a bar frame stayed: {screen}"
    );
    assert_shown(&s, "cleanup_on_a_terminal", &screen);

    // A start shows its phase on a live line; Ctrl-C during the build
    // cleans that start up.
    let slow = create_slow(&s, "ttyslow");
    let mut p = in_terminal(&s, &["agent", "start", slow.as_str()]);
    let status = format!("building {}", slow.image_tag());
    let before = p
        .exp_string(&status)
        .expect("the status line names the phase");
    wait_for_the_slow_step(&s, &slow).await;
    p.send_control('c').expect("Ctrl-C");
    let rest = p.exp_eof().expect("anvyl ends");
    let screen = plain(&format!("{before}{status}{rest}"));
    let run = Run {
        code: exit_code(&p),
        stdout: String::new(),
        stderr: screen,
    };
    // The status line went away: no frame of it is left on the screen.
    assert!(!run.stderr.contains("building"), "{}", run.stderr);
    assert_cleaned(&s, &slow, &run, 130).await;
}

/// Checks `shown` against snapshot `name`, with what differs between runs
/// and engines filtered: one snapshot for every engine, since what a user
/// reads must not differ.
fn assert_shown(s: &Sandbox, name: &str, shown: &str) {
    let mut settings = insta::Settings::clone_current();
    let state_dir = s.state_dir.path().display().to_string();
    let build_root = s.build_root().display().to_string();
    // The longer path first: the build root is inside the state directory.
    for (literal, replacement) in [
        (build_root.as_str(), "[BUILD_ROOT]"),
        (state_dir.as_str(), "[STATE]"),
        (s.itest.base_image.as_str(), "[BASE]"),
    ] {
        settings.add_filter(&regex::escape(literal), replacement);
    }
    for (pattern, replacement) in [
        (r"\b(shown|tty|swept)-[0-9a-f]{12}", "$1-[ID]"),
        (r"\b[0-9a-f]{64}\b", "[CONTAINER]"),
        (r"\b[0-9a-f]{12}\b", "[START]"),
        (r"\b(Docker|Podman)\b", "[ENGINE]"),
        (r"\d+\.\d+s", "[SECONDS]"),
        // Other tests' dangling images, on Docker only.
        (r"(?m)^Hint: .*\n?", ""),
        // A terminal pads lines to its width.
        (r" +\n", "\n"),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, shown.trim_end()));
}

/// Runs each command of `steps`, piped or in a terminal, and returns what
/// a user saw: the command line, then its output (a terminal's final
/// screen).
fn shown(s: &Sandbox, steps: &[Vec<&str>], terminal: bool) -> String {
    let mut shown = String::new();
    for args in steps {
        let (code, output) = if terminal {
            let mut p = in_terminal(s, args);
            let rest = p.exp_eof().expect("anvyl ends");
            (exit_code(&p), plain(&rest))
        } else {
            let run = s.anvyl(args);
            (run.code, format!("{}{}", run.stdout, run.stderr))
        };
        assert_eq!(code, Some(0), "{args:?}: {output}");
        shown.push_str(&format!(
            "$ anvyl {}\n{}",
            args.join(" "),
            output.trim_end()
        ));
        shown.push('\n');
    }
    shown
}

#[tokio::test]
async fn start_stop_and_remove_output_matches_its_snapshots() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    for (terminal, snapshot) in [
        (false, "start_stop_remove"),
        (true, "start_stop_remove_terminal"),
    ] {
        let agent = create(
            &s,
            &unique("shown"),
            &["--image", &base, "--command", "sleep 600"],
        );
        let steps = [
            vec!["agent", "start", agent.as_str()],
            vec!["agent", "stop", agent.as_str()],
            vec!["agent", "stop", agent.as_str()],
            vec!["agent", "remove", agent.as_str(), "--yes"],
        ];
        assert_shown(&s, snapshot, &shown(&s, &steps, terminal));
    }
}

#[tokio::test]
async fn a_piped_cleanup_matches_its_snapshot() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("swept"));
    s.leftovers(&web).await;
    s.build_dir(&web, "s1");
    let steps = [
        vec!["agent", "cleanup", web.as_str(), "--dry-run"],
        vec!["agent", "cleanup", web.as_str(), "--yes"],
        vec!["agent", "cleanup", web.as_str(), "--yes"],
    ];
    assert_shown(&s, "cleanup_piped", &shown(&s, &steps, false));
}

/// An untagged image of an interrupted start, tagged by its user while
/// the `[y/N]` prompt waits: answering "y" must not take the tag with it.
#[tokio::test]
async fn a_tag_added_while_the_prompt_waits_survives() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("tagged"));
    let start = anvyl_core::StartId::random();
    let state = s.state();
    let dir = s.build_dir(&web, start.as_str());
    state.begin_start_as(&web, &start, &dir, 0).unwrap();
    state.end_start(&start, "interrupted").unwrap();
    s.set_status(&web, anvyl_core::AgentStatus::Stopped, None);
    // The build finished after its start was gone, and lost its tag to a
    // newer image: an untagged image with the start's labels.
    let labels = s.ownership.stamp(&Default::default(), &web, &start);
    let scratch = format!("scratch-{web}:1");
    let untagged = s.image(&scratch, labels).await;
    let newer = s.image(&scratch, Default::default()).await;
    s.discard(&[], &[&scratch]).await;
    assert_ne!(untagged, newer);

    let mut p = in_terminal(&s, &["agent", "cleanup", web.as_str()]);
    let asked = plain(&p.exp_string("[y/N]").expect("the prompt"));
    assert!(
        asked.contains("<none>"),
        "the plan lists the untagged image: {asked}"
    );
    let mine = format!("keep-{web}:mine");
    s.engine.tag_image(&untagged, &mine).await.unwrap();
    std::thread::sleep(Duration::from_millis(500));
    p.send("y").expect("answer");
    p.flush().expect("answer");
    let screen = plain(&p.exp_eof().expect("anvyl ends"));

    let kept = s.engine.inspect_image(&mine).await;
    assert_eq!(kept.map(|i| i.id).ok(), Some(untagged.clone()), "{screen}");
    assert!(screen.contains("changed since the plan"), "{screen}");
    assert_eq!(exit_code(&p), Some(0), "{screen}");
    assert!(!dir.exists(), "the rest of the plan ran: {screen}");
    s.discard(&[], &[&mine]).await;
}
