//! An in-memory engine for unit tests, with fault hooks: make an operation
//! fail, answer 404 or 409, or stall. It follows the engine rules the
//! pipeline relies on (an image used by a container cannot lose its last
//! tag; removing one of several tags only untags) but nothing more. The
//! faults, and how a call meets them, are in `faults`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

mod faults;

use faults::Hook;
pub use faults::{Fault, Gate, Op};

use crate::backend::{
    Backend, BackendError, BackendKind, BuildOutput, BuildProgress, BuildSpec, ContainerSpec,
    ContainerState, ContainerSummary, EngineInfo, ImageSummary, ImageTag, Labels, LogSink,
    LogStream, Query, Result, Volume,
};

#[derive(Debug, Default)]
struct Engine {
    next_id: u64,
    containers: BTreeMap<String, ContainerSummary>,
    images: BTreeMap<String, ImageSummary>,
    volumes: BTreeMap<String, Labels>,
    hooks: Vec<Hook>,
    calls: Vec<(Op, String)>,
    /// What its registries hold: references a pull finds.
    published: Vec<String>,
    /// Deletes an image others are built on, as Docker's containerd store.
    ignores_children: bool,
}

impl Engine {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        // Distinct in the 12 digits a builder prints.
        format!("{:012x}{:052x}", self.next_id, self.next_id)
    }

    fn image_by_ref(&self, reference: &str) -> Option<&ImageSummary> {
        let wanted = ImageTag::parse(reference);
        self.images.get(reference).or_else(|| {
            self.images.values().find(|i| {
                // A full id, or its first 12 digits or more, as engines take.
                let hex = reference.trim_start_matches("sha256:");
                (hex.len() >= 12 && i.id.trim_start_matches("sha256:").starts_with(hex))
                    || i.tags
                        .iter()
                        .any(|t| t.repository == wanted.repository && t.tag == wanted.tag)
            })
        })
    }

    fn has_child(&self, id: &str) -> bool {
        (self.images.values()).any(|i| i.parent.as_deref() == Some(id))
    }

    fn container_by_ref(&self, reference: &str) -> Option<&ContainerSummary> {
        self.containers
            .get(reference)
            .or_else(|| self.containers.values().find(|c| c.name == reference))
    }

    /// Removes `tag` from every image but `keep`.
    fn untag_elsewhere(&mut self, tag: &ImageTag, keep: &str) {
        for image in self.images.values_mut().filter(|i| i.id != keep) {
            image
                .tags
                .retain(|t| !(t.repository == tag.repository && t.tag == tag.tag));
        }
    }
}

/// The in-memory backend.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    engine: Mutex<Engine>,
    /// Its data root, below which its volumes live ("" for `/memory`).
    root: String,
}

