//! What the engine holds that a plan may judge: containers and images
//! listed by the ownership selector (and by exact name, for unlabelled
//! look-alikes), images matched in anvyl rather than by the engine's
//! filter, and the other installations whose resources were seen.

use std::collections::{BTreeMap, BTreeSet};

use super::{Cleanup, CleanupError, OtherInstance, Scope};
use crate::backend::{ContainerSummary, ImageSummary, Labels, Query};
use crate::ids::InstanceId;
use crate::name::{AgentName, RESOURCE_PREFIX};
use crate::ownership::{
    Claim, Ownership, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_START, MANAGED_BY,
};

impl Cleanup<'_> {
    /// The label selector of `scope`.
    pub(super) fn selector(&self, scope: &Scope) -> Labels {
        match scope {
            Scope::Start(id) => self.ownership.selector(None, Some(id)),
            Scope::Agent(agent) => self.ownership.selector(Some(agent), None),
            Scope::All => self.ownership.selector(None, None),
        }
    }

    /// Whether a resource of `agent` with `labels` falls in `scope`. Server
    /// filters already narrowed the listing; this is the exact client check.
    pub(super) fn in_scope(
        scope: &Scope,
        agent: &AgentName,
        labels: &Labels,
        claim: Claim,
    ) -> bool {
        match scope {
            Scope::Start(id) => {
                claim == Claim::Labelled
                    && labels.get(LABEL_START).map(String::as_str) == Some(id.as_str())
            }
            Scope::Agent(name) => name == agent,
            Scope::All => true,
        }
    }

    /// The candidates for this installation's containers in scope, found by
    /// one listing. A labelled container is ours only under the exact name
    /// `anvyl-agent-<agent>` (engines copy an image's labels into every
    /// container made from it), so outside a start one name listing finds
    /// labelled and legacy containers alike: one scan of the engine's
    /// containers, not two. Owners are decided on the client afterwards.
    pub(super) async fn fetch_containers(
        &self,
        scope: &Scope,
    ) -> Result<Vec<ContainerSummary>, CleanupError> {
        let query = match scope {
            Scope::Start(_) => Query::labelled(self.selector(scope)),
            Scope::Agent(agent) => Query::named(agent.resource_name()),
            // A name filter matches substrings: a hint, compared exactly later.
            Scope::All => Query::named(RESOURCE_PREFIX),
        };
        Ok(self.backend.list_containers(&query).await?)
    }

    /// The other installations whose labelled resources the listings show.
    pub(super) fn other_instances(
        &self,
        containers: &[ContainerSummary],
        images: &[ImageSummary],
    ) -> Vec<OtherInstance> {
        // Counted by the same rule `--instance` would remove by: exact
        // names and tags anvyl gives. Labels alone travel into a user's
        // images built FROM anvyl's, which no adoption would remove.
        let none = BTreeSet::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let instance_of = |labels: &Labels| {
            (labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY))
                .then(|| labels.get(LABEL_INSTANCE).cloned())
                .flatten()
                .filter(|i| i != self.ownership.instance().as_str())
        };
        for c in containers {
            if let Some(instance) = instance_of(&c.labels) {
                let theirs = Ownership::new(InstanceId::from_stored(instance.as_str()));
                if theirs.container_owner(c, &none).is_some() {
                    *counts.entry(instance).or_default() += 1;
                }
            }
        }
        // Two listings may name one image.
        let mut seen = BTreeSet::new();
        for i in images.iter().filter(|i| seen.insert(&i.id)) {
            if let Some(instance) = instance_of(&i.labels) {
                let theirs = Ownership::new(InstanceId::from_stored(instance.as_str()));
                let tags = theirs.owned_tags(i, &none).len();
                if tags > 0 {
                    *counts.entry(instance).or_default() += tags;
                }
            }
        }
        counts
            .into_iter()
            .map(|(instance, resources)| OtherInstance {
                instance,
                resources,
            })
            .collect()
    }

    /// This installation's labelled images in scope, and the unlabelled
    /// candidates by reference (compared exactly later, against the agents
    /// the state knows once it is read).
    pub(super) async fn fetch_images(
        &self,
        scope: &Scope,
    ) -> Result<Vec<ImageSummary>, CleanupError> {
        // Every installation's images for the all-agents scope: the same one
        // listing also tells which other installations left resources here.
        let labelled = match scope {
            Scope::All => Query::labelled(Labels::from([(
                LABEL_MANAGED_BY.to_string(),
                MANAGED_BY.to_string(),
            )])),
            _ => Query::labelled(self.selector(scope)),
        };
        let unlabelled = async {
            match scope {
                Scope::Agent(agent) => {
                    self.backend
                        .list_images(&Query::named(agent.resource_name()))
                        .await
                }
                // A glob is only a server-side hint; tags are compared exactly.
                Scope::All => {
                    self.backend
                        .list_images(&Query::named(format!("{RESOURCE_PREFIX}*")))
                        .await
                }
                Scope::Start(_) => Ok(Vec::new()),
            }
        };
        let (mut found, unlabelled) =
            futures::try_join!(self.backend.list_images(&labelled), unlabelled)?;
        found.extend(unlabelled);
        Ok(found)
    }
}
