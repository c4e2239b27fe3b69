//! Reading the Docker CLI's context store and Podman's system connections.
//!
//! Users have usually told their engine's own CLI where their remote engines
//! are already: `docker context create` writes a store below `~/.docker`, and
//! `podman system connection add` writes `podman-connections.json` (Podman 5)
//! or `containers.conf` (Podman 4). This module reads those files directly,
//! rather than running `docker`/`podman`, so that naming a context works
//! without either CLI installed and without depending on their output format.
//! Only what reaching the engine needs is read; every other key is ignored.
//!
//! Errors are single-line strings naming the context or connection and the
//! file that was read, ready to be shown to the user as they are.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// TLS material for a Docker endpoint (the DOCKER_CERT_PATH layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate authority the engine's certificate must chain to.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// The client certificate's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem`, `key.pem` in `dir`; an error (one line, naming
    /// the missing file) if one is missing.
    pub fn in_dir(dir: &Path) -> Result<TlsFiles, String> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("missing TLS file {}", path.display()))
            }
        };
        Ok(TlsFiles {
            ca: file("ca.pem")?,
            cert: file("cert.pem")?,
            key: file("key.pem")?,
        })
    }
}

/// A Docker CLI context, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerContext {
    /// The context's name, as the user typed it.
    pub name: String,
    /// The engine's address, e.g. `tcp://host:2376` or `ssh://user@host`.
    pub host: String,
    /// Client TLS material, when the context stores some.
    pub tls: Option<TlsFiles>,
    /// Whether the engine's certificate is accepted unverified.
    pub skip_tls_verify: bool,
}

/// The Docker CLI's configuration directory: `$DOCKER_CONFIG`, else
/// `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    env_dir("DOCKER_CONFIG").or_else(|| Some(home_dir()?.join(".docker")))
}

/// Reads context `name` from the store below `config_dir`
/// (`contexts/meta/<sha256 hex of name>/meta.json`, TLS files in
/// `contexts/tls/<same hash>/docker/{ca,cert,key}.pem`).
pub fn docker_context(config_dir: &Path, name: &str) -> Result<DockerContext, String> {
    // The Docker CLI synthesises `default` from DOCKER_HOST and its own
    // defaults instead of storing it, so there is nothing to read — and what
    // it names is the engine anvyl already reaches locally.
    if name == "default" {
        return Err(format!(
            "Docker context '{name}' is the configured engine, not a stored context: use the `local` host"
        ));
    }
    // The store keys contexts by a digest so that any name is a safe
    // directory name.
    let digest = format!("{:x}", Sha256::digest(name.as_bytes()));
    let meta_dir = config_dir.join("contexts").join("meta");
    let meta_file = meta_dir.join(&digest).join("meta.json");
    let Some(text) =
        read_if_present(&meta_file).map_err(|e| format!("Docker context '{name}': {e}"))?
    else {
        return Err(format!(
            "Docker context '{name}' not found in {} (see `docker context ls`)",
            meta_dir.display()
        ));
    };
    let meta: ContextMeta = serde_json::from_str(&text).map_err(|e| {
        format!(
            "Docker context '{name}': cannot parse {}: {e}",
            meta_file.display()
        )
    })?;
    let endpoint = meta.endpoints.docker.unwrap_or_default();
    if endpoint.host.trim().is_empty() {
        return Err(format!(
            "Docker context '{name}' has no Docker host in {}",
            meta_file.display()
        ));
    }
    // A context without TLS material has no directory here at all; one that
    // has a directory but lacks a file is damaged, and guessing would send
    // requests without the client certificate the engine expects.
    let tls_dir = config_dir
        .join("contexts")
        .join("tls")
        .join(&digest)
        .join("docker");
    let tls = if tls_dir.is_dir() {
        Some(TlsFiles::in_dir(&tls_dir).map_err(|e| format!("Docker context '{name}': {e}"))?)
    } else {
        None
    };
    Ok(DockerContext {
        name: name.to_owned(),
        host: endpoint.host,
        tls,
        skip_tls_verify: endpoint.skip_tls_verify,
    })
}

