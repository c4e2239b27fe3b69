//! Agent names. A name is checked once, here, before any state or daemon is
//! touched; everything downstream takes an [`AgentName`] and so cannot be
//! handed a glob, a path or an empty string by mistake.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest name the pattern `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$` admits.
pub const MAX_LEN: usize = 63;

/// Prefix of every container and image repository anvyl names.
pub const RESOURCE_PREFIX: &str = "anvyl-agent-";

/// A validated agent name: lowercase letters, digits and inner dashes, 1 to 63
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentName(String);

/// Why a string is not an agent name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent name {name:?}: {why} (use 1-63 lowercase letters, digits and inner dashes)")]
pub struct InvalidAgentName {
    /// The rejected input.
    pub name: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl AgentName {
    /// Validates `name` against the agent name pattern.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidAgentName> {
        let name = name.into();
        let why = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_LEN {
            Some("it is longer than 63 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Some("it contains a character other than a-z, 0-9 and '-'")
        } else if name.starts_with('-') || name.ends_with('-') {
            Some("it starts or ends with '-'")
        } else {
            None
        };
        match why {
            Some(why) => Err(InvalidAgentName { name, why }),
            None => Ok(Self(name)),
        }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `anvyl-agent-<name>`: the container name and the image repository.
    pub fn resource_name(&self) -> String {
        format!("{RESOURCE_PREFIX}{}", self.0)
    }

    /// `anvyl-agent-<name>:latest`: the tag that moves to the newest build.
    pub fn image_tag(&self) -> String {
        format!("{}:latest", self.resource_name())
    }

    /// `anvyl-agent-<name>:<start>`: the tag fixed to one start's build, so
    /// that untagging `:latest` can never strand a live start's image.
    pub fn start_tag(&self, start: &crate::ids::StartId) -> String {
        format!("{}:{start}", self.resource_name())
    }

    /// The agent whose resource is named exactly `anvyl-agent-<name>`, if any.
    /// `my-anvyl-agent-web` and `anvyl-agent-` yield nothing.
    pub fn from_resource_name(resource: &str) -> Option<Self> {
        resource
            .strip_prefix(RESOURCE_PREFIX)
            .and_then(|rest| Self::new(rest).ok())
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgentName {
    type Err = InvalidAgentName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for AgentName {
    type Error = InvalidAgentName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<AgentName> for String {
    fn from(name: AgentName) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_pattern() {
        for ok in ["a", "web", "my-agent-2", "0", &"a".repeat(63)] {
            assert!(AgentName::new(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "-web",
            "web-",
            "Web",
            "we b",
            "web*",
            "web.1",
            "web/x",
            "wéb",
            &"a".repeat(64),
        ] {
            assert!(AgentName::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn resource_names_are_exact() {
        let web = AgentName::new("web").unwrap();
        assert_eq!(web.resource_name(), "anvyl-agent-web");
        assert_eq!(web.image_tag(), "anvyl-agent-web:latest");
        assert_eq!(AgentName::from_resource_name("anvyl-agent-web"), Some(web));
        assert_eq!(AgentName::from_resource_name("my-anvyl-agent-web"), None);
        assert_eq!(AgentName::from_resource_name("anvyl-agent-"), None);
        assert_eq!(AgentName::from_resource_name("anvyl-agent-Web"), None);
    }
}
