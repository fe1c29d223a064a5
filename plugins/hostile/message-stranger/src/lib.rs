//! Holds `messages:reply` but messages someone other than the sender: the
//! host must answer `denied` and send nothing.

use igloo_plugin_sdk::{Envelope, Error, Message, Outcome, Plugin, PluginError, messaging};

struct MessageStranger;

impl Plugin for MessageStranger {
    fn on_message(_: &Envelope, _: &Message) -> Result<Outcome, PluginError> {
        match messaging::send_text("1000000000000001", "hello, stranger") {
            Err(Error::Denied(rule)) => Err(PluginError::new(format!("denied: {rule}"))),
            other => Err(PluginError::new(format!("expected denied, got {other:?}"))),
        }
    }
}

igloo_plugin_sdk::register_plugin!(MessageStranger);
