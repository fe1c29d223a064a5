//! From the inbox to the plugins: one ordered lane per conversation, lanes
//! in parallel, each (event, plugin) run recorded, each event completed once
//! every subscribed plugin has run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

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
    /// Open lanes by conversation key. A lane's task removes it when idle.
    lanes: Mutex<HashMap<String, mpsc::UnboundedSender<PendingEvent>>>,
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
                Ok(batch) => {
                    after = batch.last().map_or(after, |pending| pending.seq);
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

    fn enqueue(self: &Arc<Self>, pending: PendingEvent) {
        let key = pending.event.conversation_key();
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(lane) = lanes.get(&key) {
            lane.send(pending).expect("a lane in the map is open");
            return;
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        sender.send(pending).expect("the receiver is alive");
        lanes.insert(key.clone(), sender);
        tokio::spawn(Arc::clone(self).drain_lane(key, receiver));
    }

    /// Process a conversation's events one at a time, then close the lane.
    async fn drain_lane(
        self: Arc<Self>,
        key: String,
        mut receiver: mpsc::UnboundedReceiver<PendingEvent>,
    ) {
        loop {
            let next = match receiver.try_recv() {
                Ok(pending) => pending,
                Err(_) => {
                    // Close only while holding the map, so no event can be
                    // sent to a lane that is going away.
                    let mut lanes = self
                        .lanes
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner());
                    match receiver.try_recv() {
                        Ok(pending) => pending,
                        Err(_) => {
                            lanes.remove(&key);
                            return;
                        }
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
