//! `anvyl agent cleanup` removes orphans — one agent's, or everyone's — in
//! four steps, and logs each removal in the familiar shape.

use anvyl_core::AgentStatus;
use anvyl_tests::Sandbox;

use crate::unique;

#[tokio::test]
async fn cleanup_of_one_agent_removes_its_orphans_and_nothing_else() {
    let s = Sandbox::new().await;
    let (a, b) = (s.agent(&unique("one")), s.agent(&unique("other")));
    let (ca, _) = s.leftovers(&a).await;
    let (cb, _) = s.leftovers(&b).await;
    let dir = s.build_dir(&a, "x1");
    s.set_status(&a, AgentStatus::Failed, None);

    let run = s.anvyl(&["agent", "cleanup", a.as_str(), "--yes"]);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!s.has_container(&ca).await);
    assert!(!s.has_image(&a.image_tag()).await);
    assert!(!dir.exists());
    assert!(
        s.has_container(&cb).await,
        "the other agent's container was removed"
    );
    assert!(
        s.has_image(&b.image_tag()).await,
        "the other agent's image was removed"
    );
    let log = &run.stderr;
    let engine = s.itest.engine_name();
    for line in [
        format!("Removed container by name: {}", a.resource_name()),
        format!("Removed {engine} image: {}", a.image_tag()),
        format!("Removed temporary build directory: {}", dir.display()),
        format!("Reset agent '{a}' status to stopped"),
    ] {
        assert!(
            log.lines().any(|l| l == line),
            "missing {line:?} in:\n{log}"
        );
    }
    assert_eq!(s.state().agent(&a).unwrap().status, AgentStatus::Stopped);
    s.discard(&[&cb], &[&b.image_tag()]).await;
}

#[tokio::test]
async fn cleanup_of_all_removes_every_agents_orphans_but_a_running_agents_live_resources() {
    let s = Sandbox::new().await;
    let agents: Vec<_> = (0..2)
        .map(|i| s.agent(&unique(&format!("all{i}"))))
        .collect();
    let mut containers = Vec::new();
    for agent in &agents {
        containers.push(s.leftovers(agent).await.0);
    }
    // A third agent really runs: its container and image are live.
    let live = s.agent(&unique("live"));
    s.image(&live.image_tag(), s.labels(&live)).await;
    let live_container = &s
        .running_container(&live.resource_name(), &live.image_tag(), s.labels(&live))
        .await;
    s.set_status(&live, AgentStatus::Running, Some(live_container));

    let run = s.anvyl(&["agent", "cleanup", "--yes"]);

    assert_eq!(run.code, Some(0), "{run:?}");
    for (agent, container) in agents.iter().zip(&containers) {
        assert!(
            !s.has_container(container).await,
            "{agent}'s container remains"
        );
        assert!(
            !s.has_image(&agent.image_tag()).await,
            "{agent}'s image remains"
        );
    }
    assert!(
        s.has_container(live_container).await,
        "the running agent's container was removed"
    );
    assert!(
        s.has_image(&live.image_tag()).await,
        "the running agent's image was removed"
    );
    assert!(
        run.stdout.contains("in use by running agent"),
        "{}",
        run.stdout
    );
    assert_eq!(s.state().agent(&live).unwrap().status, AgentStatus::Running);
    s.discard(&[live_container], &[&live.image_tag()]).await;
}

#[tokio::test]
async fn a_running_agent_whose_container_is_gone_is_reconciled_and_reset() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("stale"));
    let (container, _) = s.leftovers(&web).await;
    // Recorded as running, but its container never started (or exited).
    s.set_status(&web, AgentStatus::Running, Some(&container));

    let run = s.anvyl(&["agent", "cleanup", web.as_str(), "--yes"]);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!s.has_container(&container).await);
    let agent = s.state().agent(&web).unwrap();
    assert_eq!(
        (agent.status, agent.container_id),
        (AgentStatus::Stopped, None)
    );
}

#[tokio::test]
async fn without_yes_and_without_a_terminal_nothing_is_removed_and_the_exit_is_2() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("noyes"));
    let (container, _) = s.leftovers(&web).await;

    let run = s.anvyl(&["agent", "cleanup", web.as_str()]);

    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("without --yes"), "{}", run.stderr);
    assert!(s.has_container(&container).await);
    assert!(s.has_image(&web.image_tag()).await);
    s.discard(&[&container], &[&web.image_tag()]).await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("dry"));
    let (container, _) = s.leftovers(&web).await;
    let dir = s.build_dir(&web, "d1");
    s.set_status(&web, AgentStatus::Failed, None);
    let run = s.anvyl(&["agent", "cleanup", "--dry-run"]);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("Dry run: nothing was removed."),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&web.resource_name()), "{}", run.stdout);
    assert!(s.has_container(&container).await);
    assert!(s.has_image(&web.image_tag()).await);
    assert!(dir.exists());
    assert_eq!(s.state().agent(&web).unwrap().status, AgentStatus::Failed);
    s.discard(&[&container], &[&web.image_tag()]).await;
}

#[tokio::test]
async fn an_image_used_by_a_foreign_container_is_kept_with_the_reason_and_exit_1() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("shared"));
    s.image(&web.image_tag(), s.labels(&web)).await;
    // Somebody else runs a container of anvyl's image.
    let foreign = s
        .container(&unique("user-ctr"), &web.image_tag(), Default::default())
        .await;

    let run = s.anvyl(&["agent", "cleanup", web.as_str(), "--yes"]);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        s.has_container(&foreign).await,
        "a container anvyl does not own was removed"
    );
    assert!(s.has_image(&web.image_tag()).await);
    assert!(run.stdout.contains("Skipped image"), "{}", run.stdout);
    assert!(run.stdout.contains("in use"), "{}", run.stdout);
    s.discard(&[&foreign], &[&web.image_tag()]).await;
}
