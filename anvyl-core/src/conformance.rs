//! The conformance suite: one plain `pub async fn` per behaviour the
//! pipeline relies on, run by every backend — the in-memory one under
//! `cargo test`, Docker and Podman against real engines under
//! `cargo xtask itest`. Each check makes its own uniquely named resources
//! and removes them again, so checks can share an engine.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::backend::{
    Backend, BackendError, BuildSpec, ContainerSpec, ContainerState, Labels, Query,
};
use crate::build_root::BuildRoot;
use crate::identity::{EngineIdentity, LABEL_ENGINE, MARKER_VOLUME};
use crate::ids::{InstanceId, StartId};
use crate::name::AgentName;
use crate::ownership::Ownership;
use crate::pipeline::{Cleanup, CleanupSettings, Outcome, Scope};
use crate::state::{AgentSpec, StateStore};

/// What differs between engines, passed in by each backend's test.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// A local image with a shell (`sh`, `sleep`, `true`, `false`).
    pub base_image: String,
    /// Network mode for test containers and builds (`none` on real engines).
    pub network: Option<String>,
    /// Whether a build leaves untagged images of its steps below the image
    /// (the engine's build cache), which removing the image must leave.
    pub build_cache: bool,
    /// Whether containers run real processes that get signals (the
    /// in-memory engine's stop at once, whatever their command).
    pub runs_processes: bool,
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// The names of every check, in the order [`run_all`] runs them.
        pub const CHECKS: &[&str] = &[$(stringify!($name)),*];

        /// Runs every check against `backend` in order, printing each name
        /// so that a failure names its check.
        pub async fn run_all(backend: &dyn Backend, fixture: &Fixture) {
            $(
                eprintln!("conformance: {} ...", stringify!($name));
                let began = std::time::Instant::now();
                $name(backend, fixture).await;
                eprintln!("conformance: {} ok ({:.2}s)", stringify!($name), began.elapsed().as_secs_f64());
            )*
        }
    };
}

checks!(
    check_ping_and_version,
    check_container_labels_round_trip,
    check_label_filter_selects_exactly,
    check_name_filter_includes_exact_name,
    check_start_and_stop_container,
    check_stop_honours_its_timeout,
    check_forced_removal_of_running_container,
    check_missing_container_is_not_found,
    check_build_applies_tag_and_labels,
    check_a_context_file_without_blocks_builds,
    check_failed_build_is_build_failed,
    check_reference_filter_includes_exact_tag,
    check_reference_glob_includes_matching_tags,
    check_removing_a_tag_keeps_other_tags,
    check_image_in_use_is_conflict,
    check_missing_image_is_not_found,
    check_cleanup_spares_lookalikes,
    check_resources_made_after_plan_survive,
    check_both_tags_of_a_start_are_removed,
    check_removal_leaves_the_build_cache,
);

/// A unique agent name for one check.
fn unique_agent(prefix: &str) -> AgentName {
    AgentName::new(format!("cf-{prefix}-{}", StartId::random())).expect("valid name")
}

fn container_spec(
    fixture: &Fixture,
    name: &str,
    labels: Labels,
    command: &[&str],
) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: fixture.base_image.clone(),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
        env: vec!["ANVYL_CONFORMANCE=1".into()],
        labels,
        network: fixture.network.clone(),
    }
}

/// Builds `tag` from the fixture's base image plus `extra` Dockerfile lines.
async fn build(
    backend: &dyn Backend,
    fixture: &Fixture,
    tag: &str,
    labels: Labels,
    extra: &str,
) -> Result<String, BackendError> {
    let dir = tempfile::tempdir().expect("temp dir");
    build_in(backend, fixture, dir.path(), tag, labels, extra).await
}

/// Builds `tag` from the context `dir` holds, with a Dockerfile of the
/// fixture's base image plus `extra` lines.
async fn build_in(
    backend: &dyn Backend,
    fixture: &Fixture,
    dir: &Path,
    tag: &str,
    labels: Labels,
    extra: &str,
) -> Result<String, BackendError> {
    write_dockerfile(dir, &format!("FROM {}\n{extra}", fixture.base_image));
    let spec = BuildSpec {
        context_dir: dir.to_path_buf(),
        tag: tag.to_string(),
        labels,
        network: fixture.network.clone(),
    };
    backend
        .build_image(&spec, &|_| {})
        .await
        .map(|o| o.image_id)
}

