//! Test-only plugin: answers the sender of each message, addressing them
//! by the id it was given, and reports everything it saw (the envelope, the
//! message, what the send returned) as its run's error, so a test can
//! check what crossed into the sandbox.

use igloo_plugin_sdk::{Envelope, Message, Outcome, Plugin, PluginError, messaging};

struct Witness;

impl Plugin for Witness {
    fn on_message(envelope: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        let sent = messaging::send_text(&message.sender_id, "answered");
        Err(PluginError::new(format!(
            "saw {envelope:?} {message:?}; sent {sent:?}"
        )))
    }
}

igloo_plugin_sdk::register_plugin!(Witness);
