//! `igloo:plugin/config`: the plugin's own settings from the operator's
//! config. Every plugin may read its own settings, and only its own.

use crate::runtime::InstanceState;
use crate::runtime::config_api::Host;

impl Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.call.plugin.settings.get(&key).cloned())
    }
}