fn write_dockerfile(dir: &Path, text: &str) {
    std::fs::write(dir.join("Dockerfile"), text).expect("write Dockerfile");
}

/// Best-effort removal at the end of a check.
async fn discard(backend: &dyn Backend, containers: &[&str], images: &[&str]) {
    for c in containers {
        let _ = backend.remove_container(c, Duration::ZERO).await;
    }
    for i in images {
        let _ = backend.remove_image(i).await;
    }
}

/// A cleanup of `state`'s installation on `backend`, building below `dir`.
fn cleanup_of<'a>(
    backend: &'a dyn Backend,
    state: &'a StateStore,
    dir: &Path,
    settings: CleanupSettings,
) -> Cleanup<'a> {
    Cleanup::new(
        backend,
        state,
        BuildRoot::new(dir).expect("build root"),
        settings,
    )
}

fn labels_of(ours: &Ownership, agent: &AgentName) -> Labels {
    ours.stamp(&Labels::new(), agent, &StartId::random())
}

/// A backend's tag listing drops exactly its engine's `implicit` prefix
/// and keeps another engine's (`foreign`) as part of a user's repository.
/// A plain function, not a check against an engine: each backend crate's
/// unit tests call it with its own prefix.
pub fn check_implicit_prefix(implicit: &str, foreign: &str) {
    let tags = crate::backend::ImageTag::parse_listing(
        implicit,
        &[
            "<none>:<none>".to_string(),
            format!("{implicit}anvyl-agent-web:v1"),
            format!("{foreign}anvyl-agent-web:latest"),
            "registry:5000/x".to_string(),
        ],
    );
    let parsed: Vec<(&str, &str)> = (tags.iter())
        .map(|t| (t.repository.as_str(), t.tag.as_str()))
        .collect();
    let foreign_repository = format!("{foreign}anvyl-agent-web");
    assert_eq!(
        parsed,
        [
            ("anvyl-agent-web", "v1"),
            (foreign_repository.as_str(), "latest"),
            ("registry:5000/x", "latest"),
        ]
    );
    assert_eq!(tags[0].reference, format!("{implicit}anvyl-agent-web:v1"));
}

