//! `igloo:plugin/run`: what a plugin may say about how its run ends. Every
//! plugin may ask for a retry should it fail; the retry schedule, not the
//! plugin, decides when and how often (see `dispatch::retry`).

use std::sync::atomic::Ordering;

use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::plugin_api::run::{self as api, Host};
use crate::plugin_api::{HostView, ViewOf};

/// Marks runs whose failure the plugin says is passing.
pub struct Run;

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    api::add_to_linker::<T, ViewOf<Run>>(linker, |host| host.view(|_| &Run))
}

impl Host for HostView<'_, Run> {
    fn retry_on_failure(&mut self) {
        self.run.retry_requested.store(true, Ordering::Relaxed);
    }
}