/// A Podman system connection, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodmanConnection {
    /// The connection's name, as the user typed it.
    pub name: String,
    /// The engine's address, e.g. `ssh://user@host:22/run/podman/podman.sock`.
    pub uri: String,
    /// The SSH private key to authenticate with, if the connection names one.
    pub identity: Option<PathBuf>,
}

/// Podman's configuration directory: `$XDG_CONFIG_HOME/containers`, else
/// `~/.config/containers`.
pub fn podman_config_dir() -> Option<PathBuf> {
    // Podman uses the XDG layout on every platform (macOS included), so the
    // `directories` crate's platform-specific config directory would be wrong.
    env_dir("XDG_CONFIG_HOME")
        .or_else(|| Some(home_dir()?.join(".config")))
        .map(|dir| dir.join("containers"))
}

/// Reads connection `name`: first `podman-connections.json` in `config_dir`
/// (the Podman 5 layout), then `containers.conf` in `config_dir` (the
/// Podman 4 layout: `[engine.service_destinations.NAME]`).
pub fn podman_connection(config_dir: &Path, name: &str) -> Result<PodmanConnection, String> {
    // Podman 5 still honours connections left in containers.conf by Podman 4,
    // with the JSON file taking precedence; the lookup order mirrors that.
    let context = |e: String| format!("Podman connection '{name}': {e}");
    let json_file = config_dir.join("podman-connections.json");
    if let Some(text) = read_if_present(&json_file).map_err(context)? {
        let file: ConnectionsFile = serde_json::from_str(&text)
            .map_err(|e| context(format!("cannot parse {}: {e}", json_file.display())))?;
        if let Some(dest) = file.connection.connections.get(name) {
            return resolve_connection(name, &dest.uri, &dest.identity, &json_file);
        }
    }
    let conf_file = config_dir.join("containers.conf");
    if let Some(text) = read_if_present(&conf_file).map_err(context)? {
        let conf: ContainersConf = toml::from_str(&text).map_err(|e| {
            // toml's Display draws a multi-line excerpt, and even its bare
            // message may span lines: flatten it and point at the line.
            let message: Vec<&str> = e.message().lines().map(str::trim).collect();
            let line = e
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| format!(" (line {})", before.matches('\n').count() + 1))
                .unwrap_or_default();
            context(format!(
                "cannot parse {}: {}{line}",
                conf_file.display(),
                message.join("; ")
            ))
        })?;
        if let Some(dest) = conf.engine.service_destinations.get(name) {
            return resolve_connection(name, &dest.uri, &dest.identity, &conf_file);
        }
    }
    Err(format!(
        "Podman connection '{name}' not found in {} or {} (see `podman system connection ls`)",
        json_file.display(),
        conf_file.display()
    ))
}

/// A connection's entry, checked: a URI is required, and a blank identity is
/// no identity (an absent key reads as `""` too).
fn resolve_connection(
    name: &str,
    uri: &str,
    identity: &str,
    file: &Path,
) -> Result<PodmanConnection, String> {
    if uri.trim().is_empty() {
        return Err(format!(
            "Podman connection '{name}' has no URI in {}",
            file.display()
        ));
    }
    Ok(PodmanConnection {
        name: name.to_owned(),
        uri: uri.to_owned(),
        identity: (!identity.trim().is_empty()).then(|| PathBuf::from(identity)),
    })
}

/// The file's contents, or `None` if it does not exist; other I/O errors
/// (permissions, a directory in its place) are reported, not skipped, so a
/// connection is never silently taken from a later file.
fn read_if_present(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A directory named by an environment variable; unset and empty are the
/// same, as they are for the Docker CLI and Podman.
fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn home_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf())
}

