//! What one plugin instance holds while it handles one event: a WASI
//! context that reaches nothing on the host, the limiter that caps its
//! memory, the clocks that tell its own time from time spent waiting on
//! Meta, and the call context host functions check capabilities against.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::engine;
use super::limits::{Limits, SandboxLimiter, Violation};
use super::plugin::PluginInfo;
use crate::capabilities::{Capability, HostServices};
use crate::events::Event;

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
    /// The event, the plugin and the services host functions act through.
    pub call: CallContext,
    /// Host calls (igloo's and WASI's) made so far in this run.
    pub host_calls: u32,
    /// When the run started.
    started: Instant,
}

/// Host functions' view of the run they serve.
pub struct CallContext {
    /// The plugin making the calls.
    pub plugin: Arc<PluginInfo>,
    /// The event being handled.
    pub event: Arc<Event>,
    /// When igloo received the event, in milliseconds since the epoch.
    pub received_at_ms: u64,
    /// Where effects go.
    pub services: Arc<HostServices>,
    /// The run's limits.
    pub limits: Limits,
    /// Time spent waiting on Meta, which is not the plugin's to pay for.
    pub upstream: Arc<UpstreamClock>,
}

impl CallContext {
    /// Whether the plugin holds `capability`.
    pub fn granted(&self, capability: Capability) -> bool {
        self.plugin.capabilities.contains(&capability)
    }

    /// Await `call` to Meta (or the third-party provider), counting the
    /// wait as upstream time rather than the plugin's own.
    pub async fn upstream<F: Future>(&self, call: F) -> F::Output {
        let _waiting = self.upstream.start();
        call.await
    }
}

/// Time a run spent waiting on Meta: finished waits plus the one under way.
#[derive(Debug, Default)]
pub struct UpstreamClock {
    state: Mutex<UpstreamState>,
}

#[derive(Debug, Default)]
struct UpstreamState {
    finished: Duration,
    since: Option<Instant>,
}

/// A wait under way; it ends when dropped.
pub struct UpstreamWait<'a>(&'a UpstreamClock);

impl UpstreamClock {
    fn state(&self) -> std::sync::MutexGuard<'_, UpstreamState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Start a wait.
    pub fn start(&self) -> UpstreamWait<'_> {
        self.state().since.get_or_insert_with(Instant::now);
        UpstreamWait(self)
    }

    /// Upstream time so far, including a wait under way.
    pub fn elapsed(&self) -> Duration {
        let state = self.state();
        state.finished + state.since.map_or(Duration::ZERO, |since| since.elapsed())
    }
}

impl Drop for UpstreamWait<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        if let Some(since) = state.since.take() {
            state.finished += since.elapsed();
        }
    }
}

impl InstanceState {
    /// State for one run. The WASI context grants clocks and random only:
    /// no socket of any kind (not even creation), no name lookup, no
    /// preopened directory, no environment or arguments, stdin closed and
    /// stdout and stderr discarded.
    pub fn new(call: CallContext) -> Self {
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
            limiter: SandboxLimiter::new(call.limits),
            call,
            host_calls: 0,
            started: Instant::now(),
        }
    }

    /// The plugin's own time so far: wall time less time waiting on Meta.
    pub fn guest_elapsed(&self) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(self.call.upstream.elapsed())
    }

    /// What left of its deadline the plugin has.
    pub fn deadline_left(&self) -> Duration {
        self.call
            .limits
            .deadline
            .saturating_sub(self.guest_elapsed())
    }
}

/// Wasmtime calls this on every crossing between guest and host. Every
/// host call, igloo's or WASI's, counts against the run's budget, so a loop
/// of WASI calls is bounded like a loop of igloo's. Time a host call spent
/// waiting on Meta is not the plugin's (see [`on_deadline`]); time it spent
/// in WASI (sleeping, say) is.
pub fn on_call(
    mut store: StoreContextMut<'_, InstanceState>,
    hook: CallHook,
) -> wasmtime::Result<()> {
    match hook {
        CallHook::CallingHost => {
            let state = store.data_mut();
            state.host_calls += 1;
            if state.host_calls > state.call.limits.max_host_calls {
                return Err(Violation::HostCalls(state.call.limits.max_host_calls).into());
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
pub const SLICE: Duration = engine::EPOCH_TICK;

/// Wasmtime calls this when the run's epoch deadline passes, at the end of
/// each slice. While the plugin's own time (not counting waits on Meta) is
/// not used up, it yields and runs another slice; otherwise the run ends.
pub fn on_deadline(
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

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_time_counts_finished_waits_and_the_one_under_way() {
        let clock = UpstreamClock::default();
        assert_eq!(clock.elapsed(), Duration::ZERO);
        {
            let _wait = clock.start();
            std::thread::sleep(Duration::from_millis(20));
            assert!(clock.elapsed() >= Duration::from_millis(20), "under way");
        }
        let after_one = clock.elapsed();
        assert!(after_one >= Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(clock.elapsed(), after_one, "no wait, no upstream time");
    }
}
