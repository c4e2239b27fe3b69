//! Reaching an engine that is not on this machine's own socket: TLS over
//! TCP, the user's OpenSSH (a forwarded socket), and the endpoints users
//! already configured for the Docker CLI (contexts) and Podman (system
//! connections). A route is decided before anything connects, so `host
//! add` refuses what `agent start` could never use.

pub mod ssh;
pub mod stores;

use std::path::PathBuf;

use anvyl_core::BackendKind;
use ssh::SshTarget;
use stores::TlsFiles;

/// The socket `ssh://host` reaches when the URI names none: the engine's
/// system socket, as `docker -H ssh://` and Podman's rootful service use.
pub fn default_remote_socket(backend: BackendKind) -> &'static str {
    match backend {
        BackendKind::Docker => "/var/run/docker.sock",
        BackendKind::Podman => "/run/podman/podman.sock",
    }
}

/// How to reach one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A local socket: `unix://…`.
    Socket(String),
    /// `tcp://` over TLS with client certificates (Docker).
    Tls {
        /// `tcp://host:port`.
        endpoint: String,
        /// The CA, certificate and key.
        files: TlsFiles,
    },
    /// Plain `tcp://` that the user accepted as insecure.
    Plain(String),
    /// A socket on another machine, through OpenSSH.
    Ssh {
        /// Where.
        target: SshTarget,
        /// A key file named by a Podman connection.
        identity: Option<PathBuf>,
    },
}

/// What decides a route besides the endpoint.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// TLS material for `tcp://`.
    pub tls: Option<TlsFiles>,
    /// Plain `tcp://` is accepted.
    pub insecure: bool,
    /// A key file for `ssh://`.
    pub identity: Option<PathBuf>,
}

impl Route {
    /// Decides how `endpoint` of a `backend` engine is reached. Refuses a
    /// plain `tcp://` endpoint without `insecure`: an unauthenticated Docker
    /// port is root on that machine for whoever reaches it.
    pub fn decide(backend: BackendKind, endpoint: &str, access: Access) -> Result<Self, String> {
        if let Some(path) = endpoint
            .strip_prefix("unix://")
            .or_else(|| endpoint.starts_with('/').then_some(endpoint))
        {
            if access.tls.is_some() {
                return Err(format!("TLS applies to tcp:// endpoints, not {endpoint}"));
            }
            // A relative path would reach whichever engine the directory a
            // command runs in happens to hold.
            if !path.starts_with('/') {
                return Err(format!(
                    "the socket path of {endpoint:?} must be absolute (unix:///path/to/engine.sock)"
                ));
            }
            return Ok(Self::Socket(format!("unix://{path}")));
        }
        if endpoint.starts_with("ssh://") {
            if access.tls.is_some() {
                return Err(format!("TLS applies to tcp:// endpoints, not {endpoint}"));
            }
            let target = SshTarget::parse(endpoint, default_remote_socket(backend))?;
            return Ok(Self::Ssh {
                target,
                identity: access.identity,
            });
        }
        let Some(address) = ["tcp://", "http://", "https://"]
            .iter()
            .find_map(|scheme| endpoint.strip_prefix(scheme))
        else {
            return Err(format!(
                "unsupported endpoint {endpoint:?}: use unix://PATH, tcp://HOST:PORT with TLS, or ssh://[USER@]HOST[:PORT][/SOCKET]"
            ));
        };
        // https:// promises TLS: never downgraded to plain, even --insecure.
        if endpoint.starts_with("https://") && access.tls.is_none() {
            return Err(format!(
                "{endpoint} needs TLS files (--tls-dir DIR with ca.pem, cert.pem, key.pem)"
            ));
        }
        let endpoint = format!("tcp://{address}");
        match (backend, access.tls, access.insecure) {
            (BackendKind::Docker, Some(files), _) => Ok(Self::Tls { endpoint, files }),
            (BackendKind::Podman, Some(_), _) => Err(
                "Podman's API service has no TLS: reach it with ssh://USER@HOST/run/podman/podman.sock".into(),
            ),
            (_, None, true) => Ok(Self::Plain(endpoint)),
            (_, None, false) => Err(format!(
                "refusing plain {endpoint} without TLS: whoever reaches that port controls the engine (root on its machine). Give the TLS files (--tls-dir DIR with ca.pem, cert.pem, key.pem), use ssh://, or accept the risk with --insecure"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> TlsFiles {
        TlsFiles {
            ca: "/t/ca.pem".into(),
            cert: "/t/cert.pem".into(),
            key: "/t/key.pem".into(),
        }
    }

    #[test]
    fn plain_tcp_needs_insecure_and_tls_needs_tcp() {
        let docker = BackendKind::Docker;
        let err = Route::decide(docker, "tcp://10.0.0.1:2375", Access::default()).unwrap_err();
        assert!(err.contains("--insecure") && err.contains("root"), "{err}");
        let insecure = Access {
            insecure: true,
            ..Access::default()
        };
        assert_eq!(
            Route::decide(docker, "tcp://10.0.0.1:2375", insecure).unwrap(),
            Route::Plain("tcp://10.0.0.1:2375".into())
        );
        let with_tls = Access {
            tls: Some(tls()),
            ..Access::default()
        };
        assert!(matches!(
            Route::decide(docker, "tcp://10.0.0.1:2376", with_tls.clone()).unwrap(),
            Route::Tls { .. }
        ));
        assert!(Route::decide(docker, "unix:///x.sock", with_tls.clone()).is_err());
        let err = Route::decide(BackendKind::Podman, "tcp://h:8080", with_tls).unwrap_err();
        assert!(err.contains("ssh://"), "{err}");
        assert!(Route::decide(docker, "npipe:////./pipe/docker", Access::default()).is_err());
        let insecure = Access {
            insecure: true,
            ..Access::default()
        };
        assert!(Route::decide(docker, "https://h:2376", insecure).is_err());
    }

    #[test]
    fn a_socket_path_must_be_absolute() {
        let docker = BackendKind::Docker;
        for bad in ["unix://", "unix://e/docker.sock", "unix://./d.sock"] {
            let err = Route::decide(docker, bad, Access::default()).unwrap_err();
            assert!(err.contains("absolute"), "{bad}: {err}");
        }
        let tls = Access {
            tls: Some(tls()),
            ..Access::default()
        };
        assert!(Route::decide(docker, "ssh://me@box", tls).is_err());
    }

    #[test]
    fn sockets_and_ssh_are_routed_as_such() {
        assert_eq!(
            Route::decide(BackendKind::Docker, "/run/d.sock", Access::default()).unwrap(),
            Route::Socket("unix:///run/d.sock".into())
        );
        match Route::decide(BackendKind::Podman, "ssh://me@box", Access::default()).unwrap() {
            Route::Ssh { target, .. } => assert_eq!(target.socket, "/run/podman/podman.sock"),
            other => panic!("{other:?}"),
        }
    }
}
