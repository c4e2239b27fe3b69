//! Snapshots of what people and programs read of a plan and a report.

use super::*;
use anvyl_core::pipeline::{
    FleetPlan, FleetReport, HostError, HostPlan, HostReport, ItemReport, Kept, OtherInstance,
    Outcome, Plan, PlannedContainer, PlannedDir, PlannedImage, PlannedReset, Report, Scope, Step,
    StepReport,
};
use anvyl_core::{AgentName, AgentStatus};
use anvyl_core::{BackendKind, Claim};

fn sample_plan() -> Plan {
    let web = AgentName::new("web").unwrap();
    Plan {
        scope: Scope::All,
        containers: vec![PlannedContainer {
            id: "c0ffee".into(),
            name: "anvyl-agent-web".into(),
            agent: web.clone(),
            start: Some(anvyl_core::StartId::from_stored("5a1")),
            claim: Claim::Labelled,
        }],
        images: vec![PlannedImage {
            reference: "anvyl-agent-web:latest".into(),
            display: "anvyl-agent-web:latest".into(),
            image_id: "sha256:1".into(),
            agent: web.clone(),
            start: None,
            claim: Claim::LegacyName,
        }],
        build_steps: Vec::new(),
        forget_steps: Vec::new(),
        build_dirs: vec![PlannedDir {
            path: "/state/builds/web.5a1".into(),
            name: "web.5a1".into(),
            agent: web.clone(),
            start: anvyl_core::StartId::from_stored("5a1"),
        }],
        resets: vec![PlannedReset {
            agent: web,
            from: AgentStatus::Failed,
            start: Some(anvyl_core::StartId::from_stored("5a1")),
            stale: false,
        }],
        kept: vec![Kept {
            what: "container anvyl-agent-api".into(),
            reason: "in use by running agent 'api'".into(),
        }],
        dangling_images: 2,
        build_root_error: None,
        other_instances: vec![OtherInstance {
            instance: "0badc0de0badc0de".into(),
            resources: 3,
        }],
    }
}

/// The sample plan on `local`, its build directory on this machine,
/// and a host that did not answer.
fn sample_fleet() -> FleetPlan {
    let plan = sample_plan();
    let machine = Plan {
        containers: vec![],
        images: vec![],
        resets: vec![],
        kept: vec![],
        dangling_images: 0,
        other_instances: vec![],
        ..plan.clone()
    };
    FleetPlan {
        scope: Scope::All,
        hosts: vec![
            HostPlan {
                host: "local".into(),
                backend: Some(BackendKind::Docker),
                prune_hint: Some("docker system prune -f"),
                plan: Some(Plan {
                    build_dirs: vec![],
                    ..plan
                }),
                error: None,
            },
            HostPlan {
                host: "far".into(),
                backend: None,
                prune_hint: None,
                plan: None,
                error: Some(HostError {
                    unreachable: true,
                    message:
                        "cannot reach the Docker engine at unix:///far.sock: connection refused"
                            .into(),
                }),
            },
        ],
        machine,
    }
}

#[test]
fn a_plan_renders_as_a_table() {
    insta::assert_snapshot!(plan_table(&sample_fleet(), false));
}

#[test]
fn a_long_plan_is_shown_by_agent_unless_full() {
    // 12 agents (web2 … web13) with a container and an image each: 24
    // items, naturally sorted, the same notes below.
    let mut fleet = sample_fleet();
    let local = fleet.hosts[0].plan.as_mut().unwrap();
    let (container, image) = (local.containers[0].clone(), local.images[0].clone());
    local.containers.clear();
    local.images.clear();
    local.resets.clear();
    for n in 2..=13 {
        let agent = AgentName::new(format!("web{n}")).unwrap();
        local.containers.push(PlannedContainer {
            agent: agent.clone(),
            name: format!("anvyl-agent-web{n}"),
            ..container.clone()
        });
        local.images.push(PlannedImage {
            agent,
            display: format!("anvyl-agent-web{n}:latest"),
            ..image.clone()
        });
    }
    let summary = plan_table(&fleet, false);
    insta::assert_snapshot!(summary);
    let full = plan_table(&fleet, true);
    assert_eq!(full.matches("anvyl-agent-web").count(), 24, "{full}");
}

#[test]
fn a_plan_renders_as_json() {
    insta::assert_snapshot!(json(&CleanupDocument::new(false, &sample_fleet(), None)));
}

#[test]
fn a_report_names_each_host_and_the_one_left_alone() {
    let plan = sample_fleet();
    let local = plan.hosts[0].plan.as_ref().unwrap();
    let item = |target: &str| ItemReport {
        target: target.into(),
        agent: None,
        outcome: Outcome::Removed,
    };
    let report = FleetReport {
        hosts: vec![
            HostReport {
                host: "local".into(),
                report: Some(Report {
                    steps: vec![StepReport {
                        step: Step::Containers,
                        items: local.containers.iter().map(|c| item(&c.name)).collect(),
                    }],
                }),
            },
            HostReport {
                host: "far".into(),
                report: None,
            },
        ],
        machine: Report { steps: vec![] },
    };
    let text = report_summary(&report, &plan);
    assert!(text.contains("  local: removed 1 container,"), "{text}");
    assert!(text.contains("  far: unreachable, not cleaned."), "{text}");
    assert!(
        text.contains("Host 'far' was not cleaned: cannot reach"),
        "{text}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&json(&CleanupDocument::new(false, &plan, Some(&report)))).unwrap();
    assert_eq!(doc["hosts"][0]["removed"], 1, "{doc}");
    assert_eq!(doc["hosts"][1]["reachable"], false, "{doc}");
    assert_eq!(
        doc["report"]["steps"][0]["items"][0]["host"], "local",
        "{doc}"
    );
}

#[test]
fn the_hint_names_the_engines_prune() {
    let mut plan = sample_fleet();
    assert!(prune_hints(&plan)
        .contains("on host 'local' are not anvyl's to remove; `docker system prune -f`"));
    plan.hosts[0].prune_hint = None;
    assert_eq!(
        prune_hints(&plan),
        "",
        "no hint without the engine's command"
    );
    plan.hosts[0].prune_hint = Some("podman system prune -f");
    assert!(prune_hints(&plan).contains("`podman system prune -f`"));
    plan.hosts[0].plan.as_mut().unwrap().dangling_images = 0;
    assert_eq!(prune_hints(&plan), "");
}
