//! The user's registry credentials, found where the engine's own CLI finds
//! them, at each start: Docker's `config.json` (`$DOCKER_CONFIG`, else
//! `~/.docker`), Podman's `auth.json` files in the order
//! containers-auth.json(5) gives, then Docker's. In each file a
//! `credHelpers` program for the registry is asked first, then the file's
//! own `auths` (read by the `docker_credential` crate), then the
//! `credsStore` program — the Docker CLI's order. The programs
//! (`docker-credential-<name> get`) are run here, not by the crate: with a
//! time limit, killed when the start is interrupted, and their output never
//! repeated in an error. Nothing read here is stored, logged or shown.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anvyl_core::pull::{CredentialError, CredentialSource, RegistryCredential, DOCKER_HUB};
use anvyl_core::BackendKind;
use docker_credential::{CredentialRetrievalError as Failure, DockerCredential};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// How long a credential helper may take: a keyring that waits for a
/// password prompt nobody sees must not hold a start forever.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest credentials file read: `docker login` writes a few KiB.
const MOST_BYTES: u64 = 1 << 20;

/// The names Docker Hub goes by in credentials files and helpers.
const HUB_KEYS: [&str; 3] = [
    "https://index.docker.io/v1/",
    "index.docker.io",
    "docker.io",
];

/// What `docker login` and `podman login` stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineLogins;

#[async_trait::async_trait]
impl CredentialSource for EngineLogins {
    async fn lookup(
        &self,
        kind: BackendKind,
        registry: &str,
    ) -> Result<Option<RegistryCredential>, CredentialError> {
        let error = |cause: String| CredentialError {
            registry: registry.to_string(),
            cause,
        };
        for file in files(kind) {
            let Some(text) = read_small(&file).map_err(error)? else {
                continue;
            };
            let shown = file.display();
            let config: Value = serde_json::from_slice(&text).map_err(|_| {
                error(format!(
                    "{shown} is not a credentials file (not the JSON `docker login` writes)"
                ))
            })?;
            if let Some(helper) = helper_for(&config, registry) {
                match ask_helper(&helper, registry, &file).await.map_err(error)? {
                    Some(credential) => return Ok(Some(credential)),
                    None => continue,
                }
            }
            // The file's own entries, read without its store: the crate
            // would run the store's program itself, without a time limit.
            let mut entries = config.clone();
            if let Some(map) = entries.as_object_mut() {
                map.remove("credsStore");
                map.remove("credHelpers");
            }
            // The crate matches file keys by host: Docker Hub's by its index.
            let key = if registry == DOCKER_HUB {
                HUB_KEYS[1]
            } else {
                registry
            };
            match docker_credential::get_credential_from_reader(entries.to_string().as_bytes(), key)
            {
                Ok(DockerCredential::UsernamePassword(username, password)) => {
                    return Ok(Some(RegistryCredential::Password { username, password }))
                }
                Ok(DockerCredential::IdentityToken(token)) => {
                    return Ok(Some(RegistryCredential::IdentityToken(token)))
                }
                Err(Failure::NoCredentialConfigured) => {}
                Err(e) => return Err(error(explain(&file, &e))),
            }
            if let Some(store) = config["credsStore"].as_str().filter(|s| !s.is_empty()) {
                if let Some(credential) = ask_helper(store, registry, &file).await.map_err(error)? {
                    return Ok(Some(credential));
                }
            }
        }
        Ok(None)
    }
}

