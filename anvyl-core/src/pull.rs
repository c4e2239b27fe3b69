//! Base images from registries: which registry an image reference names,
//! the user's credentials for it (found by the CLI where the engine's own
//! CLI finds them, handed to the engine for one pull or build, never
//! stored or printed), the pull policy, a pull's progress, and why a pull
//! failed, said so that the user knows what to do.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;

/// Docker Hub, as a reference without a registry means it.
pub const DOCKER_HUB: &str = "docker.io";

/// An image reference split as engines read it: the registry is the first
/// path component when it looks like a host (a dot, a port or
/// `localhost`), else Docker Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `127.0.0.1:5443`, `ghcr.io`, or [`DOCKER_HUB`].
    pub registry: String,
    /// The repository within it: `team/base`, `library/python`.
    pub repository: String,
    /// The tag or digest as written (`:1`, `@sha256:…`); `:latest` when
    /// none is.
    pub version: String,
}

/// Whether `reference` names its registry (`ghcr.io/x`, `localhost/x`,
/// `reg:5000/x`). Podman resolves a short name (`fedora`, `acme/agent`)
/// through its aliases and search registries, not always Docker Hub: no
/// credentials are sent for one.
pub fn names_its_registry(reference: &str) -> bool {
    reference.split_once('/').is_some_and(|(first, _)| {
        first.contains(['.', ':']) || first == "localhost" || first != first.to_lowercase()
    })
}

impl ImageRef {
    /// Splits `reference`.
    pub fn parse(reference: &str) -> Self {
        let (first, rest) = match reference.split_once('/') {
            Some((first, rest)) if names_its_registry(reference) => (first.to_string(), rest),
            _ => (DOCKER_HUB.to_string(), reference),
        };
        let (name, version) = match rest.split_once('@') {
            Some((name, digest)) => (name, format!("@{digest}")),
            None => match rest.rsplit_once(':') {
                Some((name, tag)) => (name, format!(":{tag}")),
                None => (rest, ":latest".to_string()),
            },
        };
        let repository = match (first.as_str(), name.contains('/')) {
            (DOCKER_HUB, false) => format!("library/{name}"),
            _ => name.to_string(),
        };
        Self {
            registry: first,
            repository,
            version,
        }
    }

    /// `team/base:1` — what the user named within the registry.
    pub fn repository_and_version(&self) -> String {
        format!("{}{}", self.repository, self.version)
    }
}

/// `reference` as a name and what follows it — the tag (`1`) or digest
/// (`sha256:…`) — as engines' pull requests take them apart; `latest`
/// when none is written (an empty tag asks Docker for every tag).
pub fn name_and_version(reference: &str) -> (&str, &str) {
    if let Some((name, digest)) = reference.split_once('@') {
        return (name, digest);
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rsplit_once(':') {
        Some((_, tag)) => (&reference[..reference.len() - tag.len() - 1], tag),
        None => (reference, "latest"),
    }
}

/// One registry's credentials: what the engine's CLI would send. Its
/// `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryCredential {
    /// A user name and password (or a token used as one).
    Password {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// An identity token (OAuth refresh token) from a `docker login`.
    IdentityToken(String),
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password { username, .. } => write!(f, "Password({username:?}, <hidden>)"),
            Self::IdentityToken(_) => write!(f, "IdentityToken(<hidden>)"),
        }
    }
}

/// The credentials a pull or build sends, by registry host. Its `Debug`
/// names the registries only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(BTreeMap<String, RegistryCredential>);

impl Credentials {
    /// `credential` for `registry`.
    pub fn with(mut self, registry: &str, credential: RegistryCredential) -> Self {
        self.0.insert(registry.to_string(), credential);
        self
    }

    /// For `registry`, when there are.
    pub fn get(&self, registry: &str) -> Option<&RegistryCredential> {
        self.0.get(registry)
    }

