//! [`DockerBackend`]: every Docker call anvyl makes, as the `Backend` trait
//! names them, through one bollard client (made in `client`, which agrees
//! the API version). Errors are mapped per operation in `errors.rs`; a
//! build's attempt streams in `build`.

use std::collections::HashMap;
use std::time::Duration;

use anvyl_core::backend::{
    normalise_image_id, parent_image, BuildOutput, BuildProgress, ContainerEvent, EventStream,
    LogSink, LogStream, Result, Volume,
};
use anvyl_core::{
    Backend, BackendKind, BuildSpec, ContainerSpec, ContainerState, ContainerSummary, EngineInfo,
    ImageSummary, ImageTag, Labels, Query,
};
use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummaryStateEnum, HostConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder, TagImageOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use crate::errors::map;
use crate::image_store::settled;

/// A Docker engine.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    pub(crate) client: Docker,
    pub(crate) endpoint: String,
}

/// Docker's `filters` for `query`, plus `extra`.
fn filters(query: &Query, name_key: &str) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::new();
    if !query.labels.is_empty() {
        let labels = query
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        filters.insert("label".to_string(), labels);
    }
    if let Some(name) = &query.name {
        filters.insert(name_key.to_string(), vec![name.clone()]);
    }
    filters
}

fn labels(map: Option<HashMap<String, String>>) -> Labels {
    map.unwrap_or_default().into_iter().collect()
}

fn summary_state(state: Option<ContainerSummaryStateEnum>) -> ContainerState {
    use ContainerSummaryStateEnum as S;
    match state {
        Some(S::CREATED) => ContainerState::Created,
        Some(S::RUNNING | S::PAUSED | S::RESTARTING) => ContainerState::Running,
        Some(S::EXITED | S::DEAD) => ContainerState::Exited,
        _ => ContainerState::Other,
    }
}