/// The engine answers ping, reports a version, and names itself the same
/// way each time (agents are recorded with that identity): the marker
/// volume holds its labels, and a second create of it changes nothing.
pub async fn check_ping_and_version(backend: &dyn Backend, _: &Fixture) {
    backend.ping().await.expect("ping");
    let info = backend.version().await.expect("version");
    assert!(!info.version.is_empty(), "engine version is empty");
    let identity = EngineIdentity::of(backend);
    let marked = identity.current().await.expect("identity").to_string();
    assert_eq!(EngineIdentity::of(backend).current().await.unwrap(), marked);
    assert!(identity.is(&marked).await.unwrap());
    let other = Labels::from([(LABEL_ENGINE.to_string(), "someone-else".to_string())]);
    match backend.create_volume(MARKER_VOLUME, &other).await {
        Ok(()) => {}
        Err(e) => assert!(e.is_conflict(), "a second create: {e}"),
    }
    assert_eq!(EngineIdentity::of(backend).current().await.unwrap(), marked);
    let missing = format!("anvyl-no-such-volume-{}", StartId::random());
    let err = backend.volume(&missing).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// Two engines of one kind on one machine — whatever they say of
/// themselves (every Docker 20.10 daemon of a machine reports one daemon
/// ID) — have two identities, and neither judges what the other runs.
pub async fn check_two_engines_are_told_apart(one: &dyn Backend, other: &dyn Backend) {
    let on_one = EngineIdentity::of(one)
        .current()
        .await
        .expect("identity")
        .to_string();
    let on_other = EngineIdentity::of(other)
        .current()
        .await
        .expect("identity")
        .to_string();
    assert_ne!(on_one, on_other);
    assert!(!EngineIdentity::of(other).is(&on_one).await.unwrap());
    assert!(!EngineIdentity::of(one).is(&on_other).await.unwrap());
}

/// Labels and the exact name survive create and inspect.
pub async fn check_container_labels_round_trip(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("labels");
    let ours = Ownership::new(InstanceId::random());
    let mut user = Labels::new();
    user.insert("io.anvyl.managed-by".into(), "not-anvyl".into());
    user.insert("team".into(), "ml".into());
    let labels = ours.stamp(&user, &agent, &StartId::random());
    let name = agent.resource_name();
    let id = backend
        .create_container(&container_spec(fixture, &name, labels, &["true"]))
        .await
        .expect("create");
    let found = backend.inspect_container(&id).await.expect("inspect");
    discard(backend, &[&id], &[]).await;
    assert_eq!(found.name, name);
    assert_eq!(found.id, id);
    assert_eq!(found.state, ContainerState::Created);
    assert_eq!(
        found.labels.get("io.anvyl.managed-by").map(String::as_str),
        Some("anvyl")
    );
    assert_eq!(found.labels.get("team").map(String::as_str), Some("ml"));
    assert_eq!(ours.labelled_agent(&found.labels), Some(agent));
}

/// A label query returns the matching container and not one of another agent.
pub async fn check_label_filter_selects_exactly(backend: &dyn Backend, fixture: &Fixture) {
    let (a, b) = (unique_agent("filt-a"), unique_agent("filt-b"));
    let ours = Ownership::new(InstanceId::random());
    let ida = backend
        .create_container(&container_spec(
            fixture,
            &a.resource_name(),
            labels_of(&ours, &a),
            &["true"],
        ))
        .await
        .expect("create a");
    let idb = backend
        .create_container(&container_spec(
            fixture,
            &b.resource_name(),
            labels_of(&ours, &b),
            &["true"],
        ))
        .await
        .expect("create b");
    let listed = backend
        .list_containers(&Query::labelled(ours.selector(Some(&a), None)))
        .await;
    let all_ours = backend
        .list_containers(&Query::labelled(ours.selector(None, None)))
        .await;
    discard(backend, &[&ida, &idb], &[]).await;
    let ids: Vec<String> = listed.expect("list").into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![ida.clone()]);
    let ids: BTreeSet<String> = all_ours.expect("list").into_iter().map(|c| c.id).collect();
    assert_eq!(ids, BTreeSet::from([ida, idb]));
}

/// A name query includes the container of exactly that name (look-alikes
/// may come too; callers compare exactly).
pub async fn check_name_filter_includes_exact_name(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("name");
    let exact = agent.resource_name();
    let longer = format!("{exact}2");
    let id = backend
        .create_container(&container_spec(fixture, &exact, Labels::new(), &["true"]))
        .await
        .expect("create");
    let id2 = backend
        .create_container(&container_spec(fixture, &longer, Labels::new(), &["true"]))
        .await
        .expect("create look-alike");
    let listed = backend.list_containers(&Query::named(exact.clone())).await;
    discard(backend, &[&id, &id2], &[]).await;
    let names: Vec<String> = listed.expect("list").into_iter().map(|c| c.name).collect();
    assert!(names.contains(&exact), "{exact} missing from {names:?}");
}

/// Start makes a container running; stop makes it exited; repeating either is
/// not an error.
pub async fn check_start_and_stop_container(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("run");
    let id = backend
        .create_container(&container_spec(
            fixture,
            &agent.resource_name(),
            Labels::new(),
            &["sleep", "300"],
        ))
        .await
        .expect("create");
    let result = async {
        backend.start_container(&id).await.expect("start");
        backend.start_container(&id).await.expect("start again");
        assert_eq!(
            backend.inspect_container(&id).await.expect("inspect").state,
            ContainerState::Running
        );
        backend
            .stop_container(&id, Duration::ZERO)
            .await
            .expect("stop");
        backend
            .stop_container(&id, Duration::ZERO)
            .await
            .expect("stop again");
        backend.inspect_container(&id).await.expect("inspect").state
    }
    .await;
    discard(backend, &[&id], &[]).await;
    assert_eq!(result, ContainerState::Exited);
}

