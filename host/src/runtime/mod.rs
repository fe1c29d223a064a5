//! The sandbox: plugins compiled once, instantiated fresh for every event
//! under a deadline, a fuel budget, memory, table and host-call limits, with
//! a circuit breaker per plugin and a receipt for every run. Host calls are
//! answered by [`crate::capabilities`], linked in once for every plugin.

mod breaker;
mod engine;
mod instance;
mod limits;
mod manifest;
mod plugin;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{Notify, Semaphore};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, Trap};

pub use breaker::BreakerStatus;
pub use instance::InstanceState;
pub use limits::{Limits, RequestedLimits, Violation};
pub use manifest::{ManifestError, PluginManifest};
pub(crate) use plugin::describe;
pub use plugin::{LoadError, LoadedPlugin, PluginCode, Provenance};

use crate::capabilities::{CapabilityConfigs, HostServices};
use crate::config::{Config, PluginConfig};
use crate::events::{Event, Subscriptions};
use crate::graph::GraphClient;
use crate::journal::{JournalStop, RunJournal};
use crate::plugin_api::{
    GuestEvent, GuestPre, Outcome, PluginInfo, RunContext, ShapeCheck, UpstreamClock,
};
use crate::untrusted;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The plugin handled the event.
    Ok,
    /// The plugin looked at the event and passed: it was not for it (in an
    /// exclusive group, the next plugin gets its turn).
    Passed,
    /// The plugin returned an error of its own (sanitised and bounded).
    PluginError(String),
    /// The plugin gave up (returned its error) after igloo refused one of
    /// its calls by rule: the person opted out, a human has the
    /// conversation, or the messaging window is closed. Nothing to retry
    /// and nothing for an operator to fix: settled, not a dead letter.
    Declined(String),
    /// The plugin's own time (not counting waits on Meta) ran out.
    Deadline,
    /// The instruction budget ran out.
    FuelExhausted,
    /// The plugin asked for more memory than it may have, and died of it.
    MemoryExhausted,
    /// The plugin broke a limit at the host boundary (host calls, bytes).
    HostLimit(Violation),
    /// The plugin trapped (panic, unreachable, stack overflow, …).
    Trap(String),
    /// The plugin could not be instantiated.
    Instantiate(String),
    /// The run waited on Meta longer than `runtime.max_upstream_wait_ms`:
    /// not the plugin's fault, so not a crash.
    UpstreamTimeout,
    /// The plugin is quarantined; it was not run, and the event stays
    /// pending for it until it comes back.
    Quarantined,
    /// The operator holds the installation back (paused, its bundle
    /// revoked, being removed): it was not run, and the event waits for it.
    Held(String),
    /// Meta refused the account's token in the middle of the run: the run
    /// does not count, and the event stays pending until a new token comes.
    WaitingForToken,
    /// The journal stopped the run: the plugin diverged from what it did
    /// before, a call's effect is unknown, or the journal was unavailable.
    Journal(JournalStop),
}

