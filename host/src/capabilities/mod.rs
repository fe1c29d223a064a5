//! What plugins may do. Each capability is its own module: its host
//! functions, the policy they enforce and their tests. A capability must be
//! declared in the plugin's manifest and granted by the operator; a plugin
//! that imports an interface it was not granted does not load.

mod config;
mod log;
mod messaging;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::graph::GraphClient;

/// A permission the operator grants a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Capability {
    /// Send messages to the person whose event is being handled.
    MessagesReply,
    /// Send messages to anyone whose messaging window is open.
    MessagesSend,
}

impl Capability {
    /// Every capability, for error messages.
    pub const ALL: &[Capability] = &[Capability::MessagesReply, Capability::MessagesSend];

    /// The name used in manifests and config.
    pub fn name(self) -> &'static str {
        match self {
            Capability::MessagesReply => "messages:reply",
            Capability::MessagesSend => "messages:send",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Capability {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .iter()
            .copied()
            .find(|capability| capability.name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Capability::ALL.iter().map(|c| c.name()).collect();
                format!("unknown capability `{name}` (known: {})", known.join(", "))
            })
    }
}

impl TryFrom<String> for Capability {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<Capability> for String {
    fn from(capability: Capability) -> Self {
        capability.name().to_owned()
    }
}

/// What importing a host interface requires: any one of these capabilities.
/// `None` for interfaces every plugin may import.
pub fn required_for_import(import: &str) -> Option<&'static [Capability]> {
    let interface = import.split('@').next().unwrap_or(import);
    match interface {
        "igloo:plugin/messaging" => Some(&[Capability::MessagesReply, Capability::MessagesSend]),
        _ => None,
    }
}

/// The services host functions act through; one struct lists them all.
pub struct HostServices {
    /// Meta's Graph API (or the sandbox).
    pub graph: GraphClient,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for capability in Capability::ALL {
            assert_eq!(capability.name().parse::<Capability>(), Ok(*capability));
        }
        assert!(
            "kv:everything"
                .parse::<Capability>()
                .unwrap_err()
                .contains("kv:everything")
        );
    }

    #[test]
    fn messaging_needs_a_messages_capability_and_log_needs_none() {
        assert_eq!(
            required_for_import("igloo:plugin/messaging@0.1.0"),
            Some(&[Capability::MessagesReply, Capability::MessagesSend][..])
        );
        assert_eq!(required_for_import("igloo:plugin/log@0.1.0"), None);
    }
}
