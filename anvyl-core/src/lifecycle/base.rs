//! A start's base image: had as the engine's own CLI would have it — pulled
//! when missing (or always, or never, as the agent or the configuration
//! says), with the user's credentials for its registry, read at each start
//! and handed to the engine for this pull and this build only.

use super::{Lifecycle, Phase, StartCause};
use crate::backend::{Backend, BackendError, BackendKind};
use crate::pull::{names_its_registry, Credentials, ImageRef, PullPolicy, RegistryCredential};
use crate::state::AgentSpec;

impl Lifecycle<'_> {
    /// Makes sure the engine has `spec`'s base, pulling it as the policy
    /// says; returns the credentials the build may need for it.
    pub(super) async fn base_image(
        &self,
        backend: &dyn Backend,
        spec: &AgentSpec,
    ) -> Result<Credentials, StartCause> {
        let reference = spec.image.as_str();
        if reference == "scratch" {
            return Ok(Credentials::default());
        }
        let policy = match is_image_id(reference) {
            // An id names what the engine has; no registry can serve it.
            true => PullPolicy::Never,
            false => spec.pull.unwrap_or(self.settings.pull),
        };
        let pull = match policy {
            PullPolicy::Always => true,
            PullPolicy::Missing | PullPolicy::Never => match backend.inspect_image(reference).await
            {
                Ok(_) => false,
                Err(e) if e.is_not_found() && policy == PullPolicy::Missing => true,
                Err(e) if e.is_not_found() => {
                    return Err(StartCause::Base(BackendError::NotFound {
                        what: format!(
                            "base image {reference} (the pull policy is `never`: anvyl does \
                             not pull it)"
                        ),
                    }))
                }
                Err(e) => return Err(StartCause::Base(e)),
            },
        };
        let registry = ImageRef::parse(reference).registry;
        let credential = match self.credential(backend, reference, &registry).await {
            Ok(credential) => credential,
            Err(e) if pull => return Err(e),
            // Only for a build that might pull again, should the base go
            // away meanwhile: credentials that cannot be read stop no start
            // that needs none, as the engine's own build would not stop.
            Err(e) => {
                tracing::debug!("no registry credentials for the build: {e}");
                None
            }
        };
        if pull {
            self.phase(Phase::Pulling(None));
            let progress = |p| self.phase(Phase::Pulling(Some(p)));
            tracing::debug!(
                "pulling base image {reference} (pull policy {})",
                policy.as_str()
            );
            backend
                .pull_image(reference, credential.as_ref(), &progress)
                .await
                .map_err(StartCause::Base)?;
        }
        Ok(match credential {
            Some(credential) => Credentials::default().with(&registry, credential),
            None => Credentials::default(),
        })
    }

    /// The user's credentials for the base's `registry`, when it names one
    /// the engine will ask: a Podman short name may resolve to any of its
    /// search registries, which must not receive Docker Hub's password.
    async fn credential(
        &self,
        backend: &dyn Backend,
        reference: &str,
        registry: &str,
    ) -> Result<Option<RegistryCredential>, StartCause> {
        // The in-memory engine of tests has no product: Docker's files.
        let kind = backend.kind().unwrap_or(BackendKind::Docker);
        if is_image_id(reference) || (kind == BackendKind::Podman && !names_its_registry(reference))
        {
            return Ok(None);
        }
        (self.credentials.lookup(kind, registry).await).map_err(StartCause::Credentials)
    }
}

/// `sha256:…`, or 64 hex digits: an image id, not a reference.
fn is_image_id(reference: &str) -> bool {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    reference.starts_with("sha256:")
        || (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}
