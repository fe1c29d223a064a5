//! The durable inbox: every accepted webhook body is committed here before
//! Meta gets its 200, and each of its events stays until every subscribed
//! plugin has run on it.
//!
//! Only the verified raw body is committed before the 200 ([`Inbox::accept`]);
//! splitting it into events, deduplicating them and marking what the
//! dispatcher must see happen after, in one transaction per batch, so a
//! body is split exactly once. A body accepted but not yet split when igloo
//! stopped is split at the next start ([`recover_unsplit`]).
//!
//! Storage sits behind [`Inbox`] so that a shared backend (NATS JetStream)
//! can replace SQLite; nothing outside this module knows which one runs.

mod browse;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::events::{self, Event, PayloadError, Subscriptions};
use crate::journal::JournalStore;

pub use browse::{EventDetail, EventFilter, EventSummary, JournaledCall, ReplayRequest, Replayed};
pub use sqlite::SqliteInbox;

/// Position of an event in the inbox; increases with arrival and is never
/// reused, even after the newest events are pruned.
pub type Seq = i64;

/// Position of a webhook body (a delivery) in the inbox.
pub type DeliveryId = i64;

/// One webhook delivery: its raw body, kept for audit and replay, and the
/// events it was split into.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The body exactly as Meta signed it (or as igloo's reconciler made
    /// it, marked `"igloo_source": "reconciler"`).
    pub body: bytes::Bytes,
    /// The events it holds.
    pub events: Vec<Incoming>,
}

/// An event as it arrives.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The event.
    pub event: Event,
    /// Whether the dispatcher must see it: some plugin wants it, or it
    /// tells the host something (a window opens, a comment becomes
    /// answerable). Other events are still stored (for dedupe and audit)
    /// but already complete, so they cost the dispatcher nothing.
    pub dispatch: bool,
}

impl Delivery {
    /// Split a verified body into its events, each marked for the
    /// dispatcher if anyone subscribes to it. Fails if the body is not a
    /// webhook payload.
    pub fn split(body: bytes::Bytes, subscriptions: &Subscriptions) -> Result<Self, PayloadError> {
        let events = events::normalise(&body)?
            .into_iter()
            .map(|event| Incoming {
                dispatch: subscriptions.wanted(&event),
                event,
            })
            .collect();
        Ok(Self { body, events })
    }

    /// A delivery whose events all go to the dispatcher.
    pub fn new(body: bytes::Bytes, events: Vec<Event>) -> Self {
        let events = events
            .into_iter()
            .map(|event| Incoming {
                event,
                dispatch: true,
            })
            .collect();
        Self { body, events }
    }
}

/// A delivery durably stored, and queued to be split into events.
#[derive(Debug)]
pub struct Accepted {
    split: oneshot::Receiver<Result<Appended, InboxError>>,
}

impl Accepted {
    /// Accepted; `split` answers once its events are stored.
    pub(crate) fn new(split: oneshot::Receiver<Result<Appended, InboxError>>) -> Self {
        Self { split }
    }

    /// Wait until the delivery's events are stored (or recognised as
    /// redeliveries).
    pub async fn split(self) -> Result<Appended, InboxError> {
        self.split
            .await
            .map_err(|_| InboxError::Stopped("splitter"))?
    }
}

/// A delivery stored but not yet split into events (igloo stopped first).
#[derive(Debug, Clone)]
pub struct UnsplitDelivery {
    /// Its position.
    pub id: DeliveryId,
    /// The body as Meta signed it (or the reconciler made it).
    pub body: bytes::Bytes,
}

/// What splitting a delivery stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// For each event of the delivery, in order: whether it was stored for
    /// the first time (`false`: a redelivery, not stored again).
    pub is_new: Vec<bool>,
}

impl Appended {
    /// Events stored for the first time.
    pub fn new_events(&self) -> usize {
        self.is_new.iter().filter(|new| **new).count()
    }

    /// Events already in the inbox.
    pub fn duplicates(&self) -> usize {
        self.is_new.len() - self.new_events()
    }
}

/// An event waiting for plugins to run on it.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// Its position in the inbox.
    pub seq: Seq,
    /// The event.
    pub event: Arc<Event>,
    /// When igloo received it, in milliseconds since the epoch.
    pub received_at_ms: u64,
    /// The runs recorded on it so far (before a restart, say): finished
    /// ones, and failed ones waiting for their retry.
    pub runs: Vec<RunRecord>,
    /// Ids of the plugins with calls in its journal: an earlier execution
    /// acted, or was about to.
    pub journaled_plugins: Vec<String>,
}

impl PendingEvent {
    fn run_of(&self, plugin: &str) -> Option<&RunRecord> {
        run_of(&self.runs, plugin)
    }

    /// Whether `plugin` is finished with the event: its run ended for good
    /// (done, or a dead letter), with no retry to come.
    pub fn is_done_for(&self, plugin: &str) -> bool {
        is_done_for(&self.runs, plugin)
    }