impl RunOutcome {
    /// Short, stable label for logs, metrics and the inbox.
    pub fn label(&self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::Passed => "passed",
            RunOutcome::PluginError(_) => "plugin-error",
            RunOutcome::Declined(_) => "declined",
            RunOutcome::Deadline => "deadline",
            RunOutcome::FuelExhausted => "fuel",
            RunOutcome::MemoryExhausted => "memory",
            RunOutcome::HostLimit(_) => "host-limit",
            RunOutcome::Trap(_) => "trap",
            RunOutcome::Instantiate(_) => "instantiate",
            RunOutcome::UpstreamTimeout => "upstream-timeout",
            RunOutcome::Quarantined => "quarantined",
            RunOutcome::Held(_) => "held",
            RunOutcome::WaitingForToken => "token-invalid",
            RunOutcome::Journal(JournalStop::Diverged { .. }) => "diverged",
            RunOutcome::Journal(JournalStop::Unknown { .. }) => "unknown-effect",
            RunOutcome::Journal(JournalStop::CutShort { .. }) => "cut-short",
            RunOutcome::Journal(JournalStop::LookupFailed { .. }) => "lookup-failed",
            RunOutcome::Journal(JournalStop::Unavailable(_)) => "journal-unavailable",
        }
    }

    /// What went wrong, for the operator; empty on success.
    pub fn detail(&self) -> String {
        match self {
            RunOutcome::Ok | RunOutcome::Passed => String::new(),
            RunOutcome::HostLimit(violation) => violation.to_string(),
            RunOutcome::PluginError(detail)
            | RunOutcome::Declined(detail)
            | RunOutcome::Trap(detail)
            | RunOutcome::Instantiate(detail) => detail.clone(),
            RunOutcome::Held(reason) => format!("deferred: {reason}"),
            RunOutcome::Deadline => "wall-clock deadline exceeded".into(),
            RunOutcome::FuelExhausted => "instruction budget (fuel) exhausted".into(),
            RunOutcome::MemoryExhausted => "memory limit reached".into(),
            RunOutcome::UpstreamTimeout => "waited on Meta longer than allowed".into(),
            RunOutcome::Quarantined => "deferred: the plugin is quarantined".into(),
            RunOutcome::WaitingForToken => crate::accounts::WaitForToken.to_string(),
            RunOutcome::Journal(stop) => stop.to_string(),
        }
    }

    /// Whether the run crashed in the sandbox (what the circuit breaker
    /// counts). A plugin's own error is an answer, not a crash; a slow Meta
    /// or an effect nobody can see is nobody's crash. Nor is diverging from
    /// the journal: a plugin that reads state it wrote in a failed attempt
    /// may legitimately ask for something else; it is a dead letter, and
    /// must not quarantine the plugin for everyone.
    pub fn is_crash(&self) -> bool {
        !matches!(
            self,
            RunOutcome::Ok
                | RunOutcome::Passed
                | RunOutcome::PluginError(_)
                | RunOutcome::Declined(_)
                | RunOutcome::UpstreamTimeout
                | RunOutcome::Quarantined
                | RunOutcome::Held(_)
                | RunOutcome::WaitingForToken
                | RunOutcome::Journal(_)
        )
    }

    /// Whether the event still waits for this plugin (it did not run, or
    /// its run does not count).
    pub fn is_deferred(&self) -> bool {
        matches!(
            self,
            RunOutcome::Quarantined | RunOutcome::Held(_) | RunOutcome::WaitingForToken
        )
    }
}

/// The record of one plugin run on one event.
#[derive(Debug, Clone)]
pub struct RunReceipt {
    /// The plugin's operator-given id.
    pub plugin: String,
    /// The plugin's version.
    pub version: String,
    /// The event's key.
    pub event_key: String,
    /// Wall time from instantiation to return.
    pub wall: Duration,
    /// Of which, instantiating the plugin.
    pub instantiate: Duration,
    /// Of which, waiting on Meta.
    pub upstream: Duration,
    /// Fuel (roughly, wasm instructions) consumed.
    pub fuel_used: u64,
    /// Peak linear memory, in bytes.
    pub peak_memory_bytes: usize,
    /// Host functions called, igloo's and WASI's.
    pub host_calls: u32,
    /// Of which, calls that failed for a passing reason (see
    /// [`RunContext::transient_failures`]).
    pub transient_failures: u32,
    /// Whether the plugin asked for a retry should it fail.
    pub retry_requested: bool,
    /// How it ended.
    pub outcome: RunOutcome,
}

impl RunReceipt {
    /// The receipt of a run that has not started (yet): nothing measured,
    /// ending as `outcome` unless it runs.
    pub fn before_running(
        plugin: &str,
        version: &str,
        event_key: &str,
        outcome: RunOutcome,
    ) -> Self {
        Self {
            plugin: plugin.to_owned(),
            version: version.to_owned(),
            event_key: event_key.to_owned(),
            wall: Duration::ZERO,
            instantiate: Duration::ZERO,
            upstream: Duration::ZERO,
            fuel_used: 0,
            peak_memory_bytes: 0,
            host_calls: 0,
            transient_failures: 0,
            retry_requested: false,
            outcome,
        }
    }
}

