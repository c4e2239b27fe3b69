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

/// Docker Hub as dockerd keys it in a build's credentials.
const HUB_INDEX: &str = "https://index.docker.io/v1/";

/// The key (and server address) dockerd looks `registry` up by.
pub(crate) fn server_address(registry: &str) -> String {
    match registry {
        anvyl_core::pull::DOCKER_HUB => HUB_INDEX.to_string(),
        other => other.to_string(),
    }
}

/// Re-encodes the credential headers bollard sends in the standard base64
/// alphabet as base64url, which dockerd decodes (the two differ in `+` and
/// `/` only): dockerd drops a header it cannot decode without a word, and
/// a password with `>`, `?`, `~` or a non-ASCII character would then fail
/// as if the user were not logged in.
pub(crate) fn url_safe_credentials(
    mut request: bollard::BollardRequest,
) -> bollard::BollardRequest {
    for name in ["X-Registry-Auth", "X-Registry-Config"] {
        let Some(value) = request.headers().get(name) else {
            continue;
        };
        let safe: String = (value.to_str().unwrap_or_default().chars())
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        if let Ok(value) = http::HeaderValue::from_str(&safe) {
            request.headers_mut().insert(name, value);
        }
    }
    request
}

/// What the engine sends and expects for `credential`.
pub(crate) fn docker_credentials(
    registry: &str,
    credential: &RegistryCredential,
) -> DockerCredentials {
    let mut out = DockerCredentials {
        serveraddress: Some(server_address(registry)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_go_as_base64url_and_others_are_left() {
        let request = http::Request::builder()
            .header("X-Registry-Auth", "eyJ+/w==")
            .header("X-Registry-Config", "a+b/c")
            .header("Content-Type", "a+b/c")
            .body(bollard::body_full(bytes::Bytes::new()))
            .unwrap();
        let request = url_safe_credentials(request);
        let header = |name| request.headers()[name].to_str().unwrap().to_string();
        assert_eq!(header("X-Registry-Auth"), "eyJ-_w==");
        assert_eq!(header("X-Registry-Config"), "a-b_c");
        assert_eq!(header("Content-Type"), "a+b/c");
    }
}
