//! The conformance suite against a real Docker engine. `cargo xtask itest`
//! starts a private `dockerd`, builds the base image and sets
//! `ANVYL_ITEST_DOCKER_HOST` and `ANVYL_ITEST_BASE_IMAGE`; this target only
//! builds with the `itest` feature, so a plain `cargo test` never reaches
//! for a daemon, and a missing variable here is a loud failure.

use std::time::Duration;

use anvyl_core::conformance::{self, Fixture};
use anvyl_core::Backend;
use anvyl_docker::DockerBackend;

use anvyl_core::testing::required;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_passes_the_conformance_suite() {
    let endpoint = required("ANVYL_ITEST_DOCKER_HOST");
    let backend = DockerBackend::connect(&endpoint, Duration::from_secs(120))
        .await
        .expect("connect to the private dockerd");
    let fixture = Fixture {
        base_image: required("ANVYL_ITEST_BASE_IMAGE"),
        network: Some("none".into()),
        build_cache: true,
        runs_processes: true,
    };
    conformance::run_all(&backend, &fixture).await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_such() {
    // Docker notices a missing socket when connecting; other failures show
    // on the first request. Either way it is `Unreachable`.
    let result = match DockerBackend::connect(
        "unix:///nonexistent/anvyl/docker.sock",
        Duration::from_secs(5),
    )
    .await
    {
        Ok(backend) => backend.ping().await,
        Err(e) => Err(e),
    };
    let err = result.expect_err("nothing listens there");
    assert!(
        matches!(err, anvyl_core::BackendError::Unreachable { .. }),
        "expected Unreachable, got {err:?}"
    );
}

/// The version anvyl chooses is the one the engine sees: a client pinned to
/// a version outside the engine's range is refused by the engine itself.
/// (bollard 0.21.1 drops its own version prefix; should anvyl's pinning
/// ever stop reaching the path, these requests would succeed.)
#[tokio::test]
async fn the_version_in_the_request_path_reaches_the_engine() {
    use anvyl_core::Query;
    use bollard::ClientVersion;
    let endpoint = required("ANVYL_ITEST_DOCKER_HOST");
    let agreed = DockerBackend::connect(&endpoint, Duration::from_secs(30))
        .await
        .expect("connect");
    agreed
        .list_containers(&Query::default())
        .await
        .expect("the agreed version is accepted");
    for (pinned, refusal) in [((1, 0), "too old"), ((9, 99), "too new")] {
        let client = DockerBackend::connect_pinned(
            &endpoint,
            ClientVersion {
                major_version: pinned.0,
                minor_version: pinned.1,
            },
        )
        .expect("client");
        let err = client
            .list_containers(&Query::default())
            .await
            .expect_err("an API version outside the engine's range is refused");
        assert!(
            err.to_string().contains(refusal),
            "v{}.{}: {err}",
            pinned.0,
            pinned.1
        );
    }
}
