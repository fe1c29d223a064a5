//! `igloo:plugin/scheduler`: durable timers for the conversation being
//! handled, kept in the host's state ([`crate::state`]) under the `[timers]`
//! limits. Setting and cancelling live here; firing (a due timer becomes a
//! `timer` event in the inbox) is the dispatcher's (`dispatch::timers`).
//!
//! A timer belongs to the operator's id for the plugin, the event's account
//! and the person the event is with: a plugin can neither set a timer in
//! another conversation nor see or cancel another plugin's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::clock::now_ms;
use crate::events::EventKind;
use crate::journal::Call;
use crate::plugin_api::scheduler::{Host, When};
use crate::plugin_api::{Capability, HostError, HostResult, HostView, ViewOf};
use crate::state::{
    HostState, StateError, TimerEntry, TimerFilter, TimerLimits, TimerSet, TimerStanding, TimerView,
};

/// `[timers]`: what each plugin may schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimersConfig {
    /// Timers one plugin may have waiting in one account.
    pub max_per_plugin_account: u64,
    /// Timers one plugin may have waiting in one conversation.
    pub max_per_conversation: u64,
    /// The soonest a timer may fire, in milliseconds from when it is set:
    /// sooner ones fire then. A timer that sets itself again cannot flood
    /// the inbox.
    pub min_delay_ms: u64,
    /// How far ahead a timer may be set, in seconds.
    pub max_horizon_secs: u64,
    /// Bytes of a timer's key.
    pub max_key_bytes: usize,
    /// Bytes of a timer's payload.
    pub max_payload_bytes: usize,
    /// Timers of one plugin that may fire in one account in a (calendar)
    /// minute. Past it, a `set` from one of the plugin's timers in that
    /// account is refused (`quota-exceeded`) until the next minute, so
    /// timers that keep setting themselves again cannot run without end.
    pub max_firings_per_minute: u64,
}

impl Default for TimersConfig {
    fn default() -> Self {
        Self {
            max_per_plugin_account: 10_000,
            max_per_conversation: 16,
            min_delay_ms: 1000,
            max_horizon_secs: 90 * 24 * 3600,
            max_key_bytes: 128,
            max_payload_bytes: 4096,
            max_firings_per_minute: 600,
        }
    }
}

/// Timers fired this minute, per plugin and account.
#[derive(Debug, Default)]
struct Firings {
    /// The minute counted, since the epoch.
    minute: u64,
    counts: HashMap<(String, String), u64>,
}

impl Firings {
    /// The counts of the minute of `now_ms`: a new minute starts afresh, so
    /// the map holds only plugins whose timers fired this minute.
    fn of_minute(&mut self, now_ms: u64) -> &mut HashMap<(String, String), u64> {
        let minute = now_ms / 60_000;
        if minute != self.minute {
            self.minute = minute;
            self.counts.clear();
        }
        &mut self.counts
    }
}

/// The interface, and the capability importing it needs.
pub(super) const IMPORT: super::Import = ("igloo:plugin/scheduler", &[Capability::Schedule]);

/// Plugins' timers, within the configured limits.
pub struct Scheduler {
    state: Arc<dyn HostState>,
    limits: TimersConfig,
    /// Woken when a timer is set: it may be due before the one waited for.
    set: Notify,
    /// Timers fired this minute, against `max_firings_per_minute`.
    firings: Mutex<Firings>,
    /// Sets refused because the plugin's timers fired their minute's budget.
    refused_over_budget: AtomicU64,
}

impl Scheduler {
    /// Timers kept in `state`, within `limits`.
    pub fn new(state: Arc<dyn HostState>, limits: TimersConfig) -> Self {
        Self {
            state,
            limits,
            set: Notify::new(),
            firings: Mutex::default(),
            refused_over_budget: AtomicU64::new(0),
        }
    }

    fn lock_firings(&self) -> std::sync::MutexGuard<'_, Firings> {
        self.firings
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether `plugin`'s timers in `account_id` fired their budget of this
    /// minute (counted as refused if so).
    fn over_budget(&self, plugin: &str, account_id: &str, now_ms: u64) -> bool {
        let mut firings = self.lock_firings();
        let key = (plugin.to_owned(), account_id.to_owned());
        let fired = firings.of_minute(now_ms).get(&key).copied().unwrap_or(0);
        let over = fired >= self.limits.max_firings_per_minute;
        if over {
            self.refused_over_budget.fetch_add(1, Ordering::Relaxed);
        }
        over
    }

    /// Sets refused since start because a plugin's timers had fired their
    /// budget of the minute.
    pub fn refused_over_budget(&self) -> u64 {
        self.refused_over_budget.load(Ordering::Relaxed)
    }

    /// Resolves once a timer has been set since the last call.
    pub async fn timer_set(&self) {
        self.set.notified().await;
    }

    /// Up to `limit` timers due at `now_ms`, earliest first.
    pub async fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, StateError> {
        self.state.due_timers(now_ms, limit).await
    }

    /// Mark timers fired: their events are stored. Each counts against
    /// its plugin's budget of firings this minute in its account.
    pub async fn fired(&self, timers: Vec<TimerEntry>) -> Result<(), StateError> {
        {
            let mut firings = self.lock_firings();
            let counts = firings.of_minute(now_ms());
            for timer in &timers {
                *counts
                    .entry((timer.plugin.clone(), timer.account_id.clone()))
                    .or_default() += 1;
            }
        }
        self.state.mark_fired(timers).await
    }

    /// Where a fired timer stands as its event is taken.
    pub async fn standing(&self, timer: &TimerEntry) -> Result<TimerStanding, StateError> {
        self.state.timer_standing(timer).await
    }

