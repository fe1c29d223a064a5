//! The wasmtime engine every plugin shares: component model, async host
//! calls, the pooling allocator, fuel and epoch interruption.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeConfig;

/// How often the epoch advances; deadlines are counted in these ticks.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances, memories and tables a plugin component may hold: a
/// wasip2 component from Rust has a handful of each (the module, the WASI
/// adapter and shims).
pub(super) const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
pub(super) const MEMORIES_PER_COMPONENT: u32 = 2;
pub(super) const TABLES_PER_COMPONENT: u32 = 4;

/// Pages left mapped between instances so reuse skips page faults; 64 KiB
/// measured fastest on this machine (DESIGN.md).
const KEEP_RESIDENT: usize = 64 * 1024;

/// Build the engine for `limits`.
pub(super) fn new_engine(limits: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let instances = limits.max_instances;
    pool.total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances * MEMORIES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_tables(instances * TABLES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .total_stacks(instances)
        .max_memory_size(limits.max_memory_bytes)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .consume_fuel(true)
        .epoch_interruption(true);
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on its own thread, so
/// that a plugin stuck in a loop hits its deadline. Stops when dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Start ticking `engine`.
    pub(super) fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("igloo-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Epoch ticks in a deadline, at least one.
pub(super) fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}
