//! Which engine a host's endpoint reaches today. An agent is recorded with
//! the engine it runs on, and only that engine may judge it: judged by
//! another, a running agent's container looks gone, its status is reset and
//! a later cleanup on its real engine removes it while it runs.
//!
//! Nothing an engine says about itself is unique to it: Docker 20.10's
//! daemon ID comes from `/etc/docker/key.json`, shared by every rootful
//! dockerd of a machine whatever its data root; Podman has no id at all (its
//! host name and storage root repeat on machines cloned from one image).
//! So anvyl writes the identity into the engine's own storage: a volume
//! named [`MARKER_VOLUME`], labelled with a random id, made by the first
//! anvyl that meets the engine. Another engine — another data root, another
//! machine — holds no such volume, or its own with another id; the same
//! engine reached at another socket path answers with the same one.
//!
//! Every container anvyl makes carries the id too ([`LABEL_ENGINE`]): an
//! engine whose marker was pruned gets its id back from them, so the agents
//! that run there are not stranded under a new identity.
//!
//! Records made before the marker name the engine's own id (`Docker
//! 3F2A:…`, `Podman host:/var/lib/containers/storage`), only its kind
//! (`Docker`) or nothing: such a running agent is judged by the engine that
//! holds its container (see [`EngineIdentity::judges`]).

use tokio::sync::OnceCell;

use crate::backend::{engine_name, Backend, BackendError, Labels, Query, Result, Volume};
use crate::name::AgentName;
use crate::ownership::{LABEL_AGENT, LABEL_MANAGED_BY, MANAGED_BY};

/// The volume that carries an engine's identity.
pub const MARKER_VOLUME: &str = "anvyl-engine-id";

/// The label of [`MARKER_VOLUME`] holding the id.
pub const LABEL_ENGINE: &str = "io.anvyl.engine";

/// What marks an identity read from the marker, as opposed to a record made
/// before it (`Docker id:5f…` against `Docker 3F2A:…`).
const MARKED: &str = "id:";

/// An engine as a record names it, parsed once from the text the state
/// store keeps (one column, as every anvyl has written it) and written
/// back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedEngine {
    /// Read from the engine's marker: `Docker id:<marker>@<mountpoint>`
    /// (the mountpoint tells a copied data root from the original; records
    /// made before it was added have none).
    Marked {
        /// The engine product's name (`Docker`, `Podman`, `Memory`).
        product: String,
        /// The id in the marker volume: what the containers anvyl makes
        /// there carry as [`LABEL_ENGINE`].
        marker: String,
        /// Where the engine keeps the marker volume.
        mountpoint: Option<String>,
    },
    /// A record made before engines were marked (`Docker 3F2A:…`, `Docker`):
    /// it names nothing another engine cannot share.
    Unmarked(String),
}

impl RecordedEngine {
    /// The identity `text` names.
    pub fn parse(text: &str) -> Self {
        let marked = text
            .split_once(' ')
            .and_then(|(product, rest)| Some((product, rest.strip_prefix(MARKED)?)));
        match marked {
            Some((product, rest)) => {
                let (marker, mountpoint) = match rest.split_once('@') {
                    Some((marker, mountpoint)) => (marker, Some(mountpoint.to_string())),
                    None => (rest, None),
                };
                Self::Marked {
                    product: product.to_string(),
                    marker: marker.to_string(),
                    mountpoint,
                }
            }
            None => Self::Unmarked(text.to_string()),
        }
    }

    /// The marker id, when the identity was read from a marker.
    pub fn marker(&self) -> Option<&str> {
        match self {
            Self::Marked { marker, .. } => Some(marker),
            Self::Unmarked(_) => None,
        }
    }
}

impl std::fmt::Display for RecordedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Marked {
                product,
                marker,
                mountpoint,
            } => {
                write!(f, "{product} {MARKED}{marker}")?;
                match mountpoint {
                    Some(mountpoint) => write!(f, "@{mountpoint}"),
                    None => Ok(()),
                }
            }
            Self::Unmarked(text) => f.write_str(text),
        }
    }
}

impl serde::Serialize for RecordedEngine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl rusqlite::ToSql for RecordedEngine {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.to_string().into())
    }
}

impl rusqlite::types::FromSql for RecordedEngine {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value.as_str().map(Self::parse)
    }
}

