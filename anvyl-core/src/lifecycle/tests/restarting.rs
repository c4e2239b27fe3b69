//! A container its engine restarts under `on-failure` is alive: observed as
//! `restarting (N)`, never failed by the watcher nor removed by a cleanup —
//! until its retries are spent, when it is dead like any exited one.

use super::*;
use crate::lifecycle::{Observed, Watch};
use crate::resources::{Resources, Restart};

fn restarting_agent(w: &World) -> AgentName {
    w.agent(
        "web",
        AgentSpec {
            image: BASE.into(),
            command: Some("sleep 600".into()),
            resources: Resources {
                restart: Restart::OnFailure(Some(3)),
                ..Resources::default()
            },
            ..AgentSpec::default()
        },
    )
}

async fn observed(w: &World, name: &AgentName) -> Observed {
    let agent = w.state.agent(name).unwrap();
    w.lifecycle().observe(&agent).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn between_two_runs_it_is_restarting_and_nothing_takes_it_for_dead() {
    let w = World::new();
    let web = restarting_agent(&w);
    let started = w.start(&web).await.unwrap();
    w.engine.exit_after_restarts(&started.container_id, 1, 2, 0);
    let seen = observed(&w, &web).await;
    assert_eq!(seen, Observed::Restarting { count: 2 });
    assert_eq!(seen.to_string(), "restarting (2)");
    assert!(!seen.is_dead() && seen.is_running());

    // The watcher's two looks, its grace, and a cleanup: all leave it be.
    let mut watch = Watch::new(Duration::ZERO);
    for _ in 0..3 {
        let actions = w.lifecycle().watch_pass(&mut watch).await.unwrap();
        assert_eq!(actions, vec![]);
        tokio::time::advance(crate::lifecycle::CONFIRM).await;
    }
    let cleanup = w.cleanup();
    let report = cleanup
        .apply(&cleanup.plan(crate::pipeline::Scope::All).await.unwrap())
        .await;
    assert_eq!(
        w.state.agent(&web).unwrap().status,
        AgentStatus::Running,
        "{report:?}"
    );
    assert!(w
        .engine
        .inspect_container(&started.container_id)
        .await
        .is_ok());
}

#[tokio::test]
async fn once_its_retries_are_spent_it_is_dead() {
    let w = World::new();
    let web = restarting_agent(&w);
    let started = w.start(&web).await.unwrap();
    w.engine.exit_after_restarts(&started.container_id, 1, 3, 0);
    assert!(observed(&w, &web).await.is_dead());
    // Stopped by hand (the engine cancels the restart) or a restart that
    // never came: exited long ago, it is dead, not restarting forever.
    let w = World::new();
    let web = restarting_agent(&w);
    let started = w.start(&web).await.unwrap();
    w.engine
        .exit_after_restarts(&started.container_id, 137, 0, 60);
    assert!(observed(&w, &web).await.is_dead());
    // A clean exit is not retried by on-failure either.
    let w = World::new();
    let web = restarting_agent(&w);
    let started = w.start(&web).await.unwrap();
    w.engine.exit_after_restarts(&started.container_id, 0, 0, 0);
    assert!(observed(&w, &web).await.is_dead());
}
