//! The sandbox: plugins compiled once, instantiated fresh for every event
//! under a deadline, a fuel budget, memory, table and host-call limits, with
//! a circuit breaker per plugin and a receipt for every run.

mod bindings;
mod breaker;
mod dispatch;
mod engine;
mod instance;
mod limits;
mod manifest;
mod plugin;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

pub use bindings::{
    HostError, comments as comments_api, config as config_api, kv as kv_api, log as log_api,
    messaging as messaging_api, profiles as profiles_api, public_profiles as public_profiles_api,
    types,
};
pub use breaker::BreakerStatus;
pub use dispatch::Dispatcher;
pub use instance::{CallContext, InstanceState};
pub use limits::{Limits, RequestedLimits, Violation};
pub use manifest::PluginManifest;
pub use plugin::{LoadError, LoadedPlugin, PluginInfo};

use crate::capabilities::HostServices;
use crate::config::Config;
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
    /// The plugin broke a limit at the host boundary (host calls, string size).
    HostLimit(String),
    /// The plugin trapped (panic, unreachable, stack overflow, …).
    Trap(String),
    /// The plugin could not be instantiated.
    Instantiate(String),
    /// The plugin is quarantined; it was not run.
    Quarantined,
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
            RunOutcome::HostLimit(_) => "host-limit",
            RunOutcome::Trap(_) => "trap",
            RunOutcome::Instantiate(_) => "instantiate",
            RunOutcome::Quarantined => "quarantined",
        }
    }

    /// What went wrong, for the operator; empty on success.
    pub fn detail(&self) -> String {
        match self {
            RunOutcome::Ok => String::new(),
            RunOutcome::PluginError(detail)
            | RunOutcome::HostLimit(detail)
            | RunOutcome::Trap(detail)
            | RunOutcome::Instantiate(detail) => detail.clone(),
            RunOutcome::Deadline => "wall-clock deadline exceeded".into(),
            RunOutcome::FuelExhausted => "instruction budget (fuel) exhausted".into(),
            RunOutcome::MemoryExhausted => "memory limit reached".into(),
            RunOutcome::Quarantined => "skipped: the plugin is quarantined".into(),
        }
    }

    /// Whether the run crashed in the sandbox (what the circuit breaker
    /// counts). A plugin's own error is an answer, not a crash.
    pub fn is_crash(&self) -> bool {
        !matches!(
            self,
            RunOutcome::Ok | RunOutcome::PluginError(_) | RunOutcome::Quarantined
        )
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
    /// Of which, instantiating the plugin.
    pub instantiate: Duration,
    /// Fuel (roughly, wasm instructions) consumed.
    pub fuel_used: u64,
    /// Peak linear memory, in bytes.
    pub peak_memory_bytes: usize,
    /// Host functions called.
    pub host_calls: u32,
    /// How it ended.
    pub outcome: RunOutcome,
}

/// A configured plugin that did not load, and why.
#[derive(Debug)]
pub struct FailedPlugin {
    /// The plugin's name or source.
    pub source: String,
    /// Why it did not load.
    pub error: LoadError,
}

/// The loaded plugins and the engine they run on.
pub struct Runtime {
    engine: Engine,
    _ticker: engine::EpochTicker,
    plugins: Vec<LoadedPlugin>,
    failed: Vec<FailedPlugin>,
    services: Arc<HostServices>,
    /// One permit per pooled instance slot: runs wait here instead of
    /// failing when the pool is full.
    slots: Semaphore,
}

impl Runtime {
    /// Build the engine and load every configured plugin. A plugin that
    /// does not load is logged and listed in [`Runtime::failed`]; the
    /// others run.
    pub fn new(config: &Config, services: Arc<HostServices>) -> wasmtime::Result<Self> {
        let engine = engine::new_engine(&config.runtime)?;
        let linker = host_linker(&engine)?;
        let mut plugins = Vec::new();
        let mut failed = Vec::new();
        for plugin_config in &config.plugins {
            match plugin::load(&engine, &linker, plugin_config, &config.runtime) {
                Ok(plugin) => plugins.push(plugin),
                Err(error) => {
                    let source = plugin::source_label(&plugin_config.source);
                    tracing::error!(plugin = %source, %error, "plugin not loaded");
                    failed.push(FailedPlugin { source, error });
                }
            }
        }
        Ok(Self {
            _ticker: engine::EpochTicker::start(&engine),
            slots: Semaphore::new(config.runtime.max_instances as usize),
            engine,
            plugins,
            failed,
            services,
        })
    }