fn matches(labels: &Labels, query: &Query) -> bool {
    query.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl MemoryBackend {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn root_dir(&self) -> &str {
        if self.root.is_empty() {
            "/memory"
        } else {
            &self.root
        }
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an image with `tags` and `labels` as if pulled or built by
    /// someone else; returns its id.
    pub fn seed_image(&self, tags: &[&str], labels: Labels) -> String {
        let mut engine = self.engine();
        let id = format!("sha256:{}", engine.new_id());
        let tags: Vec<ImageTag> = tags.iter().map(|t| ImageTag::parse(t)).collect();
        for tag in &tags {
            engine.untag_elsewhere(tag, &id);
        }
        engine.images.insert(
            id.clone(),
            ImageSummary {
                id: id.clone(),
                tags,
                labels,
                parent: None,
            },
        );
        id
    }

    /// Adds an untagged step image built on `parent`; returns its id.
    pub fn seed_step(&self, parent: Option<String>, labels: Labels) -> String {
        let id = self.seed_image(&[], labels);
        self.engine().images.get_mut(&id).expect("just made").parent = parent;
        id
    }

    /// Deletes images others are built on from now on, as Docker's
    /// containerd image store does (it checks running containers only).
    pub fn delete_parents_too(&self) {
        self.engine().ignores_children = true;
    }

    /// Puts `reference` in its registry: a pull of it succeeds.
    pub fn publish(&self, reference: &str) {
        self.engine().published.push(reference.to_string());
    }

    /// Makes the next `times` calls of `op` (all of them when `None`) on
    /// `target` (any target when `None`) suffer `fault`.
    pub fn inject(&self, op: Op, target: Option<&str>, fault: Fault, times: Option<u32>) {
        self.engine().hooks.push(Hook {
            op,
            target: target.map(str::to_string),
            fault,
            remaining: times,
            fired: false,
        });
    }

    /// Removes every injected fault: the engine answers again.
    pub fn clear_faults(&self) {
        self.engine().hooks.clear();
    }

    /// An empty engine whose data root is `root`: another daemon made
    /// from a copy of one engine's data root lives at another path.
    pub fn rooted(root: &str) -> Self {
        Self {
            root: root.to_string(),
            ..Self::default()
        }
    }

    /// Removes a volume, as `docker volume prune` does behind anvyl's back.
    pub fn remove_volume(&self, name: &str) {
        self.engine().volumes.remove(name);
    }

    /// Every call made so far, with its target.
    pub fn calls(&self) -> Vec<(Op, String)> {
        self.engine().calls.clone()
    }

    /// Makes a container's command exit with `code` after the engine
    /// restarted it `count` times, `ago` seconds before `now`; the engine
    /// restarts it as Podman would (see [`crate::backend::Restarts::expected`]).
    pub fn exit_after_restarts(&self, id: &str, code: i64, count: u32, ago: i64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Some(c) = self.engine().containers.get_mut(id) {
            c.state = ContainerState::Exited;
            c.exit_code = Some(code);
            c.finished = Some(now - ago);
            c.restarts.count = count;
            c.restarts.restarting = c.restarts.expected(Some(code), c.finished, now);
        }
    }

    /// Sets a container's state (e.g. to simulate a crash).
    pub fn set_state(&self, id: &str, state: ContainerState) {
        if let Some(c) = self.engine().containers.get_mut(id) {
            c.state = state;
        }
    }
}

fn not_found(what: &str) -> BackendError {
    BackendError::NotFound {
        what: what.to_string(),
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> Option<BackendKind> {
        None
    }

    async fn version(&self) -> Result<EngineInfo> {
        self.enter(Op::Ping, "").await?;
        Ok(EngineInfo {
            version: "0".into(),
            api_version: "0".into(),
        })
    }

    async fn volume(&self, name: &str) -> Result<Volume> {
        self.enter(Op::Volume, name).await?;
        let labels = (self.engine().volumes.get(name).cloned())
            .ok_or_else(|| not_found(&format!("volume {name}")))?;
        Ok(Volume {
            labels,
            mountpoint: format!("{}/volumes/{name}/_data", self.root_dir()),
        })
    }

    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()> {
        self.enter(Op::Volume, name).await?;
        let mut engine = self.engine();
        if engine.volumes.contains_key(name) {
            return Err(BackendError::Conflict {
                what: format!("volume {name}"),
                message: "volume already exists".into(),
            });
        }
        engine.volumes.insert(name.to_string(), labels.clone());
        Ok(())
    }

    async fn list_containers(&self, query: &Query) -> Result<Vec<ContainerSummary>> {
        self.enter(Op::ListContainers, "").await?;
        Ok(self
            .engine()
            .containers
            .values()
            .filter(|c| matches(&c.labels, query))
            // Like the engines, a name filter matches substrings.
            .filter(|c| query.name.as_deref().is_none_or(|n| c.name.contains(n)))
            .cloned()
            .collect())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerSummary> {
        self.enter(Op::InspectContainer, id).await?;
        self.engine()
            .container_by_ref(id)
            .cloned()
            .ok_or_else(|| not_found(&format!("container {id}")))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.enter(Op::CreateContainer, &spec.name).await?;
        let mut engine = self.engine();
        if engine.container_by_ref(&spec.name).is_some() {
            return Err(BackendError::Conflict {
                what: format!("container {}", spec.name),
                message: "name already in use".into(),
            });
        }
        let (image_id, mut labels) = engine
            .image_by_ref(&spec.image)
            .map(|i| (i.id.clone(), i.labels.clone()))
            .ok_or_else(|| not_found(&format!("image {}", spec.image)))?;
        // Like the engines, a container inherits its image's labels.
        labels.extend(spec.labels.clone());
        let id = engine.new_id();
        engine.containers.insert(
            id.clone(),
            ContainerSummary {
                id: id.clone(),
                name: spec.name.clone(),
                image_id,
                labels,
                state: ContainerState::Created,
                exit_code: None,
                finished: None,
                restarts: crate::backend::Restarts {
                    policy: spec.resources.restart,
                    ..Default::default()
                },
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.enter(Op::StartContainer, id).await?;
        let exits = self
            .engine()
            .hooks
            .iter()
            .any(|h| h.op == Op::StartContainer && h.fault == Fault::ExitsAtOnce);
        let mut engine = self.engine();
        let key = engine
            .container_by_ref(id)
            .map(|c| c.id.clone())
            .ok_or_else(|| not_found(&format!("container {id}")))?;
        let container = engine.containers.get_mut(&key).expect("just found");
        (container.state, container.exit_code) = if exits {
            (ContainerState::Exited, Some(3))
        } else {
            (ContainerState::Running, None)
        };
        Ok(())
    }

    async fn stop_container(&self, id: &str, _timeout: Duration) -> Result<()> {
        let mut engine = self.engine();
        let key = engine
            .container_by_ref(id)
            .map(|c| c.id.clone())
            .ok_or_else(|| not_found(&format!("container {id}")))?;
        engine.containers.get_mut(&key).expect("just found").state = ContainerState::Exited;
        Ok(())
    }

    async fn remove_container(&self, id: &str, _stop_timeout: Duration) -> Result<()> {
        self.enter(Op::RemoveContainer, id).await?;
        let mut engine = self.engine();
        let key = engine
            .container_by_ref(id)
            .map(|c| c.id.clone())
            .ok_or_else(|| not_found(&format!("container {id}")))?;
        engine.containers.remove(&key);
        drop(engine);
        self.answer(Op::RemoveContainer, id)
    }

    async fn build_once(
        &self,
        spec: &BuildSpec,
        progress: BuildProgress<'_>,
    ) -> Result<BuildOutput> {
        self.enter(Op::BuildImage, &spec.tag).await?;
        let dockerfile =
            std::fs::read_to_string(spec.context_dir.join("Dockerfile")).map_err(|e| {
                BackendError::Local {
                    operation: "read Dockerfile",
                    message: e.to_string(),
                }
            })?;
        let mut base_labels = Labels::new();
        // Each `RUN` makes a step image, told as Docker's classic builder
        // tells it (see `lifecycle::StepRecorder`).
        let mut parent = None;
        for line in dockerfile.lines() {
            progress(line);
            if let Some(base) = line.strip_prefix("FROM ") {
                let engine = self.engine();
                let base = base.trim();
                if base != "scratch" {
                    let image =
                        engine
                            .image_by_ref(base)
                            .ok_or_else(|| BackendError::BuildFailed {
                                message: format!("base image {base} not found"),
                            })?;
                    base_labels = image.labels.clone();
                    parent = Some(image.id.clone());
                    progress(&format!(" ---> {}", short(&image.id)));
                }
            }
            // A step that would exit non-zero on a shell fails the build.
            if line.starts_with("RUN") && (line.contains("false") || line.contains("exit 1")) {
                return Err(BackendError::BuildFailed {
                    message: format!("{line}: returned a non-zero code: 1"),
                });
            }
            if line.starts_with("RUN") {
                let step = self.seed_step(parent.take(), base_labels.clone());
                progress(" ---> Running in 0123456789ab");
                progress(&format!(" ---> {}", short(&step)));
                parent = Some(step);
            }
        }
        base_labels.extend(spec.labels.clone());
        let tags = [spec.tag.as_str()];
        let image_id = self.seed_image(&tags, base_labels);
        if let Some(image) = self.engine().images.get_mut(&image_id) {
            image.parent = parent;
        }
        // The last step (the labels) made the image itself, as Docker says.
        progress(" ---> Running in 0123456789ab");
        progress(&format!(" ---> {}", short(&image_id)));
        Ok(BuildOutput { image_id })
    }

    async fn pull_image(
        &self,
        reference: &str,
        credential: Option<&crate::pull::RegistryCredential>,
        progress: crate::pull::PullProgressSink<'_>,
    ) -> Result<()> {
        self.enter(Op::PullImage, reference).await?;
        if !self.engine().published.iter().any(|r| r == reference) {
            return Err(BackendError::Pull {
                engine: BackendKind::Docker,
                reference: reference.to_string(),
                problem: crate::pull::PullProblem::NotFound,
                sent_credentials: credential.is_some(),
                message: "manifest unknown".into(),
            });
        }
        progress(crate::pull::PullProgress {
            layers_done: 1,
            layers: 1,
            ..Default::default()
        });
        self.seed_image(&[reference], Labels::new());
        Ok(())
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let mut engine = self.engine();
        let id = engine
            .image_by_ref(source)
            .map(|i| i.id.clone())
            .ok_or_else(|| not_found(&format!("image {source}")))?;
        let tag = ImageTag::parse(target);
        engine.untag_elsewhere(&tag, &id);
        engine
            .images
            .get_mut(&id)
            .expect("just found")
            .tags
            .push(tag);
        Ok(())
    }

    async fn list_images(&self, query: &Query) -> Result<Vec<ImageSummary>> {
        self.enter(Op::ListImages, "").await?;
        let engine = self.engine();
        Ok(engine
            .images
            .values()
            // As Docker's listing without `all`: no image another is built on.
            .filter(|i| !engine.has_child(&i.id))
            .filter(|i| matches(&i.labels, query))
            .filter(|i| {
                query
                    .name
                    .as_deref()
                    .is_none_or(|n| match n.strip_suffix('*') {
                        // Like the engines' reference filters, a trailing `*` globs.
                        Some(prefix) => i.tags.iter().any(|t| t.repository.starts_with(prefix)),
                        None => {
                            let wanted = ImageTag::parse(n);
                            i.tags.iter().any(|t| t.repository == wanted.repository)
                        }
                    })
            })
            .cloned()
            .collect())
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageSummary> {
        self.enter(Op::InspectImage, reference).await?;
        self.engine()
            .image_by_ref(reference)
            .cloned()
            .ok_or_else(|| not_found(&format!("image {reference}")))
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        self.enter(Op::RemoveImage, reference).await?;
        let mut engine = self.engine();
        let image = engine
            .image_by_ref(reference)
            .cloned()
            .ok_or_else(|| not_found(&format!("image {reference}")))?;
        let by_id =
            image.id.trim_start_matches("sha256:") == reference.trim_start_matches("sha256:");
        let conflict = |message: String| BackendError::Conflict {
            what: format!("image {reference}"),
            message,
        };
        if by_id && image.tags.len() > 1 {
            return Err(conflict(
                "image is referenced in multiple repositories".into(),
            ));
        }
        if !by_id && image.tags.len() > 1 {
            let wanted = ImageTag::parse(reference);
            let tags = &mut engine.images.get_mut(&image.id).expect("found").tags;
            tags.retain(|t| !(t.repository == wanted.repository && t.tag == wanted.tag));
            drop(engine);
            return self.answer(Op::RemoveImage, reference);
        }
        // As Docker: an image another is built on stays — named by id the
        // removal is refused, by its last tag the tag alone goes. Docker's
        // containerd store does not look (`delete_parents_too`).
        if engine.has_child(&image.id) && !engine.ignores_children {
            if by_id {
                return Err(conflict("image has dependent child images".into()));
            }
            engine
                .images
                .get_mut(&image.id)
                .expect("found")
                .tags
                .clear();
            drop(engine);
            return self.answer(Op::RemoveImage, reference);
        }
        if let Some(user) = engine.containers.values().find(|c| c.image_id == image.id) {
            return Err(conflict(format!(
                "image is being used by container {}",
                user.name
            )));
        }
        engine.images.remove(&image.id);
        drop(engine);
        self.answer(Op::RemoveImage, reference)
    }

    async fn count_dangling_images(&self) -> Result<usize> {
        let engine = self.engine();
        Ok((engine.images.values())
            .filter(|i| i.tags.is_empty() && !engine.has_child(&i.id))
            .count())
    }

    async fn list_image_tree(&self) -> Result<Vec<ImageSummary>> {
        self.enter(Op::ListImages, "").await?;
        Ok(self.engine().images.values().cloned().collect())
    }

    async fn logs(
        &self,
        id: &str,
        _follow: bool,
        _tail: Option<usize>,
        sink: LogSink<'_>,
    ) -> Result<()> {
        let name = self
            .engine()
            .container_by_ref(id)
            .map(|c| c.name.clone())
            .ok_or_else(|| not_found(&format!("container {id}")))?;
        // The memory engine runs nothing; it says so, once.
        sink(
            LogStream::Stdout,
            format!("{name}: in-memory container\n").as_bytes(),
        );
        Ok(())
    }
}

/// An image id as a builder prints it: 12 hex digits.
fn short(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}
