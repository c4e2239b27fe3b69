//! Pulling a base image: `POST /images/create` with the user's credentials
//! for its registry (`X-Registry-Auth`), each layer's progress summed into
//! one [`PullProgress`], and a refusal said as what the user can do.

use std::collections::BTreeMap;

use anvyl_core::backend::Result;
use anvyl_core::pull::{
    classify_pull_failure, name_and_version, PullProgress, PullProgressSink, RegistryCredential,
};
use anvyl_core::{BackendError, BackendKind};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

use crate::errors::map;
use crate::DockerBackend;

/// What the engine sends and expects for `credential`.
pub(crate) fn docker_credentials(
    registry: &str,
    credential: &RegistryCredential,
) -> DockerCredentials {
    let mut out = DockerCredentials {
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    };
    match credential {
        RegistryCredential::Password { username, password } => {
            out.username = Some(username.clone());
            out.password = Some(password.clone());
        }
        RegistryCredential::IdentityToken(token) => out.identitytoken = Some(token.clone()),
    }
    out
}

/// Refuses credentials the engine would not read. bollard encodes the
/// credential headers with the standard base64 alphabet; dockerd decodes
/// them as base64url and, on a character outside it (`+`, `/` — which only
/// `>`, `?`, `~` or a non-ASCII character in a user name or password can
/// produce), drops them without a word: the pull would fail as if the user
/// were not logged in. Said plainly instead.
pub(crate) fn sendable<T: serde::Serialize>(registry: &str, credentials: &T) -> Result<()> {
    use base64::Engine;
    let json = serde_json::to_string(credentials).unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    match encoded.contains(['+', '/']) {
        false => Ok(()),
        true => Err(BackendError::Local {
            operation: "send registry credentials",
            message: format!(
                "your credentials for {registry} hold a character (>, ?, ~ or a non-ASCII \
                 one) that anvyl's Docker client cannot send so that dockerd reads it; \
                 change the password, or pull the base with `docker pull` first"
            ),
        }),
    }
}

/// One layer as the pull's messages tell it.
#[derive(Default)]
struct Layer {
    current: u64,
    total: u64,
    done: bool,
}

impl DockerBackend {
    /// See [`anvyl_core::Backend::pull_image`].
    pub(crate) async fn pull(
        &self,
        reference: &str,
        credential: Option<&RegistryCredential>,
        progress: PullProgressSink<'_>,
    ) -> Result<()> {
        let (name, version) = name_and_version(reference);
        let options = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(version)
            .build();
        let registry = anvyl_core::pull::ImageRef::parse(reference).registry;
        let credentials = credential.map(|c| docker_credentials(&registry, c));
        if let Some(credentials) = &credentials {
            sendable(&registry, credentials)?;
        }
        let failed = |status: Option<u16>, message: String| BackendError::Pull {
            engine: BackendKind::Docker,
            reference: reference.to_string(),
            problem: classify_pull_failure(status, &message),
            sent_credentials: credential.is_some(),
            message,
        };
        let long = self.long_running();
        let mut stream = long.create_image(Some(options), None, credentials);
        let mut layers: BTreeMap<String, Layer> = BTreeMap::new();
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(failed(None, error))
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code,
                    message,
                }) => return Err(failed(Some(status_code), message)),
                Err(e) => return Err(map("pull image", reference, &self.endpoint, e)),
            };
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(failed(None, error));
            }
            let (Some(id), Some(status)) = (info.id, info.status) else {
                continue;
            };
            let layer = match status.as_str() {
                "Pulling fs layer" | "Waiting" | "Downloading" | "Verifying Checksum"
                | "Download complete" | "Extracting" | "Pull complete" | "Already exists" => {
                    layers.entry(id).or_default()
                }
                // "Pulling from team/base" and the like: not a layer.
                _ => continue,
            };
            if let Some(detail) = info.progress_detail {
                if status == "Downloading" {
                    layer.current = detail.current.unwrap_or(0).max(0) as u64;
                    layer.total = detail.total.unwrap_or(0).max(0) as u64;
                }
            }
            if matches!(
                status.as_str(),
                "Download complete" | "Pull complete" | "Already exists"
            ) {
                layer.done = true;
                layer.current = layer.total;
            }
            progress(PullProgress {
                layers_done: layers.values().filter(|l| l.done).count(),
                layers: layers.len(),
                bytes_done: layers.values().map(|l| l.current).sum(),
                bytes_total: layers.values().map(|l| l.total).sum(),
            });
        }
        Ok(())
    }
}
