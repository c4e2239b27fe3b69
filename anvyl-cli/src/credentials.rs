//! The user's registry credentials, found where the engine's own CLI finds
//! them, at each start: Docker's `config.json` (`$DOCKER_CONFIG`, else
//! `~/.docker`), Podman's `auth.json` files in the order
//! containers-auth.json(5) gives, then Docker's. Each file is read by the
//! `docker_credential` crate, which also runs the `credsStore` and
//! `credHelpers` programs (`docker-credential-<helper> get`). Nothing read
//! here is stored, logged or put in an error.

use std::path::PathBuf;

use anvyl_core::pull::{CredentialError, CredentialSource, RegistryCredential, DOCKER_HUB};
use anvyl_core::BackendKind;
use docker_credential::{CredentialRetrievalError as Failure, DockerCredential};

/// What `docker login` and `podman login` stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineLogins;

impl CredentialSource for EngineLogins {
    fn lookup(
        &self,
        kind: BackendKind,
        registry: &str,
    ) -> Result<Option<RegistryCredential>, CredentialError> {
        // The Docker CLI keys Docker Hub by its old index address.
        let server = match registry {
            DOCKER_HUB => "https://index.docker.io/v1/",
            other => other,
        };
        for file in files(kind) {
            let text = match std::fs::read(&file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(error(
                        registry,
                        format!("cannot read {}: {e}", file.display()),
                    ))
                }
            };
            match docker_credential::get_credential_from_reader(text.as_slice(), server) {
                Ok(DockerCredential::UsernamePassword(username, password)) => {
                    return Ok(Some(RegistryCredential::Password { username, password }))
                }
                Ok(DockerCredential::IdentityToken(token)) => {
                    return Ok(Some(RegistryCredential::IdentityToken(token)))
                }
                Err(Failure::NoCredentialConfigured) => continue,
                // A helper's "not found" is its answer for a registry the
                // user has not logged in to: the next file may have it.
                Err(Failure::HelperFailure { stdout, stderr, .. })
                    if (stdout.clone() + &stderr).contains("credentials not found") =>
                {
                    continue
                }
                Err(e) => return Err(error(registry, explain(&file, e))),
            }
        }
        Ok(None)
    }
}

fn error(registry: &str, cause: String) -> CredentialError {
    CredentialError {
        registry: registry.to_string(),
        cause,
    }
}

/// One line for what went wrong with `file`, without what it holds.
fn explain(file: &std::path::Path, e: Failure) -> String {
    let file = file.display();
    match e {
        Failure::NoCredentialConfigured => format!("{file} holds none for it"),
        Failure::ConfigReadError | Failure::ConfigNotFound => {
            format!("{file} is not a credentials file (not the JSON `docker login` writes)")
        }
        Failure::CredentialDecodingError => {
            format!("{file}: the registry's `auth` is not base64 of user:password")
        }
        Failure::CredentialMismatchError => {
            format!("{file}: the registry's `auth` and its username/password disagree")
        }
        Failure::HelperCommunicationError => format!(
            "{file} names a credential helper (credsStore or credHelpers) whose \
             docker-credential-… program cannot be run"
        ),
        Failure::MalformedHelperResponse => {
            format!("the credential helper {file} names answered something that is not its JSON")
        }
        Failure::HelperFailure {
            helper,
            stderr,
            stdout,
        } => {
            let said = (stderr.lines().chain(stdout.lines()))
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no message");
            format!("{helper} (named in {file}) failed: {said}")
        }
    }
}

/// Where `kind`'s CLI looks, first to last.
fn files(kind: BackendKind) -> Vec<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = var("HOME");
    let docker = var("DOCKER_CONFIG")
        .or_else(|| home.as_ref().map(|h| h.join(".docker")))
        .map(|dir| dir.join("config.json"));
    match kind {
        BackendKind::Docker => docker.into_iter().collect(),
        BackendKind::Podman => {
            // containers-auth.json(5): REGISTRY_AUTH_FILE in place of the
            // runtime file, then the user's, then Docker's.
            let primary = var("REGISTRY_AUTH_FILE").or_else(|| {
                Some(match var("XDG_RUNTIME_DIR") {
                    Some(dir) => dir.join("containers/auth.json"),
                    // The owner of /proc/self is this process's user.
                    None => {
                        use std::os::unix::fs::MetadataExt;
                        let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
                        PathBuf::from(format!("/run/containers/{uid}/auth.json"))
                    }
                })
            });
            let user = var("XDG_CONFIG_HOME")
                .or_else(|| home.as_ref().map(|h| h.join(".config")))
                .map(|dir| dir.join("containers/auth.json"));
            [primary, user, docker].into_iter().flatten().collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup_in(config: &str, registry: &str) -> Result<Option<RegistryCredential>, String> {
        let server = registry;
        match docker_credential::get_credential_from_reader(config.as_bytes(), server) {
            Ok(DockerCredential::UsernamePassword(u, p)) => {
                Ok(Some(RegistryCredential::Password {
                    username: u,
                    password: p,
                }))
            }
            Ok(DockerCredential::IdentityToken(t)) => {
                Ok(Some(RegistryCredential::IdentityToken(t)))
            }
            Err(Failure::NoCredentialConfigured) => Ok(None),
            Err(e) => Err(explain(std::path::Path::new("config.json"), e)),
        }
    }

    #[test]
    fn what_docker_login_writes_is_read() {
        // `docker login 127.0.0.1:5443 -u anvyl -p s3cret` writes this.
        let config = r#"{"auths":{"127.0.0.1:5443":{"auth":"YW52eWw6czNjcmV0"}}}"#;
        assert_eq!(
            lookup_in(config, "127.0.0.1:5443"),
            Ok(Some(RegistryCredential::Password {
                username: "anvyl".into(),
                password: "s3cret".into()
            }))
        );
        assert_eq!(lookup_in(config, "ghcr.io"), Ok(None));
    }

    #[test]
    fn a_broken_file_is_said_without_its_content() {
        let said = lookup_in(r#"{"auths": "#, "r").unwrap_err();
        assert!(
            said.contains("config.json is not a credentials file"),
            "{said}"
        );
        let said = lookup_in(r#"{"auths":{"r":{"auth":"!!!"}}}"#, "r").unwrap_err();
        assert!(said.contains("not base64"), "{said}");
    }
}
