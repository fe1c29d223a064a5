//! The sandbox: plugins compiled once, instantiated fresh for every event
//! under a deadline, a fuel budget and a memory cap, and a receipt for
//! every run.

mod bindings;
mod dispatch;
mod engine;
mod instance;
mod manifest;
mod plugin;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

pub use bindings::{
    HostError, config as config_api, log as log_api, messaging as messaging_api, types,
};
pub use dispatch::Dispatcher;
pub use instance::{CallContext, InstanceState};
pub use manifest::PluginManifest;
pub use plugin::{LoadError, LoadedPlugin, PluginInfo};

use crate::capabilities::HostServices;
use crate::config::{Config, RuntimeConfig};
use crate::events::Event;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The plugin handled the event.
    Ok,
    /// The plugin returned an error of its own.
    PluginError(String),
    /// The wall-clock deadline passed.
    Deadline,
    /// The instruction budget ran out.
    FuelExhausted,
    /// The plugin asked for more memory than it may have, and died of it.
    MemoryExhausted,
    /// The plugin trapped (panic, unreachable, stack overflow, …).
    Trap(String),
    /// The plugin could not be instantiated.
    Instantiate(String),
}

impl RunOutcome {
    /// Short, stable label for logs, metrics and the inbox.
    pub fn label(&self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::PluginError(_) => "plugin-error",
            RunOutcome::Deadline => "deadline",
            RunOutcome::FuelExhausted => "fuel",
            RunOutcome::MemoryExhausted => "memory",
            RunOutcome::Trap(_) => "trap",
            RunOutcome::Instantiate(_) => "instantiate",
        }
    }

    /// What went wrong, for the operator; empty on success.
    pub fn detail(&self) -> String {
        match self {
            RunOutcome::Ok => String::new(),
            RunOutcome::PluginError(detail)
            | RunOutcome::Trap(detail)
            | RunOutcome::Instantiate(detail) => detail.clone(),
            RunOutcome::Deadline => "wall-clock deadline exceeded".into(),
            RunOutcome::FuelExhausted => "instruction budget (fuel) exhausted".into(),
            RunOutcome::MemoryExhausted => "memory limit reached".into(),
        }
    }
}

/// The record of one plugin run on one event.
#[derive(Debug, Clone)]
pub struct RunReceipt {
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version.
    pub version: String,
    /// The event's key.
    pub event_key: String,
    /// Wall time from instantiation to return.
    pub wall: Duration,
    /// Fuel (roughly, wasm instructions) consumed.
    pub fuel_used: u64,
    /// Peak linear memory, in bytes.
    pub peak_memory_bytes: usize,
    /// Host functions called.
    pub host_calls: u32,
    /// How it ended.
    pub outcome: RunOutcome,
}

/// The loaded plugins and the engine they run on.
pub struct Runtime {
    engine: Engine,
    _ticker: engine::EpochTicker,
    plugins: Vec<LoadedPlugin>,
    services: Arc<HostServices>,
    limits: RuntimeConfig,
    /// One permit per pooled instance slot: runs wait here instead of
    /// failing when the pool is full.
    slots: Semaphore,
}

impl Runtime {
    /// Build the engine and load every configured plugin.
    pub fn new(config: &Config, services: Arc<HostServices>) -> Result<Self, LoadError> {
        let limits = config.runtime.clone();
        let engine = engine::new_engine(&limits).map_err(|error| LoadError::Component {
            plugin: "(engine)".into(),
            error,
        })?;
        let linker = host_linker(&engine).map_err(|error| LoadError::Component {
            plugin: "(linker)".into(),
            error,
        })?;
        let plugins = config
            .plugins
            .iter()
            .map(|plugin| plugin::load(&engine, &linker, plugin))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            _ticker: engine::EpochTicker::start(&engine),
            slots: Semaphore::new(limits.max_instances as usize),
            engine,
            plugins,
            services,
            limits,
        })
    }

    /// The loaded plugins, in configured order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Run `plugin` on `event` in a fresh instance. Never fails: every way a
    /// run can end is in the receipt.
    pub async fn run(&self, plugin: &LoadedPlugin, event: Arc<Event>) -> RunReceipt {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let call = CallContext {
            plugin: Arc::clone(&plugin.info),
            event: Arc::clone(&event),
            services: Arc::clone(&self.services),
            host_calls: 0,
        };
        let mut store = Store::new(
            &self.engine,
            InstanceState::new(call, self.limits.max_memory_bytes),
        );
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(self.limits.fuel).expect("fuel is enabled");
        let deadline = Duration::from_millis(self.limits.deadline_ms);
        store.set_epoch_deadline(engine::deadline_ticks(deadline));
        store.epoch_deadline_trap();

        let started = Instant::now();
        let guest_event = bindings::GuestEvent::from(event.as_ref());
        // The epoch deadline stops guest code; the timeout also bounds time
        // spent waiting in host calls.
        let run = async {
            let instance = match plugin.pre.instantiate_async(&mut store).await {
                Ok(instance) => instance,
                Err(error) => return Err((true, error)),
            };
            instance
                .igloo_plugin_handler()
                .call_handle(&mut store, &guest_event)
                .await
                .map_err(|error| (false, error))
        };
        let result =
            tokio::time::timeout(deadline + deadline / 2 + Duration::from_millis(100), run).await;
        let wall = started.elapsed();

        let state = store.data();
        let outcome = match result {
            Err(_elapsed) => RunOutcome::Deadline,
            Ok(Ok(Ok(()))) => RunOutcome::Ok,
            Ok(Ok(Err(plugin_error))) => RunOutcome::PluginError(plugin_error.message),
            Ok(Err((instantiating, error))) => {
                classify_failure(instantiating, &error, state.limiter.refused)
            }
        };
        let fuel_used = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data();
        RunReceipt {
            plugin: plugin.info.name.clone(),
            version: plugin.info.version.clone(),
            event_key: event.key.clone(),
            wall,
            fuel_used,
            peak_memory_bytes: state.limiter.peak_bytes,
            host_calls: state.call.host_calls,
            outcome,
        }
    }
}

fn classify_failure(
    instantiating: bool,
    error: &wasmtime::Error,
    memory_refused: bool,
) -> RunOutcome {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => RunOutcome::Deadline,
        Some(Trap::OutOfFuel) => RunOutcome::FuelExhausted,
        // A guest denied memory usually aborts through `unreachable`.
        Some(_) if memory_refused => RunOutcome::MemoryExhausted,
        _ if instantiating => RunOutcome::Instantiate(format!("{error:#}")),
        _ => RunOutcome::Trap(format!("{error:#}")),
    }
}

/// The linker every plugin is pre-linked against: a WASI that grants
/// nothing, and igloo's host interfaces.
fn host_linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::Automation::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    Ok(linker)
}