fn inspect_state(state: Option<ContainerStateStatusEnum>) -> ContainerState {
    use ContainerStateStatusEnum as S;
    match state {
        Some(S::CREATED) => ContainerState::Created,
        Some(S::RUNNING | S::PAUSED | S::RESTARTING) => ContainerState::Running,
        Some(S::EXITED | S::DEAD) => ContainerState::Exited,
        _ => ContainerState::Other,
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn kind(&self) -> Option<BackendKind> {
        Some(BackendKind::Docker)
    }

    fn prune_hint(&self) -> Option<&'static str> {
        Some("docker system prune -f")
    }

    async fn ping(&self) -> Result<()> {
        self.client
            .ping()
            .await
            .map(drop)
            .map_err(self.err("ping", "engine"))
    }

    async fn version(&self) -> Result<EngineInfo> {
        let v = self
            .client
            .version()
            .await
            .map_err(self.err("version", "engine"))?;
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: self.client.client_version().to_string(),
        })
    }

    async fn volume(&self, name: &str) -> Result<Volume> {
        let volume = self
            .client
            .inspect_volume(name)
            .await
            .map_err(self.err("inspect volume", &format!("volume {name}")))?;
        Ok(Volume {
            labels: volume.labels.into_iter().collect(),
            mountpoint: volume.mountpoint,
        })
    }

    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()> {
        // Docker answers a create of an existing name with that volume,
        // unchanged: the caller reads the labels back.
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.client
            .create_volume(request)
            .await
            .map(drop)
            .map_err(self.err("create volume", &format!("volume {name}")))
    }

    async fn list_containers(&self, query: &Query) -> Result<Vec<ContainerSummary>> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters(query, "name"))
            .build();
        let listed = self
            .client
            .list_containers(Some(options))
            .await
            .map_err(self.err("list containers", "containers"))?;
        Ok(listed
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image_id: c
                    .image_id
                    .map(|i| normalise_image_id(&i))
                    .unwrap_or_default(),
                labels: labels(c.labels),
                state: summary_state(c.state),
                exit_code: None,
                finished: None,
                restarts: Default::default(),
            })
            .collect())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerSummary> {
        let c = self
            .client
            .inspect_container(id, None)
            .await
            .map_err(self.err("inspect container", &format!("container {id}")))?;
        Ok(ContainerSummary {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image_id: c.image.map(|i| normalise_image_id(&i)).unwrap_or_default(),
            labels: labels(c.config.and_then(|c| c.labels)),
            exit_code: c.state.as_ref().and_then(|s| s.exit_code),
            // "0001-01-01T00:00:00Z" until it first exits: before the epoch,
            // which `humantime` refuses.
            finished: (c.state.as_ref())
                .and_then(|s| s.finished_at.as_deref())
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64),
            restarts: anvyl_core::backend::Restarts {
                policy: crate::resources::restart_policy(c.host_config.as_ref()),
                count: c.restart_count.unwrap_or(0).max(0) as u32,
                restarting: (c.state.as_ref()).and_then(|s| s.restarting) == Some(true),
            },
            state: inspect_state(c.state.and_then(|s| s.status)),
        })
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let r = &spec.resources;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            user: r.user.clone(),
            working_dir: r.workdir.clone(),
            host_config: Some(HostConfig {
                network_mode: spec.network.clone(),
                ..crate::resources::host_config(r)
            }),
            ..ContainerCreateBody::default()
        };
        let created = self
            .client
            .create_container(Some(options), body)
            .await
            .map_err(self.err("create container", &format!("container {}", spec.name)))?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        // 304 (already running) arrives as success from bollard.
        self.client
            .start_container(id, None)
            .await
            .map_err(self.err("start container", &format!("container {id}")))
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(timeout.as_secs().min(i32::MAX as u64) as i32)
            .build();
        self.client
            .stop_container(id, Some(options))
            .await
            .map_err(self.err("stop container", &format!("container {id}")))
    }

    async fn remove_container(&self, id: &str, stop_timeout: Duration) -> Result<()> {
        let what = format!("container {id}");
        if !stop_timeout.is_zero() {
            // A graceful stop first; forced removal below kills at once.
            match self.stop_container(id, stop_timeout).await {
                Err(e) if e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.client
            .remove_container(id, Some(options))
            .await
            .map_err(self.err("remove container", &what))
    }

    fn build_races(&self) -> &'static [&'static str] {
        BUILD_RACES
    }

    async fn build_once(
        &self,
        spec: &BuildSpec,
        progress: BuildProgress<'_>,
    ) -> Result<BuildOutput> {
        self.build_attempt(spec, progress).await
    }

    async fn pull_image(
        &self,
        reference: &str,
        credential: Option<&anvyl_core::pull::RegistryCredential>,
        progress: anvyl_core::pull::PullProgressSink<'_>,
    ) -> Result<()> {
        self.pull(reference, credential, progress).await
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let tag = ImageTag::parse(target);
        let options = TagImageOptionsBuilder::default()
            .repo(&tag.repository)
            .tag(&tag.tag)
            .build();
        self.client
            .tag_image(source, Some(options))
            .await
            .map_err(self.err("tag image", &format!("image {source}")))
    }

    async fn list_images(&self, query: &Query) -> Result<Vec<ImageSummary>> {
        // Labels are matched here, not by the engine: the containerd image
        // store (Docker 29's default) evaluates a label filter tag by tag,
        // reading each image's config — on Docker 28.5, 2.6 s for one image
        // with 1000 tags, against 0.06 s for the whole unfiltered listing,
        // which carries every image's labels anyway.
        let by_name = Query {
            labels: Labels::new(),
            name: query.name.clone(),
        };
        let options = ListImagesOptionsBuilder::default()
            .all(false)
            .filters(&filters(&by_name, "reference"))
            .build();
        let listed = settled(|| self.client.list_images(Some(options.clone())))
            .await
            .map_err(self.err("list images", "images"))?;
        Ok(listed
            .into_iter()
            .filter(|i| (query.labels.iter()).all(|(k, v)| i.labels.get(k) == Some(v)))
            .map(image_summary)
            .collect())
    }

    async fn list_image_tree(&self) -> Result<Vec<ImageSummary>> {
        let options = ListImagesOptionsBuilder::default().all(true).build();
        let listed = settled(|| self.client.list_images(Some(options.clone())))
            .await
            .map_err(self.err("list images", "images"))?;
        Ok(listed.into_iter().map(image_summary).collect())
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageSummary> {
        let i = settled(|| self.client.inspect_image(reference))
            .await
            .map_err(self.err("inspect image", &format!("image {reference}")))?;
        Ok(ImageSummary {
            id: i.id.map(|i| normalise_image_id(&i)).unwrap_or_default(),
            tags: ImageTag::parse_listing(IMPLICIT_PREFIX, &i.repo_tags.unwrap_or_default()),
            labels: labels(i.config.and_then(|c| c.labels)),
            // bollard's inspect model has no `Parent` (API 1.44 deprecated
            // it); the listing's `ParentId` is what anvyl judges steps by.
            parent: None,
        })
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        // `noprune`: the untagged step images below anvyl's image are the
        // engine's build cache (unlabelled: see `context`), shared with every
        // build that runs the same steps — a user's among them. Deleting
        // them as the last child goes fails a concurrent build ("No such
        // image") and a sibling removal ("unrecognized image ID"); they are
        // left to the engine's prune, which the summary points at.
        let options = RemoveImageOptionsBuilder::default()
            .force(false)
            .noprune(true)
            .build();
        self.client
            .remove_image(reference, Some(options), None)
            .await
            .map(drop)
            .map_err(self.err("remove image", &format!("image {reference}")))
    }

    async fn count_dangling_images(&self) -> Result<usize> {
        let mut filters = HashMap::new();
        filters.insert("dangling".to_string(), vec!["true".to_string()]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        settled(|| self.client.list_images(Some(options.clone())))
            .await
            .map(|i| i.len())
            .map_err(self.err("list images", "dangling images"))
    }

    fn container_events(&self, query: &Query) -> EventStream<'_> {
        let mut filters = filters(query, "container");
        filters.insert("type".into(), vec!["container".into()]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        // The stream lasts as long as the watcher: no request timeout.
        let events = self.long_running().events(Some(options));
        Box::pin(events.map(|event| match event {
            Ok(event) => Ok(ContainerEvent {
                action: event.action.unwrap_or_default(),
                container: event.actor.and_then(|a| a.id).unwrap_or_default(),
            }),
            Err(e) => Err(map("watch events", "containers", &self.endpoint, e)),
        }))
    }

    async fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
        sink: LogSink<'_>,
    ) -> Result<()> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        let what = format!("container {id}");
        let client = if follow {
            self.long_running()
        } else {
            self.client.clone()
        };
        let mut stream = client.logs(id, Some(options));
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| map("container logs", &what, &self.endpoint, e))? {
                bollard::container::LogOutput::StdErr { message } => {
                    sink(LogStream::Stderr, &message)
                }
                other => sink(LogStream::Stdout, other.as_ref()),
            }
        }
        Ok(())
    }
}

/// The prefix the engine adds on its own to a repository named without a
/// registry, dropped before a tag is compared with anvyl's names. Docker lists an image named without a registry as `docker.io/library/NAME` (the containerd store, and some listings of the classic one); `localhost/NAME` is a repository a user named.
const IMPLICIT_PREFIX: &str = "docker.io/library/";

/// What the engine says when a concurrent image removal broke a build.
pub const BUILD_RACES: &[&str] = &[
    "No such image",
    "unable to find image",
    "unrecognized image ID",
];

/// An image of a listing, in anvyl's terms.
fn image_summary(i: bollard::models::ImageSummary) -> ImageSummary {
    ImageSummary {
        id: normalise_image_id(&i.id),
        tags: ImageTag::parse_listing(IMPLICIT_PREFIX, &i.repo_tags),
        labels: i.labels.into_iter().collect(),
        parent: parent_image(Some(&i.parent_id)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_drop_only_the_engines_own_prefix() {
        anvyl_core::conformance::check_implicit_prefix(super::IMPLICIT_PREFIX, "localhost/");
    }
}
