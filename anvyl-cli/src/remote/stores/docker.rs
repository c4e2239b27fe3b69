//! The Docker CLI's context store: `contexts/meta/<sha256 of the name>/meta.json`
//! below the Docker configuration directory, and the context's TLS files
//! beside it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{env_dir, home_dir, read_if_present, TlsFiles};

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

#[cfg(test)]
mod tests {
    use super::super::test_files::write;
    use super::*;
    use tempfile::TempDir;

    /// sha256("prod"), checked independently with `sha256sum`: pins the
    /// store layout rather than re-deriving it the way the code does.
    const PROD_DIGEST: &str = "6754af9632a2745e85c293e5aac0863370d9bd3330b9938c00cadfd215227d77";

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
}
