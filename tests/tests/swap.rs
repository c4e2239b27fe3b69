//! Swapping runtimes is one configuration key. With both private engines up,
//! the same agent's leftovers sit on Docker and on Podman; a config file
//! saying `backend = "docker"` cleans only Docker, and the same file saying
//! `backend = "podman"` then cleans Podman — proven by what remains on each.

use std::time::Duration;

use anvyl_core::backend::{BuildSpec, ContainerSpec, Labels};
use anvyl_core::{AgentName, AgentSpec, DynBackend, Ownership, StartId, StateStore};

use anvyl_core::testing::required;

async fn leftovers(engine: &DynBackend, agent: &AgentName, labels: &Labels, base: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), format!("FROM {base}\n")).unwrap();
    let spec = BuildSpec {
        context_dir: dir.path().to_path_buf(),
        tag: agent.image_tag(),
        labels: labels.clone(),
        network: Some("none".into()),
        credentials: Default::default(),
    };
    engine.build_image(&spec, &|_| {}).await.expect("build");
    let spec = ContainerSpec {
        name: agent.resource_name(),
        image: agent.image_tag(),
        command: Some(vec!["true".into()]),
        labels: labels.clone(),
        network: Some("none".into()),
        ..ContainerSpec::default()
    };
    engine.create_container(&spec).await.expect("create")
}

async fn exists(engine: &DynBackend, container: &str, agent: &AgentName) -> (bool, bool) {
    (
        engine.inspect_container(container).await.is_ok(),
        engine.inspect_image(&agent.image_tag()).await.is_ok(),
    )
}

fn anvyl(config: &std::path::Path, state: &std::path::Path) -> std::process::Output {
    std::process::Command::new(required("ANVYL_BIN"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "agent",
            "cleanup",
            "--yes",
        ])
        .env("ANVYL_STATE_DIR", state)
        .env("XDG_CONFIG_HOME", state.join("no-config"))
        .env_remove("ANVYL_BACKEND")
        .env_remove("DOCKER_HOST")
        .env_remove("CONTAINER_HOST")
        .output()
        .expect("run anvyl")
}

#[tokio::test]
async fn one_config_key_moves_anvyl_between_docker_and_podman() {
    let (docker_host, podman_host) = (
        required("ANVYL_ITEST_DOCKER_HOST"),
        required("ANVYL_ITEST_PODMAN_HOST"),
    );
    let base = required("ANVYL_ITEST_BASE_IMAGE");
    let timeout = Duration::from_secs(120);
    let docker: DynBackend = std::sync::Arc::new(
        anvyl_docker::DockerBackend::connect(&docker_host, timeout)
            .await
            .unwrap(),
    );
    let limits = anvyl_podman::Limits {
        nofile: 4096,
        nproc: 4096,
    };
    let podman: DynBackend = std::sync::Arc::new(
        anvyl_podman::PodmanBackend::connect(&podman_host, timeout, limits)
            .await
            .unwrap(),
    );

    let state = tempfile::tempdir().unwrap();
    let store = StateStore::open(state.path()).unwrap();
    let agent = AgentName::new(format!("swap-{}", StartId::random())).unwrap();
    store.create_agent(&agent, &AgentSpec::default()).unwrap();
    let labels = Ownership::new(store.instance_id().clone()).stamp(
        &Labels::new(),
        &agent,
        &StartId::random(),
    );
    let on_docker = leftovers(&docker, &agent, &labels, &base).await;
    let on_podman = leftovers(&podman, &agent, &labels, &base).await;

    let config = state.path().join("anvyl.toml");
    let write = |backend: &str| {
        std::fs::write(
            &config,
            format!("backend = \"{backend}\"\n\n[docker]\nendpoint = \"{docker_host}\"\n\n[podman]\nendpoint = \"{podman_host}\"\n"),
        )
        .unwrap()
    };

    write("docker");
    let run = anvyl(&config, state.path());
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        exists(&docker, &on_docker, &agent).await,
        (false, false),
        "Docker still holds the agent"
    );
    assert_eq!(
        exists(&podman, &on_podman, &agent).await,
        (true, true),
        "Podman was cleaned by the Docker config"
    );

    write("podman");
    let run = anvyl(&config, state.path());
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        exists(&podman, &on_podman, &agent).await,
        (false, false),
        "Podman still holds the agent"
    );
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(
        log.contains(&format!("Removed Podman image: {}", agent.image_tag())),
        "{log}"
    );
}