/// A stop honours the timeout it is given: a main process that ignores the
/// stop signal is killed once the timeout has passed — not after the
/// engine's own default of 10 s (libpod's stop ignores the timeout
/// podman-api sends) — and one that exits on the signal stops at once, so
/// the signal is really sent. The bounds are wide: they tell 2 s from 10 s.
pub async fn check_stop_honours_its_timeout(backend: &dyn Backend, fixture: &Fixture) {
    let started = |agent: AgentName, command: &'static [&'static str]| async move {
        let id = backend
            .create_container(&container_spec(
                fixture,
                &agent.resource_name(),
                Labels::new(),
                command,
            ))
            .await
            .expect("create");
        backend.start_container(&id).await.expect("start");
        id
    };
    // busybox `sleep` as PID 1 has no handler: SIGTERM does nothing to it.
    let stubborn = started(unique_agent("stubborn"), &["sleep", "300"]).await;
    let polite = started(
        unique_agent("polite"),
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ],
    )
    .await;
    let began = std::time::Instant::now();
    let stubborn_stop = backend
        .stop_container(&stubborn, Duration::from_secs(2))
        .await;
    let stubborn_took = began.elapsed();
    let stubborn_state = backend.inspect_container(&stubborn).await.map(|c| c.state);
    let began = std::time::Instant::now();
    let polite_stop = backend
        .stop_container(&polite, Duration::from_secs(8))
        .await;
    let polite_took = began.elapsed();
    discard(backend, &[&stubborn, &polite], &[]).await;
    stubborn_stop.expect("stop with timeout 2 s");
    polite_stop.expect("stop with timeout 8 s");
    assert_eq!(stubborn_state.expect("inspect"), ContainerState::Exited);
    let waited_enough = !fixture.runs_processes || stubborn_took >= Duration::from_millis(1500);
    assert!(
        waited_enough && stubborn_took < Duration::from_secs(6),
        "a stop with timeout 2 s of a process that ignores SIGTERM took {stubborn_took:?}"
    );
    assert!(
        polite_took < Duration::from_secs(6),
        "a process that exits on SIGTERM took {polite_took:?} to stop (timeout 8 s): no stop signal?"
    );
}

/// A running container is removed outright with a zero stop timeout.
pub async fn check_forced_removal_of_running_container(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("force");
    let id = backend
        .create_container(&container_spec(
            fixture,
            &agent.resource_name(),
            Labels::new(),
            &["sleep", "300"],
        ))
        .await
        .expect("create");
    backend.start_container(&id).await.expect("start");
    backend
        .remove_container(&id, Duration::ZERO)
        .await
        .expect("forced removal");
    let err = backend.inspect_container(&id).await.expect_err("removed");
    assert!(err.is_not_found(), "expected not found, got {err}");
}

/// Inspecting or removing a missing container is `NotFound`.
pub async fn check_missing_container_is_not_found(backend: &dyn Backend, _: &Fixture) {
    let name = unique_agent("missing").resource_name();
    let err = backend.inspect_container(&name).await.expect_err("missing");
    assert!(err.is_not_found(), "inspect: expected not found, got {err}");
    let err = backend
        .remove_container(&name, Duration::ZERO)
        .await
        .expect_err("missing");
    assert!(err.is_not_found(), "remove: expected not found, got {err}");
}

/// A build gets the tag (compared without engine prefixes) and the labels.
pub async fn check_build_applies_tag_and_labels(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("build");
    let ours = Ownership::new(InstanceId::random());
    let tag = agent.image_tag();
    let id = build(backend, fixture, &tag, labels_of(&ours, &agent), "")
        .await
        .expect("build");
    let inspected = backend.inspect_image(&tag).await;
    let listed = backend
        .list_images(&Query::labelled(ours.selector(Some(&agent), None)))
        .await;
    discard(backend, &[], &[&tag]).await;
    let image = inspected.expect("inspect");
    assert_eq!(image.id, id);
    assert!(
        image.id.starts_with("sha256:"),
        "id {} lacks sha256:",
        image.id
    );
    let tags: Vec<String> = image.tags.iter().map(|t| t.to_string()).collect();
    assert_eq!(tags, vec![tag]);
    assert_eq!(ours.labelled_agent(&image.labels), Some(agent));
    let ids: Vec<String> = listed.expect("list").into_iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![id]);
}

