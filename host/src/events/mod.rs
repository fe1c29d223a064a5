//! Instagram events: Meta's webhook payloads ([`meta`]) and the normalised
//! model igloo stores and hands to plugins ([`Event`]).

pub mod meta;
mod normalise;

use serde::{Deserialize, Serialize};

pub use normalise::{PayloadError, normalise};

/// One normalised Instagram event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable identity of the event: the same event redelivered by Meta has
    /// the same key, so it is stored and dispatched once.
    pub key: String,
    /// The business account the event belongs to (`entry.id`).
    pub account_id: String,
    /// When it happened, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened, with its typed fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A direct message to the business.
    Message(Message),
}

/// A direct message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Meta's message id.
    pub mid: String,
    /// IGSID of the sender.
    pub sender_id: String,
    /// Who received it, normally the business account.
    pub recipient_id: String,
    /// The text, if any.
    pub text: Option<String>,
}

impl Event {
    /// The name plugins subscribe to in their manifest, e.g. `message`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            EventKind::Message(_) => "message",
        }
    }

    /// The person on the other side of the conversation, if the event
    /// belongs to one.
    pub fn counterpart_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Message(message) => Some(&message.sender_id),
        }
    }

    /// Events with the same conversation key are dispatched one at a time,
    /// in order: one lane per (account, person).
    pub fn conversation_key(&self) -> String {
        format!(
            "{}/{}",
            self.account_id,
            self.counterpart_id().unwrap_or_default()
        )
    }
}
