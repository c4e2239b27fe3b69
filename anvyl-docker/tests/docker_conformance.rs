//! The conformance suite against a real Docker engine. `cargo xtask itest`
//! starts a private `dockerd`, builds the base image and sets
//! `ANVYL_ITEST_DOCKER_HOST` and `ANVYL_ITEST_BASE_IMAGE`; this target only
//! builds with the `itest` feature, so a plain `cargo test` never reaches
//! for a daemon, and a missing variable here is a loud failure.

use std::time::Duration;

use anvyl_core::conformance::{self, Fixture};
use anvyl_core::Backend;
use anvyl_docker::DockerBackend;

fn required(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run this through `cargo xtask itest`"))
}

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
