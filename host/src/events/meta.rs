//! Meta's webhook payloads as sent on the wire. Only what igloo reads is
//! declared; unknown fields are ignored so new ones never break parsing.

use serde::{Deserialize, Deserializer};

/// The body of `POST /webhooks/instagram`.
#[derive(Debug, Deserialize)]
pub struct WebhookPayload {
    /// `instagram` for Instagram webhooks.
    #[serde(default)]
    pub object: String,
    /// One entry per account (Meta batches several).
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// Events for one account.
#[derive(Debug, Deserialize)]
pub struct Entry {
    /// The business account id. Sent as a string or, by some test tools,
    /// as a number larger than 2^53: kept exactly as text.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// When Meta sent the notification.
    #[serde(default)]
    pub time: Option<serde_json::Value>,
    /// Messaging events.
    #[serde(default)]
    pub messaging: Vec<Messaging>,
}

/// One item of `entry.messaging`.
#[derive(Debug, Deserialize)]
pub struct Messaging {
    /// Who sent it.
    pub sender: Option<Party>,
    /// Who received it.
    pub recipient: Option<Party>,
    /// When it happened (milliseconds, seconds or a string).
    #[serde(default)]
    pub timestamp: Option<serde_json::Value>,
    /// Present for messages.
    pub message: Option<MessageBody>,
}

/// A sender or recipient.
#[derive(Debug, Deserialize)]
pub struct Party {
    /// The IGSID or account id.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
}

/// `messaging[].message`.
#[derive(Debug, Deserialize)]
pub struct MessageBody {
    /// Message id.
    #[serde(default)]
    pub mid: String,
    /// Text, if any.
    pub text: Option<String>,
}

/// Accept an id sent as a JSON string or number, keeping its digits exact.
pub fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Unsigned(u64),
        Signed(i64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Unsigned(number) => number.to_string(),
        Id::Signed(number) => number.to_string(),
    })
}
