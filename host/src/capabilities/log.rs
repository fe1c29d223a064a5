//! `igloo:plugin/log`: a plugin's lines in the host's structured log,
//! tagged with the plugin and the event. Every plugin may log; each line is
//! cut and stripped of control characters so it cannot forge another, and
//! written as readable text (see `untrusted::log_text`), in the text log
//! and the JSON log alike.

use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::plugin_api::HostView;
use crate::plugin_api::log::{Host, Level};
use crate::untrusted;

/// Longest line kept; the rest is cut so a plugin cannot flood the log.
const MAX_LINE_BYTES: usize = 4096;

/// Writes plugins' lines to the host's log.
pub struct Log;

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    super::link_every_version!(linker, log, Log, |_| &Log)
}

impl Host for HostView<'_, Log> {
    fn write(&mut self, level: Level, message: String) {
        let line = untrusted::sanitize(&message, MAX_LINE_BYTES);
        let plugin = &self.run.plugin.id;
        let event = &self.run.event.key;
        // A quoted field, never the message: text like `plugin=x outcome=ok`
        // cannot pose as igloo's own fields. Printable Unicode (an emoji,
        // another script) comes out as itself, not as Rust escapes.
        let text = untrusted::log_text(&line);
        match level {
            Level::Debug => tracing::debug!(target: "igloo::plugin", %plugin, %event, %text),
            Level::Info => tracing::info!(target: "igloo::plugin", %plugin, %event, %text),
            Level::Warn => tracing::warn!(target: "igloo::plugin", %plugin, %event, %text),
            Level::Error => tracing::error!(target: "igloo::plugin", %plugin, %event, %text),
        }
    }
}
