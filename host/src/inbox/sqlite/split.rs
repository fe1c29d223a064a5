//! Splitting committed bodies into events, after their 200: in batches,
//! in the order they were committed, and each body exactly once (the split
//! mark moves past it in the same transaction that stores its events).

use std::collections::VecDeque;
use std::time::Duration;

use rusqlite::{Connection, params};
use tokio::sync::{Notify, oneshot};

use super::{Appended, DeliveryId, InboxError, Incoming, storage_error};

/// Bodies split in one transaction.
const SPLIT_BATCH: usize = 256;

/// How long the writer waits before trying a failed split again: at
/// first, and at most (doubling in between).
const SPLIT_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// A committed body's events, serialised on the caller's thread, and who
/// waits for them to be stored.
pub(super) struct Unsplit {
    events: Vec<Incoming>,
    bodies: Vec<String>,
    reply: oneshot::Sender<Result<Appended, InboxError>>,
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
        (
            Self {
                events,
                bodies,
                reply,
            },
            answer,
        )
    }

    /// It will not be split: tell whoever waits.
    pub(super) fn fail(self, error: InboxError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Bodies committed and waiting to be split, oldest first.
#[derive(Default)]
pub(super) struct Unsplits {
    queue: VecDeque<(DeliveryId, Unsplit)>,
    /// The pause after the last failed split, if the last one failed.
    failing: Option<Duration>,
}

impl Unsplits {
    /// Queue the body stored at `id`.
    pub(super) fn push(&mut self, id: DeliveryId, split: Unsplit) {
        self.queue.push_back((id, split));
    }

    /// Bodies waiting.
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none waits.
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Split the oldest bodies in one transaction and answer their waiters;
    /// wake the dispatcher if any event is new. Returns whether it
    /// committed: on failure the bodies stay queued, and the writer pauses
    /// before anything else, longer after each failure in a row.
    pub(super) fn split_some(&mut self, connection: &mut Connection, appended: &Notify) -> bool {
        let count = self.queue.len().min(SPLIT_BATCH);
        match split_batch(connection, self.queue.iter().take(count)) {
            Ok(results) => {
                self.failing = None;
                let mut any_new = false;
                for ((_, split), is_new) in self.queue.drain(..count).zip(results) {
                    any_new |= is_new.contains(&true);
                    let _ = split.reply.send(Ok(Appended { is_new }));
                }
                if any_new {
                    appended.notify_one();
                }
                true
            }
            Err(error) => {
                let pause = self
                    .failing
                    .map_or(SPLIT_RETRY.0, |last| (last * 2).min(SPLIT_RETRY.1));
                self.failing = Some(pause);
                tracing::error!(%error, bodies = count, retry_in_ms = pause.as_millis() as u64, "splitting webhook bodies failed");
                std::thread::sleep(pause);
                false
            }
        }
    }

    /// Split everything queued; on a failure, leave the rest to the next
    /// start's recovery.
    pub(super) fn split_all(&mut self, connection: &mut Connection, appended: &Notify) {
        while !self.is_empty() {
            if !self.split_some(connection, appended) {
                let error = InboxError::Stopped("splitter");
                for (_, split) in self.queue.drain(..) {
                    split.fail(error.clone());
                }
            }
        }
    }
}

/// Store the events of `batch` in one transaction: per body, per event,
/// whether it was stored for the first time.
fn split_batch<'a>(
    connection: &mut Connection,
    batch: impl Iterator<Item = &'a (DeliveryId, Unsplit)>,
) -> Result<Vec<Vec<bool>>, InboxError> {
    // Not fsynced: a split lost in a crash is redone from its committed
    // body at the next start, and anything that acts on its events commits
    // after it in the same WAL, with an fsync that covers it.
    connection
        .execute_batch("PRAGMA synchronous = NORMAL;")
        .map_err(storage_error)?;
    let result = (|| {
        let transaction = connection.transaction()?;
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
    // Every other write must stay durable before it is answered: if that
    // cannot be restored, the writer stops rather than go on without it.
    connection
        .execute_batch("PRAGMA synchronous = FULL;")
        .expect("restoring synchronous = FULL on the inbox writer");
    result.map_err(storage_error)
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
