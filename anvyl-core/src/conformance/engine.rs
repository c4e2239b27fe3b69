//! Checks of the engine itself: who it is, and how it names images it was given without a registry.

use super::*;

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
    let marked = identity.current().await.expect("identity").clone();
    assert_eq!(
        EngineIdentity::of(backend).current().await.unwrap(),
        &marked
    );
    assert!(identity.is(&marked).await.unwrap());
    let other = Labels::from([(LABEL_ENGINE.to_string(), "someone-else".to_string())]);
    match backend.create_volume(MARKER_VOLUME, &other).await {
        Ok(()) => {}
        Err(e) => assert!(e.is_conflict(), "a second create: {e}"),
    }
    assert_eq!(
        EngineIdentity::of(backend).current().await.unwrap(),
        &marked
    );
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
        .clone();
    let on_other = EngineIdentity::of(other)
        .current()
        .await
        .expect("identity")
        .clone();
    assert_ne!(on_one, on_other);
    assert!(!EngineIdentity::of(other).is(&on_one).await.unwrap());
    assert!(!EngineIdentity::of(one).is(&on_other).await.unwrap());
}
