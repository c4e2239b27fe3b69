//! Configuration, layered with figment; later layers win: built-in defaults,
//! `/etc/anvyl/anvyl.toml`, `$XDG_CONFIG_HOME/anvyl/anvyl.toml`, `--config
//! FILE`, `ANVYL_*` environment variables, then command-line flags. Unknown
//! keys are errors that name the file, so a typo never silently does nothing.
//! Durations are humantime's words or whole seconds ([`duration`]).

mod duration;

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use anvyl_core::BackendKind;

use crate::error::CliError;
use crate::remote::stores::{self, TlsFiles};
use crate::remote::{Access, Route};

use duration::OldSpellings;

/// The system-wide configuration file.
pub const SYSTEM_FILE: &str = "/etc/anvyl/anvyl.toml";

/// Environment variables read, and the keys they set.
const ENV_KEYS: &[(&str, &str)] = &[
    ("backend", "backend"),
    ("state_dir", "state_dir"),
    ("network", "network"),
    ("pull", "pull"),
    ("build_cache", "build_cache"),
    ("parallelism", "parallelism"),
    ("stop_timeout", "stop_timeout"),
    ("request_timeout", "request_timeout"),
    ("settle", "settle"),
    ("settle_ms", "settle_ms"),
    ("docker_endpoint", "docker.endpoint"),
    ("podman_endpoint", "podman.endpoint"),
    ("ssh_command", "ssh_command"),
];

/// `[docker]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Endpoint; default `DOCKER_HOST`, else `/var/run/docker.sock`.
    pub endpoint: Option<String>,
    /// Accept a plain `tcp://` endpoint without TLS: whoever reaches that
    /// port is root on the engine's machine.
    pub insecure: bool,
}

/// `[podman]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodmanConfig {
    /// Endpoint; default `CONTAINER_HOST`, else the rootless, else the rootful socket.
    pub endpoint: Option<String>,
    /// Accept a plain `tcp://` endpoint (Podman's service has no TLS).
    pub insecure: bool,
    /// `nofile` limit set on containers (Podman 4 applies no default through its API).
    pub nofile: u64,
    /// `nproc` limit set on containers.
    pub nproc: u64,
}

impl Default for PodmanConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            insecure: false,
            nofile: 4096,
            nproc: 4096,
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The engine.
    pub backend: BackendKind,
    /// Holds the database and the build root; default `$XDG_STATE_HOME/anvyl`.
    pub state_dir: Option<PathBuf>,
    /// Network mode of agent containers and build steps; default: the engine's.
    pub network: Option<String>,
    /// When a start pulls its base image, for agents that say nothing:
    /// `missing` (as `docker build`), `always` or `never`.
    pub pull: anvyl_core::pull::PullPolicy,
    /// Who removes the step images of anvyl's builds: `keep` leaves them to
    /// the engine's prune (restarts reuse them), `remove` makes them go
    /// with the image they led to.
    pub build_cache: anvyl_core::BuildCache,
    /// Removals that run at once.
    pub parallelism: usize,
    /// How long a container gets to stop before it is killed; whole
    /// seconds, which is what the engines take.
    #[serde(with = "duration::seconds")]
    pub stop_timeout: Duration,
    /// How long an engine request may take; at least a second.
    #[serde(with = "duration::seconds")]
    pub request_timeout: Duration,
    /// How long a started container must keep running before the agent is
    /// registered.
    #[serde(with = "duration::seconds")]
    pub settle: Duration,
    /// `settle` in its old spelling, whole milliseconds. Each layer's is
    /// read as its `settle` ([`OldSpellings`]); this field only refuses what
    /// could not be (`settle_ms = "fast"`), naming the key as written.
    #[serde(
        default,
        skip_serializing,
        rename = "settle_ms",
        deserialize_with = "duration::refuse_settle_ms"
    )]
    old_settle_ms: (),
    /// The OpenSSH client for `ssh://` hosts, as words (`ssh -F ~/.ssh/work`).
    pub ssh_command: String,
    /// Docker settings.
    pub docker: DockerConfig,
    /// Podman settings.
    pub podman: PodmanConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            backend: BackendKind::Docker,
            state_dir: None,
            network: None,
            pull: anvyl_core::pull::PullPolicy::default(),
            build_cache: anvyl_core::BuildCache::default(),
            parallelism: 16,
            stop_timeout: Duration::ZERO,
            request_timeout: Duration::from_secs(120),
            settle: Duration::from_secs(1),
            old_settle_ms: (),
            ssh_command: "ssh".into(),
            docker: DockerConfig::default(),
            podman: PodmanConfig::default(),
        }
    }
}

