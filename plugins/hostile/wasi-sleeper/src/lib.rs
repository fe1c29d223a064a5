//! Sleeps 30 seconds through WASI on every message: a `wasi:clocks` poll
//! that blocks in the host, not a guest loop, so neither fuel nor epoch
//! interruption of guest code stops it. The run's deadline must still end
//! it on time, without holding a worker for the full 30 seconds.

use std::time::Duration;

use igloo_plugin_sdk::{Envelope, Handled, Message, Outcome, Plugin, PluginError};

struct WasiSleeper;

impl Plugin for WasiSleeper {
    fn on_message(_: &Envelope, _: &Message) -> Result<Outcome, PluginError> {
        std::thread::sleep(Duration::from_secs(30));
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(WasiSleeper);
