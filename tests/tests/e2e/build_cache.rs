//! The build cache owned (`build_cache = "remove"`, `cleanup
//! --build-cache`) on a real engine: the step images of anvyl's own build
//! go with its image, and the engine keeps what is not anvyl's to take — a
//! step somebody tagged, and everything it is built on. Docker's classic
//! builder (the classic and the containerd store alike) makes a step image
//! per instruction; buildah, as anvyl asks it, makes none. And retention:
//! `--older-than` and `--keep-images` keep exactly what they say.

use anvyl_core::{AgentName, StartId};
use anvyl_tests::Sandbox;

use crate::lifecycle::create;
use crate::unique;

const OWNED: [(&str, &str); 1] = [("ANVYL_BUILD_CACHE", "remove")];

/// The images `top` is built on, `top` first, down to (not including) `base`.
async fn chain(s: &Sandbox, top: &str, base: &str) -> Vec<String> {
    let tree = s.engine.list_image_tree().await.unwrap();
    let mut chain = Vec::new();
    let mut at = Some(top.to_string());
    while let Some(id) = at.filter(|id| id != base) {
        at = tree
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.parent.clone());
        chain.push(id);
    }
    chain
}

/// An agent built `FROM` the test base with two steps: one no other build
/// runs (nothing of it comes from the cache), then `second`.
fn with_steps(s: &Sandbox, stem: &str, second: &str) -> (String, AgentName) {
    let base = s.itest.base_image.clone();
    let one = format!("echo {} > /one", StartId::random());
    let name = unique(stem);
    let args = ["--image", &base, "--setup", &one, "--setup", second];
    let agent = create(s, &name, &[&args[..], &["--command", "sleep 600"]].concat());
    (name, agent)
}

fn is_docker(s: &Sandbox) -> bool {
    s.itest.backend == "docker"
}

#[tokio::test]
async fn an_owned_build_cache_goes_with_the_agent_but_not_a_step_someone_tagged() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let base_id = s.engine.inspect_image(&base).await.unwrap().id;
    let (name, agent) = with_steps(&s, "cache", "echo two > /two");
    let run = s.anvyl_with(&["agent", "start", &name], &OWNED);
    assert_eq!(run.code, Some(0), "{run:?}");
    let image = s.engine.inspect_image(&agent.image_tag()).await.unwrap().id;
    let made = chain(&s, &image, &base_id).await;
    // Docker: the two RUN steps, CMD, and the LABEL that is the image.
    let expected = if is_docker(&s) { 4 } else { 1 };
    assert_eq!(made.len(), expected, "{made:?}");

    // Somebody tags the first step: theirs now, and what it is built on.
    let theirs = format!("mine-{}:1", StartId::random());
    if is_docker(&s) {
        s.engine.tag_image(&made[3], &theirs).await.unwrap();
    }
    let stop = s.anvyl_with(&["agent", "stop", &name], &OWNED);
    assert_eq!(stop.code, Some(0), "{stop:?}");
    let clean = s.anvyl_with(&["agent", "cleanup", &name, "--yes"], &OWNED);
    assert_eq!(clean.code, Some(0), "{clean:?}");
    for (n, id) in made.iter().enumerate() {
        let stays = is_docker(&s) && n == 3;
        assert_eq!(s.has_image(id).await, stays, "{id} ({n}): {clean:?}");
    }
    if !is_docker(&s) {
        return;
    }
    assert_eq!(
        clean.stderr.matches("Removed Docker build step").count(),
        2,
        "{clean:?}"
    );

    // Started again with the default: the steps stay for the engine's
    // prune, recorded, and `--build-cache` takes them later — all but the
    // first, which came from the cache (somebody's tagged image).
    let run = s.anvyl(&["agent", "start", &name]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let image = s.engine.inspect_image(&agent.image_tag()).await.unwrap().id;
    let again = chain(&s, &image, &base_id).await;
    assert_eq!(again.len(), 4, "{again:?}");
    assert_eq!(again[3], made[3], "the first step came from the cache");
    let stop = s.anvyl(&["agent", "stop", &name]);
    assert_eq!(stop.code, Some(0), "{stop:?}");
    let clean = s.anvyl(&["agent", "cleanup", &name, "--yes"]);
    assert_eq!(clean.code, Some(0), "{clean:?}");
    assert!(s.has_image(&again[1]).await, "kept by default: {clean:?}");
    let clean = s.anvyl(&["agent", "cleanup", &name, "--build-cache", "--yes"]);
    assert_eq!(clean.code, Some(0), "{clean:?}");
    for (n, id) in again.iter().enumerate() {
        assert_eq!(s.has_image(id).await, n == 3, "{id} ({n}): {clean:?}");
    }
    assert!(s.has_image(&base_id).await, "the base is never anvyl's");
    s.engine.remove_image(&theirs).await.unwrap();
}

