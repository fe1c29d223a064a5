//! `igloo:plugin/log`: a plugin's lines in the host's structured log,
//! tagged with the plugin and the event. Every plugin may log.

use crate::runtime::InstanceState;
use crate::runtime::log_api::{Host, Level};

/// Longest line kept; the rest is cut so a plugin cannot flood the log.
const MAX_LINE_BYTES: usize = 4096;

impl Host for InstanceState {
    fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.call.charge(&[&message])?;
        let mut end = message.len().min(MAX_LINE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let line = &message[..end];
        let plugin = &self.call.plugin.name;
        let event = &self.call.event.key;
        match level {
            Level::Debug => tracing::debug!(target: "igloo::plugin", %plugin, %event, "{line}"),
            Level::Info => tracing::info!(target: "igloo::plugin", %plugin, %event, "{line}"),
            Level::Warn => tracing::warn!(target: "igloo::plugin", %plugin, %event, "{line}"),
            Level::Error => tracing::error!(target: "igloo::plugin", %plugin, %event, "{line}"),
        }
        Ok(())
    }
}
