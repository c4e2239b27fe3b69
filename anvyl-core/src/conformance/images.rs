//! Checks of images: a build's tag and labels, its context and failures, reference filters, tags removed one by one, an image in use, and a missing one.

use super::*;

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
