//! [`PodmanBackend`]: every libpod call anvyl makes, as the `Backend` trait
//! names them. Requests go through `client` (bounded by the request
//! timeout, reads retried); stops are signals (`stop`); builds are posted on
//! a connection of their own (`build`); followed logs and event streams
//! last as long as they need.

use std::collections::HashMap;
use std::time::Duration;

use anvyl_core::backend::{
    normalise_image_id, parent_image, BuildOutput, BuildProgress, ContainerEvent, EventStream,
    LogSink, LogStream, Result, Volume,
};
use anvyl_core::{
    Backend, BackendError, BackendKind, BuildSpec, ContainerSpec, ContainerState, ContainerSummary,
    EngineInfo, ImageSummary, ImageTag, Labels, Query,
};
use async_trait::async_trait;
use futures::StreamExt;
use podman_api::models::{Namespace, PosixRlimit};
use podman_api::opts::{
    ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter, ContainerListOpts,
    ContainerLogsOpts, ImageListFilter, ImageListOpts, ImageTagOpts, VolumeCreateOpts,
};
use podman_api::Podman;

use crate::errors::map;

/// The endpoint when configuration names none: `CONTAINER_HOST`, else the
/// rootless socket when it exists, else the rootful one.
pub fn default_endpoint() -> String {
    if let Some(host) = std::env::var("CONTAINER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
    {
        return host;
    }
    if let Some(dir) = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .filter(|d| !d.is_empty())
    {
        let rootless = std::path::Path::new(&dir).join("podman/podman.sock");
        if rootless.exists() {
            return format!("unix://{}", rootless.display());
        }
    }
    "unix:///run/podman/podman.sock".to_string()
}

/// Limits set on every container: Podman 4 applies no `containers.conf`
/// default ulimits to containers created through its API, and a process
/// without CAP_SYS_RESOURCE cannot raise them past the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `nofile`, soft and hard.
    pub nofile: u64,
    /// `nproc`, soft and hard.
    pub nproc: u64,
}

/// A Podman engine.
#[derive(Debug, Clone)]
pub struct PodmanBackend {
    pub(crate) client: Podman,
    pub(crate) endpoint: String,
    pub(crate) timeout: Duration,
    pub(crate) limits: Limits,
}

fn labels(map: Option<HashMap<String, String>>) -> Labels {
    map.unwrap_or_default().into_iter().collect()
}

fn state(status: Option<&str>) -> ContainerState {
    match status {
        Some("created" | "configured" | "initialized") => ContainerState::Created,
        Some("running" | "paused" | "stopping") => ContainerState::Running,
        Some("exited" | "stopped" | "dead") => ContainerState::Exited,
        _ => ContainerState::Other,
    }
}

fn namespace(mode: &str) -> Result<Namespace> {
    match mode {
        "none" | "host" | "bridge" | "private" | "slirp4netns" => Ok(Namespace {
            nsmode: Some(mode.to_string()),
            value: None,
        }),
        other => Err(BackendError::Local {
            operation: "create container",
            message: format!("network mode {other:?} is not supported on Podman (use none, host, bridge, private or slirp4netns)"),
        }),
    }
}

/// The label that narrows a listing most: a start, an agent, an
/// installation, in that order; else any.
fn most_selective_label(labels: &Labels) -> Option<(&String, &String)> {
    use anvyl_core::ownership::{LABEL_AGENT, LABEL_INSTANCE, LABEL_START};
    const ORDER: [&str; 3] = [LABEL_START, LABEL_AGENT, LABEL_INSTANCE];
    ORDER
        .iter()
        .find_map(|key| labels.get_key_value(*key))
        .or_else(|| labels.iter().next())
}

impl PodmanBackend {
    fn rlimits(&self) -> Vec<PosixRlimit> {
        [("nofile", self.limits.nofile), ("nproc", self.limits.nproc)]
            .into_iter()
            .map(|(kind, limit)| PosixRlimit {
                type_: Some(kind.to_string()),
                soft: Some(limit),
                hard: Some(limit),
            })
            .collect()
    }
}

impl PodmanBackend {
    /// The images libpod lists for `opts`, in anvyl's terms.
    async fn images_listed(&self, opts: &ImageListOpts) -> Result<Vec<ImageSummary>> {
        let images = self.client.images();
        let listed = self
            .read("list images", "images", || images.list(opts))
            .await?;
        Ok((listed.into_iter())
            .map(|i| ImageSummary {
                id: normalise_image_id(&i.id.unwrap_or_default()),
                tags: ImageTag::parse_listing(IMPLICIT_PREFIX, &i.repo_tags.unwrap_or_default()),
                labels: labels(i.labels),
                parent: parent_image(i.parent_id.as_deref()),
            })
            .collect())
    }
}

#[async_trait]
impl Backend for PodmanBackend {
    fn kind(&self) -> Option<BackendKind> {
        Some(BackendKind::Podman)
    }

