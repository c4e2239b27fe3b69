//! Podman's system connections: `podman-connections.json` (Podman 5), then
//! `containers.conf` (Podman 4), as `podman system connection` reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{env_dir, home_dir, read_if_present};

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
    use super::super::test_files::write;
    use super::*;
    use tempfile::TempDir;

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

        std::fs::remove_file(&json).unwrap();
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
