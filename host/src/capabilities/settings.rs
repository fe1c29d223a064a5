//! `igloo:plugin/config`: the plugin's own settings from the operator's
//! `[[plugins]]` entry or installation, an account's overrides first. Every
//! plugin may read its own settings, and only its own.

use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::plugin_api::HostView;
use crate::plugin_api::settings::Host;

/// Reads a plugin's settings; they travel with the plugin's identity.
pub struct Settings;

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    super::link_every_version!(linker, settings, Settings, |_| &Settings)
}

impl Host for HostView<'_, Settings> {
    fn get(&mut self, key: String) -> Option<String> {
        self.run
            .plugin
            .setting(&self.run.event.account_id, &key)
            .cloned()
    }
}
