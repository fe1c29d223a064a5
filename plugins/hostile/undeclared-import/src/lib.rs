//! Imports the messaging interface while its manifest declares no
//! capability: it must not load.

use igloo_plugin_sdk::{Envelope, Handled, Message, Outcome, Plugin, PluginError, messaging};

struct UndeclaredImport;

impl Plugin for UndeclaredImport {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        messaging::send_text(&message.sender_id, "you should never see this")?;
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(UndeclaredImport);
