//! What one plugin instance holds while it handles one event: a locked-down
//! WASI context, the limiter that caps its memory, and the call context
//! host functions check capabilities against.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::{Limits, SandboxLimiter, Violation};
use super::plugin::PluginInfo;
use crate::capabilities::{Capability, HostServices};
use crate::events::Event;

/// The store data of one run.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Caps and measures the instance's memory, tables and instances.
    pub limiter: SandboxLimiter,
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
    /// The run's limits.
    pub limits: Limits,
    /// Host calls made so far in this run.
    pub host_calls: u32,
}

impl CallContext {
    /// Whether the plugin holds `capability`.
    pub fn granted(&self, capability: Capability) -> bool {
        self.plugin.capabilities.contains(&capability)
    }

    /// Count a host call and check the strings it takes from the plugin.
    /// Every host function calls this first; past a limit the run traps.
    pub fn charge(&mut self, strings: &[&str]) -> wasmtime::Result<()> {
        self.host_calls += 1;
        if self.host_calls > self.limits.max_host_calls {
            return Err(Violation::HostCalls(self.limits.max_host_calls).into());
        }
        let limit = self.limits.max_string_bytes;
        if let Some(size) = strings
            .iter()
            .map(|text| text.len())
            .find(|size| *size > limit)
        {
            return Err(Violation::StringTooLarge { size, limit }.into());
        }
        Ok(())
    }
}

impl InstanceState {
    /// State for one run. The WASI context grants nothing: no files, no
    /// network, no environment, no inherited stdio.
    pub fn new(call: CallContext) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: SandboxLimiter::new(call.limits),
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
