//! Panics: the trap must be recorded and nothing else disturbed.

use igloo_plugin_sdk::{Envelope, Message, Outcome, Plugin, PluginError};

struct Panics;

impl Plugin for Panics {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        panic!("this plugin always panics (message {})", message.mid);
    }
}

igloo_plugin_sdk::register_plugin!(Panics);
