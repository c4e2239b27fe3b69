//! The ownership rule as a property: over random populations of look-alike
//! containers and images — names a letter off, prefixes, another
//! installation's labels, labels for another agent than the name, user tags
//! in anvyl's repository and elsewhere, unlabelled resources of known
//! agents — what a cleanup of everything removes is exactly the owned set,
//! computed here by an independent oracle.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::backend::{Backend, ContainerSpec, Labels, Query};
use crate::build_root::BuildRoot;
use crate::ids::InstanceId;
use crate::memory::MemoryBackend;
use crate::ownership::{LABEL_AGENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_START};
use crate::state::AgentSpec;

const AGENTS: [&str; 3] = ["web", "web2", "db"];
const BASE: &str = "base:1";

/// Whose labels a resource carries.
#[derive(Debug, Clone)]
enum Owner {
    None,
    Ours(usize),
    Theirs(usize),
    /// `managed-by=anvyl` with our instance but no agent label.
    Partial,
    /// Another tool's `managed-by`.
    Foreign(usize),
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        Just(Owner::None),
        (0..AGENTS.len()).prop_map(Owner::Ours),
        (0..AGENTS.len()).prop_map(Owner::Ours),
        (0..AGENTS.len()).prop_map(Owner::Theirs),
        Just(Owner::Partial),
        (0..AGENTS.len()).prop_map(Owner::Foreign),
    ]
}

fn labels(owner: &Owner, ours: &InstanceId, theirs: &InstanceId, start: &str) -> Labels {
    let mut labels = Labels::new();
    let mut stamp = |instance: &InstanceId, agent: Option<usize>, by: &str| {
        labels.insert(LABEL_MANAGED_BY.into(), by.into());
        labels.insert(LABEL_INSTANCE.into(), instance.to_string());
        labels.insert(LABEL_START.into(), start.into());
        if let Some(a) = agent {
            labels.insert(LABEL_AGENT.into(), AGENTS[a].into());
        }
    };
    match owner {
        Owner::None => {}
        Owner::Ours(a) => stamp(ours, Some(*a), "anvyl"),
        Owner::Theirs(a) => stamp(theirs, Some(*a), "anvyl"),
        Owner::Partial => stamp(ours, None, "anvyl"),
        Owner::Foreign(a) => stamp(ours, Some(*a), "someone-else"),
    }
    labels
}

/// A name built around agent `a`: exact, or a look-alike.
fn name_of(a: usize, shape: usize) -> String {
    let agent = AGENTS[a];
    match shape {
        0 => format!("anvyl-agent-{agent}"),
        1 => format!("anvyl-agent-{agent}2"),
        2 => format!("my-anvyl-agent-{agent}"),
        3 => agent.to_string(),
        _ => format!("anvyl-agent-{agent}-x"),
    }
}

/// A tag around agent `a`: anvyl's repository or not, anvyl's tag or not.
fn tag_of(a: usize, repo: usize, tag: usize, start: &str) -> String {
    let repo = match repo {
        0 | 1 => name_of(a, 0),
        2 => format!("localhost/{}", name_of(a, 0)),
        3 => format!("team/{}", AGENTS[a]),
        _ => name_of(a, 1),
    };
    let tag = match tag {
        0 => "latest".to_string(),
        1 => start.to_string(),
        2 => "backup".to_string(),
        _ => "s0".to_string(),
    };
    format!("{repo}:{tag}")
}

/// A tag's agent, repository shape and tag shape (see [`tag_of`]).
type TagShape = (usize, usize, usize);

#[derive(Debug, Clone)]
struct Population {
    known: Vec<bool>,
    containers: Vec<(usize, usize, Owner)>,
    images: Vec<(Owner, Vec<TagShape>)>,
}

fn population() -> impl Strategy<Value = Population> {
    (
        proptest::collection::vec(any::<bool>(), AGENTS.len()),
        proptest::collection::vec((0..AGENTS.len(), 0..5usize, owner()), 0..8),
        proptest::collection::vec(
            (
                owner(),
                proptest::collection::vec((0..AGENTS.len(), 0..5usize, 0..4usize), 1..4),
            ),
            0..6,
        ),
    )
        .prop_map(|(known, containers, images)| Population {
            known,
            containers,
            images,
        })
}

