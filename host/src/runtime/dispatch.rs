//! From the inbox to the plugins: one ordered lane per conversation, lanes
//! in parallel, each (event, plugin) run recorded, each event completed once
//! every subscribed plugin has run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{RunReceipt, Runtime};
use crate::inbox::{Inbox, PendingEvent, RunRecord, Seq};

/// Events read from the inbox per query.
const READ_BATCH: usize = 256;
/// How long to wait before retrying after a storage error.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// Reads pending events and runs the plugins on them.
pub struct Dispatcher {
    inbox: Arc<dyn Inbox>,
    runtime: Arc<Runtime>,
    /// Waiting events of each busy conversation, earliest first. A lane's
    /// task removes its entry when nothing is left.
    lanes: Mutex<HashMap<String, BinaryHeap<Reverse<Queued>>>>,
}

/// An event waiting in its lane, ordered by when it happened, then by
/// arrival.
struct Queued(PendingEvent);

impl Queued {
    fn order(&self) -> (u64, Seq) {
        (self.0.event.timestamp_ms, self.0.seq)
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
    /// A dispatcher for `inbox` running `runtime`'s plugins.
    pub fn new(inbox: Arc<dyn Inbox>, runtime: Arc<Runtime>) -> Arc<Self> {
        Arc::new(Self {
            inbox,
            runtime,
            lanes: Mutex::new(HashMap::new()),
        })
    }

    /// Dispatch forever: first whatever a previous run left pending, then
    /// each new event as it is appended.
    pub async fn run(self: Arc<Self>) {
        let mut after: Seq = 0;
        loop {
            match self.inbox.pending(after, READ_BATCH).await {
                Ok(batch) if batch.is_empty() => self.inbox.appended().await,
                Ok(mut batch) => {
                    after = batch.last().map_or(after, |pending| pending.seq);
                    batch.sort_by_key(|pending| (pending.event.timestamp_ms, pending.seq));
                    for pending in batch {
                        self.enqueue(pending);
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
    fn enqueue(self: &Arc<Self>, pending: PendingEvent) {
        let key = pending.event.conversation_key();
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let idle = !lanes.contains_key(&key);
        lanes
            .entry(key.clone())
            .or_default()
            .push(Reverse(Queued(pending)));
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
                    Some(Reverse(Queued(pending))) => pending,
                    None => {
                        lanes.remove(&key);
                        return;
                    }
                }
            };
            self.process(next).await;
        }
    }

    async fn process(&self, pending: PendingEvent) {
        let event = Arc::new(pending.event);
        for plugin in self.runtime.plugins() {
            if !plugin.info.subscribes_to(&event)
                || pending.done_plugins.contains(&plugin.info.name)
            {
                continue;
            }
            let receipt = self.runtime.run(plugin, Arc::clone(&event)).await;
            log_receipt(&receipt);
            let record = RunRecord {
                plugin: receipt.plugin.clone(),
                outcome: receipt.outcome.label().to_owned(),
                detail: receipt.outcome.detail(),
            };
            self.retry_storage(|| self.inbox.record_run(pending.seq, record.clone()))
                .await;
        }
        self.retry_storage(|| self.inbox.complete(pending.seq))
            .await;
    }

    /// Storage writes after a run must not be lost: retry until they land.
    async fn retry_storage<F, Fut>(&self, write: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), crate::inbox::InboxError>>,
    {
        while let Err(error) = write().await {
            tracing::error!(%error, "recording a run failed; retrying");
            tokio::time::sleep(STORAGE_RETRY).await;
        }
    }
}

fn log_receipt(receipt: &RunReceipt) {
    let outcome = receipt.outcome.label();
    let detail = receipt.outcome.detail();
    let wall_us = receipt.wall.as_micros() as u64;
    if receipt.outcome == super::RunOutcome::Ok {
        tracing::info!(
            plugin = %receipt.plugin, version = %receipt.version, event = %receipt.event_key,
            wall_us, fuel = receipt.fuel_used, peak_memory = receipt.peak_memory_bytes,
            host_calls = receipt.host_calls, outcome, "plugin run"
        );
    } else {
        tracing::warn!(
            plugin = %receipt.plugin, version = %receipt.version, event = %receipt.event_key,
            wall_us, fuel = receipt.fuel_used, peak_memory = receipt.peak_memory_bytes,
            host_calls = receipt.host_calls, outcome, %detail, "plugin run failed"
        );
    }
}
