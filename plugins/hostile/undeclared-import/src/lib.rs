//! Imports the messaging interface while its manifest declares no
//! capability: it must not load.

use igloo_plugin_sdk::{Envelope, Message, Plugin, PluginError, messaging};

struct UndeclaredImport;

impl Plugin for UndeclaredImport {
    fn on_message(_: &Envelope, message: &Message) -> Result<(), PluginError> {
        messaging::send_text(&message.sender_id, "you should never see this")?;
        Ok(())
    }
}

igloo_plugin_sdk::register_plugin!(UndeclaredImport);
