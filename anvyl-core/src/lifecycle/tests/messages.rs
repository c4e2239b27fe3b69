//! What a start tells: its phases in order, and errors with the last lines of output, said once.

use super::*;

#[tokio::test]
async fn a_start_reports_its_phases_in_order() {
    let w = World::new();
    let web = w.good("web");
    let seen = std::sync::Mutex::new(Vec::new());
    let sink = |phase: Phase| seen.lock().unwrap().push(phase);
    w.lifecycle()
        .with_phases(&sink)
        .start(&web, &|_| {}, std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [Phase::Building, Phase::Creating, Phase::Settling]
    );
}

#[test]
fn an_error_shows_the_last_lines_of_output_plainly() {
    let mut text: String = (1..=12)
        .map(|i| format!("\x1b[31mline {i}\x1b[0m\r\n"))
        .collect();
    text.push_str("\n   \n");
    let lines = super::last_lines(text.as_bytes());
    assert_eq!(lines.len(), super::LAST_LINES);
    assert_eq!(lines.first().map(String::as_str), Some("line 3"));
    assert_eq!(lines.last().map(String::as_str), Some("line 12"));

    let cause = StartCause::Exited {
        after_ms: 300,
        exit_code: Some(3),
        last_output: vec!["no API key".into()],
    };
    assert_eq!(
        cause.to_string(),
        "the agent's command exited with code 3 0.3s after it started: it must keep running\n  its last output:\n  | no API key"
    );
    let silent = StartCause::Exited {
        after_ms: 300,
        exit_code: None,
        last_output: Vec::new(),
    };
    assert_eq!(
        silent.to_string(),
        "the agent's command exited 0.3s after it started: it must keep running"
    );
}

#[test]
fn an_engine_error_is_not_prefixed_with_its_own_operation_again() {
    let engine = StartCause::StartContainer(BackendError::Engine {
        operation: "start container",
        status: Some(500),
        message: "exec: \"sh\": not found".into(),
    });
    assert_eq!(
        engine.to_string(),
        "start container failed: exec: \"sh\": not found"
    );
    let missing = StartCause::CreateContainer(BackendError::NotFound {
        what: "image anvyl-agent-x:s1".into(),
    });
    assert!(
        missing.to_string().starts_with("cannot create container: "),
        "{missing}"
    );
}