/// A build-context file that its filesystem reports with no blocks — a
/// hole, or what some filesystems show for a moment after a write — still
/// reaches the engine as a plain file. Packed as a GNU sparse entry (the
/// `tar` crate's default for such a file), Docker 20.10's builder refuses
/// the whole context: "unhandled tar header type 83", a start failed in CI.
pub async fn check_a_context_file_without_blocks_builds(backend: &dyn Backend, fixture: &Fixture) {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let hole = dir.path().join("hole");
    std::fs::File::create(&hole)
        .and_then(|f| f.set_len(4096))
        .expect("make a file of one hole");
    let meta = std::fs::metadata(&hole).expect("stat the hole");
    assert_eq!(
        (meta.len(), meta.blocks()),
        (4096, 0),
        "the filesystem under the temp dir allocated a hole"
    );
    let tag = unique_agent("hole").image_tag();
    let extra = "COPY hole /hole\nRUN test \"$(wc -c < /hole)\" -eq 4096\n";
    let built = build_in(backend, fixture, dir.path(), &tag, Labels::new(), extra).await;
    discard(backend, &[], &[&tag]).await;
    built.expect("a context with a file of one hole builds");
}

/// Whether some 24-character stretch of `text` occurs twice in it.
fn says_twice(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len().saturating_sub(24)).any(|i| {
        let window: String = chars[i..i + 24].iter().collect();
        let rest: String = chars[i + 1..].iter().collect();
        rest.contains(&window)
    })
}

/// A failing build step is `BuildFailed` and leaves no container behind.
pub async fn check_failed_build_is_build_failed(backend: &dyn Backend, fixture: &Fixture) {
    let before = backend
        .list_containers(&Query::default())
        .await
        .expect("list")
        .len();
    let tag = unique_agent("fail").image_tag();
    let err = build(backend, fixture, &tag, Labels::new(), "RUN false\n")
        .await
        .expect_err("RUN false must fail");
    assert!(
        matches!(err, BackendError::BuildFailed { .. }),
        "expected BuildFailed, got {err:?}"
    );
    // Said once: an engine that sends its message twice (libpod's `error`
    // and `errorDetail`) is the backend's to absorb.
    let text = err.to_string();
    assert!(!says_twice(&text), "the build error repeats itself: {text}");
    let after = backend
        .list_containers(&Query::default())
        .await
        .expect("list")
        .len();
    assert_eq!(before, after, "a failed build left intermediate containers");
    assert!(
        backend.inspect_image(&tag).await.is_err(),
        "a failed build left its tag"
    );
}

/// A reference query includes the image whose repository matches exactly.
pub async fn check_reference_filter_includes_exact_tag(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("ref");
    let tag = agent.image_tag();
    let id = build(
        backend,
        fixture,
        &tag,
        Labels::new(),
        "LABEL purpose=conformance\n",
    )
    .await
    .expect("build");
    let listed = backend
        .list_images(&Query::named(agent.resource_name()))
        .await;
    discard(backend, &[], &[&tag]).await;
    let listed = listed.expect("list");
    let image = listed
        .iter()
        .find(|i| i.id == id)
        .expect("image listed by reference");
    assert!(image
        .tags
        .iter()
        .any(|t| t.repository == agent.resource_name() && t.tag == "latest"));
}

/// A reference ending in `*` selects the images whose repository starts
/// with the rest (the pipeline's one listing of legacy images).
pub async fn check_reference_glob_includes_matching_tags(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("glob");
    let tag = agent.image_tag();
    let id = build(
        backend,
        fixture,
        &tag,
        Labels::new(),
        "LABEL purpose=glob\n",
    )
    .await
    .expect("build");
    let name = agent.resource_name();
    let pattern = format!("{}*", &name[..name.len() - 6]);
    let listed = backend.list_images(&Query::named(pattern.clone())).await;
    discard(backend, &[], &[&tag]).await;
    let listed = listed.expect("list");
    assert!(
        listed.iter().any(|i| i.id == id),
        "{pattern} did not select {tag}"
    );
}

