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
//! `docker` reads the Docker CLI's contexts, `podman` Podman's connections;
//! what both need (TLS files, reading a file that may be absent, the
//! directories of the environment) is here.
//!
//! Errors are single-line strings naming the context or connection and the
//! file that was read, ready to be shown to the user as they are.

mod docker;
mod podman;

use std::io;
use std::path::{Path, PathBuf};

pub use docker::{docker_config_dir, docker_context};
pub use podman::{podman_config_dir, podman_connection};

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

#[cfg(test)]
pub(crate) mod test_files {
    //! Files as the engines' CLIs write them, for the tests of both stores.

    use std::fs;
    use std::path::Path;

    pub fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::test_files::write;
    use super::*;
    use tempfile::TempDir;

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
}
