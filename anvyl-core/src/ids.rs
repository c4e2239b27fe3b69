//! Random identifiers: the installation id, made once with the state store,
//! and the id of each start attempt. Both end up in labels, so they are short
//! lowercase hex.

use std::fmt;

use serde::{Deserialize, Serialize};

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $bytes:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(random_hex($bytes))
            }

            /// An id read back from labels or the state store.
            pub fn from_stored(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as stored in labels.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

hex_id!(
    /// Identifies one anvyl installation (one state store). Resources labelled
    /// with another installation's id are never ours.
    InstanceId,
    8
);
hex_id!(
    /// Identifies one attempt to start an agent; every resource the attempt
    /// creates carries it, so a failed start can be undone exactly.
    StartId,
    6
);
