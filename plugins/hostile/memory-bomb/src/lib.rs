//! Allocates 1 MiB chunks and touches them until the memory cap refuses.

use igloo_plugin_sdk::{Envelope, Message, Outcome, Plugin, PluginError};

struct MemoryBomb;

impl Plugin for MemoryBomb {
    fn on_message(_: &Envelope, _: &Message) -> Result<Outcome, PluginError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xA5; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

igloo_plugin_sdk::register_plugin!(MemoryBomb);