#[tokio::test]
async fn a_failed_build_takes_the_step_it_made() {
    let s = Sandbox::new().await;
    let (name, agent) = with_steps(&s, "cache-fail", "exit 3");
    let run = s.anvyl_with(&["agent", "start", &name], &OWNED);
    crate::lifecycle::assert_cleaned(&s, &agent, &run, 1).await;
    let removed: Vec<&str> = (run.stderr.lines())
        .filter_map(|l| l.split("Removed Docker build step ").nth(1))
        .collect();
    let expected = if is_docker(&s) { 1 } else { 0 };
    assert_eq!(removed.len(), expected, "{run:?}");
    for step in removed {
        assert!(!s.has_image(step.trim()).await, "{step}: {run:?}");
    }
}

/// Retention on a real engine: `--older-than` takes only the agent idle for
/// longer (its last start moved ten days back in the store), `--keep-images`
/// keeps a restart's image, and a plain cleanup takes it.
#[tokio::test]
async fn retention_takes_the_idle_agent_and_keeps_images_on_request() {
    let s = Sandbox::new().await;
    let base = s.itest.base_image.clone();
    let make = |stem: &str| {
        let agent = create(
            &s,
            &unique(stem),
            &["--image", &base, "--command", "sleep 600"],
        );
        for verb in ["start", "stop"] {
            let run = s.anvyl(&["agent", verb, agent.as_str()]);
            assert_eq!(run.code, Some(0), "{verb}: {run:?}");
        }
        agent
    };
    let (idle, busy) = (make("idle"), make("busy"));
    let database = s.state_dir.path().join(anvyl_core::state::DATABASE_FILE);
    let db = rusqlite::Connection::open(&database).unwrap();
    for table in [
        "UPDATE starts SET started = started - 864000 WHERE agent = ?1",
        "UPDATE agents SET created = created - 864000 WHERE name = ?1",
    ] {
        db.execute(table, [idle.as_str()]).unwrap();
    }

    let run = s.anvyl(&["agent", "cleanup", "--older-than", "7d", "--yes"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!s.has_image(&idle.image_tag()).await, "{run:?}");
    assert!(s.has_image(&busy.image_tag()).await, "{run:?}");
    assert!(
        run.stdout.contains("ago, within --older-than 7d"),
        "{run:?}"
    );

    let run = s.anvyl(&["agent", "cleanup", "--keep-images", "--yes"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(s.has_image(&busy.image_tag()).await, "{run:?}");
    assert!(
        run.stdout.contains("kept for restarts (--keep-images)"),
        "{run:?}"
    );

    let run = s.anvyl(&["agent", "cleanup", "--yes"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!s.has_image(&busy.image_tag()).await, "{run:?}");
}

/// A user's build running beside anvyl's cleanups of an owned build cache,
/// eight rounds: it succeeds every time, and its cache is all still there
/// at the end — its steps were never anvyl's record.
#[tokio::test]
async fn a_foreign_build_beside_owned_cleanups_keeps_its_cache_and_succeeds() {
    let s = Sandbox::new().await;
    let context = s.shared_dir();
    let mark = StartId::random();
    let dockerfile = format!(
        "FROM {}\nRUN echo {mark} > /f\nRUN echo again > /g\n",
        s.itest.base_image
    );
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    let tag = format!("foreign-{mark}:1");
    let build = || {
        let mut cmd = s.engine_cli();
        // The classic builder, as anvyl's: the Docker CLI's own default
        // would need buildx.
        cmd.env("DOCKER_BUILDKIT", "0")
            .args(["build", "--network", "none", "-t", &tag])
            .arg(context.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let first = build().output().unwrap();
    assert!(first.status.success(), "{first:?}");
    for round in 0..8 {
        let (name, _) = with_steps(&s, "beside", "echo two > /two");
        for verb in ["start", "stop"] {
            let run = s.anvyl_with(&["agent", verb, &name], &OWNED);
            assert_eq!(run.code, Some(0), "round {round}, {verb}: {run:?}");
        }
        let theirs = build().spawn().unwrap();
        let clean = s.anvyl_with(&["agent", "cleanup", &name, "--yes"], &OWNED);
        let theirs = theirs.wait_with_output().unwrap();
        assert!(theirs.status.success(), "round {round}: {theirs:?}");
        assert_eq!(clean.code, Some(0), "round {round}: {clean:?}");
    }
    let again = build().output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(again.status.success(), "{said}");
    assert_eq!(
        said.matches("Using cache").count(),
        2,
        "both steps cached: {said}"
    );
    s.engine.remove_image(&tag).await.unwrap();
}