/// `contexts/meta/<digest>/meta.json`, as far as reaching the engine needs.
#[derive(Deserialize)]
struct ContextMeta {
    #[serde(rename = "Endpoints", default)]
    endpoints: ContextEndpoints,
}

#[derive(Deserialize, Default)]
struct ContextEndpoints {
    docker: Option<DockerEndpoint>,
}

#[derive(Deserialize, Default)]
struct DockerEndpoint {
    #[serde(rename = "Host", default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// `podman-connections.json` (Podman 5).
#[derive(Deserialize)]
struct ConnectionsFile {
    #[serde(rename = "Connection", default)]
    connection: ConnectionsSection,
}

#[derive(Deserialize, Default)]
struct ConnectionsSection {
    #[serde(rename = "Connections", default)]
    connections: BTreeMap<String, JsonDestination>,
}

#[derive(Deserialize)]
struct JsonDestination {
    #[serde(rename = "URI", default)]
    uri: String,
    #[serde(rename = "Identity", default)]
    identity: String,
}

/// `containers.conf` (Podman 4), as far as connections go.
#[derive(Deserialize)]
struct ContainersConf {
    #[serde(default)]
    engine: EngineSection,
}

#[derive(Deserialize, Default)]
struct EngineSection {
    #[serde(default)]
    service_destinations: BTreeMap<String, ConfDestination>,
}

#[derive(Deserialize)]
struct ConfDestination {
    #[serde(default)]
    uri: String,
    #[serde(default)]
    identity: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    /// sha256("prod"), checked independently with `sha256sum`: pins the
    /// store layout rather than re-deriving it the way the code does.
    const PROD_DIGEST: &str = "6754af9632a2745e85c293e5aac0863370d9bd3330b9938c00cadfd215227d77";

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn meta_file(config: &Path, name: &str) -> PathBuf {
        let digest = format!("{:x}", Sha256::digest(name.as_bytes()));
        config.join("contexts/meta").join(digest).join("meta.json")
    }

    fn tls_dir(config: &Path, name: &str) -> PathBuf {
        let digest = format!("{:x}", Sha256::digest(name.as_bytes()));
        config.join("contexts/tls").join(digest).join("docker")
    }

