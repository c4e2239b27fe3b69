//! What an agent's container sees and may use, in the words `docker run`
//! users know: bind mounts of host paths (never a volume anvyl would have
//! to own), memory, CPUs, processes, the restart policy, the user and the
//! working directory. Parsed and checked here, once, for `agent create`
//! and `agent update`; stored with the spec; each backend maps them to its
//! engine's create request.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A host path bound into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The absolute path on the engine's machine.
    pub source: String,
    /// The absolute path in the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(default)]
    pub readonly: bool,
}

impl Mount {
    /// Parses `type=bind,source=PATH,target=PATH[,readonly]` (`src`,
    /// `dst`/`destination`, `ro`, `readonly=true|false` as Docker takes them).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mut source, mut target, mut readonly, mut kind) = (None, None, false, None);
        for field in text.split(',') {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (field.trim(), None),
            };
            match (key, value) {
                ("type", Some(v)) => kind = Some(v.to_string()),
                ("source" | "src", Some(v)) => source = Some(v.to_string()),
                ("target" | "dst" | "destination", Some(v)) => target = Some(v.to_string()),
                ("readonly" | "ro", None | Some("true" | "1")) => readonly = true,
                ("readonly" | "ro", Some("false" | "0")) => readonly = false,
                _ => return Err(format!("--mount {text:?}: unknown field {field:?}")),
            }
        }
        match kind.as_deref() {
            Some("bind") => {}
            Some(other) => {
                return Err(format!(
                    "--mount {text:?}: type={other} is not supported: anvyl mounts host paths \
                     only (type=bind), never a volume it would have to own and clean up"
                ))
            }
            None => return Err(format!("--mount {text:?}: type=bind is required")),
        }
        let (Some(source), Some(target)) = (source, target) else {
            return Err(format!(
                "--mount {text:?}: source= and target= are both required"
            ));
        };
        let mount = Self {
            source,
            target,
            readonly,
        };
        mount.check()?;
        Ok(mount)
    }

    /// Both paths absolute, normal (no `.` or `..`), one line; the target
    /// not the container's root.
    pub fn check(&self) -> Result<(), String> {
        for (what, path) in [("source", &self.source), ("target", &self.target)] {
            if !is_absolute_path(path) {
                return Err(format!(
                    "mount {what} {path:?} must be an absolute path without . or .. parts"
                ));
            }
        }
        if normal(&self.target) == "/" {
            return Err("a mount's target cannot be the container's root /".into());
        }
        Ok(())
    }
}

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type=bind,source={},target={}", self.source, self.target)?;
        if self.readonly {
            write!(f, ",readonly")?;
        }
        Ok(())
    }
}

/// `path` with empty parts dropped: `//w/` and `/w` are one target.
fn normal(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

fn is_absolute_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains(['\n', '\r', '\0', ','])
        && path.split('/').all(|part| part != "." && part != "..")
}

/// When the engine starts the container again after its command exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never: an exit is the agent's end.
    #[default]
    No,
    /// After a non-zero exit, at most this many times (no bound: `None`).
    OnFailure(Option<u32>),
}

impl Restart {
    /// Parses `no`, `on-failure` or `on-failure:N`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            None if text == "no" => Ok(Self::No),
            None if text == "on-failure" => Ok(Self::OnFailure(None)),
            Some(("on-failure", n)) => match n.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Self::OnFailure(Some(n))),
                _ => Err(format!(
                    "--restart {text:?}: the count must be a whole number from 1"
                )),
            },
            _ => Err(format!(
                "--restart {text:?}: no or on-failure[:N] (always and unless-stopped would \
                 bring back an agent anvyl stopped)"
            )),
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::No => write!(f, "no"),
            Self::OnFailure(None) => write!(f, "on-failure"),
            Self::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

/// An agent container's mounts, limits, restart policy, user and working
/// directory; all unset by default (the engine's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Host paths bound in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// CPU limit in thousandths of a CPU (`--cpus 1.5` is 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millicpus: Option<u64>,
    /// Most processes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u64>,
    /// Restart policy.
    #[serde(default, skip_serializing_if = "is_no_restart")]
    pub restart: Restart,
    /// `USER[:GROUP]` the command runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The command's working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
}

fn is_no_restart(restart: &Restart) -> bool {
    *restart == Restart::No
}