impl Config {
    /// Loads every layer: `file` is `--config`, `backend` is `--backend`.
    pub fn load(file: Option<&Path>, backend: Option<BackendKind>) -> Result<Self, CliError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(OldSpellings(Toml::file(SYSTEM_FILE)));
        if let Some(user) = user_file() {
            figment = figment.merge(OldSpellings(Toml::file(user)));
        }
        if let Some(file) = file {
            // An explicit file that is missing is an error, not an empty layer.
            if !file.is_file() {
                return Err(CliError::Config(format!(
                    "--config {}: no such file",
                    file.display()
                )));
            }
            figment = figment.merge(OldSpellings(Toml::file_exact(file)));
        }
        figment = figment.merge(OldSpellings(Env::prefixed("ANVYL_").filter_map(|key| {
            ENV_KEYS
                .iter()
                .find(|(env, _)| key.as_str().eq_ignore_ascii_case(env))
                .map(|(_, k)| (*k).into())
        })));
        if let Some(backend) = backend {
            figment = figment.merge(Serialized::default("backend", backend));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| CliError::Config(crate::config_error::describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), CliError> {
        if self.parallelism == 0 {
            return Err(CliError::Config("parallelism must be at least 1".into()));
        }
        if self.request_timeout < Duration::from_secs(1) {
            return Err(CliError::Config(format!(
                "request_timeout must be at least 1s, not {}",
                humantime::format_duration(self.request_timeout)
            )));
        }
        // Docker and Podman take a stop's timeout in whole seconds: 1500ms
        // would quietly be 1 s.
        if self.stop_timeout.subsec_nanos() != 0 {
            return Err(CliError::Config(format!(
                "stop_timeout must be whole seconds (the engines count in seconds), not {}",
                humantime::format_duration(self.stop_timeout)
            )));
        }
        // A configured engine anvyl must never reach (plain tcp:// without
        // `insecure`, a relative socket) is bad configuration: exit 2.
        self.route_of(self.backend).map_err(CliError::Config)?;
        Ok(())
    }

    /// The state directory, resolved.
    pub fn state_dir(&self) -> Result<PathBuf, CliError> {
        if let Some(dir) = &self.state_dir {
            // An empty or relative state directory would put the database
            // and the build root wherever the command happens to run — and
            // let a cleanup delete there.
            if !dir.is_absolute() {
                return Err(CliError::Config(format!(
                    "state_dir must be an absolute path, not {:?} (set in a configuration file or ANVYL_STATE_DIR)",
                    dir.display().to_string()
                )));
            }
            return Ok(dir.clone());
        }
        directories::ProjectDirs::from("", "", "anvyl")
            .and_then(|dirs| dirs.state_dir().map(Path::to_path_buf))
            .ok_or_else(|| {
                CliError::Config("no home directory: set state_dir or ANVYL_STATE_DIR".into())
            })
    }

    /// How long an engine request may take.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The cleanup settings this configuration asks for.
    pub fn cleanup_settings(&self) -> anvyl_core::CleanupSettings {
        anvyl_core::CleanupSettings {
            parallelism: self.parallelism,
            stop_timeout: self.stop_timeout,
            build_cache: self.build_cache,
            ..anvyl_core::CleanupSettings::default()
        }
    }

    /// The lifecycle settings this configuration asks for.
    pub fn lifecycle_settings(&self) -> anvyl_core::lifecycle::LifecycleSettings {
        anvyl_core::lifecycle::LifecycleSettings {
            settle: self.settle,
            network: self.network.clone(),
            stop_timeout: self.stop_timeout,
            cleanup: self.cleanup_settings(),
            pull: self.pull,
            ..anvyl_core::lifecycle::LifecycleSettings::default()
        }
    }
}

/// `$XDG_CONFIG_HOME/anvyl/anvyl.toml`, if a home can be found.
fn user_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "anvyl").map(|d| d.config_dir().join("anvyl.toml"))
}

/// The configured engine: where it is and how it is reached.
impl Config {
    /// The configured endpoint of `backend`: the configuration's, else the
    /// engine's own environment and default socket.
    pub fn endpoint_of(&self, backend: BackendKind) -> String {
        match backend {
            BackendKind::Docker => {
                (self.docker.endpoint.clone()).unwrap_or_else(anvyl_docker::default_endpoint)
            }
            BackendKind::Podman => {
                (self.podman.endpoint.clone()).unwrap_or_else(anvyl_podman::default_endpoint)
            }
        }
    }

    /// The configured engine's route: the endpoint of the configuration or
    /// the engine's own environment; for Docker, TLS by the
    /// `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` convention. An endpoint
    /// anvyl must never reach (plain tcp:// without `insecure`, a relative
    /// socket) is an error.
    pub fn route_of(&self, backend: BackendKind) -> Result<Route, String> {
        let (insecure, tls) = match backend {
            BackendKind::Docker => (self.docker.insecure, docker_env_tls()?),
            BackendKind::Podman => (self.podman.insecure, None),
        };
        let endpoint = self.endpoint_of(backend);
        // The Docker CLI ignores its TLS variables for a socket; so does anvyl.
        let tls = tls.filter(|_| !endpoint.starts_with("unix://") && !endpoint.starts_with('/'));
        let access = Access {
            tls,
            insecure,
            identity: None,
        };
        Route::decide(backend, &endpoint, access)
    }
}

/// TLS files when `DOCKER_TLS_VERIFY` is set: in `DOCKER_CERT_PATH`, else
/// the Docker CLI's configuration directory.
fn docker_env_tls() -> Result<Option<TlsFiles>, String> {
    let verify = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
    if !verify {
        return Ok(None);
    }
    let dir = match std::env::var_os("DOCKER_CERT_PATH").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => stores::docker_config_dir()
            .ok_or("DOCKER_TLS_VERIFY is set, but no DOCKER_CERT_PATH or home directory")?,
    };
    TlsFiles::in_dir(&dir).map(Some)
}

#[cfg(test)]
// figment's `Jail` closures must return figment's (large) error type.
#[allow(clippy::result_large_err)]
mod tests;
