//! What is anvyl's. Every container and image anvyl creates carries four
//! labels, stamped after any user labels so they cannot be overridden. A
//! resource belongs to agent A of this installation when it carries
//! `managed-by=anvyl`, `agent=A` and our instance id, or — for resources of
//! older, unlabelled tooling — when it has no `managed-by` label at all and
//! its name is exactly `anvyl-agent-A` for an agent we know. Never a glob.
//!
//! Engines copy an image's labels into every container made from it, so a
//! container a user runs from anvyl's image carries anvyl's labels too. A
//! labelled container is therefore ours only under the one name anvyl gives
//! its containers, `anvyl-agent-<agent>`.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::backend::{ContainerSummary, ImageSummary, ImageTag, Labels};
use crate::ids::{InstanceId, StartId};
use crate::name::AgentName;

/// `io.anvyl.managed-by`: always `anvyl`.
pub const LABEL_MANAGED_BY: &str = "io.anvyl.managed-by";
/// `io.anvyl.agent`: the agent's name.
pub const LABEL_AGENT: &str = "io.anvyl.agent";
/// `io.anvyl.instance`: the installation id.
pub const LABEL_INSTANCE: &str = "io.anvyl.instance";
/// `io.anvyl.start`: the start attempt that created the resource.
pub const LABEL_START: &str = "io.anvyl.start";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "anvyl";

/// Why a resource counts as ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Claim {
    /// It carries our labels.
    Labelled,
    /// It carries no anvyl label and has the exact legacy name of a known agent.
    LegacyName,
}

/// The ownership rule of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    instance: InstanceId,
}

impl Ownership {
    /// The rule for the installation `instance`.
    pub fn new(instance: InstanceId) -> Self {
        Self { instance }
    }

    /// This installation's id.
    pub fn instance(&self) -> &InstanceId {
        &self.instance
    }

    /// `user` labels with the four ownership labels applied on top, so a
    /// user-supplied `io.anvyl.*` value can never survive.
    pub fn stamp(&self, user: &Labels, agent: &AgentName, start: &StartId) -> Labels {
        let mut labels = user.clone();
        labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
        labels.insert(LABEL_AGENT.into(), agent.to_string());
        labels.insert(LABEL_INSTANCE.into(), self.instance.to_string());
        labels.insert(LABEL_START.into(), start.to_string());
        labels
    }

    /// The server-side label filter for this installation's resources,
    /// narrowed to one agent and/or one start.
    pub fn selector(&self, agent: Option<&AgentName>, start: Option<&StartId>) -> Labels {
        let mut labels = Labels::new();
        labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
        labels.insert(LABEL_INSTANCE.into(), self.instance.to_string());
        if let Some(agent) = agent {
            labels.insert(LABEL_AGENT.into(), agent.to_string());
        }
        if let Some(start) = start {
            labels.insert(LABEL_START.into(), start.to_string());
        }
        labels
    }

    /// The agent a labelled resource belongs to, if its labels are ours.
    pub fn labelled_agent(&self, labels: &Labels) -> Option<AgentName> {
        let ours = labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
            && labels.get(LABEL_INSTANCE).map(String::as_str) == Some(self.instance.as_str());
        if !ours {
            return None;
        }
        labels
            .get(LABEL_AGENT)
            .and_then(|a| AgentName::new(a.as_str()).ok())
    }

    /// The agent that owns `container`, and on what grounds.
    pub fn container_owner(
        &self,
        container: &ContainerSummary,
        known: &BTreeSet<AgentName>,
    ) -> Option<(AgentName, Claim)> {
        if let Some(agent) = self.labelled_agent(&container.labels) {
            // Labels inherited from our image are not enough: see the module doc.
            return (container.name == agent.resource_name()).then_some((agent, Claim::Labelled));
        }
        legacy_owner(&container.labels, &container.name, known).map(|a| (a, Claim::LegacyName))
    }

    /// The tags of `image` that anvyl may remove, with their agent and claim.
    /// Only a tag whose repository is exactly `anvyl-agent-<agent>` is ours:
    /// a tag a user added to the same image is never listed.
    pub fn owned_tags<'i>(
        &self,
        image: &'i ImageSummary,
        known: &BTreeSet<AgentName>,
    ) -> Vec<(&'i ImageTag, AgentName, Claim)> {
        let labelled = self.labelled_agent(&image.labels);
        image
            .tags
            .iter()
            .filter_map(|tag| match &labelled {
                Some(agent) => (tag.repository == agent.resource_name())
                    .then(|| (tag, agent.clone(), Claim::Labelled)),
                None => legacy_owner(&image.labels, &tag.repository, known)
                    .map(|agent| (tag, agent, Claim::LegacyName)),
            })
            .collect()
    }

    /// The agent of an untagged image that carries our labels: such an image
    /// is removed by id (never forced), since it has no tag to remove.
    pub fn untagged_owner(&self, image: &ImageSummary) -> Option<AgentName> {
        if image.tags.is_empty() {
            self.labelled_agent(&image.labels)
        } else {
            None
        }
    }
}