/// Removing one tag of an image with two leaves the other tag and the image.
pub async fn check_removing_a_tag_keeps_other_tags(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("retag");
    let tag = agent.image_tag();
    let user_tag = format!("user-{agent}:keep");
    let id = build(
        backend,
        fixture,
        &tag,
        Labels::new(),
        "LABEL purpose=conformance\n",
    )
    .await
    .expect("build");
    backend.tag_image(&tag, &user_tag).await.expect("tag");
    let ours = backend.inspect_image(&tag).await.expect("inspect").tags;
    let reference = ours
        .iter()
        .find(|t| t.repository == agent.resource_name())
        .expect("our tag")
        .reference
        .clone();
    let removed = backend.remove_image(&reference).await;
    let user = backend.inspect_image(&user_tag).await;
    let gone = backend.inspect_image(&tag).await;
    discard(backend, &[], &[&user_tag, &tag]).await;
    removed.expect("remove our tag");
    assert_eq!(user.expect("user tag survives").id, id);
    assert!(gone.expect_err("our tag is gone").is_not_found());
}

/// Removing the last tag of an image a container uses is a conflict.
pub async fn check_image_in_use_is_conflict(backend: &dyn Backend, fixture: &Fixture) {
    let agent = unique_agent("inuse");
    let tag = agent.image_tag();
    build(
        backend,
        fixture,
        &tag,
        Labels::new(),
        "LABEL purpose=conformance\n",
    )
    .await
    .expect("build");
    let mut spec = container_spec(fixture, &agent.resource_name(), Labels::new(), &["true"]);
    spec.image = tag.clone();
    let id = backend.create_container(&spec).await.expect("create");
    let reference = backend.inspect_image(&tag).await.expect("inspect").tags[0]
        .reference
        .clone();
    let err = backend.remove_image(&reference).await;
    discard(backend, &[&id], &[&tag]).await;
    let err = err.expect_err("image in use");
    assert!(err.is_conflict(), "expected conflict, got {err:?}");
}

/// Inspecting or removing a missing image is `NotFound`.
pub async fn check_missing_image_is_not_found(backend: &dyn Backend, _: &Fixture) {
    let tag = unique_agent("noimg").image_tag();
    let err = backend.inspect_image(&tag).await.expect_err("missing");
    assert!(
        err.is_not_found(),
        "inspect: expected not found, got {err:?}"
    );
    let err = backend.remove_image(&tag).await.expect_err("missing");
    assert!(
        err.is_not_found(),
        "remove: expected not found, got {err:?}"
    );
}

