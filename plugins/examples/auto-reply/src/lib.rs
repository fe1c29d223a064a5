//! Example plugin: answers every text message with the operator's reply.
//!
//! Settings: `reply`, the text to send (a friendly default otherwise);
//! `{text}` in it stands for the message being answered.

use igloo_plugin_sdk::{
    Envelope, Handled, Message, Outcome, Passed, Plugin, PluginError, config, log, messaging,
};

const DEFAULT_REPLY: &str = "Thanks for your message! We'll get back to you soon.";

struct AutoReply;

impl Plugin for AutoReply {
    fn on_message(_envelope: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        // Attachments, stickers and the like carry no text: nothing to answer.
        if message.text.as_deref().is_none_or(str::is_empty) {
            return Ok(Passed);
        }
        let text = message.text.as_deref().unwrap_or_default();
        let reply = config::get("reply")
            .unwrap_or_else(|| DEFAULT_REPLY.to_owned())
            .replace("{text}", text);
        let sent = messaging::send_text(&message.sender_id, &reply)?;
        log::write(
            log::Level::Info,
            &format!("replied to {} with {}", sent.recipient_id, sent.message_id),
        );
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(AutoReply);
