//! Hands the host a 4 MiB string: the boundary's size limit must refuse it.

use igloo_plugin_sdk::{Envelope, Handled, Message, Outcome, Plugin, PluginError, log};

struct GiantStrings;

impl Plugin for GiantStrings {
    fn on_message(_: &Envelope, _: &Message) -> Result<Outcome, PluginError> {
        let giant = "x".repeat(4 << 20);
        log::write(log::Level::Info, &giant);
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(GiantStrings);