/// One engine's identity, asked at most once per command and host.
#[derive(Debug)]
pub struct EngineIdentity<'b> {
    backend: &'b dyn Backend,
    marked: OnceCell<RecordedEngine>,
    /// Whether a missing marker may be made here (not by a command that
    /// only looks, such as `agent list`).
    may_mark: bool,
}

impl<'b> EngineIdentity<'b> {
    /// The identity of `backend`'s engine, not asked yet.
    pub fn of(backend: &'b dyn Backend) -> Self {
        Self {
            backend,
            marked: OnceCell::new(),
            may_mark: true,
        }
    }

    /// The identity of `backend`'s engine for a command that only looks:
    /// an engine without a marker (and no container to restore it from)
    /// is not marked by it, and has no identity to tell.
    pub fn reading(backend: &'b dyn Backend) -> Self {
        Self {
            may_mark: false,
            ..Self::of(backend)
        }
    }

    /// The identity to record with what is made on this engine now:
    /// `Docker id:<marker>@<volume mountpoint>` (the mountpoint tells a
    /// copied data root from the original). The first call may create the
    /// marker.
    pub async fn current(&self) -> Result<&RecordedEngine> {
        self.marked
            .get_or_try_init(|| async {
                let (marker, mountpoint) = marker(self.backend, self.may_mark).await?;
                Ok(RecordedEngine::Marked {
                    product: engine_name(self.backend).to_string(),
                    marker,
                    mountpoint: Some(mountpoint),
                })
            })
            .await
    }

    /// Whether what was recorded as `recorded` is this engine: only an
    /// identity read from a marker can say so.
    pub async fn is(&self, recorded: &RecordedEngine) -> Result<bool> {
        Ok(recorded.marker().is_some() && recorded == self.current().await?)
    }

    /// Whether this engine judges a running agent recorded on `recorded`
    /// with its container `container`. A record made before engines were
    /// marked (`Docker 3F2A:…`, `Docker`, or none) names nothing another
    /// engine cannot share — Docker 20.10's daemon ID is every dockerd's of
    /// a machine — so such an agent is judged here only if its very
    /// container is here, in whatever state: container ids are random, and
    /// containers do not move between engines.
    pub async fn judges(
        &self,
        recorded: Option<&RecordedEngine>,
        container: Option<&str>,
    ) -> Result<bool> {
        match recorded {
            Some(recorded @ RecordedEngine::Marked { .. }) => Ok(recorded == self.current().await?),
            _ => match container {
                Some(id) => match self.backend.inspect_container(id).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_not_found() => Ok(false),
                    Err(e) => Err(e),
                },
                None => Ok(false),
            },
        }
    }
}

/// The id in the engine's marker volume, made when there is none. Two
/// commands meeting a new engine at once may both create it: the engine
/// keeps one volume (the second create is refused, or answered with the
/// existing volume), and both read the id back from what it kept.
async fn marker(backend: &dyn Backend, may_mark: bool) -> Result<(String, String)> {
    match backend.volume(MARKER_VOLUME).await {
        Ok(volume) => return id_of(&volume),
        Err(e) if e.is_not_found() && !may_mark => {
            return Err(crate::backend::BackendError::Local {
                operation: "identify the engine",
                message: format!("the engine has no {MARKER_VOLUME} volume"),
            })
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let id = match recorded_in_containers(backend).await? {
        Some(id) => id,
        None => crate::ids::InstanceId::random().to_string(),
    };
    let labels = Labels::from([
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_ENGINE.to_string(), id),
    ]);
    match backend.create_volume(MARKER_VOLUME, &labels).await {
        Ok(()) => {}
        Err(e) if e.is_conflict() => {}
        Err(e) => return Err(e),
    }
    id_of(&backend.volume(MARKER_VOLUME).await?)
}

/// The id an engine whose marker is gone (a `docker volume prune`, which
/// on Docker 20.10 and Podman takes every unused volume) had before: the
/// containers anvyl made there carry it. Containers do not move between
/// engines, so the id they carry is this engine's, and its running agents
/// stay judged by it rather than stranded under a new one. Only a
/// container anvyl made counts — named exactly for the agent its labels
/// name, its label not inherited from its image (`docker commit` of an
/// agent's container, carried to another engine, would bring another
/// engine's id) — and only when all such containers agree.
async fn recorded_in_containers(backend: &dyn Backend) -> Result<Option<String>> {
    let ours = Query::labelled(Labels::from([(
        LABEL_MANAGED_BY.to_string(),
        MANAGED_BY.to_string(),
    )]));
    let mut found = std::collections::BTreeSet::new();
    for c in backend.list_containers(&ours).await? {
        let named_for_its_agent = AgentName::from_resource_name(&c.name)
            .is_some_and(|a| c.labels.get(LABEL_AGENT).map(String::as_str) == Some(a.as_str()));
        let id = c
            .labels
            .get(LABEL_ENGINE)
            .filter(|id| !id.trim().is_empty());
        let Some(id) = id.filter(|_| named_for_its_agent) else {
            continue;
        };
        let inherited = match backend.inspect_image(&c.image_id).await {
            Ok(image) => image.labels.contains_key(LABEL_ENGINE),
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e),
        };
        if !inherited {
            found.insert(id.clone());
        }
    }
    Ok(match found.len() {
        1 => found.pop_first(),
        // None, or containers that disagree: a new identity, under which
        // an agent running here is refused rather than misjudged.
        _ => None,
    })
}

