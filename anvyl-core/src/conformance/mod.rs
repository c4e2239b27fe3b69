//! The conformance suite: one plain `pub async fn` per behaviour the
//! pipeline relies on, run by every backend — the in-memory one under
//! `cargo test`, Docker and Podman against real engines under
//! `cargo xtask itest`. Each check makes its own uniquely named resources
//! and removes them again, so checks can share an engine.

mod cleanup;
mod containers;
mod engine;
mod images;

pub use cleanup::*;
pub use containers::*;
pub use engine::*;
pub use images::*;

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
        resources: Default::default(),
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
        credentials: Default::default(),
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