/// A resource without any `managed-by` label, named exactly for a known agent.
fn legacy_owner(labels: &Labels, name: &str, known: &BTreeSet<AgentName>) -> Option<AgentName> {
    if labels.contains_key(LABEL_MANAGED_BY) {
        return None;
    }
    AgentName::from_resource_name(name).filter(|agent| known.contains(agent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ContainerState;

    fn agent(name: &str) -> AgentName {
        AgentName::new(name).unwrap()
    }

    fn container(name: &str, labels: Labels) -> ContainerSummary {
        ContainerSummary {
            id: format!("id-{name}"),
            name: name.into(),
            image_id: "sha256:x".into(),
            labels,
            state: ContainerState::Exited,
        }
    }

    #[test]
    fn user_labels_cannot_override_ownership() {
        let ours = Ownership::new(InstanceId::from_stored("i1"));
        let mut user = Labels::new();
        user.insert(LABEL_MANAGED_BY.into(), "someone-else".into());
        user.insert(LABEL_INSTANCE.into(), "i2".into());
        user.insert(LABEL_AGENT.into(), "other".into());
        user.insert("team".into(), "ml".into());
        let labels = ours.stamp(&user, &agent("web"), &StartId::from_stored("s1"));
        assert_eq!(labels[LABEL_MANAGED_BY], "anvyl");
        assert_eq!(labels[LABEL_INSTANCE], "i1");
        assert_eq!(labels[LABEL_AGENT], "web");
        assert_eq!(labels[LABEL_START], "s1");
        assert_eq!(labels["team"], "ml");
    }

    #[test]
    fn another_installation_is_never_ours() {
        let ours = Ownership::new(InstanceId::from_stored("i1"));
        let theirs = Ownership::new(InstanceId::from_stored("i2"));
        let labels = theirs.stamp(&Labels::new(), &agent("web"), &StartId::random());
        let known = BTreeSet::from([agent("web")]);
        assert_eq!(
            ours.container_owner(&container("anvyl-agent-web", labels), &known),
            None
        );
    }

    #[test]
    fn a_labelled_container_under_another_name_is_not_ours() {
        let ours = Ownership::new(InstanceId::from_stored("i1"));
        let labels = ours.stamp(&Labels::new(), &agent("web"), &StartId::random());
        let known = BTreeSet::new();
        let owner = |name: &str| ours.container_owner(&container(name, labels.clone()), &known);
        assert_eq!(
            owner("anvyl-agent-web"),
            Some((agent("web"), Claim::Labelled))
        );
        assert_eq!(owner("users-container"), None);
        assert_eq!(owner("anvyl-agent-web2"), None);
    }

    #[test]
    fn legacy_names_match_exactly_and_only_known_agents() {
        let ours = Ownership::new(InstanceId::from_stored("i1"));
        let known = BTreeSet::from([agent("web")]);
        let owner = |name: &str| ours.container_owner(&container(name, Labels::new()), &known);
        assert_eq!(
            owner("anvyl-agent-web"),
            Some((agent("web"), Claim::LegacyName))
        );
        assert_eq!(owner("anvyl-agent-web2"), None);
        assert_eq!(owner("my-anvyl-agent-web"), None);
        assert_eq!(owner("anvyl-agent-unknown"), None);
    }

    #[test]
    fn only_the_agents_own_tag_of_an_image_is_ours() {
        let ours = Ownership::new(InstanceId::from_stored("i1"));
        let image = ImageSummary {
            id: "sha256:1".into(),
            tags: vec![
                ImageTag::parse("localhost/anvyl-agent-web:latest"),
                ImageTag::parse("mine:keep"),
                ImageTag::parse("anvyl-agent-web2:latest"),
            ],
            labels: ours.stamp(&Labels::new(), &agent("web"), &StartId::random()),
        };
        let tags = ours.owned_tags(&image, &BTreeSet::new());
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].0.reference, "localhost/anvyl-agent-web:latest");
    }

    #[test]
    fn image_tags_parse_engine_prefixes() {
        let tag = ImageTag::parse("docker.io/library/anvyl-agent-web:v1");
        assert_eq!(
            (tag.repository.as_str(), tag.tag.as_str()),
            ("anvyl-agent-web", "v1")
        );
        let listed = ImageTag::parse_listing(&["<none>:<none>", "localhost/a:b"]);
        assert_eq!(listed, vec![ImageTag::parse("localhost/a:b")]);
        let tag = ImageTag::parse("registry:5000/x");
        assert_eq!(
            (tag.repository.as_str(), tag.tag.as_str()),
            ("registry:5000/x", "latest")
        );
    }
}
