//! Splitting committed bodies into events, after their 200: in batches,
//! in the order they were committed, and each body exactly once (the split
//! mark moves past it in the same transaction that stores its events).
//!
//! Bodies are split in the order of their ids, which is the order they
//! were committed: recovery splits what an earlier process left before this
//! one accepts anything, and one process at a time holds a data directory
//! (`Igloo::start` locks it).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{Notify, oneshot};

use super::{Appended, DeliveryId, InboxError, Incoming, storage_error};

/// Most bodies split in one transaction.
const SPLIT_BATCH: usize = 64;

/// Events past which a batch takes no further body: a split holds the
/// writer, and accepts wait behind it.
const SPLIT_BATCH_EVENTS: usize = 2048;

/// Bodies queued past which the writer splits before it takes more writes,
/// and refuses new bodies while splitting fails; and the same in bytes of
/// serialised events (a body may be megabytes).
const MAX_UNSPLIT: (usize, usize) = (2048, 64 << 20);

/// How long the writer waits before trying a failed split again: at
/// first, and at most (doubling in between).
const SPLIT_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

type Reply = oneshot::Sender<Result<Appended, InboxError>>;

/// A committed body's events, serialised on the caller's thread, and who
/// waits for them to be stored.
pub(super) struct Unsplit {
    events: Vec<Incoming>,
    bodies: Vec<String>,
    /// Taken once answered (a failed split answers, and tries again).
    reply: Option<Reply>,
}

impl Unsplit {
    /// Serialise `events`; the receiver answers once they are stored.
    pub(super) fn prepare(
        events: Vec<Incoming>,
    ) -> (Self, oneshot::Receiver<Result<Appended, InboxError>>) {
        let bodies = events
            .iter()
            .map(|incoming| serde_json::to_string(&incoming.event).expect("events serialise"))
            .collect();
        let (reply, answer) = oneshot::channel();
        let split = Self {
            events,
            bodies,
            reply: Some(reply),
        };
        (split, answer)
    }

    fn bytes(&self) -> usize {
        self.bodies.iter().map(String::len).sum()
    }

    fn answer(&mut self, result: Result<Appended, InboxError>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }
}

/// Bodies committed and waiting to be split, oldest first.
#[derive(Default)]
pub(super) struct Unsplits {
    queue: VecDeque<(DeliveryId, Unsplit)>,
    /// Serialised events queued, in bytes.
    bytes: usize,
    /// After a failed split: the pause it earned, and when to try again.
    failing: Option<(Duration, Instant)>,
    /// Durable commits could not be restored after a split: the writer
    /// must stop rather than answer writes that are not durable.
    broken: bool,
}

impl Unsplits {
    /// Queue the body stored at `id`.
    pub(super) fn push(&mut self, id: DeliveryId, split: Unsplit) {
        self.bytes += split.bytes();
        self.queue.push_back((id, split));
    }

    /// Whether none waits.
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether as many bodies wait as the writer holds.
    pub(super) fn is_full(&self) -> bool {
        self.queue.len() >= MAX_UNSPLIT.0 || self.bytes >= MAX_UNSPLIT.1
    }

    /// Whether a split may be tried now: bodies wait, and no failure's
    /// pause is running.
    pub(super) fn is_ready(&self) -> bool {
        !self.is_empty()
            && self
                .failing
                .is_none_or(|(_, retry_at)| Instant::now() >= retry_at)
    }

    /// Whether the writer must stop (see [`Unsplits::broken`]).
    pub(super) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Split the oldest bodies in one transaction and answer their waiters;
    /// wake the dispatcher if any event is new. Returns whether it
    /// committed. On failure the waiters get the error, the bodies stay
    /// queued, and no split is tried again before a pause that doubles
    /// with each failure in a row (writes go on meanwhile).
    pub(super) fn split_some(&mut self, connection: &mut Connection, appended: &Notify) -> bool {
        let mut count = 0;
        let mut events = 0;
        for (_, split) in &self.queue {
            if count == SPLIT_BATCH || (count > 0 && events >= SPLIT_BATCH_EVENTS) {
                break;
            }
            count += 1;
            events += split.events.len();
        }
        match split_batch(connection, self.queue.iter().take(count)) {
            Ok(results) => {
                self.failing = None;
                let mut any_new = false;
                for ((_, mut split), is_new) in self.queue.drain(..count).zip(results) {
                    self.bytes -= split.bytes();
                    any_new |= is_new.contains(&true);
                    split.answer(Ok(Appended { is_new }));
                }
                if any_new {
                    appended.notify_one();
                }
                true
            }
            Err(SplitError::NotDurable(error)) => {
                tracing::error!(%error, "the inbox cannot make commits durable again; its writer stops");
                self.broken = true;
                false
            }
            Err(SplitError::Failed(error)) => {
                let pause = self
                    .failing
                    .map_or(SPLIT_RETRY.0, |(last, _)| (last * 2).min(SPLIT_RETRY.1));
                self.failing = Some((pause, Instant::now() + pause));
                tracing::error!(%error, bodies = count, retry_in_ms = pause.as_millis() as u64, "splitting webhook bodies failed");
                let error = storage_error(error);
                for (_, split) in self.queue.iter_mut().take(count) {
                    split.answer(Err(error.clone()));
                }
                false
            }
        }
    }