/// The marker's id and where the engine keeps the volume: a copy of an
/// engine's data root at another path (a second daemon made from it) holds
/// the same id but answers with its own path.
fn id_of(volume: &Volume) -> Result<(String, String)> {
    match volume
        .labels
        .get(LABEL_ENGINE)
        .filter(|id| !id.trim().is_empty())
    {
        Some(id) => Ok((id.clone(), volume.mountpoint.clone())),
        None => Err(BackendError::Local {
            operation: "identify the engine",
            message: format!(
                "volume {MARKER_VOLUME} exists but carries no {LABEL_ENGINE} label: \
                 it is not anvyl's; rename or remove it"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;

    #[test]
    fn a_recorded_engine_is_parsed_once_and_written_back_as_it_was() {
        let cases = [
            (
                "Docker id:5f0c@/var/lib/docker/volumes/anvyl-engine-id/_data",
                Some("5f0c"),
            ),
            ("Podman id:5f0c", Some("5f0c")),
            ("Docker 3F2A:XYZ:/var/lib/docker", None),
            ("Docker", None),
            ("", None),
        ];
        for (text, marker) in cases {
            let recorded = RecordedEngine::parse(text);
            assert_eq!(recorded.marker(), marker, "{text:?}");
            assert_eq!(recorded.to_string(), text);
        }
    }

    #[tokio::test]
    async fn an_engine_keeps_its_identity_and_another_engine_has_its_own() {
        let a = MemoryBackend::new();
        let b = MemoryBackend::new();
        let first = EngineIdentity::of(&a).current().await.unwrap().clone();
        // Asked again by another command, through another connection.
        let again = EngineIdentity::of(&a).current().await.unwrap().clone();
        assert_eq!(first, again);
        assert!(first.to_string().starts_with("Memory id:"), "{first}");
        assert!(EngineIdentity::of(&a).is(&first).await.unwrap());
        assert!(!EngineIdentity::of(&b).is(&first).await.unwrap());
    }

    #[tokio::test]
    async fn a_record_made_before_markers_is_judged_where_its_container_is() {
        let (a, b) = (MemoryBackend::new(), MemoryBackend::new());
        a.seed_image(&["x"], Labels::new());
        let spec = crate::backend::ContainerSpec {
            name: "anvyl-agent-web".into(),
            image: "x".into(),
            ..Default::default()
        };
        let id = a.create_container(&spec).await.unwrap();
        // Two dockerds of one machine both said `Docker 3F2A:SAME`.
        for recorded in [Some("Memory 3F2A:SAME"), Some("Memory"), None] {
            let recorded = recorded.map(RecordedEngine::parse);
            let recorded = recorded.as_ref();
            assert!(EngineIdentity::of(&a)
                .judges(recorded, Some(&id))
                .await
                .unwrap());
            assert!(!EngineIdentity::of(&b)
                .judges(recorded, Some(&id))
                .await
                .unwrap());
            assert!(!EngineIdentity::of(&a).judges(recorded, None).await.unwrap());
        }
        let marked = EngineIdentity::of(&a).current().await.unwrap().clone();
        assert!(EngineIdentity::of(&a)
            .judges(Some(&marked), None)
            .await
            .unwrap());
        assert!(!EngineIdentity::of(&b)
            .judges(Some(&marked), Some(&id))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_copy_of_an_engines_data_root_at_another_path_is_another_engine() {
        let original = MemoryBackend::rooted("/var/lib/docker");
        let on_original = EngineIdentity::of(&original)
            .current()
            .await
            .unwrap()
            .clone();
        // The data root copied for a second daemon: the marker comes along.
        let copy = MemoryBackend::rooted("/srv/docker-copy");
        let marker = original.volume(MARKER_VOLUME).await.unwrap();
        copy.create_volume(MARKER_VOLUME, &marker.labels)
            .await
            .unwrap();
        let on_copy = EngineIdentity::of(&copy).current().await.unwrap().clone();
        assert_eq!(on_copy.marker(), on_original.marker());
        assert_ne!(on_copy, on_original);
        assert!(!EngineIdentity::of(&copy).is(&on_original).await.unwrap());
    }

    #[tokio::test]
    async fn a_pruned_marker_comes_back_from_the_containers_anvyl_made() {
        let a = MemoryBackend::new();
        a.seed_image(&["x"], Labels::new());
        let before = EngineIdentity::of(&a).current().await.unwrap().clone();
        let labels = Labels::from([
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
            (LABEL_AGENT.to_string(), "web".to_string()),
            (
                LABEL_ENGINE.to_string(),
                before.marker().unwrap().to_string(),
            ),
        ]);
        let spec = crate::backend::ContainerSpec {
            name: "anvyl-agent-web".into(),
            image: "x".into(),
            labels,
            ..Default::default()
        };
        a.create_container(&spec).await.unwrap();
        a.remove_volume(MARKER_VOLUME);
        let after = EngineIdentity::of(&a).current().await.unwrap().clone();
        assert_eq!(after, before);
        // A container that is not anvyl's: made from a committed image of
        // an agent's container elsewhere, under another name.
        let poisoned = MemoryBackend::new();
        let elsewhere = Labels::from([
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
            (LABEL_AGENT.to_string(), "web".to_string()),
            (LABEL_ENGINE.to_string(), "another-engines-id".to_string()),
        ]);
        poisoned.seed_image(&["snapshot:1"], elsewhere.clone());
        let own = EngineIdentity::of(&poisoned)
            .current()
            .await
            .unwrap()
            .clone();
        for name in ["anvyl-agent-web-snapshot", "anvyl-agent-web"] {
            let spec = crate::backend::ContainerSpec {
                name: name.into(),
                image: "snapshot:1".into(),
                labels: elsewhere.clone(),
                ..Default::default()
            };
            poisoned.create_container(&spec).await.unwrap();
        }
        poisoned.remove_volume(MARKER_VOLUME);
        let after = EngineIdentity::of(&poisoned)
            .current()
            .await
            .unwrap()
            .clone();
        assert!(!after.to_string().contains("another-engines-id"), "{after}");
        assert_ne!(after, own, "with nothing to tell, a new id");
        // With no container of anvyl's to tell, a new id is made.
        let b = MemoryBackend::new();
        let first = EngineIdentity::of(&b).current().await.unwrap().clone();
        b.remove_volume(MARKER_VOLUME);
        assert_ne!(EngineIdentity::of(&b).current().await.unwrap(), &first);
    }

    #[tokio::test]
    async fn a_volume_of_that_name_without_the_label_is_not_taken_for_the_marker() {
        let a = MemoryBackend::new();
        a.create_volume(MARKER_VOLUME, &Labels::new())
            .await
            .unwrap();
        let err = EngineIdentity::of(&a).current().await.unwrap_err();
        assert!(err.to_string().contains("not anvyl's"), "{err}");
    }

    #[tokio::test]
    async fn two_first_commands_racing_agree_on_one_identity() {
        let a = MemoryBackend::new();
        let (one, two) = tokio::join!(
            async { EngineIdentity::of(&a).current().await.unwrap().clone() },
            async { EngineIdentity::of(&a).current().await.unwrap().clone() },
        );
        assert_eq!(one, two);
    }
}
