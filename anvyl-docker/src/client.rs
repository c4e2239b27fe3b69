//! Reaching a Docker engine: the endpoint when none is configured, the
//! client for a socket, TCP or TLS endpoint speaking the API version agreed
//! with the engine, and the plumbing every call shares (long-running
//! requests, error mapping).

use std::path::Path;
use std::time::Duration;

use anvyl_core::backend::Result;
use anvyl_core::BackendError;
use bollard::{ClientVersion, Docker};

use crate::errors::map;
use crate::version;
use anvyl_core::backend::root_cause;

use crate::DockerBackend;

/// The endpoint when configuration names none: `DOCKER_HOST`, else the
/// system socket.
pub fn default_endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// The TLS material of a `tcp://` endpoint, in the `DOCKER_CERT_PATH`
/// layout's roles.
#[derive(Debug, Clone, Copy)]
pub struct Tls<'a> {
    /// The CA that signed the engine's certificate.
    pub ca: &'a Path,
    /// anvyl's client certificate.
    pub cert: &'a Path,
    /// Its key.
    pub key: &'a Path,
}

impl DockerBackend {
    /// A client of `endpoint` (`unix://…`, a socket path, `tcp://…`),
    /// speaking the API version chosen with the engine (see
    /// [`crate::version`]): a versioned `/_ping`, and `/version` only when the
    /// engine refuses it — an engine that does not answer is `Unreachable`
    /// here.
    pub async fn connect(endpoint: &str, request_timeout: Duration) -> Result<Self> {
        let endpoint = if endpoint.starts_with('/') {
            format!("unix://{endpoint}")
        } else {
            endpoint.to_string()
        };
        let timeout = request_timeout.as_secs().max(1);
        if !(endpoint.starts_with("unix://")
            || endpoint.starts_with("tcp://")
            || endpoint.starts_with("http://"))
        {
            return Err(BackendError::Unreachable {
                engine: Some(anvyl_core::BackendKind::Docker),
                endpoint,
                message: "unsupported scheme (use unix:// or tcp://)".into(),
            });
        }
        let make = |api: &ClientVersion| {
            if endpoint.starts_with("unix://") {
                Docker::connect_with_unix(&endpoint, timeout, api)
            } else {
                Docker::connect_with_http(&endpoint, timeout, api)
            }
            .map_err(|e| map("connect", "engine", &endpoint, e))
        };
        Self::agreed(&make, endpoint.clone()).await
    }

    /// A client from `make` once the API version is agreed with its engine,
    /// pinned into every request's path. The preferred version is tried
    /// first with a versioned `/_ping` (0.4 ms on Docker 20.10); only an
    /// engine that refuses it (400: too old or too new for it) is asked for
    /// its range with `/version` (6.8 ms: it asks containerd and runc too).
    async fn agreed(
        make: &(dyn Fn(&ClientVersion) -> Result<Docker> + Send + Sync),
        endpoint: String,
    ) -> Result<Self> {
        let preferred = make(&version::PREFERRED)?
            .with_request_modifier(|request| version::pin(request, Some(&version::PREFERRED)));
        match preferred.ping().await {
            Ok(_) => {
                return Ok(Self {
                    client: preferred,
                    endpoint,
                })
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 400, ..
            }) => {}
            Err(e) => return Err(map("ping", "engine", &endpoint, e)),
        }
        let unversioned =
            make(&version::PREFERRED)?.with_request_modifier(|request| version::pin(request, None));
        let answer = unversioned
            .version()
            .await
            .map_err(|e| map("version", "engine", &endpoint, e))?;
        let max = answer.api_version.as_deref().and_then(version::parse);
        let min = answer.min_api_version.as_deref().and_then(version::parse);
        let Some(max) = max else {
            return Err(BackendError::Engine {
                operation: "version",
                status: Some(200),
                message: format!("the engine at {endpoint} reports no API version"),
            });
        };
        let chosen =
            version::choose(&max, min.as_ref()).map_err(|message| BackendError::Engine {
                operation: "version",
                status: Some(200),
                message,
            })?;
        tracing::debug!(
            "Docker API {}.{} with {endpoint}",
            chosen.major_version,
            chosen.minor_version
        );
        let client = make(&chosen)?
            .with_request_modifier(move |request| version::pin(request, Some(&chosen)));
        Ok(Self { client, endpoint })
    }

    /// A client that speaks `pinned` without asking the engine: only for
    /// proving that the version in the path reaches the engine.
    #[cfg(feature = "itest")]
    pub fn connect_pinned(endpoint: &str, pinned: ClientVersion) -> Result<Self> {
        let client = Docker::connect_with_unix(endpoint, 30, &pinned)
            .map_err(|e| map("connect", "engine", endpoint, e))?
            .with_request_modifier(move |request| version::pin(request, Some(&pinned)));
        Ok(Self {
            client,
            endpoint: endpoint.to_string(),
        })
    }

    /// A client of a `tcp://` endpoint over TLS: the engine's certificate
    /// is verified against `tls.ca`, and `tls.cert`/`tls.key` prove who
    /// anvyl is (dockerd's `--tlsverify`).
    pub async fn connect_tls(
        endpoint: &str,
        tls: Tls<'_>,
        request_timeout: Duration,
    ) -> Result<Self> {
        let timeout = request_timeout.as_secs().max(1);
        let make = |api: &ClientVersion| {
            Docker::connect_with_ssl(endpoint, tls.key, tls.cert, tls.ca, timeout, api).map_err(
                |e| BackendError::Unreachable {
                    engine: Some(anvyl_core::BackendKind::Docker),
                    endpoint: endpoint.to_string(),
                    message: root_cause(&e),
                },
            )
        };
        Self::agreed(&make, endpoint.to_string()).await
    }

    /// The client without the request timeout, for builds and pulls (a
    /// setup step may take many minutes) and followed logs (they end when
    /// the container does). bollard's timeout covers a whole streamed
    /// response. Builds and pulls carry credentials: their headers are
    /// re-encoded as dockerd reads them ([`crate::pull::url_safe_credentials`]).
    pub(crate) fn long_running(&self) -> Docker {
        self.client
            .clone()
            .with_timeout(Duration::from_secs(7 * 24 * 3600))
            .with_request_modifier(crate::pull::url_safe_credentials)
    }

    pub(crate) fn err(
        &self,
        operation: &'static str,
        what: &str,
    ) -> impl FnOnce(bollard::errors::Error) -> BackendError + '_ {
        let what = what.to_string();
        move |e| map(operation, &what, &self.endpoint, e)
    }
}