/// The file's contents; `None` when there is no such file. A directory, a
/// pipe or a file too large for a credentials file is an error.
fn read_small(file: &Path) -> Result<Option<Vec<u8>>, String> {
    let shown = file.display();
    let meta = match std::fs::metadata(file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    if meta.len() > MOST_BYTES {
        return Err(format!(
            "{shown} is larger than a credentials file can be (1 MiB)"
        ));
    }
    std::fs::read(file)
        .map(Some)
        .map_err(|e| format!("cannot read {shown}: {e}"))
}

/// The `credHelpers` program named for `registry`, if any.
fn helper_for(config: &Value, registry: &str) -> Option<String> {
    let helpers = config["credHelpers"].as_object()?;
    let keys: &[&str] = if registry == DOCKER_HUB {
        &HUB_KEYS
    } else {
        &[registry]
    };
    (keys.iter())
        .find_map(|k| helpers.get(*k)?.as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// Runs `docker-credential-<helper> get` for `registry`, as the Docker CLI
/// does: the server on stdin, `{"Username", "Secret"}` on stdout, "not
/// found" as an exit with that word. `None` when it has none.
async fn ask_helper(
    helper: &str,
    registry: &str,
    file: &Path,
) -> Result<Option<RegistryCredential>, String> {
    let program = format!("docker-credential-{helper}");
    let shown = file.display();
    // A name, never a path: `credsStore: "../x"` must not run ../x.
    if !helper
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || helper.starts_with('.')
    {
        return Err(format!(
            "{shown} names a credential helper {helper:?} that is not a plain name"
        ));
    }
    let server = if registry == DOCKER_HUB {
        HUB_KEYS[0]
    } else {
        registry
    };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{program} (named in {shown}) cannot be run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit below.
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let output = match tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.map_err(|e| format!("{program} (named in {shown}): {e}"))?,
        Err(_) => {
            return Err(format!(
                "{program} (named in {shown}) did not answer within {}s",
                HELPER_TIMEOUT.as_secs()
            ))
        }
    };
    if !output.status.success() {
        if String::from_utf8_lossy(&output.stdout).contains("credentials not found") {
            return Ok(None);
        }
        // Its output is not repeated: a helper may print what it holds.
        return Err(format!(
            "{program} (named in {shown}) failed ({}); run `{program} get` to see why",
            output.status
        ));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(&output.stdout).map_err(|_| {
        format!("{program} (named in {shown}) answered something that is not its JSON")
    })?;
    Ok(Some(match answer.username.as_str() {
        "<token>" => RegistryCredential::IdentityToken(answer.secret),
        _ => RegistryCredential::Password {
            username: answer.username,
            password: answer.secret,
        },
    }))
}

/// One line for what is wrong with `file`'s entries, without what it holds.
fn explain(file: &Path, e: &Failure) -> String {
    let file = file.display();
    match e {
        Failure::CredentialDecodingError => {
            format!("{file}: the registry's `auth` is not base64 of user:password")
        }
        Failure::CredentialMismatchError => {
            format!("{file}: the registry's `auth` and its username/password disagree")
        }
        _ => format!("{file} is not a credentials file (not the JSON `docker login` writes)"),
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

    /// Looks `registry` up in a Docker config holding `config`.
    async fn lookup_in(config: &str, registry: &str) -> Result<Option<RegistryCredential>, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        // SAFETY of the test's environment: every test that reads it sets
        // the same variable to its own directory under one lock.
        let _env = ENV.lock().await;
        std::env::set_var("DOCKER_CONFIG", dir.path());
        let found = EngineLogins.lookup(BackendKind::Docker, registry).await;
        std::env::remove_var("DOCKER_CONFIG");
        found.map_err(|e| e.to_string())
    }

    static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn password(user: &str, password: &str) -> Option<RegistryCredential> {
        Some(RegistryCredential::Password {
            username: user.into(),
            password: password.into(),
        })
    }

    #[tokio::test]
    async fn what_docker_login_and_podman_login_write_is_read() {
        // `docker login 127.0.0.1:5443 -u anvyl -p s3cret` writes this.
        let config = r#"{"auths":{"127.0.0.1:5443":{"auth":"YW52eWw6czNjcmV0"}}}"#;
        assert_eq!(
            lookup_in(config, "127.0.0.1:5443").await,
            Ok(password("anvyl", "s3cret"))
        );
        assert_eq!(lookup_in(config, "ghcr.io").await, Ok(None));
        // Docker Hub as the Docker CLI keys it, and as `podman login docker.io` does.
        for key in ["https://index.docker.io/v1/", "docker.io"] {
            let config = format!(r#"{{"auths":{{"{key}":{{"auth":"YW52eWw6czNjcmV0"}}}}}}"#);
            assert_eq!(
                lookup_in(&config, DOCKER_HUB).await,
                Ok(password("anvyl", "s3cret")),
                "{key}"
            );
        }
    }

    #[tokio::test]
    async fn a_broken_file_or_helper_is_said_without_what_it_holds() {
        let said = lookup_in(r#"{"auths": "#, "r").await.unwrap_err();
        assert!(
            said.contains("config.json is not a credentials file"),
            "{said}"
        );
        let said = lookup_in(r#"{"auths":{"r":{"auth":"!!!"}}}"#, "r")
            .await
            .unwrap_err();
        assert!(said.contains("not base64"), "{said}");
        let said = lookup_in(r#"{"credsStore":"../../bin/sh"}"#, "r")
            .await
            .unwrap_err();
        assert!(said.contains("not a plain name"), "{said}");
        let said = lookup_in(r#"{"credHelpers":{"r":"anvyl-no-such-helper"}}"#, "r")
            .await
            .unwrap_err();
        assert!(
            said.contains("docker-credential-anvyl-no-such-helper"),
            "{said}"
        );
    }

    #[test]
    fn only_a_small_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_small(&dir.path().join("none")), Ok(None));
        assert!(read_small(dir.path())
            .unwrap_err()
            .contains("is not a file"));
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MOST_BYTES + 1)
            .unwrap();
        assert!(read_small(&big).unwrap_err().contains("larger"));
    }
}
