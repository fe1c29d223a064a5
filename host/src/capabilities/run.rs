//! `igloo:plugin/run`: what a plugin may say about how its run ends. Every
//! plugin may ask for a retry should it fail; the retry schedule, not the
//! plugin, decides when and how often (see `dispatch::retry`).

use std::sync::atomic::Ordering;

use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::plugin_api::HostView;
use crate::plugin_api::run::Host;

/// Marks runs whose failure the plugin says is passing.
pub struct Run;

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    super::link_every_version!(linker, run, Run, |_| &Run)
}

impl Host for HostView<'_, Run> {
    fn retry_on_failure(&mut self) {
        self.run.retry_requested.store(true, Ordering::Relaxed);
    }
}
