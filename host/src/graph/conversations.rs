//! The Conversations API (seed 002), read back to learn whether a message
//! igloo may have sent (its request went out, no answer came) really went.

use serde::Deserialize;

use super::{GraphClient, GraphError, GraphId, Repeat, SendClass, parse};

/// How far Meta's `created_time` (whole seconds, Meta's clock) may lie
/// before the moment igloo started the send and still be that send.
const CLOCK_SKEW_MS: u64 = 2_000;

/// Messages read back per conversation: the newest page.
const MESSAGES_READ: &str = "messages.limit(50){id,created_time,from,to,message}";

/// A message the business sent, found in its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMessage {
    /// The message's id.
    pub message_id: String,
}

#[derive(Deserialize)]
struct Listed<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct ConversationRef {
    id: String,
}

#[derive(Deserialize)]
struct Conversation {
    messages: Option<Listed<ConversationMessage>>,
}

#[derive(Deserialize)]
struct ConversationMessage {
    id: String,
    created_time: Option<String>,
    from: Option<Participant>,
    to: Option<Listed<Participant>>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Participant {
    id: String,
}

impl GraphClient {
    /// The messages `account_id` sent `person` with exactly `text` since
    /// `since_ms` (less a little clock skew), newest first, read from the
    /// conversation. `Ok(vec![])` means Meta shows no such message.
    pub async fn find_sent_text(
        &self,
        account_id: &str,
        person: &GraphId,
        text: &str,
        since_ms: u64,
    ) -> Result<Vec<FoundMessage>, GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::GET,
            &[account_id, "conversations"],
            &[("platform", "instagram"), ("user_id", person.as_str())],
            None,
        );
        let response = self
            .call(
                account_id,
                request,
                SendClass::Conversations,
                Repeat::Idempotent,
            )
            .await?;
        let listed: Listed<ConversationRef> = parse(response, "Conversations API")?;
        let Some(conversation) = listed.data.into_iter().next() else {
            return Ok(Vec::new());
        };
        let conversation_id = conversation_id(&conversation.id)?;
        let request = self.request(
            account_id,
            reqwest::Method::GET,
            &[conversation_id],
            &[("fields", MESSAGES_READ)],
            None,
        );
        let response = self
            .call(
                account_id,
                request,
                SendClass::Conversations,
                Repeat::Idempotent,
            )
            .await?;
        let conversation: Conversation = parse(response, "Conversations API")?;
        let since_s = since_ms.saturating_sub(CLOCK_SKEW_MS) / 1000;
        Ok(conversation
            .messages
            .map(|listed| listed.data)
            .unwrap_or_default()
            .into_iter()
            .filter(|message| {
                message
                    .from
                    .as_ref()
                    .is_some_and(|from| from.id == account_id)
                    && message
                        .to
                        .as_ref()
                        .is_some_and(|to| to.data.iter().any(|to| to.id == person.as_str()))
                    && message.message.as_deref() == Some(text)
                    && message
                        .created_time
                        .as_deref()
                        .and_then(super::meta_time_ms)
                        .map(|ms| ms / 1000)
                        .is_some_and(|created| created >= since_s)
            })
            .map(|message| FoundMessage {
                message_id: message.id,
            })
            .collect())
    }
}

/// Conversation ids are opaque base64url text, not numbers. Meta's answer
/// becomes a path segment, so it is held to that alphabet too.
fn conversation_id(text: &str) -> Result<&str, GraphError> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-');
    if text.is_empty() || text.len() > 256 || !text.bytes().all(allowed) {
        return Err(GraphError::Invalid(format!(
            "Meta answered an unexpected conversation id `{}`",
            crate::untrusted::sanitize(text, 48)
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_id_cannot_carry_a_path_or_a_query() {
        assert!(conversation_id("aWdfZAG06MTpJR01lc3NhZA2VUaHJlYWQ").is_ok());
        for forged in ["../me", "a?fields=x", "a/b", "a b", "..", ""] {
            assert!(conversation_id(forged).is_err(), "{forged}");
        }
    }
}
