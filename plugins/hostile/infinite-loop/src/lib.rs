//! Spins forever: the epoch deadline or the fuel budget must stop it.

use igloo_plugin_sdk::{Envelope, Message, Outcome, Plugin, PluginError};

struct InfiniteLoop;

impl Plugin for InfiniteLoop {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(message.mid.len() as u64));
        }
    }
}

igloo_plugin_sdk::register_plugin!(InfiniteLoop);