    /// Whether `plugin` should run on the event at `now_ms`: it is not
    /// finished, and any retry it waits for is due.
    pub fn is_due_for(&self, plugin: &str, now_ms: u64) -> bool {
        is_due_for(&self.runs, plugin, now_ms)
    }

    /// How many times `plugin` has run on the event so far.
    pub fn attempts_of(&self, plugin: &str) -> u32 {
        self.run_of(plugin).map_or(0, |run| run.attempts)
    }
}

/// How one plugin's run on one event ended, as recorded in the inbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRecord {
    /// The plugin's operator-given id.
    pub plugin: String,
    /// `ok`, or the failure class (`plugin-error`, `trap`, `deadline`, …).
    pub outcome: String,
    /// What went wrong, for the operator; empty on success.
    pub detail: String,
    /// Times the plugin has run on the event, this one included.
    pub attempts: u32,
    /// When it runs again, if the failure is worth another attempt; `None`
    /// once final (a failure with no retry left is a dead letter).
    pub retry_at_ms: Option<u64>,
}

impl RunRecord {
    /// A first run that ended for good.
    pub fn finished(plugin: &str, outcome: &str, detail: &str) -> Self {
        Self {
            plugin: plugin.to_owned(),
            outcome: outcome.to_owned(),
            detail: detail.to_owned(),
            attempts: 1,
            retry_at_ms: None,
        }
    }

    /// Whether this is a dead letter: it failed, and nothing will retry it.
    pub fn is_dead_letter(&self) -> bool {
        !is_settled(&self.outcome) && self.retry_at_ms.is_none()
    }

    /// Whether the plugin is finished with the event, and not by failing.
    pub fn is_settled(&self) -> bool {
        is_settled(&self.outcome) && self.retry_at_ms.is_none()
    }
}

/// Outcomes that end a plugin's part in an event without failing: it
/// handled the event, passed, was skipped because a plugin before it in its
/// exclusive group handled it, was held back because a human had the
/// conversation, or gave up after igloo refused its call by rule
/// (`declined`: the person opted out, say). Any other final outcome is a
/// dead letter.
pub const SETTLED_OUTCOMES: [&str; 5] = ["ok", "passed", "skipped", "paused", "declined"];

/// [`SETTLED_OUTCOMES`], as an SQL list.
pub(crate) const SETTLED_OUTCOMES_SQL: &str = "('ok', 'passed', 'skipped', 'paused', 'declined')";

/// Whether a run that ended as `outcome` (a label) settled its event.
pub fn is_settled(outcome: &str) -> bool {
    SETTLED_OUTCOMES.contains(&outcome)
}

fn run_of<'r>(runs: &'r [RunRecord], plugin: &str) -> Option<&'r RunRecord> {
    runs.iter().find(|run| run.plugin == plugin)
}

/// [`PendingEvent::is_done_for`], for an event whose runs so far are `runs`.
pub fn is_done_for(runs: &[RunRecord], plugin: &str) -> bool {
    run_of(runs, plugin).is_some_and(|run| run.retry_at_ms.is_none())
}

/// [`PendingEvent::is_due_for`], for an event whose runs so far are `runs`.
pub fn is_due_for(runs: &[RunRecord], plugin: &str, now_ms: u64) -> bool {
    match run_of(runs, plugin) {
        None => true,
        Some(run) => run.retry_at_ms.is_some_and(|at| at <= now_ms),
    }
}

/// Counts for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxStats {
    /// Deliveries (webhook bodies) stored.
    pub deliveries: u64,
    /// Events stored.
    pub events: u64,
    /// Events not yet completed.
    pub pending: u64,
    /// Deliveries accepted but not yet split into events.
    pub unsplit: u64,
    /// Plugin runs recorded.
    pub runs: u64,
}

/// Storage failed; the caller should answer 503 so Meta retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InboxError {
    /// The backend refused or failed an operation (shared by every write
    /// of a group that failed together).
    #[error("inbox storage failed: {0}")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The task that serialises writes, or a reader, is gone.
    #[error("the inbox's {0} stopped")]
    Stopped(&'static str),
    /// As many accepted bodies wait to be split as the inbox holds, and
    /// splitting fails: new ones are refused until it works again.
    #[error("too many accepted webhook bodies wait to be split")]
    Backlogged,
    /// A stored body this release cannot parse (it was verified and parsed
    /// when it was accepted): splitting stops rather than lose its events.
    #[error(
        "stored webhook body {delivery} no longer parses ({reason}); run the release that accepted it"
    )]
    Unreadable {
        /// The delivery.
        delivery: DeliveryId,
        /// The parser's complaint.
        reason: String,
    },
}

impl InboxError {
    /// A backend's error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        InboxError::Backend(Arc::new(error))
    }
}

/// A durable, deduplicating event store, which also keeps the journal of
/// the runs on its events.
#[async_trait]
pub trait Inbox: JournalStore {
    /// Durably store a delivery's raw body. Returns once that is committed;
    /// its events are stored after, in order (see [`Accepted::split`]).
    /// Events whose key is already stored are counted as duplicates and
    /// not stored again.
    async fn accept(&self, delivery: Delivery) -> Result<Accepted, InboxError>;

