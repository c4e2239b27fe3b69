//! What is anvyl's. Every container and image anvyl creates carries four
//! labels, stamped after any user labels so they cannot be overridden. A
//! resource belongs to agent A of this installation when it carries
//! `managed-by=anvyl`, `agent=A` and our instance id, and — for a container —
//! its name is exactly `anvyl-agent-A`, or — for an image tag — the tag is
//! one anvyl gives: `anvyl-agent-A:latest` or `anvyl-agent-A:<start>`. A tag a
//! user adds to anvyl's image, in any repository, is the user's. Resources
//! with no `managed-by` label at all, named exactly `anvyl-agent-A` (`:latest`
//! for an image) for an agent we know, are claimed as [`Claim::LegacyName`]:
//! the pipeline shows them and removes them only when asked. Never a glob.
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
/// The moving tag of an agent's newest build.
pub const LATEST: &str = "latest";

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

    /// The tags of `image` that anvyl may remove, with their agent and claim:
    /// `anvyl-agent-<agent>:latest` and `anvyl-agent-<agent>:<start>` of the
    /// start that built it, exactly. A tag a user added to the same image —
    /// another repository, or another tag in anvyl's — is never listed.
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
                Some(agent) => (tag.repository == agent.resource_name()
                    && (tag.tag == LATEST || image.labels.get(LABEL_START) == Some(&tag.tag)))
                .then(|| (tag, agent.clone(), Claim::Labelled)),
                None => legacy_owner(&image.labels, &tag.repository, known)
                    .filter(|_| tag.tag == LATEST)
                    .map(|agent| (tag, agent, Claim::LegacyName)),
            })
            .collect()
    }

    /// The agent of an untagged image that carries our labels. The pipeline
    /// removes such an image by giving it its start's tag again and removing
    /// that tag, never by id, so a tag a user adds meanwhile keeps it (see
    /// `apply::remove_untagged`).
    pub fn untagged_owner(&self, image: &ImageSummary) -> Option<AgentName> {
        if image.tags.is_empty() {
            self.labelled_agent(&image.labels)
        } else {
            None
        }
    }
}

/// The start a resource belongs to: its `io.anvyl.start` label, when its
/// claim rests on labels at all.
pub fn start_of(labels: &Labels, claim: Claim) -> Option<StartId> {
    match claim {
        Claim::Labelled => labels.get(LABEL_START).map(StartId::from_stored),
        Claim::LegacyName => None,
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
            exit_code: None,
            finished: None,
            restarts: Default::default(),
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
    fn only_the_tags_anvyl_gives_are_ours() {
        let ours = Ownership::new(InstanceId::from_stored("i1"));
        let start = StartId::from_stored("s1");
        let podman = |r: &str| ImageTag::parse_on("localhost/", r);
        let image = ImageSummary {
            id: "sha256:1".into(),
            tags: vec![
                podman("localhost/anvyl-agent-web:latest"),
                podman("localhost/anvyl-agent-web:s1"),
                podman("localhost/anvyl-agent-web:mine"),
                podman("localhost/anvyl-agent-web:s0"),
                podman("docker.io/library/anvyl-agent-web:latest"),
                podman("mine:keep"),
                podman("localhost/anvyl-agent-web2:latest"),
            ],
            labels: ours.stamp(&Labels::new(), &agent("web"), &start),
            parent: None,
        };
        let tags: Vec<&str> = ours
            .owned_tags(&image, &BTreeSet::new())
            .iter()
            .map(|t| t.0.reference.as_str())
            .collect();
        assert_eq!(
            tags,
            [
                "localhost/anvyl-agent-web:latest",
                "localhost/anvyl-agent-web:s1"
            ]
        );
    }

    #[test]
    fn an_unlabelled_image_is_claimed_only_as_latest_of_a_known_agent() {
        let ours = Ownership::new(InstanceId::from_stored("i1"));
        let image = ImageSummary {
            id: "sha256:2".into(),
            tags: vec![
                ImageTag::parse("anvyl-agent-db:latest"),
                ImageTag::parse("anvyl-agent-db:v2"),
            ],
            labels: Labels::new(),
            parent: None,
        };
        let known = BTreeSet::from([agent("db")]);
        let tags = ours.owned_tags(&image, &known);
        assert_eq!(tags.len(), 1);
        assert_eq!(
            (tags[0].0.tag.as_str(), tags[0].2),
            ("latest", Claim::LegacyName)
        );
    }

    #[test]
    fn image_tags_drop_only_the_implicit_prefix() {
        let tag = ImageTag::parse_on("localhost/", "localhost/anvyl-agent-web:latest");
        assert_eq!(tag.repository, "anvyl-agent-web");
        assert_eq!(tag.reference, "localhost/anvyl-agent-web:latest");
        // Another engine's prefix is another repository.
        let tag = ImageTag::parse_on("localhost/", "docker.io/library/anvyl-agent-web:latest");
        assert_eq!(tag.repository, "docker.io/library/anvyl-agent-web");
        let listed = ImageTag::parse_listing("localhost/", &["<none>:<none>", "localhost/a:b"]);
        let listed: Vec<(&str, &str)> = (listed.iter())
            .map(|t| (t.reference.as_str(), t.repository.as_str()))
            .collect();
        assert_eq!(listed, [("localhost/a:b", "a")]);
        let tag = ImageTag::parse("registry:5000/x");
        assert_eq!(
            (tag.repository.as_str(), tag.tag.as_str()),
            ("registry:5000/x", "latest")
        );
    }
}
