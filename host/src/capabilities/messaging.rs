//! `igloo:plugin/messaging`: direct messages through the Send API.
//!
//! Policy: `messages:send` reaches anyone; `messages:reply` only the person
//! whose event is being handled. Text is checked against Meta's limit
//! before Meta is called.

use super::Capability;
use crate::graph::GraphError;
use crate::runtime::messaging_api::{Host, Sent};
use crate::runtime::{CallContext, HostError, InstanceState};

/// Meta's limit on a text message, in UTF-8 bytes (PLATFORM.md A3).
pub const MAX_TEXT_BYTES: usize = 1000;

/// Check that the plugin may message `recipient_id` from this event.
fn check_recipient(call: &CallContext, recipient_id: &str) -> Result<(), HostError> {
    if call.granted(Capability::MessagesSend) {
        return Ok(());
    }
    if call.granted(Capability::MessagesReply) {
        if call.event.counterpart_id() == Some(recipient_id) {
            return Ok(());
        }
        return Err(HostError::Denied(format!(
            "messages:reply only reaches the person whose event is being handled; \
             {recipient_id} is not them (messages:send would allow it)"
        )));
    }
    Err(HostError::Denied(
        "messaging needs messages:reply or messages:send".into(),
    ))
}

fn check_text(text: &str) -> Result<(), HostError> {
    if text.is_empty() {
        return Err(HostError::Invalid("text is empty".into()));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(HostError::Invalid(format!(
            "text is {} bytes; Meta accepts at most {MAX_TEXT_BYTES}",
            text.len()
        )));
    }
    Ok(())
}

/// The error a plugin sees for a failed Graph call.
pub(super) fn guest_error(error: GraphError) -> HostError {
    match error {
        GraphError::RateLimited { retry_after_ms } => HostError::RateLimited(retry_after_ms),
        GraphError::WindowClosed(_) => HostError::WindowClosed,
        GraphError::ConsentRequired(_) => HostError::ConsentRequired,
        GraphError::NotFound(_) => HostError::NotFound,
        GraphError::Transient(message) => HostError::Transient(message),
        GraphError::Invalid(message) => HostError::Invalid(message),
        GraphError::RecipientUnavailable(message) | GraphError::PermissionDenied(message) => {
            HostError::Rejected(message)
        }
        // Token trouble is the operator's to fix; the plugin learns only
        // that the call was refused, never anything about the token.
        GraphError::TokenInvalid(_) | GraphError::NoToken(_) => {
            HostError::Rejected("the account's access token is missing or invalid".into())
        }
    }
}

impl Host for InstanceState {
    async fn send_text(
        &mut self,
        recipient_id: String,
        text: String,
    ) -> wasmtime::Result<Result<Sent, HostError>> {
        self.call.charge(&[&recipient_id, &text])?;
        if let Err(error) =
            check_recipient(&self.call, &recipient_id).and_then(|()| check_text(&text))
        {
            return Ok(Err(error));
        }
        let account_id = self.call.event.account_id.clone();
        let result = self
            .call
            .services
            .graph
            .send_text(&account_id, &recipient_id, &text)
            .await;
        Ok(result
            .map(|sent| Sent {
                recipient_id: sent.recipient_id,
                message_id: sent.message_id,
            })
            .map_err(guest_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_over_1000_bytes_is_invalid_counting_bytes_not_chars() {
        assert!(check_text(&"a".repeat(1000)).is_ok());
        assert!(matches!(
            check_text(&"a".repeat(1001)),
            Err(HostError::Invalid(_))
        ));
        // 334 three-byte characters: 1002 bytes.
        assert!(matches!(
            check_text(&"€".repeat(334)),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(check_text(""), Err(HostError::Invalid(_))));
    }
}
