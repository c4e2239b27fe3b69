//! The base image of a start: pulled when missing, always or never as the
//! agent or the settings say, with the user's credentials looked up for its
//! registry; a failed pull or an unreadable credentials file fails the
//! start before anything is built, and leaves nothing.

use super::*;
use crate::pull::{CredentialError, CredentialSource, PullPolicy, RegistryCredential};

const PRIVATE: &str = "127.0.0.1:5443/team/base:1";

fn pulls(w: &World) -> usize {
    (w.engine.calls().iter())
        .filter(|(op, _)| *op == Op::PullImage)
        .count()
}

fn from_registry(w: &World, name: &str, pull: Option<PullPolicy>) -> AgentName {
    w.agent(
        name,
        AgentSpec {
            image: PRIVATE.into(),
            command: Some("sleep 600".into()),
            pull,
            ..AgentSpec::default()
        },
    )
}

async fn start_and_stop(w: &World, name: &AgentName) {
    w.start(name).await.unwrap();
    w.lifecycle().stop(name).await.unwrap();
}

#[tokio::test]
async fn missing_pulls_once_always_every_time_never_not_at_all() {
    let w = World::new();
    w.engine.publish(PRIVATE);
    let missing = from_registry(&w, "missing", None);
    start_and_stop(&w, &missing).await;
    start_and_stop(&w, &missing).await;
    assert_eq!(pulls(&w), 1, "missing: only the first start pulls");

    let always = from_registry(&w, "always", Some(PullPolicy::Always));
    start_and_stop(&w, &always).await;
    start_and_stop(&w, &always).await;
    assert_eq!(pulls(&w), 3, "always: each start pulls");

    let w = World::new();
    w.engine.publish(PRIVATE);
    let never = from_registry(&w, "never", Some(PullPolicy::Never));
    let err = w.start(&never).await.unwrap_err();
    assert_eq!(pulls(&w), 0);
    assert!(
        err.to_string().contains("the pull policy is `never`"),
        "{err}"
    );
    w.assert_nothing_left(&never, &err).await;
}

#[tokio::test]
async fn the_settings_policy_applies_to_agents_that_say_none() {
    let w = World::new();
    w.engine.publish(PRIVATE);
    let agent = from_registry(&w, "web", None);
    let lifecycle = w.lifecycle_with(LifecycleSettings {
        settle: Duration::from_millis(50),
        pull: PullPolicy::Never,
        ..LifecycleSettings::default()
    });
    let err = lifecycle
        .start(&agent, &|_| {}, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(pulls(&w), 0, "{err}");
}

struct Failing;

#[async_trait::async_trait]
impl CredentialSource for Failing {
    async fn lookup(
        &self,
        _: crate::BackendKind,
        registry: &str,
    ) -> Result<Option<RegistryCredential>, CredentialError> {
        Err(CredentialError {
            registry: registry.to_string(),
            cause: "config.json is not a credentials file".into(),
        })
    }
}

#[tokio::test]
async fn unreadable_credentials_fail_the_start_before_any_pull() {
    let w = World::new();
    w.engine.publish(PRIVATE);
    let agent = from_registry(&w, "web", None);
    let err = w
        .lifecycle()
        .with_credentials(&Failing)
        .start(&agent, &|_| {}, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read your credentials for registry 127.0.0.1:5443"),
        "{err}"
    );
    assert_eq!(pulls(&w), 0);
    w.assert_nothing_left(&agent, &err).await;
}

#[tokio::test]
async fn a_refused_pull_says_what_to_do_and_leaves_nothing() {
    let w = World::new();
    let agent = from_registry(&w, "web", None);
    w.engine.inject(
        Op::PullImage,
        None,
        Fault::Fail("unauthorized: authentication required".into()),
        None,
    );
    let err = w.start(&agent).await.unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    w.assert_nothing_left(&agent, &err).await;
}
