//! What one plugin instance holds while it handles one event: a locked-down
//! WASI context, the limiter that caps its memory, and the call context
//! host functions check capabilities against.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::plugin::PluginInfo;
use crate::capabilities::{Capability, HostServices};
use crate::events::Event;

/// The store data of one run.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Caps and measures the instance's memory.
    pub limiter: MemoryLimiter,
    /// The event, the plugin and the services host functions act through.
    pub call: CallContext,
}

/// Host functions' view of the run they serve.
pub struct CallContext {
    /// The plugin making the calls.
    pub plugin: Arc<PluginInfo>,
    /// The event being handled.
    pub event: Arc<Event>,
    /// Where effects go.
    pub services: Arc<HostServices>,
    /// Host calls made so far in this run.
    pub host_calls: u32,
}

impl CallContext {
    /// Whether the plugin holds `capability`.
    pub fn granted(&self, capability: Capability) -> bool {
        self.plugin.capabilities.contains(&capability)
    }
}

impl InstanceState {
    /// State for `plugin` handling `event`. The WASI context grants nothing:
    /// no files, no network, no environment, no inherited stdio.
    pub fn new(call: CallContext, max_memory_bytes: usize) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(max_memory_bytes),
            call,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the cap, remembering that it did (so a run
/// that dies of it is reported as a memory failure) and the peak reached.
pub struct MemoryLimiter {
    max_bytes: usize,
    /// Largest linear memory size granted, in bytes.
    pub peak_bytes: usize,
    /// Whether a growth was refused.
    pub refused: bool,
}

impl MemoryLimiter {
    fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            peak_bytes: 0,
            refused: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; 10k entries is far beyond what a
        // plugin needs and bounds what a hostile one can take.
        Ok(desired <= 10_000)
    }
}