/// The rule, stated independently of `Ownership`.
fn owned_container(name: &str, labels: &Labels, ours: &InstanceId) -> bool {
    labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some("anvyl")
        && labels.get(LABEL_INSTANCE) == Some(&ours.to_string())
        && labels
            .get(LABEL_AGENT)
            .is_some_and(|a| name == format!("anvyl-agent-{a}"))
}

fn owned_tag(tag: &str, labels: &Labels, ours: &InstanceId) -> bool {
    let Some((repo, t)) = tag.rsplit_once(':') else {
        return false;
    };
    labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some("anvyl")
        && labels.get(LABEL_INSTANCE) == Some(&ours.to_string())
        && labels
            .get(LABEL_AGENT)
            .is_some_and(|a| repo == format!("anvyl-agent-{a}"))
        && (t == "latest" || labels.get(LABEL_START).map(String::as_str) == Some(t))
}

async fn check(population: Population) -> Result<(), TestCaseError> {
    let engine = MemoryBackend::new();
    engine.seed_image(&[BASE], Labels::new());
    let state = StateStore::open_in_memory().unwrap();
    for (a, known) in population.known.iter().enumerate() {
        if *known {
            state
                .create_agent(&AgentName::new(AGENTS[a]).unwrap(), &AgentSpec::default())
                .unwrap();
        }
    }
    let ours = state.instance_id().clone();
    let theirs = InstanceId::from_stored("0ther");

    let mut expected_containers = BTreeSet::new();
    let mut all_containers = BTreeSet::new();
    for (a, shape, owner) in &population.containers {
        let name = name_of(*a, *shape);
        if !all_containers.insert(name.clone()) {
            continue;
        }
        let labels = labels(owner, &ours, &theirs, "s1");
        if !owned_container(&name, &labels, &ours) {
            expected_containers.insert(name.clone());
        }
        let spec = ContainerSpec {
            name,
            image: BASE.into(),
            labels,
            ..ContainerSpec::default()
        };
        engine.create_container(&spec).await.unwrap();
    }
    let mut expected_tags = BTreeSet::from([BASE.to_string()]);
    let mut used = BTreeSet::new();
    for (n, (owner, tags)) in population.images.iter().enumerate() {
        let start = format!("s{}", n + 1);
        let labels = labels(owner, &ours, &theirs, &start);
        let tags: Vec<String> = tags
            .iter()
            .map(|(a, repo, tag)| tag_of(*a, *repo, *tag, &start))
            .filter(|t| used.insert(t.clone()))
            .collect();
        if tags.is_empty() {
            continue;
        }
        for tag in &tags {
            if !owned_tag(tag, &labels, &ours) {
                expected_tags.insert(tag.clone());
            }
        }
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        engine.seed_image(&refs, labels);
    }

    let root = tempfile::tempdir().unwrap();
    let cleanup = Cleanup::new(
        &engine,
        &state,
        BuildRoot::new(root.path()).unwrap(),
        CleanupSettings::default(),
    );
    let plan = cleanup.plan(Scope::All).await.unwrap();
    let report = cleanup.apply(&plan).await;

    let containers: BTreeSet<String> = engine
        .list_containers(&Query::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let tags: BTreeSet<String> = engine
        .list_images(&Query::default())
        .await
        .unwrap()
        .into_iter()
        .flat_map(|i| i.tags.into_iter().map(|t| t.reference))
        .collect();
    prop_assert_eq!(containers, expected_containers, "{:?}", report);
    prop_assert_eq!(tags, expected_tags, "{:?}", report);
    prop_assert_eq!(report.remaining_owned(), 0);
    Ok(())
}

proptest! {
    #[test]
    fn a_cleanup_removes_exactly_the_owned_set(population in population()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(population))?;
    }
}