/// A configured plugin that did not load, and why.
#[derive(Debug)]
pub struct FailedPlugin {
    /// The plugin's configured id.
    pub id: String,
    /// Why it did not load.
    pub error: LoadError,
    /// What it is, when its events wait for it rather than go on without
    /// it: an installation held back by the trust store (a revoked or
    /// untrusted bundle) fails closed.
    pub waits: Option<Arc<PluginInfo>>,
}

/// What a sandboxed run did.
#[derive(Debug)]
pub struct SandboxRun {
    /// How it ended.
    pub receipt: RunReceipt,
    /// The calls to Meta it made, recorded instead of sent.
    pub calls: Vec<crate::graph::RecordedCall>,
}

/// The plugins loaded now and those that did not load, and what they
/// subscribe to: one snapshot, replaced whole when an installation changes,
/// so a reader (a dispatcher's plan, a webhook's split) sees one set.
#[derive(Default)]
pub struct PluginSet {
    loaded: Vec<Arc<LoadedPlugin>>,
    failed: Vec<Arc<FailedPlugin>>,
    subscriptions: Arc<Subscriptions>,
}

impl PluginSet {
    fn new(loaded: Vec<Arc<LoadedPlugin>>, failed: Vec<Arc<FailedPlugin>>) -> Self {
        let plugins = loaded.iter().map(|plugin| plugin.info.subscription.clone());
        let subscriptions = Subscriptions::new(plugins.chain([HostServices::observed_events()]));
        Self {
            loaded,
            failed,
            subscriptions: Arc::new(subscriptions),
        }
    }

    /// The installations that did not load, and why.
    pub fn failed(&self) -> &[Arc<FailedPlugin>] {
        &self.failed
    }

    /// Installations whose events wait for them though they did not load.
    pub fn waiting(&self) -> impl Iterator<Item = &Arc<PluginInfo>> {
        self.failed
            .iter()
            .filter_map(|failed| failed.waits.as_ref())
    }
}

impl std::ops::Deref for PluginSet {
    type Target = [Arc<LoadedPlugin>];
    fn deref(&self) -> &Self::Target {
        &self.loaded
    }
}

/// The loaded plugins and the engine they run on.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InstanceState>,
    limits: crate::config::RuntimeConfig,
    _ticker: engine::EpochTicker,
    plugins: std::sync::RwLock<Arc<PluginSet>>,
    services: Arc<HostServices>,
    /// One permit per pooled instance slot: runs wait here instead of
    /// failing when the pool is full.
    slots: Semaphore,
    /// Most time a run may wait on Meta.
    max_upstream_wait: Duration,
    /// Woken when an operator resumes a plugin or replays events, so the
    /// dispatcher looks at every pending event again.
    operator_acted: Notify,
    /// One sandboxed replay at a time: each copies the host's state.
    sandbox: Semaphore,
    /// Per installation id, one permit held by each of its runs, whatever
    /// version it runs: a removal waits for them all (see
    /// [`Runtime::runs_ended`]).
    gates: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
}

/// Permits of an installation's gate: more than runs can be in flight.
const GATE_PERMITS: u32 = 1 << 20;