    /// Durably store a delivery, and its events; returns once the body is
    /// committed and its events stored.
    async fn append(&self, delivery: Delivery) -> Result<Appended, InboxError> {
        self.accept(delivery).await?.split().await
    }

    /// Up to `limit` deliveries with `id > after` that were accepted but
    /// not split, in order.
    async fn unsplit(
        &self,
        after: DeliveryId,
        limit: usize,
    ) -> Result<Vec<UnsplitDelivery>, InboxError>;

    /// Split the stored delivery `id` into `events`, unless that was done
    /// already (then every event counts as a duplicate).
    async fn split_stored(
        &self,
        id: DeliveryId,
        events: Vec<Incoming>,
    ) -> Result<Appended, InboxError>;

    /// Store events igloo made itself (fired timers), deduplicated by key
    /// like any other, and have them dispatched; how many were new.
    async fn append_internal(&self, events: Vec<Event>) -> Result<u64, InboxError>;

    /// Up to `limit` uncompleted events with `seq > after`, in order, that
    /// may have something to run at `now_ms`: none with a run waiting for
    /// a retry due later (see [`Inbox::next_retry_at`]), and none of the
    /// accounts in `held`. Those stay where they are, unread.
    async fn pending(
        &self,
        after: Seq,
        limit: usize,
        held: &[String],
        now_ms: u64,
    ) -> Result<Vec<PendingEvent>, InboxError>;

    /// When the soonest retry due after `now_ms` of an uncompleted event's
    /// run is due: when [`Inbox::pending`] would first return it.
    async fn next_retry_at(&self, now_ms: u64) -> Result<Option<u64>, InboxError>;

    /// The event at `seq` as it stands now, if it is still pending.
    async fn pending_event(&self, seq: Seq) -> Result<Option<PendingEvent>, InboxError>;

    /// Record how a plugin's run on an event ended.
    async fn record_run(&self, seq: Seq, run: RunRecord) -> Result<(), InboxError>;

    /// Mark an event done: every subscribed plugin has run on it. Not if a
    /// run of it waits for a retry or a replay; returns whether it did.
    async fn complete(&self, seq: Seq) -> Result<bool, InboxError>;

    /// Forget completed events received before `before_ms` (milliseconds
    /// since the epoch); returns how many. Pending events are kept.
    async fn prune(&self, before_ms: i64) -> Result<u64, InboxError>;

    /// The runs recorded for an event.
    async fn runs(&self, seq: Seq) -> Result<Vec<RunRecord>, InboxError>;

    /// Counts for health and metrics.
    async fn stats(&self) -> Result<InboxStats, InboxError>;

    /// Events `filter` selects, newest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, InboxError>;

    /// The event at `seq` whole, if still stored.
    async fn event_detail(&self, seq: Seq) -> Result<Option<EventDetail>, InboxError>;

    /// Schedule runs of an event again (dead letters; handled runs only
    /// with `force`). The event is pending again until they finish.
    async fn replay(&self, request: ReplayRequest) -> Result<Replayed, InboxError>;

    /// Resolves when events may have been appended since the last call.
    async fn appended(&self);
}

/// Split every delivery that was accepted but not split before igloo last
/// stopped, with today's subscriptions; returns how many. Fails on a body
/// that no longer parses (it was verified and parsed when accepted, so only
/// a changed parser could do that) rather than lose its events.
pub async fn recover_unsplit(
    inbox: &dyn Inbox,
    subscriptions: &Subscriptions,
) -> Result<u64, InboxError> {
    const PAGE: usize = 64;
    let mut after = 0;
    let mut recovered = 0u64;
    loop {
        let page = inbox.unsplit(after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(recovered);
        };
        after = last.id;
        let mut splits = Vec::with_capacity(page.len());
        for stored in page {
            let events = Delivery::split(stored.body, subscriptions)
                .map_err(|error| InboxError::Unreadable {
                    delivery: stored.id,
                    reason: error.to_string(),
                })?
                .events;
            splits.push(inbox.split_stored(stored.id, events));
        }
        // Queued together, so the writer splits the page in one batch.
        recovered += futures::future::try_join_all(splits).await?.len() as u64;
    }
}

/// How often handled events past retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Prune events older than `retention` now and every ten minutes, for as
/// long as the returned task runs.
pub fn spawn_pruner(inbox: Arc<dyn Inbox>, retention: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_EVERY);
        loop {
            ticks.tick().await;
            let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
            let before_ms = crate::clock::now_ms().saturating_sub(retention_ms) as i64;
            match inbox.prune(before_ms).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "forgot handled events past retention"),
                Err(error) => tracing::warn!(%error, "pruning the inbox failed; will retry"),
            }
        }
    })
}

#[cfg(test)]
mod settled_tests {
    use super::*;

    #[test]
    fn the_sql_list_is_the_settled_outcomes() {
        let quoted: Vec<String> = SETTLED_OUTCOMES.iter().map(|o| format!("'{o}'")).collect();
        assert_eq!(SETTLED_OUTCOMES_SQL, format!("({})", quoted.join(", ")));
    }
}
