//! The permissions an operator grants a plugin, by the names manifests and
//! configuration use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A permission the operator grants a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Capability {
    /// Message the person whose event is being handled, or privately
    /// answer the comment being handled.
    MessagesReply,
    /// Message anyone whose window is open; privately answer any comment.
    MessagesSend,
    /// Send with the `HUMAN_AGENT` tag (7-day window).
    MessagesHumanAgent,
    /// Reply publicly to the comment being handled.
    CommentsReply,
    /// Hide, unhide and delete comments.
    CommentsModerate,
    /// Read consenting people's profiles (User Profile API).
    ProfilesRead,
    /// Look profiles up through the third-party provider.
    ProfilesPublicLookup,
    /// Keep state in the host.
    Kv,
    /// Set timers for the conversation being handled.
    Schedule,
    /// Pause and resume automation in the conversation being handled.
    ConversationsControl,
    /// Keep running in conversations a human took over (automation paused):
    /// get their message events, and send to them.
    ConversationsWhilePaused,
}

/// A capability name igloo does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability `{name}` (known: {known})", known = Capability::known())]
pub struct UnknownCapability {
    /// The name given.
    pub name: String,
}

impl Capability {
    /// Every capability, for error messages.
    pub const ALL: &[Capability] = &[
        Capability::MessagesReply,
        Capability::MessagesSend,
        Capability::MessagesHumanAgent,
        Capability::CommentsReply,
        Capability::CommentsModerate,
        Capability::ProfilesRead,
        Capability::ProfilesPublicLookup,
        Capability::Kv,
        Capability::Schedule,
        Capability::ConversationsControl,
        Capability::ConversationsWhilePaused,
    ];

    /// The name used in manifests and config.
    pub fn name(self) -> &'static str {
        match self {
            Capability::MessagesReply => "messages:reply",
            Capability::MessagesSend => "messages:send",
            Capability::MessagesHumanAgent => "messages:human-agent",
            Capability::CommentsReply => "comments:reply",
            Capability::CommentsModerate => "comments:moderate",
            Capability::ProfilesRead => "profiles:read",
            Capability::ProfilesPublicLookup => "profiles:public-lookup",
            Capability::Kv => "kv",
            Capability::Schedule => "schedule",
            Capability::ConversationsControl => "conversations:control",
            Capability::ConversationsWhilePaused => "conversations:while-paused",
        }
    }

    fn known() -> String {
        let names: Vec<_> = Capability::ALL.iter().map(|c| c.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .iter()
            .copied()
            .find(|capability| capability.name() == name)
            .ok_or_else(|| UnknownCapability {
                name: name.to_owned(),
            })
    }
}

impl TryFrom<String> for Capability {
    type Error = UnknownCapability;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<Capability> for String {
    fn from(capability: Capability) -> Self {
        capability.name().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for capability in Capability::ALL {
            assert_eq!(capability.name().parse::<Capability>(), Ok(*capability));
        }
        let unknown = "kv:everything".parse::<Capability>().unwrap_err();
        assert!(unknown.to_string().contains("kv:everything"), "{unknown}");
        assert!(unknown.to_string().contains("messages:reply"), "{unknown}");
    }
}