/// A full cleanup of one agent removes its labelled resources and leaves
/// every look-alike: `anvyl-agent-<name>2`, `my-anvyl-agent-<name>`, another
/// installation's resources, a user's tags on the agent's image (in another
/// repository, in anvyl's repository, and under `localhost/`) and, unless
/// asked, an unlabelled container with an agent's exact name.
pub async fn check_cleanup_spares_lookalikes(backend: &dyn Backend, fixture: &Fixture) {
    let state = StateStore::open_in_memory().expect("state");
    let ours = Ownership::new(state.instance_id().clone());
    let theirs = Ownership::new(InstanceId::random());
    let agent = unique_agent("web");
    let legacy = unique_agent("old");
    for a in [&agent, &legacy] {
        state.create_agent(a, &AgentSpec::default()).expect("agent");
    }
    let tag = agent.image_tag();
    let user_tags = [
        format!("user-{agent}:keep"),
        format!("{}:backup", agent.resource_name()),
        format!("localhost/{}:mine", agent.resource_name()),
    ];
    build(backend, fixture, &tag, labels_of(&ours, &agent), "")
        .await
        .expect("build");
    for user_tag in &user_tags {
        backend.tag_image(&tag, user_tag).await.expect("user tag");
    }
    let mk = |name: String, labels: Labels| {
        let spec = container_spec(fixture, &name, labels, &["true"]);
        async move { backend.create_container(&spec).await.expect("create") }
    };
    let c_ours = mk(agent.resource_name(), labels_of(&ours, &agent)).await;
    // A user's container of the agent's image inherits the image's labels.
    let mut users = container_spec(
        fixture,
        &format!("user-of-{agent}"),
        Labels::new(),
        &["true"],
    );
    users.image = tag.clone();
    let c_users = backend
        .create_container(&users)
        .await
        .expect("create user's container");
    let c_legacy = mk(legacy.resource_name(), Labels::new()).await;
    let survivors = vec![
        mk(format!("{}2", agent.resource_name()), Labels::new()).await,
        mk(format!("my-{}", legacy.resource_name()), Labels::new()).await,
        mk(
            format!("{}-x", agent.resource_name()),
            labels_of(&theirs, &agent),
        )
        .await,
        mk(format!("{}2", legacy.resource_name()), Labels::new()).await,
        c_users,
    ];
    let build_root = tempfile::tempdir().expect("build root");
    let cleanup = cleanup_of(
        backend,
        &state,
        build_root.path(),
        CleanupSettings::default(),
    );
    let mut removed = Vec::new();
    let mut record = |report: &crate::pipeline::Report| {
        removed.extend(
            report
                .items()
                .filter(|(_, i)| i.outcome == Outcome::Removed)
                .map(|(_, i)| i.target.clone()),
        )
    };
    for scope in [Scope::Agent(agent.clone()), Scope::Agent(legacy.clone())] {
        let plan = cleanup.plan(scope).await.expect("plan");
        record(&cleanup.apply(&plan).await);
    }
    let legacy_kept = backend.inspect_container(&c_legacy).await.is_ok();
    // Asked for, the unlabelled container named for a known agent goes.
    let asked = CleanupSettings {
        include_unlabelled: true,
        ..CleanupSettings::default()
    };
    let cleanup = cleanup_of(backend, &state, build_root.path(), asked);
    let plan = cleanup
        .plan(Scope::Agent(legacy.clone()))
        .await
        .expect("plan");
    record(&cleanup.apply(&plan).await);
    let after: BTreeSet<String> = backend
        .list_containers(&Query::default())
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut user_images = Vec::new();
    for user_tag in &user_tags {
        user_images.push((user_tag, backend.inspect_image(user_tag).await.is_ok()));
    }
    discard(
        backend,
        &survivors.iter().map(String::as_str).collect::<Vec<_>>(),
        &user_tags.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert!(legacy_kept, "an unlabelled container was removed unasked");
    assert!(
        !after.contains(&c_ours) && !after.contains(&c_legacy),
        "owned containers remain"
    );
    for s in &survivors {
        assert!(after.contains(s), "look-alike {s} was removed");
    }
    for (user_tag, kept) in user_images {
        assert!(
            kept,
            "the user's tag {user_tag} on the agent's image was removed"
        );
    }
    removed.sort();
    // The user's tags keep the image alive, so our tag goes without conflict.
    let mut expected = vec![agent.resource_name(), legacy.resource_name(), tag.clone()];
    expected.sort();
    assert_eq!(removed, expected);
}

/// Apply removes only what the plan listed: a container created and an
/// image tag rebuilt after planning both survive.
pub async fn check_resources_made_after_plan_survive(backend: &dyn Backend, fixture: &Fixture) {
    let state = StateStore::open_in_memory().expect("state");
    let ours = Ownership::new(state.instance_id().clone());
    let agent = unique_agent("late");
    let tag = agent.image_tag();
    build(backend, fixture, &tag, labels_of(&ours, &agent), "")
        .await
        .expect("build");
    let early = backend
        .create_container(&container_spec(
            fixture,
            &agent.resource_name(),
            labels_of(&ours, &agent),
            &["true"],
        ))
        .await
        .expect("create");
    let build_root = tempfile::tempdir().expect("build root");
    let cleanup = cleanup_of(
        backend,
        &state,
        build_root.path(),
        CleanupSettings::default(),
    );
    let plan = cleanup
        .plan(Scope::Agent(agent.clone()))
        .await
        .expect("plan");
    assert_eq!(
        (plan.containers.len(), plan.images.len()),
        (1, 1),
        "{plan:?}"
    );

    // Another start runs between plan and apply: it rebuilds the tag (a new
    // image) after the old container is gone, and makes a new container.
    backend
        .remove_container(&early, Duration::ZERO)
        .await
        .expect("remove early");
    let rebuilt = build(
        backend,
        fixture,
        &tag,
        labels_of(&ours, &agent),
        "LABEL rebuilt=yes\n",
    )
    .await
    .expect("rebuild");
    let late = backend
        .create_container(&container_spec(
            fixture,
            &agent.resource_name(),
            labels_of(&ours, &agent),
            &["true"],
        ))
        .await
        .expect("create late");

    let report = cleanup.apply(&plan).await;
    let late_alive = backend.inspect_container(&late).await;
    let image_now = backend.inspect_image(&tag).await;
    // The first build lost its tag to the rebuild; remove it by id.
    discard(backend, &[&late], &[&tag, &plan.images[0].image_id]).await;
    assert!(
        late_alive.is_ok(),
        "a container made after planning was removed: {report:?}"
    );
    assert_eq!(image_now.expect("rebuilt image survives").id, rebuilt);
    assert_eq!(report.count(|o| *o == Outcome::Removed), 0, "{report:?}");
}

/// A start's image carries two tags anvyl gives, `:latest` and `:<start>`;
/// a cleanup removes both and with them the image, every time (Podman
/// loses one of two untags of one image that run at once).
pub async fn check_both_tags_of_a_start_are_removed(backend: &dyn Backend, fixture: &Fixture) {
    let state = StateStore::open_in_memory().expect("state");
    let ours = Ownership::new(state.instance_id().clone());
    let build_root = tempfile::tempdir().expect("build root");
    let cleanup = cleanup_of(
        backend,
        &state,
        build_root.path(),
        CleanupSettings::default(),
    );
    for round in 0..3 {
        let agent = unique_agent("tags");
        let start = StartId::random();
        let labels = ours.stamp(&Labels::new(), &agent, &start);
        let start_tag = agent.start_tag(&start);
        let id = build(backend, fixture, &start_tag, labels, "")
            .await
            .expect("build");
        backend
            .tag_image(&start_tag, &agent.image_tag())
            .await
            .expect("tag latest");
        let plan = cleanup.plan(Scope::All).await.expect("plan");
        let planned = plan.images.iter().filter(|i| i.agent == agent).count();
        let report = cleanup.apply(&plan).await;
        let left = backend.inspect_image(&id).await;
        discard(backend, &[], &[&id]).await;
        assert_eq!(planned, 2, "round {round}: {plan:?}");
        assert!(
            left.is_err(),
            "round {round}: the image survived: {report:?}"
        );
        assert_eq!(report.remaining_owned(), 0, "round {round}: {report:?}");
    }
}

/// Removing anvyl's image leaves the untagged image its build step made
/// below it: that is the engine's build cache, which a concurrent build —
/// anyone's — may be using at that moment. It counts as dangling, for the
/// engine's prune.
pub async fn check_removal_leaves_the_build_cache(backend: &dyn Backend, fixture: &Fixture) {
    if !fixture.build_cache {
        return;
    }
    let state = StateStore::open_in_memory().expect("state");
    let ours = Ownership::new(state.instance_id().clone());
    let agent = unique_agent("cache");
    let step = format!("RUN echo {agent} > /cache\n");
    let id = build(
        backend,
        fixture,
        &agent.image_tag(),
        labels_of(&ours, &agent),
        &step,
    )
    .await
    .expect("build");
    let before = backend.count_dangling_images().await.expect("count");
    let build_root = tempfile::tempdir().expect("build root");
    let cleanup = cleanup_of(
        backend,
        &state,
        build_root.path(),
        CleanupSettings::default(),
    );
    let report = cleanup
        .apply(
            &cleanup
                .plan(Scope::Agent(agent.clone()))
                .await
                .expect("plan"),
        )
        .await;
    let after = backend.count_dangling_images().await.expect("count");
    let gone = backend.inspect_image(&id).await.is_err();
    assert!(gone, "anvyl's image remains: {report:?}");
    assert!(
        after > before,
        "the build step's image below anvyl's was removed with it ({before} dangling before, {after} after)"
    );
}