    /// Each registry and its credential.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RegistryCredential)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why the user's credentials could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read your credentials for registry {registry}: {cause}")]
pub struct CredentialError {
    /// The registry asked about.
    pub registry: String,
    /// What went wrong (a file that is not JSON, a helper that failed).
    pub cause: String,
}

/// Where a start finds the user's credentials for a registry: the CLI
/// reads the engine CLI's own files and helpers, at each start. Async, so
/// that a helper that does not answer never keeps Ctrl-C from a start.
#[async_trait::async_trait]
pub trait CredentialSource: Send + Sync {
    /// The credentials `kind`'s CLI would use for `registry`; `None` when
    /// the user has none for it.
    async fn lookup(
        &self,
        kind: BackendKind,
        registry: &str,
    ) -> Result<Option<RegistryCredential>, CredentialError>;
}

/// No credentials anywhere: anonymous pulls only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

#[async_trait::async_trait]
impl CredentialSource for Anonymous {
    async fn lookup(
        &self,
        _kind: BackendKind,
        _registry: &str,
    ) -> Result<Option<RegistryCredential>, CredentialError> {
        Ok(None)
    }
}

/// When a start pulls its base image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// When the engine does not have it (as `docker build` does).
    #[default]
    Missing,
    /// At every start, for the newest image of the tag.
    Always,
    /// Never: a missing base fails the start.
    Never,
}

impl PullPolicy {
    /// Every policy, in the order `--help` lists them.
    pub const ALL: [Self; 3] = [Self::Missing, Self::Always, Self::Never];

    /// `missing`, `always`, `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Always => "always",
            Self::Never => "never",
        }
    }
}

/// How far a pull has got, as the engine tells it. Docker says each
/// layer's bytes; Podman names the layers it copies, without sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullProgress {
    /// Layers fully downloaded (or already present).
    pub layers_done: usize,
    /// Layers the engine has named so far.
    pub layers: usize,
    /// Bytes downloaded, over the layers whose size is known.
    pub bytes_done: u64,
    /// Their total size; 0 when the engine does not say.
    pub bytes_total: u64,
}

impl fmt::Display for PullProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} layers", self.layers_done, self.layers)?;
        if self.bytes_total > 0 {
            write!(
                f,
                ", {}/{}",
                megabytes(self.bytes_done),
                megabytes(self.bytes_total)
            )?;
        }
        Ok(())
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{} MB", bytes.div_ceil(1_000_000))
}

/// Receives a pull's progress as it changes.
pub type PullProgressSink<'a> = &'a (dyn Fn(PullProgress) + Send + Sync);

/// What kept an image from being pulled, read from the engine's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PullProblem {
    /// The registry wants credentials, or refused the ones sent (401/403).
    Unauthorized,
    /// The registry has no such repository or tag.
    NotFound,
    /// The engine does not trust the registry's certificate.
    Certificate,
    /// Docker's HTTPS attempt failed and it tried plain HTTP, as it does
    /// for a loopback or insecure registry: its error is the HTTP one's,
    /// and the HTTPS one — a 401, or an untrusted certificate — is lost.
    HttpsFailed,
    /// Anything else the engine said.
    Other,
}

/// Reads what kept a pull from its answer: the HTTP status when the engine
/// refused the request, else the words Docker and Podman use (the same
/// registry client words reach both: `unauthorized`, `manifest unknown`,
/// `x509`). The certificate is looked for first: a registry that is not
/// trusted never got to say whether the credentials were good.
pub fn classify_pull_failure(status: Option<u16>, message: &str) -> PullProblem {
    let text = message.to_ascii_lowercase();
    let said = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if said(&["x509", "certificate"]) {
        PullProblem::Certificate
    } else if said(&[
        "client sent an http request to an https server",
        "server gave http response to https client",
    ]) {
        PullProblem::HttpsFailed
    } else if status == Some(401)
        || status == Some(403)
        || said(&[
            "unauthorized",
            "authentication required",
            "no basic auth credentials",
            "access denied",
            "requested access to the resource is denied",
            "incorrect username or password",
        ])
    {
        PullProblem::Unauthorized
    } else if status == Some(404) || said(&["manifest unknown", "not found", "name unknown"]) {
        PullProblem::NotFound
    } else {
        PullProblem::Other
    }
}