impl Resources {
    /// Nothing set.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Every field checked: paths absolute, limits above zero, a user
    /// that is one word.
    pub fn check(&self) -> Result<(), String> {
        for mount in &self.mounts {
            mount.check()?;
        }
        let targets: std::collections::BTreeSet<String> =
            self.mounts.iter().map(|m| normal(&m.target)).collect();
        if targets.len() != self.mounts.len() {
            return Err("two mounts have the same target".into());
        }
        if self.memory.is_some_and(|m| m < MIN_MEMORY) {
            return Err(format!(
                "--memory must be at least 6m ({MIN_MEMORY} bytes), as the engines require"
            ));
        }
        if self.memory.is_some_and(|m| m > MOST) || self.pids_limit.is_some_and(|p| p > MOST) {
            return Err(format!("--memory and --pids-limit can be at most {MOST}"));
        }
        if self.millicpus.is_some_and(|c| c < 10) {
            return Err("--cpus must be at least 0.01, as the engines require".into());
        }
        if self.pids_limit == Some(0) {
            return Err("--pids-limit must be above zero".into());
        }
        if let Some(user) = &self.user {
            if user.is_empty() || user.contains(|c: char| c.is_whitespace() || c == '\0') {
                return Err(format!(
                    "--user {user:?} must be one word: NAME|UID[:GROUP|GID]"
                ));
            }
        }
        if let Some(dir) = &self.workdir {
            if !is_absolute_path(dir) {
                return Err(format!(
                    "--workdir {dir:?} must be an absolute path without . or .. parts"
                ));
            }
        }
        Ok(())
    }
}

/// The most the engines' signed 64-bit fields hold.
const MOST: u64 = i64::MAX as u64;

/// The least memory Docker and Podman accept for a container.
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// Parses `--memory`: bytes, or a number with `b`, `k`, `m` or `g` (powers
/// of 1024, as `docker run` reads them).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => {
            return Err(format!(
                "--memory {text:?}: a whole number with b, k, m or g"
            ))
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("--memory {text:?}: a whole number above zero with b, k, m or g"))
}

/// Parses `--cpus` (`1.5`) into thousandths of a CPU.
pub fn parse_cpus(text: &str) -> Result<u64, String> {
    match text.trim().parse::<f64>() {
        Ok(cpus) if (0.01..=4096.0).contains(&cpus) => Ok((cpus * 1000.0).round() as u64),
        _ => Err(format!(
            "--cpus {text:?}: a number of CPUs from 0.01, like 1.5"
        )),
    }
}

/// `1.5` for 1500 thousandths.
pub fn show_cpus(millicpus: u64) -> String {
    let text = format!("{:.3}", millicpus as f64 / 1000.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_read_as_docker_run_reads_them() {
        let m = Mount::parse("type=bind,source=/srv/repo,target=/work,readonly").unwrap();
        assert_eq!(
            m,
            Mount {
                source: "/srv/repo".into(),
                target: "/work".into(),
                readonly: true
            }
        );
        assert_eq!(
            m.to_string(),
            "type=bind,source=/srv/repo,target=/work,readonly"
        );
        let m = Mount::parse("type=bind,src=/a,dst=/b,ro=false").unwrap();
        assert!(!m.readonly);
        for bad in [
            "type=volume,source=x,target=/b",
            "source=/a,target=/b",
            "type=bind,source=relative,target=/b",
            "type=bind,source=/a/../etc,target=/b",
            "type=bind,source=/a",
            "type=bind,source=/a,target=/b,bogus=1",
        ] {
            assert!(Mount::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_read_as_docker_run_reads_them() {
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("2G"), Ok(2 << 30));
        assert_eq!(parse_memory("1048576"), Ok(1 << 20));
        assert!(parse_memory("0").is_err() && parse_memory("1.5g").is_err());
        assert_eq!(parse_cpus("1.5"), Ok(1500));
        assert_eq!(show_cpus(1500), "1.5");
        assert_eq!(show_cpus(2000), "2");
        assert!(parse_cpus("0").is_err() && parse_cpus("many").is_err());
        assert_eq!(
            Restart::parse("on-failure:3"),
            Ok(Restart::OnFailure(Some(3)))
        );
        assert_eq!(Restart::parse("no"), Ok(Restart::No));
        assert!(Restart::parse("always").is_err() && Restart::parse("on-failure:0").is_err());
        let r = Resources {
            memory: Some(1 << 20),
            ..Resources::default()
        };
        assert!(r.check().is_err(), "below the engines' 6 MiB");
        let over = Resources {
            memory: Some(u64::MAX),
            ..Resources::default()
        };
        assert!(over.check().is_err(), "above what an i64 holds");
        assert!(parse_cpus("0.001").is_err());
        let mount = |target: &str| Mount {
            source: "/srv".into(),
            target: target.into(),
            readonly: false,
        };
        assert!(mount("/").check().is_err() && mount("//").check().is_err());
        let twice = Resources {
            mounts: vec![mount("/w"), mount("//w/")],
            ..Resources::default()
        };
        assert!(twice.check().is_err(), "one target written two ways");
    }

    #[test]
    fn stored_as_json_only_what_is_set() {
        let r = Resources {
            memory: Some(1 << 30),
            restart: Restart::OnFailure(Some(2)),
            ..Resources::default()
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"memory":1073741824,"restart":{"on-failure":2}}"#);
        assert_eq!(serde_json::from_str::<Resources>(&json).unwrap(), r);
        assert_eq!(
            serde_json::from_str::<Resources>("{}").unwrap(),
            Resources::default()
        );
    }
}