    fn prune_hint(&self) -> Option<&'static str> {
        Some("podman system prune -f")
    }

    async fn ping(&self) -> Result<()> {
        self.call("ping", "engine", self.client.ping())
            .await
            .map(drop)
    }

    async fn version(&self) -> Result<EngineInfo> {
        let v = self
            .call("version", "engine", self.client.version())
            .await?;
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: podman_api::LATEST_API_VERSION.to_string(),
        })
    }

    async fn volume(&self, name: &str) -> Result<Volume> {
        let what = format!("volume {name}");
        let volumes = self.client.volumes();
        let volume = volumes.get(name);
        let found = self
            .read("inspect volume", &what, || volume.inspect())
            .await?;
        Ok(Volume {
            labels: found.labels.into_iter().collect(),
            mountpoint: found.mountpoint,
        })
    }

    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()> {
        let opts = VolumeCreateOpts::builder()
            .name(name)
            .labels(labels.clone())
            .build();
        let what = format!("volume {name}");
        match self
            .call("create volume", &what, self.client.volumes().create(&opts))
            .await
        {
            Ok(_) => Ok(()),
            // Podman 4.3 answers an existing name with a 500, not a 409:
            // a refused create of a volume that exists now is the conflict.
            Err(e) if !e.is_unreachable() && self.volume(name).await.is_ok() => {
                Err(BackendError::Conflict {
                    what,
                    message: e.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn list_containers(&self, query: &Query) -> Result<Vec<ContainerSummary>> {
        let mut filters: Vec<ContainerListFilter> = query
            .labels
            .iter()
            .map(|(k, v)| ContainerListFilter::LabelKeyVal(k.clone(), v.clone()))
            .collect();
        if let Some(name) = &query.name {
            filters.push(ContainerListFilter::Name(name.clone()));
        }
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter(filters)
            .build();
        let containers = self.client.containers();
        let listed = self
            .read("list containers", "containers", || containers.list(&opts))
            .await?;
        Ok(listed
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default(),
                image_id: c
                    .image_id
                    .map(|i| normalise_image_id(&i))
                    .unwrap_or_default(),
                labels: labels(c.labels),
                state: state(c.state.as_deref()),
                exit_code: None,
                finished: None,
                restarts: Default::default(),
            })
            .collect())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerSummary> {
        let what = format!("container {id}");
        let container = self.client.containers().get(id);
        let c = self
            .read("inspect container", &what, || container.inspect())
            .await?;
        // Podman shows `exited` between two runs of a container under a
        // restart policy: whether it comes back is judged by the policy
        // and how recently it exited.
        let exit_code = c.state.as_ref().and_then(|s| s.exit_code).map(i64::from);
        let finished = (c.state.as_ref())
            .and_then(|s| s.finished_at)
            .map(|t| t.timestamp())
            .filter(|&t| t > 0);
        let mut restarts = anvyl_core::backend::Restarts {
            policy: crate::resources::restart_policy(
                (c.host_config.as_ref()).and_then(|h| h.restart_policy.as_ref()),
            ),
            count: c.restart_count.unwrap_or(0).max(0) as u32,
            restarting: (c.state.as_ref()).and_then(|s| s.restarting) == Some(true),
        };
        // `stopped` between two runs (measured on 4.3), `exited` after.
        let status = c.state.as_ref().and_then(|s| s.status.clone());
        let exited = state(status.as_deref()) == ContainerState::Exited;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        restarts.restarting |= exited && restarts.expected(exit_code, finished, now);
        Ok(ContainerSummary {
            id: c.id.unwrap_or_default(),
            name: c.name.unwrap_or_default(),
            image_id: c.image.map(|i| normalise_image_id(&i)).unwrap_or_default(),
            labels: labels(c.config.and_then(|c| c.labels)),
            exit_code,
            // Year 1 until it first exits.
            finished,
            restarts,
            state: state(status.as_deref()),
        })
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let what = format!("container {}", spec.name);
        let env: HashMap<String, String> = spec
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        let mut opts = ContainerCreateOpts::builder()
            .name(&spec.name)
            .image(&spec.image)
            .env(env)
            .labels(spec.labels.clone())
            .r_limits(self.rlimits());
        if let Some(command) = &spec.command {
            opts = opts.command(command.clone());
        }
        if let Some(network) = &spec.network {
            opts = opts.net_namespace(namespace(network)?);
        }
        let opts = crate::resources::apply(opts, &spec.resources).build();
        match self
            .call(
                "create container",
                &what,
                self.client.containers().create(&opts),
            )
            .await
        {
            Ok(created) => Ok(created.id),
            // Podman answers a taken name with 500, not 409: ask whether the
            // name exists rather than reading the message.
            Err(BackendError::Engine {
                status: Some(500),
                message,
                ..
            }) if self.inspect_container(&spec.name).await.is_ok() => {
                Err(BackendError::Conflict { what, message })
            }
            Err(e) => Err(e),
        }
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let what = format!("container {id}");
        self.idempotent(
            "start container",
            &what,
            self.client.containers().get(id).start(None),
        )
        .await
    }
    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()> {
        self.stop(id, timeout).await
    }

    async fn remove_container(&self, id: &str, stop_timeout: Duration) -> Result<()> {
        let what = format!("container {id}");
        // Without an explicit timeout libpod waits the container's own stop
        // timeout (10 s) before killing it.
        let opts = ContainerDeleteOpts::builder()
            .force(true)
            .volumes(true)
            .timeout(stop_timeout.as_secs() as usize)
            .build();
        let container = self.client.containers().get(id);
        self.call("remove container", &what, container.delete(&opts))
            .await
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
        let opts = ImageTagOpts::builder()
            .repo(&tag.repository)
            .tag(&tag.tag)
            .build();
        let what = format!("image {source}");
        self.call(
            "tag image",
            &what,
            self.client.images().get(source).tag(&opts),
        )
        .await
    }

    async fn list_images(&self, query: &Query) -> Result<Vec<ImageSummary>> {
        // Podman 4.3's image endpoint matches nothing when given several
        // label filters (its CLI ORs them). Send the most selective one and
        // check all of them here.
        let mut filters: Vec<ImageListFilter> = most_selective_label(&query.labels)
            .map(|(k, v)| ImageListFilter::LabelKeyVal(k.clone(), v.clone()))
            .into_iter()
            .collect();
        if let Some(name) = &query.name {
            // Every tag of a matching image comes back; callers compare exactly.
            filters.push(ImageListFilter::Reference(name.clone().into(), None));
        }
        let opts = ImageListOpts::builder().filter(filters).build();
        Ok((self.images_listed(&opts).await?.into_iter())
            .filter(|i| query.labels.iter().all(|(k, v)| i.labels.get(k) == Some(v)))
            .collect())
    }

    async fn list_image_tree(&self) -> Result<Vec<ImageSummary>> {
        self.images_listed(&ImageListOpts::builder().all(true).build())
            .await
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageSummary> {
        let what = format!("image {reference}");
        let image = self.client.images().get(reference);
        let i = self
            .read("inspect image", &what, || image.inspect())
            .await?;
        Ok(ImageSummary {
            id: normalise_image_id(&i.id.unwrap_or_default()),
            tags: ImageTag::parse_listing(IMPLICIT_PREFIX, &i.repo_tags.unwrap_or_default()),
            labels: labels(i.labels.or_else(|| i.config.and_then(|c| c.labels))),
            parent: parent_image(i.parent.as_deref()),
        })
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        // `delete` never forces: a used image, or an id that is still
        // tagged elsewhere, is a 409.
        let what = format!("image {reference}");
        self.call(
            "remove image",
            &what,
            self.client.images().get(reference).delete(),
        )
        .await
    }

    async fn count_dangling_images(&self) -> Result<usize> {
        let opts = ImageListOpts::builder()
            .filter([ImageListFilter::Dangling(true)])
            .build();
        let images = self.client.images();
        self.read("list images", "dangling images", || images.list(&opts))
            .await
            .map(|i| i.len())
    }

    fn container_events(&self, query: &Query) -> EventStream<'_> {
        let mut labels: Vec<String> = (query.labels.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let filters = [
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), labels),
        ];
        let opts = podman_api::opts::EventsOpts::builder()
            .stream(true)
            .filters(filters)
            .build();
        // podman-api reads the stream line by line; an event it cannot parse
        // (its model lags some versions' fields) is still an event to look
        // again at.
        let events = self.client.events(&opts).map(|event| match event {
            Ok(event) => Ok(ContainerEvent {
                action: event.action,
                container: event.actor.id,
            }),
            Err(podman_api::Error::SerdeJsonError(_)) => Ok(ContainerEvent {
                action: "unknown".into(),
                container: String::new(),
            }),
            Err(e) => Err(map("watch events", "containers", &self.endpoint, e)),
        });
        Box::pin(events)
    }

    async fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
        sink: LogSink<'_>,
    ) -> Result<()> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let opts = ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(tail)
            .build();
        let what = format!("container {id}");
        let container = self.client.containers().get(id);
        let mut stream = container.logs(&opts);
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| map("container logs", &what, &self.endpoint, e))? {
                podman_api::conn::TtyChunk::StdErr(bytes) => sink(LogStream::Stderr, &bytes),
                podman_api::conn::TtyChunk::StdOut(bytes)
                | podman_api::conn::TtyChunk::StdIn(bytes) => sink(LogStream::Stdout, &bytes),
            }
        }
        Ok(())
    }
}

/// The prefix the engine adds on its own to a repository named without a
/// registry, dropped before a tag is compared with anvyl's names. Podman lists an image built as `NAME` as `localhost/NAME`; `docker.io/library/NAME` is a repository a user pulled or named.
const IMPLICIT_PREFIX: &str = "localhost/";

/// What the engine says when a concurrent image removal broke a build.
pub const BUILD_RACES: &[&str] = &["layer not known"];
#[cfg(test)]
mod tests {

    #[test]
    fn tags_drop_only_the_engines_own_prefix() {
        anvyl_core::conformance::check_implicit_prefix(
            super::IMPLICIT_PREFIX,
            "docker.io/library/",
        );
    }
}