/// Says what a failed pull of `reference` means and what to do about it,
/// from the engine's `message`: one line.
pub fn explain_pull_failure(
    kind: BackendKind,
    reference: &str,
    problem: PullProblem,
    sent_credentials: bool,
    message: &str,
) -> String {
    let image = ImageRef::parse(reference);
    let registry = &image.registry;
    let login = format!("log in with `{} login {registry}`", kind.as_str());
    let message = message.trim();
    match problem {
        PullProblem::Unauthorized if sent_credentials => format!(
            "registry {registry} refused anvyl's credentials for {} (401): {login} ({message})",
            image.repository
        ),
        PullProblem::HttpsFailed if sent_credentials => format!(
            "registry {registry} refused anvyl's credentials for {} (401), or the engine does \
             not trust its certificate (Docker then tried plain HTTP: {message}): {login}, and \
             check /etc/docker/certs.d/{registry}/ca.crt on the engine's machine",
            image.repository
        ),
        PullProblem::Unauthorized | PullProblem::HttpsFailed => format!(
            "registry {registry} refused anvyl's credentials for {} (401): you have none \
             stored for it; {login} (the engine said: {message})",
            image.repository
        ),
        PullProblem::NotFound => format!(
            "image {} not found in {registry} ({message})",
            image.repository_and_version()
        ),
        PullProblem::Certificate => format!(
            "the engine does not trust the certificate of registry {registry} ({message}): \
             give it the registry's CA in /etc/docker/certs.d/{registry}/ca.crt (Podman also \
             reads /etc/containers/certs.d) on the engine's machine"
        ),
        PullProblem::Other => format!("cannot pull {reference}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_engines_read_them() {
        let parts = |r: &str| {
            let i = ImageRef::parse(r);
            (i.registry, i.repository, i.version)
        };
        let owned = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            parts("python:3.12"),
            owned("docker.io", "library/python", ":3.12")
        );
        assert_eq!(
            parts("busybox"),
            owned("docker.io", "library/busybox", ":latest")
        );
        assert_eq!(
            parts("acme/agent:3"),
            owned("docker.io", "acme/agent", ":3")
        );
        assert_eq!(
            parts("127.0.0.1:5443/team/base:1"),
            owned("127.0.0.1:5443", "team/base", ":1")
        );
        assert_eq!(
            parts("ghcr.io/acme/agent-base@sha256:ab"),
            owned("ghcr.io", "acme/agent-base", "@sha256:ab")
        );
        assert_eq!(parts("localhost/x"), owned("localhost", "x", ":latest"));
        assert_eq!(
            parts("registry.acme.internal:5000/python-ml"),
            owned("registry.acme.internal:5000", "python-ml", ":latest")
        );
    }

    #[test]
    fn names_and_versions_for_a_pull() {
        assert_eq!(
            name_and_version("127.0.0.1:5443/team/base:1"),
            ("127.0.0.1:5443/team/base", "1")
        );
        assert_eq!(
            name_and_version("127.0.0.1:5443/team/base"),
            ("127.0.0.1:5443/team/base", "latest")
        );
        assert_eq!(
            name_and_version("busybox@sha256:ab"),
            ("busybox", "sha256:ab")
        );
        assert_eq!(name_and_version("python:3.12"), ("python", "3.12"));
    }

    #[test]
    fn no_secret_in_debug() {
        let c = Credentials::default()
            .with(
                "r:1",
                RegistryCredential::Password {
                    username: "u".into(),
                    password: "hunter2".into(),
                },
            )
            .with("r:2", RegistryCredential::IdentityToken("tok3n".into()));
        let shown = format!("{c:?} {:?} {:?}", c.get("r:1"), c.get("r:2"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(shown.contains("r:1"), "{shown}");
    }

    #[test]
    fn failures_say_what_to_do() {
        let said = explain_pull_failure(
            BackendKind::Docker,
            "127.0.0.1:5443/team/base:1",
            PullProblem::Unauthorized,
            false,
            "unauthorized: authentication required",
        );
        assert!(
            said.starts_with(
                "registry 127.0.0.1:5443 refused anvyl's credentials for team/base (401)"
            ),
            "{said}"
        );
        assert!(said.contains("`docker login 127.0.0.1:5443`"), "{said}");
        let said = explain_pull_failure(
            BackendKind::Podman,
            "127.0.0.1:5443/team/nothere:9",
            PullProblem::NotFound,
            true,
            "manifest unknown",
        );
        assert!(
            said.starts_with("image team/nothere:9 not found in 127.0.0.1:5443"),
            "{said}"
        );
        assert_eq!(
            PullProgress {
                layers_done: 3,
                layers: 7,
                bytes_done: 41_000_000,
                bytes_total: 180_000_000
            }
            .to_string(),
            "3/7 layers, 41 MB/180 MB"
        );
    }
}