impl Runtime {
    /// Open the host's services and build the engine, with no plugin
    /// loaded yet (see [`Runtime::load`] and [`Runtime::put`]).
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        let services = Arc::new(open_services(config)?);
        let engine = engine::new_engine(&config.runtime)
            .map_err(anyhow::Error::from)
            .context("building the wasm engine")?;
        let linker = host_linker(&engine)
            .map_err(anyhow::Error::from)
            .context("linking the host interfaces")?;
        Ok(Self {
            _ticker: engine::EpochTicker::start(&engine),
            slots: Semaphore::new(config.runtime.max_instances as usize),
            max_upstream_wait: Duration::from_millis(config.runtime.max_upstream_wait_ms),
            operator_acted: Notify::new(),
            sandbox: Semaphore::new(1),
            gates: Default::default(),
            limits: config.runtime.clone(),
            plugins: std::sync::RwLock::new(Arc::new(PluginSet::new(Vec::new(), Vec::new()))),
            engine,
            linker,
            services,
        })
    }

    /// Compile `code` as the plugin `config` describes, off the calling
    /// thread (compiling takes a while), and prove its shape. Nothing is
    /// changed: [`Runtime::put`] makes it live.
    pub async fn load(
        &self,
        config: &PluginConfig,
        code: PluginCode,
    ) -> Result<LoadedPlugin, LoadError> {
        let (engine, linker) = (self.engine.clone(), self.linker.clone());
        let (config, limits) = (config.clone(), self.limits.clone());
        let unproven = tokio::task::spawn_blocking(move || {
            plugin::load(&engine, &linker, &config, &limits, code)
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))?;
        unproven.prove(self).await
    }

    /// Make `plugin` live in place of any of its id: new events go to it;
    /// runs under way finish on the one they started with.
    pub fn put(&self, plugin: LoadedPlugin) -> Arc<LoadedPlugin> {
        let plugin = Arc::new(plugin);
        let id = plugin.info.id.clone();
        self.replace(&id, |loaded, _| {
            match loaded.iter_mut().find(|old| old.info.id == id) {
                Some(old) => *old = Arc::clone(&plugin),
                None => loaded.push(Arc::clone(&plugin)),
            }
        });
        self.operator_acted.notify_one();
        plugin
    }

    /// Record that the installation `id` did not load, in place of any
    /// plugin of its id; its events wait for it if it `waits`.
    pub fn put_failed(&self, id: &str, error: LoadError, waits: Option<PluginInfo>) {
        let failed = Arc::new(FailedPlugin {
            id: id.to_owned(),
            error,
            waits: waits.map(Arc::new),
        });
        self.replace(id, |loaded, failures| {
            loaded.retain(|plugin| plugin.info.id != id);
            failures.push(failed);
        });
    }

    /// Take the plugin `id` out: new events no longer go to it. Returns it
    /// (its runs under way finish).
    pub fn take_out(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        let taken = self.plugin(id);
        self.replace(id, |loaded, _| loaded.retain(|plugin| plugin.info.id != id));
        self.operator_acted.notify_one();
        taken
    }

    /// The gate every run of installation `id` passes.
    fn gate(&self, id: &str) -> Arc<Semaphore> {
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        Arc::clone(
            gates
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(GATE_PERMITS as usize))),
        )
    }

    /// Resolves once no run of installation `id`, of any version, is under
    /// way; those that start later find it held (the caller holds it back
    /// first) and do not run.
    pub async fn runs_ended(&self, id: &str) {
        let gate = self.gate(id);
        let _all = gate.acquire_many(GATE_PERMITS).await.expect("never closed");
    }

    /// Whether `id` is installed: loaded, or failed with its events
    /// waiting for it.
    pub fn installed(&self, id: &str) -> bool {
        let plugins = self.plugins();
        plugins.iter().any(|plugin| plugin.info.id == id)
            || plugins.waiting().any(|info| info.id == id)
    }

    /// Swap in a new set: `id`'s failure forgotten, then `change` applied.
    fn replace(
        &self,
        id: &str,
        change: impl FnOnce(&mut Vec<Arc<LoadedPlugin>>, &mut Vec<Arc<FailedPlugin>>),
    ) {
        let mut current = self
            .plugins
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut loaded = current.loaded.clone();
        let mut failed: Vec<_> = current
            .failed
            .iter()
            .filter(|failed| failed.id != id)
            .cloned()
            .collect();
        change(&mut loaded, &mut failed);
        *current = Arc::new(PluginSet::new(loaded, failed));
    }

    /// Whether `shape` fits the component: it is instantiated once, under
    /// the plugin's limits but with no host call allowed (nothing it does
    /// while instantiating can act), on an event of no account, and its
    /// exports are checked against the shape.
    async fn fits(
        &self,
        shape: &GuestPre<InstanceState>,
        plugin: Arc<PluginInfo>,
        limits: Limits,
    ) -> Result<(), plugin::Misfit> {
        let event = Arc::new(Event {
            key: "igloo:load-check".into(),
            account_id: String::new(),
            timestamp_ms: 0,
            is_echo: false,
            is_self: false,
            is_standby: false,
            kind: crate::events::EventKind::Unknown(crate::events::Unknown {
                field: String::new(),
                raw_json: "{}".into(),
            }),
        });
        let journal = RunJournal::fresh(
            Arc::new(crate::journal::MemoryJournal::default()),
            crate::journal::RunKey {
                seq: 0,
                plugin: plugin.id.clone(),
            },
        );
        let trial_limits = Limits {
            max_host_calls: 0,
            ..limits
        };
        let (mut store, upstream) =
            self.store(&self.services, plugin, event, 0, journal, trial_limits);
        let started = Instant::now();
        let checking = shape.check_shape(&mut store);
        let failed = |error: &wasmtime::Error, store: &Store<InstanceState>| {
            let refused = store.data().limiter.memory_refused;
            classify_failure(true, error, refused, &trial_limits).detail()
        };
        match self
            .bounded(checking, started, limits.deadline, &upstream)
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(ShapeCheck::Types(error))) => Err(plugin::Misfit::Types(failed(&error, &store))),
            Ok(Err(ShapeCheck::Instantiate(error))) => {
                Err(plugin::Misfit::Unchecked(failed(&error, &store)))
            }
            Err(outcome) => Err(plugin::Misfit::Unchecked(outcome.detail())),
        }
    }

    /// The services host functions act through.
    pub fn services(&self) -> &Arc<HostServices> {
        &self.services
    }

    /// Every subscription: each loaded plugin's, and the host's own.
    pub fn subscriptions(&self) -> Arc<Subscriptions> {
        Arc::clone(&self.plugins().subscriptions)
    }

    /// The webhook fields `account_id` must deliver for its plugins: those
    /// of the events they subscribe to, and `messages` wherever a plugin
    /// may message people (the window and opt-out keywords come in it).
    pub fn webhook_fields(&self, account_id: &str) -> std::collections::BTreeSet<&'static str> {
        use crate::plugin_api::Capability;
        let mut fields = std::collections::BTreeSet::new();
        for plugin in self.plugins().iter() {
            let wanted = plugin.info.subscription.webhook_fields(account_id);
            let messages_people = [Capability::MessagesReply, Capability::MessagesSend]
                .iter()
                .any(|capability| plugin.info.capabilities.contains(capability));
            if messages_people && plugin.info.subscription.accounts.contains(account_id) {
                fields.insert("messages");
            }
            fields.extend(wanted);
        }
        fields
    }

    /// Note what `event` means for later host calls (windows, answerable
    /// comments), before any plugin runs on it.
    pub async fn observe(
        &self,
        event: &Event,
        received_at_ms: u64,
    ) -> Result<(), crate::state::StateError> {
        self.services.observe(event, received_at_ms).await
    }

    /// The plugins loaded now, in the order they were installed.
    pub fn plugins(&self) -> Arc<PluginSet> {
        Arc::clone(
            &self
                .plugins
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// The installations that did not load.
    pub fn failed(&self) -> Vec<Arc<FailedPlugin>> {
        self.plugins().failed.clone()
    }

    /// The loaded plugin with the operator-given `id`.
    pub fn plugin(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins()
            .iter()
            .find(|plugin| plugin.info.id == id)
            .cloned()
    }

    /// Lift a plugin's quarantine now; its deferred events run next.
    /// False if no plugin has that id.
    pub fn resume(&self, id: &str) -> bool {
        let Some(plugin) = self.plugin(id) else {
            return false;
        };
        plugin.breaker.reset();
        self.operator_acted.notify_one();
        true
    }

    /// Have the dispatcher look at every pending event again: an operator
    /// made some pending (a replay).
    pub fn rescan(&self) {
        self.operator_acted.notify_one();
    }

    /// Resolves when an operator has resumed a plugin or replayed events.
    pub async fn operator_acted(&self) {
        self.operator_acted.notified().await;
    }

    /// Run `plugin` on `event` in a fresh instance, once its concurrency
    /// and the instance pool allow, its calls with effects going through
    /// `journal`. Never fails: every way a run can end is in the receipt.
    pub async fn run(
        &self,
        plugin: &LoadedPlugin,
        event: Arc<Event>,
        received_at_ms: u64,
        journal: RunJournal,
    ) -> RunReceipt {
        let receipt = |outcome| {
            RunReceipt::before_running(&plugin.info.id, &plugin.info.version, &event.key, outcome)
        };
        if let Some(reason) = plugin.held() {
            return receipt(RunOutcome::Held(reason));
        }
        if !plugin.breaker.accepts_runs() {
            return receipt(RunOutcome::Quarantined);
        }
        let gate = self.gate(&plugin.info.id);
        let _passing = gate.acquire().await.expect("never closed");
        let _running = plugin.concurrency.acquire().await.expect("never closed");
        let _slot = self.slots.acquire().await.expect("never closed");
        // Held, or the breaker opened, while this run waited for its slot.
        if let Some(reason) = plugin.held() {
            return receipt(RunOutcome::Held(reason));
        }
        let Some(admission) = plugin.breaker.admit() else {
            return receipt(RunOutcome::Quarantined);
        };
        let receipt = receipt(RunOutcome::Quarantined);
        let receipt = self
            .execute(
                &self.services,
                plugin,
                event,
                received_at_ms,
                journal,
                receipt,
            )
            .await;
        if receipt.outcome.is_deferred() {
            plugin.breaker.release(admission);
            return receipt;
        }
        let crash = receipt.outcome.is_crash().then(|| receipt.outcome.detail());
        if plugin.breaker.record(admission, crash.as_deref()) {
            tracing::warn!(plugin = %plugin.info.id, reason = ?crash, "plugin quarantined: its runs keep crashing");
        }
        receipt
    }

    /// Run `plugins` on `event` in the sandbox, one after another: each in
    /// a fresh instance with its usual limits, every call to Meta recorded
    /// instead of sent, and the host's state one copy in `scratch`, taken
    /// once (the plugins read what they would read live; what they write
    /// goes nowhere). Nothing is recorded in the inbox, and no plugin's
    /// circuit breaker gates or counts these runs: an operator tries a fix
    /// on a dead letter before replaying it live.
    pub async fn sandbox_runs(
        &self,
        plugins: &[Arc<LoadedPlugin>],
        event: Arc<Event>,
        received_at_ms: u64,
        scratch: &std::path::Path,
    ) -> anyhow::Result<Vec<SandboxRun>> {
        let _one_at_a_time = self.sandbox.acquire().await.expect("never closed");
        let services = Arc::new(self.services.sandboxed(scratch).await?);
        let mut runs = Vec::with_capacity(plugins.len());
        for plugin in plugins {
            let journal = RunJournal::fresh(
                Arc::new(crate::journal::MemoryJournal::default()),
                crate::journal::RunKey {
                    seq: 0,
                    plugin: plugin.info.id.clone(),
                },
            );
            let receipt = RunReceipt::before_running(
                &plugin.info.id,
                &plugin.info.version,
                &event.key,
                RunOutcome::Ok,
            );
            // The record is shared by the runs: each takes the calls after
            // the last one before it.
            let last_before = services
                .recorded_calls()
                .unwrap_or_default()
                .last()
                .map_or(0, |call| call.number);
            let _running = plugin.concurrency.acquire().await.expect("never closed");
            let _slot = self.slots.acquire().await.expect("never closed");
            let receipt = self
                .execute(
                    &services,
                    plugin,
                    Arc::clone(&event),
                    received_at_ms,
                    journal,
                    receipt,
                )
                .await;
            let mut calls = services.recorded_calls().unwrap_or_default();
            calls.retain(|call| call.number > last_before);
            runs.push(SandboxRun { receipt, calls });
        }
        Ok(runs)
    }

    /// Run `plugin` on `event` in a fresh instance, with `services`; fill
    /// in `receipt`.
    async fn execute(
        &self,
        services: &Arc<HostServices>,
        plugin: &LoadedPlugin,
        event: Arc<Event>,
        received_at_ms: u64,
        journal: RunJournal,
        mut receipt: RunReceipt,
    ) -> RunReceipt {
        let limits = plugin.limits;
        // What crosses into the sandbox: people disguised, for a plugin
        // that is to see pseudonyms.
        let guest_event = match &plugin.info.pseudonyms {
            Some(pseudonyms) => GuestEvent::from(&pseudonyms.disguise(&event)),
            None => GuestEvent::from(event.as_ref()),
        };
        let (mut store, upstream) = self.store(
            services,
            Arc::clone(&plugin.info),
            event,
            received_at_ms,
            journal,
            limits,
        );
        let started = Instant::now();
        let mut instantiate = Duration::ZERO;
        let run = async {
            let instance = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|error| (true, error))?;
            instantiate = started.elapsed();
            instance
                .handle(&mut store, &guest_event)
                .await
                .map_err(|error| (false, error))
        };
        let result = self.bounded(run, started, limits.deadline, &upstream).await;
        receipt.wall = started.elapsed();
        receipt.instantiate = instantiate;
        receipt.upstream = upstream.elapsed();

        let state = store.data();
        let returned_retryable = matches!(&result, Ok(Ok(Err(error))) if error.retry);
        let transient_failures = state.run.transient_failures.load(Ordering::Relaxed);
        let retry_requested =
            returned_retryable || state.run.retry_requested.load(Ordering::Relaxed);
        // Its last error was a refusal by rule, and nothing passing went
        // wrong: the plugin declined, it did not fail.
        let declined = state.run.last_error_by_rule.load(Ordering::Relaxed)
            && transient_failures == 0
            && !retry_requested;
        receipt.outcome = match result {
            Err(outcome) => outcome,
            Ok(Ok(Ok(Outcome::Handled))) => RunOutcome::Ok,
            // A plugin that sent something answered the event: it cannot
            // pass it on to the next of its exclusive group as well.
            Ok(Ok(Ok(Outcome::Passed))) if state.run.journal.acted() => RunOutcome::Ok,
            Ok(Ok(Ok(Outcome::Passed))) => RunOutcome::Passed,
            Ok(Ok(Err(plugin_error))) => {
                let message =
                    untrusted::sanitize(&plugin_error.message, untrusted::MAX_RECORDED_BYTES);
                if declined {
                    RunOutcome::Declined(message)
                } else {
                    RunOutcome::PluginError(message)
                }
            }
            Ok(Err((instantiating, error))) => {
                classify_failure(instantiating, &error, state.limiter.memory_refused, &limits)
            }
        };
        receipt.peak_memory_bytes = state.limiter.peak_memory_bytes;
        receipt.host_calls = state.host_calls;
        receipt.transient_failures = transient_failures;
        receipt.retry_requested = retry_requested;
        receipt.fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        receipt
    }

    /// A store for one run of `plugin` on `event`, under `limits`, its
    /// host calls served by `services` and its effects journaled in
    /// `journal`; and the clock of its waits on Meta.
    fn store(
        &self,
        services: &Arc<HostServices>,
        plugin: Arc<PluginInfo>,
        event: Arc<Event>,
        received_at_ms: u64,
        mut journal: RunJournal,
        limits: Limits,
    ) -> (Store<InstanceState>, Arc<UpstreamClock>) {
        let upstream = Arc::new(UpstreamClock::default());
        journal.count_waits_on(Arc::clone(&upstream));
        let run = RunContext {
            plugin,
            event,
            received_at_ms,
            upstream: Arc::clone(&upstream),
            journal,
            transient_failures: AtomicU32::new(0),
            retry_requested: AtomicBool::new(false),
            last_error_by_rule: AtomicBool::new(false),
        };
        let state = InstanceState::new(run, Arc::clone(services), limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.call_hook(instance::on_call);
        // No single host call copies more from the guest than this.
        store.set_hostcall_fuel(limits.max_string_bytes);
        store.set_fuel(limits.fuel).expect("fuel is enabled");
        store.set_epoch_deadline(engine::deadline_ticks(limits.deadline.min(instance::SLICE)));
        store.epoch_deadline_callback(instance::on_deadline);
        (store, upstream)
    }

    /// Drive `run` while the plugin has time left. The epoch deadline stops
    /// guest code; this also stops a run stuck inside a host call (a WASI
    /// sleep, say). Time waiting on Meta extends the deadline, up to
    /// `max_upstream_wait`.
    async fn bounded<F: Future>(
        &self,
        run: F,
        started: Instant,
        deadline: Duration,
        upstream: &UpstreamClock,
    ) -> Result<F::Output, RunOutcome> {
        // Past the deadline, a little grace for the epoch trap to land first.
        let grace = deadline / 2 + Duration::from_millis(100);
        let mut run = std::pin::pin!(run);
        loop {
            let waited = upstream.elapsed();
            if waited > self.max_upstream_wait {
                return Err(RunOutcome::UpstreamTimeout);
            }
            let until = started + deadline + grace + waited;
            match tokio::time::timeout_at(until.into(), &mut run).await {
                Ok(output) => return Ok(output),
                // Meta kept the run waiting meanwhile: the plugin has more time.
                Err(_) if upstream.elapsed() > waited => continue,
                Err(_) => return Err(RunOutcome::Deadline),
            }
        }
    }
}

fn classify_failure(
    instantiating: bool,
    error: &wasmtime::Error,
    memory_refused: bool,
    limits: &Limits,
) -> RunOutcome {
    if let Some(violation) = error.downcast_ref::<Violation>() {
        return RunOutcome::HostLimit(*violation);
    }
    if let Some(stop) = error.downcast_ref::<JournalStop>() {
        return RunOutcome::Journal(stop.clone());
    }
    if error
        .downcast_ref::<crate::accounts::WaitForToken>()
        .is_some()
    {
        return RunOutcome::WaitingForToken;
    }
    // Wasmtime's type for an exhausted host-call fuel is private: its
    // message is what identifies it.
    if format!("{error:#}").contains("fuel allocated for hostcalls has been exhausted") {
        return RunOutcome::HostLimit(Violation::CopiedTooMuch(limits.max_string_bytes));
    }
    // The wasm backtrace goes to the debug log; the record keeps the cause.
    tracing::debug!(error = format!("{error:?}"), "plugin run failed");
    let cause = || {
        untrusted::sanitize(
            &error.root_cause().to_string(),
            untrusted::MAX_RECORDED_BYTES,
        )
    };
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => RunOutcome::Deadline,
        Some(Trap::OutOfFuel) => RunOutcome::FuelExhausted,
        // A guest denied memory usually aborts through `unreachable`.
        Some(_) if memory_refused => RunOutcome::MemoryExhausted,
        Some(trap) => RunOutcome::Trap(trap.to_string()),
        None if instantiating => RunOutcome::Instantiate(cause()),
        None => RunOutcome::Trap(cause()),
    }
}

/// The linker every plugin is pre-linked against: a WASI that grants
/// nothing, and igloo's host interfaces.
fn host_linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::capabilities::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// The services `config` describes: the Graph API client (or a dry run),
/// the host's state under the data directory, and each capability's.
fn open_services(config: &Config) -> anyhow::Result<HostServices> {
    let accounts = crate::accounts::Accounts::open(
        &config.storage.data_dir.join("accounts.sqlite3"),
        config.tokens.key()?,
        &config.accounts,
        crate::clock::now_ms(),
    )
    .context("opening the accounts")?;
    let graph = Arc::new(
        GraphClient::new(config, Arc::new(accounts)).context("building the Graph API client")?,
    );
    let state_path = config.storage.data_dir.join("state.sqlite3");
    let state =
        Arc::new(crate::state::SqliteState::open(&state_path).context("opening the state store")?);
    let opt_out = config.opt_out_rules();
    let configs = CapabilityConfigs {
        opt_out: &opt_out,
        profiles: &config.profiles,
        public_profiles: &config.public_profiles,
        kv: &config.kv,
        timers: &config.timers,
        app_id: config.graph.app_id.as_deref(),
    };
    HostServices::new(graph, state, configs).context("building the public-profiles client")
}
