//! Calls the host in a tight loop: the host-call budget must stop it.

use igloo_plugin_sdk::{Envelope, Message, Outcome, Plugin, PluginError, config};

struct HostCallFlood;

impl Plugin for HostCallFlood {
    fn on_message(_: &Envelope, _: &Message) -> Result<Outcome, PluginError> {
        loop {
            std::hint::black_box(config::get("anything"));
        }
    }
}

igloo_plugin_sdk::register_plugin!(HostCallFlood);
