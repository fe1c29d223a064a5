//! `igloo:plugin/config`: the plugin's own settings from the operator's
//! `[[plugins]]` entry. Every plugin may read its own settings, and only
//! its own.

use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::plugin_api::settings::{self as api, Host};
use crate::plugin_api::{HostView, ViewOf};

/// Reads a plugin's settings; they travel with the plugin's identity.
pub struct Settings;

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    api::add_to_linker::<T, ViewOf<Settings>>(linker, |host| host.view(|_| &Settings))
}

impl Host for HostView<'_, Settings> {
    fn get(&mut self, key: String) -> Option<String> {
        self.run.plugin.settings.get(&key).cloned()
    }
}