    /// The services host functions act through.
    pub fn services(&self) -> &HostServices {
        &self.services
    }

    /// The loaded plugins, in configured order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// The configured plugins that did not load.
    pub fn failed(&self) -> &[FailedPlugin] {
        &self.failed
    }

    /// The loaded plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|plugin| plugin.info.name == name)
    }

    /// Run `plugin` on `event` in a fresh instance, once its concurrency
    /// and the instance pool allow. Never fails: every way a run can end is
    /// in the receipt.
    pub async fn run(&self, plugin: &LoadedPlugin, event: Arc<Event>) -> RunReceipt {
        let mut receipt = RunReceipt {
            plugin: plugin.info.name.clone(),
            version: plugin.info.version.clone(),
            event_key: event.key.clone(),
            wall: Duration::ZERO,
            instantiate: Duration::ZERO,
            fuel_used: 0,
            peak_memory_bytes: 0,
            host_calls: 0,
            outcome: RunOutcome::Quarantined,
        };
        if !plugin.breaker.allows_run() {
            return receipt;
        }
        let _running = plugin.concurrency.acquire().await.expect("never closed");
        let _slot = self.slots.acquire().await.expect("never closed");
        let limits = plugin.limits;
        let call = CallContext {
            plugin: Arc::clone(&plugin.info),
            event: Arc::clone(&event),
            services: Arc::clone(&self.services),
            limits,
            host_calls: 0,
        };
        let mut store = Store::new(&self.engine, InstanceState::new(call));
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(limits.fuel).expect("fuel is enabled");
        store.set_epoch_deadline(engine::deadline_ticks(limits.deadline));
        store.epoch_deadline_trap();

        let started = Instant::now();
        let guest_event = bindings::GuestEvent::from(event.as_ref());
        let mut instantiate = Duration::ZERO;
        let run = async {
            let instance = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|error| (true, error))?;
            instantiate = started.elapsed();
            instance
                .igloo_plugin_handler()
                .call_handle(&mut store, &guest_event)
                .await
                .map_err(|error| (false, error))
        };
        // The epoch deadline stops guest code; this timeout also bounds time
        // spent waiting inside host calls.
        let grace = limits.deadline / 2 + Duration::from_millis(100);
        let result = tokio::time::timeout(limits.deadline + grace, run).await;
        receipt.wall = started.elapsed();
        receipt.instantiate = instantiate;

        let state = store.data();
        receipt.outcome = match result {
            Err(_elapsed) => RunOutcome::Deadline,
            Ok(Ok(Ok(()))) => RunOutcome::Ok,
            Ok(Ok(Err(plugin_error))) => RunOutcome::PluginError(plugin_error.message),
            Ok(Err((instantiating, error))) => {
                classify_failure(instantiating, &error, state.limiter.memory_refused)
            }
        };
        receipt.peak_memory_bytes = state.limiter.peak_memory_bytes;
        receipt.host_calls = state.call.host_calls;
        receipt.fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let crash = receipt.outcome.is_crash().then(|| receipt.outcome.detail());
        if plugin.breaker.record(crash.as_deref()) {
            tracing::warn!(plugin = %plugin.info.name, reason = ?crash, "plugin quarantined: its runs keep crashing");
        }
        receipt
    }
}

fn classify_failure(
    instantiating: bool,
    error: &wasmtime::Error,
    memory_refused: bool,
) -> RunOutcome {
    if let Some(violation) = error.downcast_ref::<Violation>() {
        return RunOutcome::HostLimit(violation.to_string());
    }
    // The wasm backtrace goes to the debug log; the record keeps the cause.
    tracing::debug!(error = format!("{error:?}"), "plugin run failed");
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => RunOutcome::Deadline,
        Some(Trap::OutOfFuel) => RunOutcome::FuelExhausted,
        // A guest denied memory usually aborts through `unreachable`.
        Some(_) if memory_refused => RunOutcome::MemoryExhausted,
        Some(trap) => RunOutcome::Trap(trap.to_string()),
        None if instantiating => RunOutcome::Instantiate(error.root_cause().to_string()),
        None => RunOutcome::Trap(error.root_cause().to_string()),
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