    /// Forget a fired timer whose event has run.
    pub async fn forget(&self, timer: &TimerEntry) -> Result<(), StateError> {
        self.state.forget_timer(timer).await
    }

    /// When the next timer is due.
    pub async fn next_due(&self) -> Result<Option<u64>, StateError> {
        self.state.next_timer_due().await
    }

    /// The timers `filter` selects, soonest first: the operator's view.
    pub async fn list(&self, filter: TimerFilter) -> Result<Vec<TimerView>, StateError> {
        self.state.timers(filter).await
    }

    /// The operator cancels `plugin`'s timer `key` in the conversation of
    /// `account_id` with `person_id` (with `due_at_ms`, only if it is still
    /// the one due then): it never fires, or, fired already, its event
    /// does not run. Whether there was one.
    pub async fn cancel(
        &self,
        plugin: &str,
        account_id: &str,
        person_id: &str,
        key: &str,
        due_at_ms: Option<u64>,
    ) -> Result<bool, StateError> {
        self.state
            .cancel_timer(plugin, account_id, person_id, key, due_at_ms)
            .await
    }
}

/// Only the current version has timers: 0.1.0 plugins cannot import them.
pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn view<T: ServesHostCalls>(host: &mut T) -> HostView<'_, Scheduler> {
        host.view(|services| &services.scheduler)
    }
    crate::plugin_api::scheduler::add_to_linker::<T, ViewOf<Scheduler>>(linker, view::<T>)
}

impl HostView<'_, Scheduler> {
    /// The timer `key` of this run's plugin in this event's conversation,
    /// once the grant and the key are checked.
    fn timer(&self, key: &str) -> HostResult<TimerEntry> {
        if !self.run.granted(Capability::Schedule) {
            return Err(HostError::Denied("timers need the schedule capability".into()).into());
        }
        let max = self.service.limits.max_key_bytes;
        if key.is_empty() || key.len() > max {
            return Err(HostError::Invalid(format!("timer keys are 1 to {max} bytes")).into());
        }
        let Some(person_id) = self.run.event.counterpart_id() else {
            return Err(HostError::Invalid(
                "this event is with no person: there is no conversation to set a timer in".into(),
            )
            .into());
        };
        Ok(TimerEntry {
            plugin: self.run.plugin.id.clone(),
            account_id: self.run.account_id().to_owned(),
            person_id: person_id.to_owned(),
            key: key.to_owned(),
            due_at_ms: 0,
            payload: Vec::new(),
        })
    }

    /// Set the timer within the horizon, the payload size and the count.
    async fn set_checked(&self, key: &str, when: When, payload: Vec<u8>) -> HostResult<()> {
        let limits = &self.service.limits;
        let mut timer = self.timer(key)?;
        // Timers that keep setting themselves again are what could run
        // without end; a set prompted by a person's message is not held
        // back by what timers did.
        let from_a_timer = matches!(self.run.event.kind, EventKind::Timer(_));
        if from_a_timer
            && self
                .service
                .over_budget(&timer.plugin, &timer.account_id, now_ms())
        {
            return Err(HostError::QuotaExceeded(format!(
                "this plugin's timers fired their budget of {} a minute in this account; \
                 a timer may set one again after the minute",
                limits.max_firings_per_minute
            ))
            .into());
        }
        if payload.len() > limits.max_payload_bytes {
            return Err(HostError::Invalid(format!(
                "a timer's payload is at most {} bytes",
                limits.max_payload_bytes
            ))
            .into());
        }
        let now = now_ms();
        let due_at_ms = match when {
            When::AfterMs(after) => now.saturating_add(after),
            When::AtMs(at) => at,
        }
        .max(now.saturating_add(limits.min_delay_ms));
        if due_at_ms - now > limits.max_horizon_secs.saturating_mul(1000) {
            return Err(HostError::Invalid(format!(
                "timers are set at most {} seconds ahead",
                limits.max_horizon_secs
            ))
            .into());
        }
        timer.due_at_ms = due_at_ms;
        timer.payload = payload;
        let most = TimerLimits {
            per_account: limits.max_per_plugin_account,
            per_conversation: limits.max_per_conversation,
        };
        let full = |count: u64, scope: &str| {
            Err(HostError::QuotaExceeded(format!(
                "{count} timers is the most a plugin keeps waiting per {scope}"
            ))
            .into())
        };
        match self.service.state.set_timer(timer, most).await? {
            TimerSet::Set => {}
            TimerSet::AccountFull => return full(most.per_account, "account"),
            TimerSet::ConversationFull => return full(most.per_conversation, "conversation"),
        }
        self.service.set.notify_one();
        Ok(())
    }
}

impl Host for HostView<'_, Scheduler> {
    async fn set(&mut self, key: String, when: When, payload: Vec<u8>) -> HostResult<()> {
        // A retried run keeps the time its first execution set.
        let call = Call::new(
            "scheduler.set",
            &format!("{key:?} {when:?} {}", hex::encode(Sha256::digest(&payload))),
        );
        self.run
            .journal
            .repeatable(call, async || self.set_checked(&key, when, payload).await)
            .await
    }

    async fn cancel(&mut self, key: String) -> HostResult<bool> {
        let call = Call::new("scheduler.cancel", &format!("{key:?}"));
        let cancel = async || {
            let timer = self.timer(&key)?;
            Ok(self
                .service
                .state
                .cancel_timer(
                    &timer.plugin,
                    &timer.account_id,
                    &timer.person_id,
                    &key,
                    None,
                )
                .await?)
        };
        self.run.journal.repeatable(call, cancel).await
    }
}