    fn add_context(config: &Path, name: &str, host: &str, skip_tls_verify: bool) {
        let meta = serde_json::json!({
            "Name": name,
            "Metadata": {"Description": "test"},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_tls_verify}},
        });
        write(&meta_file(config, name), &meta.to_string());
    }

    #[test]
    fn context_with_tls_files_resolves_host_and_tls() {
        let config = TempDir::new().unwrap();
        add_context(config.path(), "prod", "tcp://prod.example:2376", false);
        let tls = config
            .path()
            .join("contexts/tls")
            .join(PROD_DIGEST)
            .join("docker");
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            write(&tls.join(file), "pem");
        }
        assert_eq!(
            docker_context(config.path(), "prod").unwrap(),
            DockerContext {
                name: "prod".into(),
                host: "tcp://prod.example:2376".into(),
                tls: Some(TlsFiles {
                    ca: tls.join("ca.pem"),
                    cert: tls.join("cert.pem"),
                    key: tls.join("key.pem"),
                }),
                skip_tls_verify: false,
            }
        );
    }

    #[test]
    fn context_without_tls_dir_has_no_tls() {
        let config = TempDir::new().unwrap();
        add_context(config.path(), "lab", "ssh://me@lab", true);
        assert_eq!(
            docker_context(config.path(), "lab").unwrap(),
            DockerContext {
                name: "lab".into(),
                host: "ssh://me@lab".into(),
                tls: None,
                skip_tls_verify: true,
            }
        );
    }

    #[test]
    fn context_with_incomplete_tls_dir_names_the_missing_file() {
        let config = TempDir::new().unwrap();
        add_context(config.path(), "prod", "tcp://prod.example:2376", false);
        let tls = tls_dir(config.path(), "prod");
        write(&tls.join("ca.pem"), "pem");
        write(&tls.join("key.pem"), "pem");
        assert_eq!(
            docker_context(config.path(), "prod").unwrap_err(),
            format!(
                "Docker context 'prod': missing TLS file {}",
                tls.join("cert.pem").display()
            )
        );
    }

    #[test]
    fn missing_context_names_the_store() {
        let config = TempDir::new().unwrap();
        add_context(config.path(), "lab", "ssh://me@lab", false);
        assert_eq!(
            docker_context(config.path(), "prod").unwrap_err(),
            format!(
                "Docker context 'prod' not found in {} (see `docker context ls`)",
                config.path().join("contexts").join("meta").display()
            )
        );
    }

    #[test]
    fn default_context_points_at_the_local_host() {
        let config = TempDir::new().unwrap();
        let err = docker_context(config.path(), "default").unwrap_err();
        assert_eq!(
            err,
            "Docker context 'default' is the configured engine, not a stored context: use the `local` host"
        );
    }

    #[test]
    fn malformed_meta_json_names_the_file() {
        let config = TempDir::new().unwrap();
        let file = meta_file(config.path(), "prod");
        write(&file, "{\"Name\": \"prod\", \"Endpoints\": ");
        let err = docker_context(config.path(), "prod").unwrap_err();
        let prefix = format!("Docker context 'prod': cannot parse {}: ", file.display());
        assert!(err.starts_with(&prefix), "{err}");
        assert!(err.contains("EOF"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn context_without_docker_endpoint_is_an_error() {
        let config = TempDir::new().unwrap();
        let file = meta_file(config.path(), "k8s");
        write(&file, r#"{"Name":"k8s","Metadata":{},"Endpoints":{}}"#);
        assert_eq!(
            docker_context(config.path(), "k8s").unwrap_err(),
            format!(
                "Docker context 'k8s' has no Docker host in {}",
                file.display()
            )
        );
    }

    #[test]
    fn tls_files_in_dir_names_the_first_missing_file() {
        let dir = TempDir::new().unwrap();
        assert_eq!(
            TlsFiles::in_dir(dir.path()).unwrap_err(),
            format!("missing TLS file {}", dir.path().join("ca.pem").display())
        );
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            write(&dir.path().join(file), "pem");
        }
        assert_eq!(
            TlsFiles::in_dir(dir.path()).unwrap(),
            TlsFiles {
                ca: dir.path().join("ca.pem"),
                cert: dir.path().join("cert.pem"),
                key: dir.path().join("key.pem"),
            }
        );
    }

    const CONNECTIONS_JSON: &str = r#"{
        "Connection": {
            "Default": "box",
            "Connections": {
                "box": {"URI": "ssh://me@box:22/run/user/1000/podman/podman.sock", "Identity": "/home/me/.ssh/id_ed25519", "IsMachine": false},
                "bare": {"URI": "ssh://root@bare/run/podman/podman.sock", "Identity": "  "}
            }
        },
        "Farm": {}
    }"#;

    const CONTAINERS_CONF: &str = r#"
[containers]
log_size_max = -1

[engine]
active_service = "old"

[engine.service_destinations.old]
uri = "ssh://me@old:2222/run/podman/podman.sock"
identity = "/home/me/.ssh/old"

[engine.service_destinations.box]
uri = "ssh://shadowed@box/run/podman/podman.sock"
"#;

    #[test]
    fn json_connection_with_identity() {
        let config = TempDir::new().unwrap();
        write(
            &config.path().join("podman-connections.json"),
            CONNECTIONS_JSON,
        );
        // The JSON entry wins over a same-named one in containers.conf.
        write(&config.path().join("containers.conf"), CONTAINERS_CONF);
        assert_eq!(
            podman_connection(config.path(), "box").unwrap(),
            PodmanConnection {
                name: "box".into(),
                uri: "ssh://me@box:22/run/user/1000/podman/podman.sock".into(),
                identity: Some(PathBuf::from("/home/me/.ssh/id_ed25519")),
            }
        );
    }

    #[test]
    fn blank_identity_is_none() {
        let config = TempDir::new().unwrap();
        write(
            &config.path().join("podman-connections.json"),
            CONNECTIONS_JSON,
        );
        assert_eq!(
            podman_connection(config.path(), "bare").unwrap(),
            PodmanConnection {
                name: "bare".into(),
                uri: "ssh://root@bare/run/podman/podman.sock".into(),
                identity: None,
            }
        );
    }

    #[test]
    fn connection_only_in_containers_conf() {
        let config = TempDir::new().unwrap();
        write(&config.path().join("containers.conf"), CONTAINERS_CONF);
        assert_eq!(
            podman_connection(config.path(), "old").unwrap(),
            PodmanConnection {
                name: "old".into(),
                uri: "ssh://me@old:2222/run/podman/podman.sock".into(),
                identity: Some(PathBuf::from("/home/me/.ssh/old")),
            }
        );
    }

    #[test]
    fn json_present_but_name_only_in_containers_conf() {
        let config = TempDir::new().unwrap();
        write(
            &config.path().join("podman-connections.json"),
            CONNECTIONS_JSON,
        );
        write(&config.path().join("containers.conf"), CONTAINERS_CONF);
        assert_eq!(
            podman_connection(config.path(), "old").unwrap(),
            PodmanConnection {
                name: "old".into(),
                uri: "ssh://me@old:2222/run/podman/podman.sock".into(),
                identity: Some(PathBuf::from("/home/me/.ssh/old")),
            }
        );
    }

    #[test]
    fn json_with_absent_keys_is_read() {
        let config = TempDir::new().unwrap();
        write(&config.path().join("podman-connections.json"), "{}");
        write(&config.path().join("containers.conf"), CONTAINERS_CONF);
        assert_eq!(
            podman_connection(config.path(), "old").unwrap().uri,
            "ssh://me@old:2222/run/podman/podman.sock"
        );
    }

    #[test]
    fn missing_connection_names_both_files() {
        let config = TempDir::new().unwrap();
        write(
            &config.path().join("podman-connections.json"),
            CONNECTIONS_JSON,
        );
        write(&config.path().join("containers.conf"), CONTAINERS_CONF);
        assert_eq!(
            podman_connection(config.path(), "nope").unwrap_err(),
            format!(
                "Podman connection 'nope' not found in {} or {} (see `podman system connection ls`)",
                config.path().join("podman-connections.json").display(),
                config.path().join("containers.conf").display()
            )
        );
    }

    #[test]
    fn malformed_connection_files_name_the_file() {
        let config = TempDir::new().unwrap();
        let json = config.path().join("podman-connections.json");
        write(&json, "{\"Connection\": [");
        let err = podman_connection(config.path(), "box").unwrap_err();
        assert!(
            err.starts_with(&format!(
                "Podman connection 'box': cannot parse {}: ",
                json.display()
            )),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");

        fs::remove_file(&json).unwrap();
        let conf = config.path().join("containers.conf");
        write(&conf, "[engine]\nactive_service = \n");
        let err = podman_connection(config.path(), "box").unwrap_err();
        assert!(
            err.starts_with(&format!(
                "Podman connection 'box': cannot parse {}: ",
                conf.display()
            )),
            "{err}"
        );
        assert!(err.contains("invalid string"), "{err}");
        assert!(err.ends_with("(line 2)"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn connection_without_uri_is_an_error() {
        let config = TempDir::new().unwrap();
        let json = config.path().join("podman-connections.json");
        write(&json, r#"{"Connection":{"Connections":{"x":{}}}}"#);
        assert_eq!(
            podman_connection(config.path(), "x").unwrap_err(),
            format!("Podman connection 'x' has no URI in {}", json.display())
        );
    }
}
