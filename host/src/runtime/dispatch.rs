//! From the inbox to the plugins: one ordered lane per conversation, lanes
//! in parallel, each (event, plugin) run recorded, each event completed once
//! every subscribed plugin has run.
//!
//! Backpressure, not errors: at most `max_queued_events` events are taken
//! from the inbox at once, at most `max_in_flight_per_account` of one
//! account are handled at once, and each plugin has its own concurrency
//! bound. Everything else waits, durably, in the inbox.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{RunOutcome, RunReceipt, Runtime};
use crate::config::RuntimeConfig;
use crate::inbox::{Inbox, InboxError, PendingEvent, RunRecord, Seq};
use crate::metrics::Metrics;

/// Events read from the inbox per query.
const READ_BATCH: usize = 256;
/// How long to wait before retrying after a storage error.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// Reads pending events and runs the plugins on them.
pub struct Dispatcher {
    inbox: Arc<dyn Inbox>,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    /// Waiting events of each busy conversation, earliest first. A lane's
    /// task removes its entry when nothing is left.
    lanes: Mutex<HashMap<String, BinaryHeap<Reverse<Queued>>>>,
    /// One permit per event taken from the inbox and not yet completed.
    queued: Arc<Semaphore>,
    /// Per account, one permit per event being handled.
    accounts: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_account: usize,
}

/// An event waiting in its lane, ordered by when it happened, then by
/// arrival. Holds its place in the queue until completed.
struct Queued {
    pending: PendingEvent,
    _permit: OwnedSemaphorePermit,
}

impl Queued {
    fn order(&self) -> (u64, Seq) {
        (self.pending.event.timestamp_ms, self.pending.seq)
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl Dispatcher {
    /// A dispatcher for `inbox` running `runtime`'s plugins within `limits`.
    pub fn new(
        inbox: Arc<dyn Inbox>,
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        limits: &RuntimeConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            inbox,
            runtime,
            metrics,
            lanes: Mutex::new(HashMap::new()),
            queued: Arc::new(Semaphore::new(limits.max_queued_events.max(1) as usize)),
            accounts: Mutex::new(HashMap::new()),
            per_account: limits.max_in_flight_per_account.max(1) as usize,
        })
    }

    /// Dispatch forever: first whatever a previous run left pending, then
    /// each new event as it is appended.
    pub async fn run(self: Arc<Self>) {
        let mut after: Seq = 0;
        loop {
            // Read only as many events as there is room for in memory.
            let room = self.queued.available_permits().clamp(1, READ_BATCH);
            match self.inbox.pending(after, room).await {
                Ok(batch) if batch.is_empty() => self.inbox.appended().await,
                Ok(mut batch) => {
                    after = batch.last().map_or(after, |pending| pending.seq);
                    batch.sort_by_key(|pending| (pending.event.timestamp_ms, pending.seq));
                    for pending in batch {
                        let permit = Arc::clone(&self.queued)
                            .acquire_owned()
                            .await
                            .expect("never closed");
                        self.enqueue(Queued {
                            pending,
                            _permit: permit,
                        });
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "reading the inbox failed; retrying");
                    tokio::time::sleep(STORAGE_RETRY).await;
                }
            }
        }
    }

    /// Queue an event in its conversation's lane, starting the lane if it
    /// is idle. Events that wait while the lane is busy are taken in
    /// timestamp order, so a late delivery of an earlier event still goes
    /// first.
    fn enqueue(self: &Arc<Self>, queued: Queued) {
        let key = queued.pending.event.conversation_key();
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let idle = !lanes.contains_key(&key);
        lanes.entry(key.clone()).or_default().push(Reverse(queued));
        if idle {
            tokio::spawn(Arc::clone(self).drain_lane(key));
        }
    }

    /// Process a conversation's events one at a time, then close the lane.
    async fn drain_lane(self: Arc<Self>, key: String) {
        loop {
            let next = {
                let mut lanes = self
                    .lanes
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                let queue = lanes.get_mut(&key).expect("a running lane has a queue");
                match queue.pop() {
                    Some(Reverse(queued)) => queued,
                    None => {
                        lanes.remove(&key);
                        return;
                    }
                }
            };
            let account = self.account_slots(&next.pending.event.account_id);
            let _in_flight = account.acquire().await.expect("never closed");
            self.process(next.pending).await;
        }
    }

    fn account_slots(&self, account_id: &str) -> Arc<Semaphore> {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        Arc::clone(
            accounts
                .entry(account_id.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_account))),
        )
    }

    /// Run every subscribed plugin on the event, side by side, so a slow or
    /// hostile plugin does not hold up the others; record each run; then
    /// complete the event.
    async fn process(&self, pending: PendingEvent) {
        let event = Arc::new(pending.event);
        // Windows and comments are noted before any plugin runs, so a reply
        // to this very message finds its window open.
        while let Err(error) = self.runtime.services().observe(&event).await {
            tracing::error!(%error, "noting the event's window failed; retrying");
            tokio::time::sleep(STORAGE_RETRY).await;
        }
        let runs = self
            .runtime
            .plugins()
            .iter()
            .filter(|plugin| {
                plugin.info.subscribes_to(&event)
                    && !pending.done_plugins.contains(&plugin.info.name)
            })
            .map(|plugin| async {
                let receipt = self.runtime.run(plugin, Arc::clone(&event)).await;
                log_receipt(&receipt);
                self.metrics.receipt(&receipt);
                let record = RunRecord {
                    plugin: receipt.plugin.clone(),
                    outcome: receipt.outcome.label().to_owned(),
                    detail: receipt.outcome.detail(),
                };
                self.retry_storage(|| self.inbox.record_run(pending.seq, record.clone()))
                    .await;
            });
        futures::future::join_all(runs).await;
        self.retry_storage(|| self.inbox.complete(pending.seq))
            .await;
    }

    /// Storage writes after a run must not be lost: retry until they land.
    async fn retry_storage<F, Fut>(&self, write: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), InboxError>>,
    {
        while let Err(error) = write().await {
            tracing::error!(%error, "recording a run failed; retrying");
            tokio::time::sleep(STORAGE_RETRY).await;
        }
    }
}

/// The receipt as one structured log line.
fn log_receipt(receipt: &RunReceipt) {
    let outcome = receipt.outcome.label();
    let wall_us = receipt.wall.as_micros() as u64;
    if receipt.outcome == RunOutcome::Ok {
        tracing::info!(
            plugin = %receipt.plugin, version = %receipt.version, event = %receipt.event_key,
            wall_us, fuel = receipt.fuel_used, peak_memory = receipt.peak_memory_bytes,
            host_calls = receipt.host_calls, outcome, "plugin run"
        );
    } else {
        tracing::warn!(
            plugin = %receipt.plugin, version = %receipt.version, event = %receipt.event_key,
            wall_us, fuel = receipt.fuel_used, peak_memory = receipt.peak_memory_bytes,
            host_calls = receipt.host_calls, outcome, detail = %receipt.outcome.detail(),
            "plugin run failed"
        );
    }
}
