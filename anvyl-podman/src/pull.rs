//! Pulling a base image through libpod's pull endpoint, and the registry
//! credentials a pull or build sends: base64url JSON, as libpod decodes it,
//! always in `X-Registry-Config`'s per-registry form — libpod writes it to
//! an auth file by registry, where a single `X-Registry-Auth` would be
//! offered to any registry the pull reaches (a short name's aliases).

use anvyl_core::backend::Result;
use anvyl_core::pull::{
    classify_pull_failure, Credentials, PullProgress, PullProgressSink, RegistryCredential,
};
use anvyl_core::{BackendError, BackendKind};
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use serde_json::{json, Value};

fn auth_json(credential: &RegistryCredential) -> Value {
    match credential {
        RegistryCredential::Password { username, password } => {
            json!({ "username": username, "password": password })
        }
        RegistryCredential::IdentityToken(token) => json!({ "identitytoken": token }),
    }
}

/// The `X-Registry-Config` header of a build, when it has credentials.
pub(crate) fn registry_config(credentials: &Credentials) -> Vec<(&'static str, String)> {
    if credentials.is_empty() {
        return Vec::new();
    }
    let map: serde_json::Map<String, Value> = (credentials.iter())
        .map(|(registry, c)| (registry.to_string(), auth_json(c)))
        .collect();
    vec![(
        "X-Registry-Config",
        URL_SAFE.encode(Value::Object(map).to_string()),
    )]
}

impl crate::PodmanBackend {
    /// See [`anvyl_core::Backend::pull_image`]. libpod says which blobs it
    /// copies, not their sizes: the progress counts layers.
    pub(crate) async fn pull(
        &self,
        reference: &str,
        credential: Option<&RegistryCredential>,
        progress: PullProgressSink<'_>,
    ) -> Result<()> {
        let query = podman_api::opts::PullOpts::builder()
            .reference(reference)
            .quiet(false)
            .build()
            .serialize()
            .unwrap_or_default();
        // The per-registry form, never the single `X-Registry-Auth`: libpod
        // hands that one to every registry the pull contacts.
        let registry = anvyl_core::pull::ImageRef::parse(reference).registry;
        let credentials = match credential {
            Some(c) => Credentials::default().with(&registry, c.clone()),
            None => Credentials::default(),
        };
        let headers = registry_config(&credentials);
        let layers = std::sync::atomic::AtomicUsize::new(0);
        let lines = |line: &str| {
            if line.starts_with("Copying blob") {
                let seen = layers.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(PullProgress {
                    layers_done: seen.saturating_sub(1),
                    layers: seen,
                    ..Default::default()
                });
            }
        };
        let answer = crate::stream::post(
            &self.endpoint,
            &format!("images/pull?{query}"),
            &headers,
            Vec::new(),
            &lines,
        )
        .await?;
        let status = (!answer.status.is_success()).then_some(answer.status.as_u16());
        let message = match answer.failure {
            Some(message) => message,
            None if status.is_none() => return Ok(()),
            None => format!(
                "the engine refused the pull (HTTP {})",
                answer.status.as_u16()
            ),
        };
        Err(BackendError::Pull {
            engine: BackendKind::Podman,
            reference: reference.to_string(),
            problem: classify_pull_failure(status, &message),
            sent_credentials: credential.is_some(),
            message,
        })
    }
}
