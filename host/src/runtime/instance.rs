//! What one plugin instance holds while it handles one event: a WASI
//! context that reaches nothing on the host, the limiter that caps its
//! memory, the run's limits and clocks, and the run context and services
//! its host calls are served with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::engine;
use super::limits::{Limits, SandboxLimiter, Violation};
use crate::capabilities::{HostServices, ServesHostCalls};
use crate::plugin_api::RunContext;

/// WASI resources (streams, pollables, …) one instance may hold at once.
const MAX_WASI_RESOURCES: usize = 256;
/// Largest buffer one `wasi:random` call may ask for.
const MAX_RANDOM_BYTES: u64 = 64 * 1024;

/// The store data of one run.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Caps and measures the instance's memory, tables and instances.
    pub limiter: SandboxLimiter,
    /// The run host calls serve: the plugin, the event, the upstream clock.
    pub run: RunContext,
    services: Arc<HostServices>,
    /// The run's limits.
    pub limits: Limits,
    /// Host calls (igloo's and WASI's) made so far in this run: counted
    /// where a call reaches its implementation (see [`on_call`]).
    pub host_calls: u32,
    /// When the run started.
    started: Instant,
}

impl InstanceState {
    /// State for one run. The WASI context grants clocks and random only:
    /// no socket of any kind (not even creation), no name lookup, no
    /// preopened directory, no environment or arguments, stdin closed and
    /// stdout and stderr discarded.
    pub fn new(run: RunContext, services: Arc<HostServices>, limits: Limits) -> Self {
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_WASI_RESOURCES);
        Self {
            wasi,
            table,
            limiter: SandboxLimiter::new(limits),
            run,
            services,
            limits,
            host_calls: 0,
            started: Instant::now(),
        }
    }

    /// The plugin's own time so far: wall time less time waiting on Meta.
    pub fn guest_elapsed(&self) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(self.run.upstream.elapsed())
    }

    /// What left of its deadline the plugin has.
    pub fn deadline_left(&self) -> Duration {
        self.limits.deadline.saturating_sub(self.guest_elapsed())
    }
}

/// Wasmtime calls this on every crossing between guest and host. Every
/// host call, igloo's or WASI's, counts against the run's budget, so a loop
/// of WASI calls is bounded like a loop of igloo's. Time a host call spent
/// waiting on Meta is not the plugin's (see [`on_deadline`]); time it spent
/// in WASI (sleeping, say) is.
///
/// Wasmtime crosses into the host for its own work too (growing memory,
/// yielding at the end of a slice), and this hook cannot tell those from
/// the plugin's calls. So calls are counted where they reach igloo's or
/// WASI's implementation ([`InstanceState::count_host_call`]), and this
/// hook only refuses a crossing once the budget is spent: the call past
/// the budget never acts. (A plugin that made exactly its budget of calls
/// ends at its next crossing of any kind.)
pub(super) fn on_call(
    mut store: StoreContextMut<'_, InstanceState>,
    hook: CallHook,
) -> wasmtime::Result<()> {
    match hook {
        CallHook::CallingHost => {
            let state = store.data_mut();
            if state.host_calls >= state.limits.max_host_calls {
                return Err(Violation::HostCalls(state.limits.max_host_calls).into());
            }
        }
        CallHook::ReturningFromHost => {
            // A host call that used up the plugin's time (a WASI sleep)
            // ends the run here rather than at the next epoch check.
            if store.data().deadline_left().is_zero() {
                return Err(wasmtime::Trap::Interrupt.into());
            }
        }
        CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
    }
    Ok(())
}

/// Guest code runs in slices of this long, then lets the other runs on
/// its thread go, so one busy plugin cannot hold a plugin thread.
pub(super) const SLICE: Duration = engine::EPOCH_TICK;

/// Wasmtime calls this when the run's epoch deadline passes, at the end of
/// each slice. While the plugin's own time (not counting waits on Meta) is
/// not used up, it yields and runs another slice; otherwise the run ends.
pub(super) fn on_deadline(
    store: StoreContextMut<'_, InstanceState>,
) -> wasmtime::Result<wasmtime::UpdateDeadline> {
    let left = store.data().deadline_left();
    if left.is_zero() {
        return Err(wasmtime::Trap::Interrupt.into());
    }
    Ok(wasmtime::UpdateDeadline::Yield(engine::deadline_ticks(
        left.min(SLICE),
    )))
}

impl InstanceState {
    /// One of igloo's or WASI's host functions was called.
    fn count_host_call(&mut self) {
        self.host_calls = self.host_calls.saturating_add(1);
    }
}

impl ServesHostCalls for InstanceState {
    fn run(&self) -> &RunContext {
        &self.run
    }

    fn host_call_made(&mut self) {
        self.count_host_call();
    }

    fn services(&self) -> &HostServices {
        &self.services
    }
}

impl WasiView for InstanceState {
    /// Wasmtime asks for the context once per WASI call.
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.count_host_call();
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
