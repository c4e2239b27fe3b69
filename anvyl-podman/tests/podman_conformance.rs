//! The conformance suite against a real Podman service. `cargo xtask itest`
//! starts a private `podman system service`, builds the base image and sets
//! `ANVYL_ITEST_PODMAN_HOST` and `ANVYL_ITEST_BASE_IMAGE`; this target only
//! builds with the `itest` feature, so a plain `cargo test` never reaches
//! for a daemon, and a missing variable here is a loud failure.

use std::time::Duration;

use anvyl_core::conformance::{self, Fixture};
use anvyl_core::Backend;
use anvyl_podman::{Limits, PodmanBackend};

use anvyl_core::testing::required;

const LIMITS: Limits = Limits {
    nofile: 4096,
    nproc: 4096,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_passes_the_conformance_suite() {
    let endpoint = required("ANVYL_ITEST_PODMAN_HOST");
    let backend = PodmanBackend::connect(&endpoint, Duration::from_secs(120), LIMITS)
        .await
        .expect("connect to the private podman service");
    let fixture = Fixture {
        base_image: required("ANVYL_ITEST_BASE_IMAGE"),
        network: Some("none".into()),
        // libpod's image removal has no no-prune choice, and its builds
        // here leave no untagged step images to count: nothing to check.
        build_cache: false,
        runs_processes: true,
    };
    conformance::run_all(&backend, &fixture).await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_such() {
    // Docker notices a missing socket when connecting; other failures show
    // on the first request. Either way it is `Unreachable`.
    let result = match PodmanBackend::connect(
        "unix:///nonexistent/anvyl/podman.sock",
        Duration::from_secs(5),
        LIMITS,
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