    /// Split everything queued, at once; on a failure, leave the rest to
    /// the next start's recovery.
    pub(super) fn split_all(&mut self, connection: &mut Connection, appended: &Notify) {
        while !self.is_empty() {
            if !self.split_some(connection, appended) {
                return;
            }
        }
    }
}

enum SplitError {
    /// The split failed; nothing of it was stored.
    Failed(rusqlite::Error),
    /// `synchronous = FULL` could not be restored after the split.
    NotDurable(rusqlite::Error),
}

/// Store the events of `batch` in one transaction: per body, per event,
/// whether it was stored for the first time.
fn split_batch<'a>(
    connection: &mut Connection,
    batch: impl Iterator<Item = &'a (DeliveryId, Unsplit)>,
) -> Result<Vec<Vec<bool>>, SplitError> {
    // Not fsynced: a split lost in a crash is redone from its committed
    // body at the next start, and anything that acts on its events commits
    // after it in the same WAL, with an fsync that covers it.
    connection
        .execute_batch("PRAGMA synchronous = NORMAL;")
        .map_err(SplitError::Failed)?;
    let result = (|| {
        // IMMEDIATE: the write lock is taken (waiting on the checkpointer's
        // TRUNCATE if need be) before the first read. A deferred one that
        // read first cannot wait to upgrade: it failed with "locked".
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = crate::clock::now_ms() as i64;
        let mut through: DeliveryId =
            transaction.query_row("SELECT through FROM split_mark", [], |row| row.get(0))?;
        let mut results = Vec::new();
        for (id, split) in batch {
            results.push(if *id > through {
                through = *id;
                split_one(&transaction, *id, split, now)?
            } else {
                // Split before: nothing in it is new.
                vec![false; split.events.len()]
            });
        }
        transaction
            .prepare_cached("UPDATE split_mark SET through = ?1")?
            .execute([through])?;
        transaction.commit()?;
        Ok(results)
    })();
    // Every other write must be durable before it is answered.
    connection
        .execute_batch("PRAGMA synchronous = FULL;")
        .map_err(SplitError::NotDurable)?;
    result.map_err(SplitError::Failed)
}

/// Store one body's events. They keep the time their body was accepted.
fn split_one(
    transaction: &rusqlite::Transaction<'_>,
    id: DeliveryId,
    split: &Unsplit,
    now: i64,
) -> rusqlite::Result<Vec<bool>> {
    let received_at_ms: i64 = transaction
        .prepare_cached("SELECT received_at_ms FROM deliveries WHERE id = ?1")?
        .query_row([id], |row| row.get(0))?;
    let mut insert = transaction.prepare_cached(
        "INSERT INTO events (event_key, delivery_id, account_id, kind, timestamp_ms, received_at_ms, body, done_at_ms, person_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (event_key) DO NOTHING",
    )?;
    split
        .events
        .iter()
        .zip(&split.bodies)
        .map(|(incoming, body)| {
            let event = &incoming.event;
            // Events no one subscribes to are stored handled: they count
            // for dedupe and audit, and cost the dispatcher nothing.
            let done_at = (!incoming.dispatch).then_some(now);
            let inserted = insert.execute(params![
                event.key,
                id,
                event.account_id,
                event.kind_name(),
                event.timestamp_ms as i64,
                received_at_ms,
                body,
                done_at,
                event.counterpart_id()
            ])?;
            Ok(inserted == 1)
        })
        .collect()
}
