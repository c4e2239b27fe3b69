//! Populating an engine through anvyl's own library (never timed): N agents'
//! leftovers — a stopped container and an image each, with anvyl's labels,
//! the image built from the Dockerfile `agent start` writes for an agent with
//! one setup step — and a crowd of unrelated containers and image tags.

use std::path::Path;
use std::time::Duration;

use anvyl_core::backend::{BuildSpec, ContainerSpec, Labels};
use anvyl_core::lifecycle::render_dockerfile;
use anvyl_core::{AgentName, AgentSpec, DynBackend, Ownership, Query, StartId, StateStore};
use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

/// Builds and creates at once; the engines serialise much of it anyway.
const CONCURRENCY: usize = 6;

/// The agent names of a population.
pub fn agent(i: usize) -> AgentName {
    AgentName::new(format!("bench-{i:04}")).expect("valid name")
}

/// Records `n` agents (idempotent) and gives each what a failed start leaves
/// on `engine`: a labelled image and a stopped container.
pub async fn leftovers(
    engine: &DynBackend,
    state: &StateStore,
    base: &str,
    work: &Path,
    n: usize,
) -> Result<()> {
    let ours = Ownership::new(state.instance_id().clone());
    let mut contexts = Vec::with_capacity(n);
    for i in 0..n {
        let name = agent(i);
        // Agents have setup steps of their own, so each image has a layer
        // of its own, as real agents' images do. (Images that all share one
        // top layer make Podman 4.3's image listing and removal quadratic.)
        let spec = AgentSpec {
            image: base.to_string(),
            setup: vec![format!("echo {name} > /agent")],
            command: Some("sleep 600".into()),
            ..AgentSpec::default()
        };
        let _ = state.create_agent(&name, &spec);
        let dir = work.join(name.as_str());
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("Dockerfile"),
            render_dockerfile(name.as_str(), &spec),
        )?;
        contexts.push(dir);
    }
    stream::iter(contexts.into_iter().enumerate())
        .map(|(i, context_dir)| {
            let labels = ours.stamp(&Labels::new(), &agent(i), &StartId::random());
            async move {
                let name = agent(i);
                let build = BuildSpec {
                    context_dir,
                    tag: name.image_tag(),
                    labels: labels.clone(),
                    network: Some("none".into()),
                    credentials: Default::default(),
                };
                engine
                    .build_image(&build, &|_| {})
                    .await
                    .with_context(|| format!("build {name}"))?;
                let container = ContainerSpec {
                    name: name.resource_name(),
                    image: name.image_tag(),
                    command: Some(vec!["true".into()]),
                    labels,
                    network: Some("none".into()),
                    ..ContainerSpec::default()
                };
                engine
                    .create_container(&container)
                    .await
                    .with_context(|| format!("create {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// `containers` unrelated stopped containers and `tags` unrelated image tags
/// spread over a few distinct images.
pub async fn unrelated(
    engine: &DynBackend,
    context: &Path,
    base: &str,
    containers: usize,
    tags: usize,
) -> Result<()> {
    const IMAGES: usize = 20;
    for k in 0..IMAGES {
        let mut labels = Labels::new();
        labels.insert("bench.unrelated".into(), k.to_string());
        let build = BuildSpec {
            context_dir: context.to_path_buf(),
            tag: format!("unrelated-{k}:base"),
            labels,
            network: Some("none".into()),
            credentials: Default::default(),
        };
        engine.build_image(&build, &|_| {}).await?;
    }
    stream::iter(0..tags)
        .map(|j| async move {
            engine
                .tag_image(
                    &format!("unrelated-{}:base", j % IMAGES),
                    &format!("unrelated-{}:t{j}", j % IMAGES),
                )
                .await
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    stream::iter(0..containers)
        .map(|j| async move {
            let spec = ContainerSpec {
                name: format!("unrelated-{j:04}"),
                image: base.to_string(),
                command: Some(vec!["true".into()]),
                network: Some("none".into()),
                ..ContainerSpec::default()
            };
            engine.create_container(&spec).await.map(drop)
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Containers and images with anvyl's managed-by label, and everything.
pub async fn census(engine: &DynBackend) -> Result<(usize, usize, usize, usize)> {
    let mut labels = Labels::new();
    labels.insert("io.anvyl.managed-by".into(), "anvyl".into());
    let query = Query::labelled(labels);
    Ok((
        engine.list_containers(&query).await?.len(),
        engine.list_images(&query).await?.len(),
        engine.list_containers(&Query::default()).await?.len(),
        engine
            .list_images(&Query::default())
            .await?
            .iter()
            .map(|i| i.tags.len().max(1))
            .sum(),
    ))
}

/// Removes every anvyl-labelled resource left by a method that failed to.
pub async fn sweep(engine: &DynBackend) -> Result<()> {
    let mut labels = Labels::new();
    labels.insert("io.anvyl.managed-by".into(), "anvyl".into());
    let query = Query::labelled(labels);
    for c in engine.list_containers(&query).await? {
        let _ = engine.remove_container(&c.id, Duration::ZERO).await;
    }
    for i in engine.list_images(&query).await? {
        for t in &i.tags {
            let _ = engine.remove_image(&t.reference).await;
        }
        let _ = engine.remove_image(&i.id).await;
    }
    Ok(())
}
