//! The embedded inbox: SQLite in WAL mode, written by one thread that
//! commits in groups so that one fsync covers many deliveries.
//!
//! The writer puts accepting first: a group commits the raw bodies that
//! wait for their 200, and the bodies are split into events (see [`split`])
//! while no write waits, or once enough of them queue up.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use rusqlite_migration::{HookResult, M};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Notify, mpsc, oneshot};

use super::{
    Accepted, Appended, Delivery, DeliveryId, EventDetail, EventFilter, EventSummary, Inbox,
    InboxError, InboxStats, Incoming, PendingEvent, ReplayRequest, Replayed, RunRecord, Seq,
    UnsplitDelivery,
};
use crate::events::Event;
use crate::journal::{JournalEntry, RunKey};

mod browse;
mod journal;
mod split;

use split::{Unsplit, Unsplits};

/// Most writes folded into one transaction.
const MAX_GROUP: usize = 512;

/// The `events` table's columns: one definition for the schema and for the
/// migration that rebuilds the table.
macro_rules! events_columns {
    () => {
        "
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key      TEXT NOT NULL UNIQUE,
    delivery_id    INTEGER NOT NULL REFERENCES deliveries(id),
    account_id     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    timestamp_ms   INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body           TEXT NOT NULL,
    done_at_ms     INTEGER
"
    };
}

/// Version 1: igloo 0.1's schema.
const SCHEMA_V1: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS deliveries (
    id             INTEGER PRIMARY KEY,
    received_at_ms INTEGER NOT NULL,
    body           BLOB NOT NULL
);
-- AUTOINCREMENT: a sequence number is never handed out twice, even after
-- the newest rows are pruned, so the dispatcher's read position (which only
-- goes up) never skips a new event.
CREATE TABLE IF NOT EXISTS events (",
    events_columns!(),
    ");
CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE done_at_ms IS NULL;
CREATE TABLE IF NOT EXISTS runs (
    seq            INTEGER NOT NULL REFERENCES events(seq),
    plugin         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    detail         TEXT NOT NULL,
    finished_at_ms INTEGER NOT NULL,
    PRIMARY KEY (seq, plugin)
);
"
);

/// The schema, version by version; a list that only grows at its end.
/// Version 1 is the schema of igloo 0.1, which kept no version: `IF NOT
/// EXISTS` adopts a database it wrote, and the hook rebuilds an older one
/// whose sequence numbers were not yet AUTOINCREMENT.
fn migrations() -> Vec<M<'static>> {
    vec![
        M::up_with_hook(SCHEMA_V1, migrate_to_autoincrement),
        // Version 2: the journal of host calls with effects (see `journal`),
        // retries of failed runs, and each event's person for filtering.
        M::up(
            "
ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN retry_at_ms INTEGER;
ALTER TABLE events ADD COLUMN person_id TEXT;
-- Deleting a delivery checks that no event references it (foreign keys):
-- without this index, a scan of every event per pruned delivery.
CREATE INDEX events_delivery ON events(delivery_id);
CREATE TABLE journal (
    seq           INTEGER NOT NULL REFERENCES events(seq),
    plugin        TEXT NOT NULL,
    call          INTEGER NOT NULL,
    operation     TEXT NOT NULL,
    request       TEXT NOT NULL,
    summary       TEXT NOT NULL,
    status        TEXT NOT NULL,
    result        TEXT,
    started_at_ms INTEGER NOT NULL,
    PRIMARY KEY (seq, plugin, call)
) WITHOUT ROWID;
",
        ),
        // Version 3: bodies are committed before they are split into
        // events, in order; every delivery up to `split_mark.through` is
        // split. A mark, not a column per delivery: a split then writes one
        // small row rather than rewriting each body's page.
        M::up(
            "
CREATE TABLE split_mark (
    only    INTEGER PRIMARY KEY CHECK (only = 1),
    through INTEGER NOT NULL
);
INSERT INTO split_mark (only, through) SELECT 1, coalesce(max(id), 0) FROM deliveries;
",
        ),
        // Version 4: the operator's queries (the admin API, the dashboard,
        // an account's rhythm of webhooks) read an account's, a person's or
        // a plugin's events newest first, without scanning them all.
        M::up(
            "
CREATE INDEX events_account ON events(account_id, seq);
CREATE INDEX events_person ON events(person_id, seq);
CREATE INDEX runs_plugin ON runs(plugin, seq);
",
        ),
        // Version 5: the dispatcher skips the pending events of accounts
        // whose token is refused, and those waiting for a later retry; with
        // the account in the pending index, and the retries indexed, it does
        // so without reading each row, and finds the next retry due at once.
        M::up(
            "
DROP INDEX IF EXISTS events_pending;
CREATE INDEX events_pending ON events(seq, account_id) WHERE done_at_ms IS NULL;
CREATE INDEX runs_retry ON runs(retry_at_ms) WHERE retry_at_ms IS NOT NULL;
",
        ),
        // Version 6: events stored before version 2 had no person; the
        // operator's filters by person missed them. Each gets the person
        // its stored event names, as events stored since do.
        M::up_with_hook("", backfill_person_ids),
    ]
}

/// Give every event stored without a person the one its stored event
/// names (see [`Event::counterpart_id`]). An event that does not read back,
/// or belongs to no conversation, keeps none.
fn backfill_person_ids(transaction: &rusqlite::Transaction<'_>) -> HookResult {
    // In batches by position, so a large inbox is never read into memory
    // at once.
    const BATCH: i64 = 1000;
    let mut select = transaction.prepare(
        "SELECT seq, body FROM events WHERE person_id IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut update = transaction.prepare("UPDATE events SET person_id = ?1 WHERE seq = ?2")?;
    let (mut after, mut filled) = (0i64, 0u64);
    loop {
        let batch: Vec<(i64, String)> = select
            .query_map(params![after, BATCH], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        after = *last;
        for (seq, body) in &batch {
            let Ok(event) = serde_json::from_str::<Event>(body) else {
                continue;
            };
            if let Some(person) = event.counterpart_id() {
                filled += update.execute(params![person, seq])? as u64;
            }
        }
    }
    if filled > 0 {
        tracing::info!(
            filled,
            "upgrading the inbox: events stored before version 2 now name their person"
        );
    }
    Ok(())
}

/// A body on its way in, with its events already serialised on the
/// caller's thread so that the single writer spends its time on SQLite.
struct Accepting {
    body: bytes::Bytes,
    split: Unsplit,
}

enum Write {
    /// Commit a raw body; then queue it to be split.
    Accept(Accepting, oneshot::Sender<Result<(), InboxError>>),
    /// Queue a body stored earlier to be split.
    Split(DeliveryId, Unsplit),
    RecordRun(Seq, RunRecord, oneshot::Sender<Result<(), InboxError>>),
    Complete(Seq, oneshot::Sender<Result<bool, InboxError>>),
    Prune(i64, oneshot::Sender<Result<u64, InboxError>>),
    Journal(
        RunKey,
        JournalEntry,
        oneshot::Sender<Result<(), InboxError>>,
    ),
    Replay(ReplayRequest, oneshot::Sender<Result<Replayed, InboxError>>),
    /// Store events igloo made itself.
    AppendInternal(Vec<Event>, oneshot::Sender<Result<u64, InboxError>>),
}

/// The SQLite inbox. Cheap to share behind an `Arc`.
pub struct SqliteInbox {
    writes: mpsc::UnboundedSender<Write>,
    reader: Arc<Mutex<Connection>>,
    appended: Arc<Notify>,
    /// Dropped with the inbox, which ends the checkpoint thread.
    _alive: Arc<()>,
}

impl SqliteInbox {
    /// Open (or create) the inbox database at `path`.
    pub fn open(path: &Path) -> Result<Self, InboxError> {
        let mut writer = open_connection(path)?;
        writer
            .execute_batch("PRAGMA foreign_keys = OFF;")
            .map_err(storage_error)?;
        crate::migrate::to_latest(&mut writer, migrations(), path).map_err(InboxError::backend)?;
        writer
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(storage_error)?;
        // Checkpoints run on their own thread (below), so a commit never
        // waits for one: they were the long tail of webhook latency.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(storage_error)?;
        let checkpointer = open_connection(path)?;
        // A TRUNCATE checkpoint holds the writer back while it waits for
        // readers: it gives up quickly and tries again on a later tick.
        checkpointer
            .busy_timeout(std::time::Duration::from_millis(100))
            .map_err(storage_error)?;
        let alive = Arc::new(());
        let watched = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("igloo-inbox-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &watched))
            .map_err(InboxError::backend)?;
        let reader = open_connection(path)?;
        let appended = Arc::new(Notify::new());
        let (writes, queue) = mpsc::unbounded_channel();
        let notify = Arc::clone(&appended);
        std::thread::Builder::new()
            .name("igloo-inbox-writer".into())
            .spawn(move || write_loop(writer, queue, &notify))
            .map_err(InboxError::backend)?;
        Ok(Self {
            writes,
            reader: Arc::new(Mutex::new(reader)),
            appended,
            _alive: alive,
        })
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, InboxError>>) -> Write,
    ) -> Result<T, InboxError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(make(reply))
            .map_err(|_| InboxError::Stopped("writer thread"))?;
        answer
            .await
            .map_err(|_| InboxError::Stopped("writer thread"))?
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, InboxError> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let connection = reader.lock().unwrap_or_else(|poison| poison.into_inner());
            query(&connection).map_err(storage_error)
        })
        .await
        .map_err(InboxError::backend)?
    }
}

fn open_connection(path: &Path) -> Result<Connection, InboxError> {
    let connection = Connection::open(path).map_err(storage_error)?;
    // WAL lets the dispatcher read while the writer commits; FULL makes
    // each commit durable before Meta is told 200.
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(storage_error)?;
    Ok(connection)
}

/// WAL pages past which a checkpoint may block the writer to reset the
/// WAL (4 KiB pages: 64 MiB).
const WAL_MAX_PAGES: i64 = 16_384;

/// Keep the WAL bounded. Every 100 ms its pages are copied into the
/// database without blocking the writer (PASSIVE). That falls behind when
/// readers keep old snapshots under sustained load, and never shrinks the
/// file; so past [`WAL_MAX_PAGES`], and whenever a tick saw no new writes,
/// a TRUNCATE checkpoint waits for readers, copies the rest and empties the
/// file. Ends when the inbox is dropped.
fn checkpoint_loop(connection: &Connection, inbox: &std::sync::Weak<()>) {
    let mut last_log = -1;
    while inbox.strong_count() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let passive = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        let (log, copied) = match passive {
            Ok(pages) => pages,
            Err(error) => {
                tracing::warn!(%error, "inbox checkpoint failed; will retry");
                continue;
            }
        };
        let idle = log > 0 && log == copied && log == last_log;
        last_log = log;
        if log >= WAL_MAX_PAGES || idle {
            match connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            }) {
                Ok(0) => last_log = 0,
                Ok(_) => tracing::debug!("inbox WAL still in use; truncating later"),
                Err(error) if is_busy(&error) => {
                    tracing::debug!("inbox WAL busy; truncating later");
                }
                Err(error) => tracing::warn!(%error, "inbox checkpoint failed; will retry"),
            }
        }
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}

/// Pending events that `sql` (selecting seq, body and received_at_ms)
/// finds, each with the plugins that already ran on it.
fn read_pending(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> rusqlite::Result<Vec<PendingEvent>> {
    let mut select = connection.prepare_cached(sql)?;
    let mut journaled =
        connection.prepare_cached("SELECT DISTINCT plugin FROM journal WHERE seq = ?1")?;
    let rows = select
        .query_map(parameters, |row| {
            Ok((
                row.get::<_, Seq>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(seq, body, received_at_ms)| {
            let event: Event = serde_json::from_str(&body).map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Text,
                    error.into(),
                )
            })?;
            let runs = read_runs(connection, seq)?;
            let journaled_plugins = journaled
                .query_map([seq], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(PendingEvent {
                seq,
                event: Arc::new(event),
                received_at_ms: received_at_ms.max(0) as u64,
                runs,
                journaled_plugins,
            })
        })
        .collect()
}

/// The runs recorded on the event at `seq`, by plugin.
fn read_runs(connection: &Connection, seq: Seq) -> rusqlite::Result<Vec<RunRecord>> {
    let mut select = connection.prepare_cached(
        "SELECT plugin, outcome, detail, attempts, retry_at_ms FROM runs
         WHERE seq = ?1 ORDER BY plugin",
    )?;
    select
        .query_map([seq], |row| {
            Ok(RunRecord {
                plugin: row.get(0)?,
                outcome: row.get(1)?,
                detail: row.get(2)?,
                attempts: row.get(3)?,
                retry_at_ms: row.get::<_, Option<i64>>(4)?.map(|at| at.max(0) as u64),
            })
        })?
        .collect()
}

/// Inboxes created before sequence numbers were AUTOINCREMENT reused the
/// numbers of pruned events: rebuild their `events` table once. Runs with
/// foreign keys off (see `SqliteInbox::open`), as a table rebuild must.
fn migrate_to_autoincrement(transaction: &rusqlite::Transaction<'_>) -> HookResult {
    let sql: String = transaction.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'",
        [],
        |row| row.get(0),
    )?;
    if sql.contains("AUTOINCREMENT") {
        return Ok(());
    }
    tracing::info!("upgrading the inbox: sequence numbers are never reused from now on");
    transaction.execute_batch(concat!(
        "CREATE TABLE events_autoincrement (",
        events_columns!(),
        ");
         INSERT INTO events_autoincrement SELECT * FROM events;
         DROP TABLE events;
         ALTER TABLE events_autoincrement RENAME TO events;
         CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE done_at_ms IS NULL;"
    ))?;
    Ok(())
}

fn storage_error(error: rusqlite::Error) -> InboxError {
    InboxError::backend(error)
}

/// How often a writer with nothing to write looks for writes while it
/// waits out a failed split's pause.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// The writer thread: take every write that is waiting, apply them all in
/// one transaction, commit once, then answer each caller. Split accepted
/// bodies whenever no write waits.
fn write_loop(
    mut connection: Connection,
    mut queue: mpsc::UnboundedReceiver<Write>,
    appended: &Notify,
) {
    let mut unsplit = Unsplits::default();
    loop {
        // The queue of bodies to split stays bounded: split before taking
        // more writes, and while that fails, refuse new bodies (503: Meta
        // delivers them again later).
        while unsplit.is_full()
            && unsplit.is_ready()
            && unsplit.split_some(&mut connection, appended)
        {}
        if unsplit.is_broken() {
            // Every write waiting, and every later one, fails: 503s, and
            // `/healthz` reports the inbox down.
            return;
        }
        let backlogged = unsplit.is_full();
        let first = match queue.try_recv() {
            Ok(write) => write,
            Err(TryRecvError::Empty) if unsplit.is_ready() => {
                unsplit.split_some(&mut connection, appended);
                continue;
            }
            Err(TryRecvError::Empty) if !unsplit.is_empty() => {
                std::thread::sleep(IDLE_POLL);
                continue;
            }
            Err(TryRecvError::Empty) => match queue.blocking_recv() {
                Some(write) => write,
                None => break,
            },
            Err(TryRecvError::Disconnected) => break,
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(write) => group.push(write),
                Err(_) => break,
            }
        }
        if backlogged {
            let (refused, kept): (Vec<_>, Vec<_>) = group
                .into_iter()
                .partition(|write| matches!(write, Write::Accept(..)));
            for write in refused {
                if let Write::Accept(_, reply) = write {
                    let _ = reply.send(Err(InboxError::Backlogged));
                }
            }
            group = kept;
        }
        let outcome = apply_group(&mut connection, &group);
        for (write, result) in group.into_iter().zip(outcome) {
            match write {
                Write::Accept(accepting, reply) => match result {
                    Ok(Applied::Accepted(id)) => {
                        let _ = reply.send(Ok(()));
                        unsplit.push(id, accepting.split);
                    }
                    Ok(_) => unreachable!("an accept yields Accepted"),
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                },
                Write::Split(id, split) => unsplit.push(id, split),
                Write::RecordRun(_, _, reply) | Write::Journal(_, _, reply) => {
                    let _ = reply.send(result.map(|_| ()));
                }
                Write::Complete(_, reply) => {
                    let _ = reply.send(result.map(|applied| match applied {
                        Applied::Completed(completed) => completed,
                        _ => unreachable!("a completion yields Completed"),
                    }));
                }
                Write::Prune(_, reply) => {
                    let _ = reply.send(result.map(|applied| match applied {
                        Applied::Pruned(pruned) => pruned,
                        _ => unreachable!("a prune yields Pruned"),
                    }));
                }
                Write::Replay(_, reply) => {
                    let _ = reply.send(result.map(|applied| match applied {
                        Applied::Replayed(replayed) => replayed,
                        _ => unreachable!("a replay yields Replayed"),
                    }));
                }
                Write::AppendInternal(_, reply) => {
                    let _ = reply.send(result.map(|applied| match applied {
                        Applied::AppendedInternal(new) => {
                            if new > 0 {
                                appended.notify_one();
                            }
                            new
                        }
                        _ => unreachable!("an internal append yields AppendedInternal"),
                    }));
                }
            }
        }
    }
    // The inbox is gone: split what was accepted, so that a clean stop
    // leaves nothing for the next start to recover.
    unsplit.split_all(&mut connection, appended);
}

/// What one write did.
enum Applied {
    /// A body committed, at this position.
    Accepted(DeliveryId),
    /// Events pruned.
    Pruned(u64),
    /// What a replay did.
    Replayed(Replayed),
    /// Whether an event was completed.
    Completed(bool),
    /// Events igloo made, this many of them new.
    AppendedInternal(u64),
    /// A run recorded or an event completed.
    Done,
}

/// The delivery that stands for igloo itself, which events it makes (fired
/// timers) belong to. Id 0 is below every split mark, so it is never taken
/// for an unsplit webhook; pruned when unused, it is made again on demand.
const INTERNAL_DELIVERY: DeliveryId = 0;

/// Store events igloo made, deduplicated by key like any other.
fn append_internal(
    transaction: &rusqlite::Transaction<'_>,
    events: &[Event],
    now: i64,
) -> rusqlite::Result<u64> {
    transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO deliveries (id, received_at_ms, body) VALUES (?1, 0, x'')",
        )?
        .execute([INTERNAL_DELIVERY])?;
    let mut insert = transaction.prepare_cached(
        "INSERT INTO events (event_key, delivery_id, account_id, kind, timestamp_ms, received_at_ms, body, person_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (event_key) DO NOTHING",
    )?;
    let mut new = 0;
    for event in events {
        let body = serde_json::to_string(event)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
        new += insert.execute(params![
            event.key,
            INTERNAL_DELIVERY,
            event.account_id,
            event.kind_name(),
            i64::try_from(event.timestamp_ms).unwrap_or(i64::MAX),
            now,
            body,
            event.counterpart_id()
        ])? as u64;
    }
    Ok(new)
}

/// Apply a group in one transaction. If the commit fails, every write in
/// the group fails: none of it is durable.
fn apply_group(connection: &mut Connection, group: &[Write]) -> Vec<Result<Applied, InboxError>> {
    let result = (|| {
        // IMMEDIATE: see `split::split_batch`.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = crate::clock::now_ms() as i64;
        let mut results = Vec::with_capacity(group.len());
        for write in group {
            results.push(match write {
                Write::Accept(accepting, _) => transaction
                    .prepare_cached("INSERT INTO deliveries (received_at_ms, body) VALUES (?1, ?2)")
                    .and_then(|mut insert| insert.insert(params![now, accepting.body.as_ref()]))
                    .map(Applied::Accepted),
                Write::Split(..) => Ok(Applied::Done),
                Write::RecordRun(seq, run, _) => transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO runs
                           (seq, plugin, outcome, detail, finished_at_ms, attempts, retry_at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        seq,
                        run.plugin,
                        run.outcome,
                        run.detail,
                        now,
                        run.attempts,
                        run.retry_at_ms.map(crate::clock::sql_ms)
                    ])
                    .map(|_| Applied::Done),
                // Not while a run waits for a retry or a replay (one an
                // operator asked for while the event was being handled).
                Write::Complete(seq, _) => transaction
                    .prepare_cached(
                        "UPDATE events SET done_at_ms = ?2 WHERE seq = ?1 AND NOT EXISTS
                           (SELECT 1 FROM runs WHERE seq = ?1 AND retry_at_ms IS NOT NULL)",
                    )?
                    .execute(params![seq, now])
                    .map(|changed| Applied::Completed(changed == 1)),
                Write::Journal(run, entry, _) => {
                    journal::write_entry(&transaction, run, entry).map(|()| Applied::Done)
                }
                Write::Replay(request, _) => {
                    browse::replay(&transaction, request, now).map(Applied::Replayed)
                }
                Write::Prune(before_ms, _) => {
                    prune(&transaction, *before_ms).map(|pruned| Applied::Pruned(pruned as u64))
                }
                Write::AppendInternal(events, _) => {
                    append_internal(&transaction, events, now).map(Applied::AppendedInternal)
                }
            });
        }
        // One failed statement fails the group: callers retry, Meta resends.
        let results = results.into_iter().collect::<rusqlite::Result<Vec<_>>>()?;
        transaction.commit()?;
        Ok::<_, rusqlite::Error>(results)
    })();
    match result {
        Ok(results) => results.into_iter().map(Ok).collect(),
        Err(error) => {
            tracing::error!(%error, writes = group.len(), "inbox commit failed");
            let error = storage_error(error);
            group.iter().map(|_| Err(error.clone())).collect()
        }
    }
}

/// Forget completed events received before `before_ms`, with their runs
/// and the deliveries left with no event. Pending events are never pruned.
fn prune(transaction: &rusqlite::Transaction<'_>, before_ms: i64) -> rusqlite::Result<usize> {
    for table in ["runs", "journal"] {
        transaction.execute(
            &format!(
                "DELETE FROM {table} WHERE seq IN
                   (SELECT seq FROM events WHERE done_at_ms IS NOT NULL AND received_at_ms < ?1)"
            ),
            [before_ms],
        )?;
    }
    let pruned = transaction
        .prepare_cached("DELETE FROM events WHERE done_at_ms IS NOT NULL AND received_at_ms < ?1")?
        .execute([before_ms])?;
    // Cheap with `events_delivery`: without it, this (and the foreign key
    // check of each deleted delivery) scanned every event per delivery,
    // which the disk soak found holding the writer for minutes.
    transaction
        .prepare_cached(
            // Never the newest split one: ids must not be handed out again
            // below the split mark.
            "DELETE FROM deliveries WHERE received_at_ms < ?1
               AND id < (SELECT through FROM split_mark)
               AND id NOT IN (SELECT delivery_id FROM events)",
        )?
        .execute([before_ms])?;
    Ok(pruned)
}

#[async_trait]
impl Inbox for SqliteInbox {
    async fn accept(&self, delivery: Delivery) -> Result<Accepted, InboxError> {
        let (split, answer) = Unsplit::prepare(delivery.events);
        let accepting = Accepting {
            body: delivery.body,
            split,
        };
        self.write(|reply| Write::Accept(accepting, reply)).await?;
        Ok(Accepted::new(answer))
    }

    async fn unsplit(
        &self,
        after: DeliveryId,
        limit: usize,
    ) -> Result<Vec<UnsplitDelivery>, InboxError> {
        self.read(move |connection| {
            let mut select = connection.prepare_cached(
                "SELECT id, body FROM deliveries
                 WHERE id > max(?1, (SELECT through FROM split_mark)) ORDER BY id LIMIT ?2",
            )?;
            select
                .query_map(params![after, limit as i64], |row| {
                    Ok(UnsplitDelivery {
                        id: row.get(0)?,
                        body: bytes::Bytes::from(row.get::<_, Vec<u8>>(1)?),
                    })
                })?
                .collect()
        })
        .await
    }

    async fn split_stored(
        &self,
        id: DeliveryId,
        events: Vec<Incoming>,
    ) -> Result<Appended, InboxError> {
        let (split, answer) = Unsplit::prepare(events);
        self.writes
            .send(Write::Split(id, split))
            .map_err(|_| InboxError::Stopped("writer thread"))?;
        Accepted::new(answer).split().await
    }

    async fn pending(
        &self,
        after: Seq,
        limit: usize,
        held: &[String],
        now_ms: u64,
    ) -> Result<Vec<PendingEvent>, InboxError> {
        // Events waiting for a later retry, or for a refused token, may be
        // many (an hour of a plugin asking for retries, a day of a refused
        // token): skipped in the query, not read and parsed at every rescan.
        let held = serde_json::to_string(held).expect("strings serialise");
        self.read(move |connection| {
            read_pending(
                connection,
                "SELECT seq, body, received_at_ms FROM events
                 WHERE done_at_ms IS NULL AND seq > ?1
                   AND account_id NOT IN (SELECT value FROM json_each(?3))
                   AND NOT EXISTS (SELECT 1 FROM runs
                                   WHERE runs.seq = events.seq AND runs.retry_at_ms > ?4)
                 ORDER BY seq LIMIT ?2",
                params![after, limit as i64, held, crate::clock::sql_ms(now_ms)],
            )
        })
        .await
    }

    async fn next_retry_at(&self, now_ms: u64) -> Result<Option<u64>, InboxError> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT min(runs.retry_at_ms) FROM runs JOIN events ON events.seq = runs.seq
                     WHERE runs.retry_at_ms > ?1 AND events.done_at_ms IS NULL",
                )?
                .query_row([crate::clock::sql_ms(now_ms)], |row| {
                    row.get::<_, Option<i64>>(0)
                })
                .map(|due| due.map(|at| at.max(0) as u64))
        })
        .await
    }

    async fn pending_event(&self, seq: Seq) -> Result<Option<PendingEvent>, InboxError> {
        self.read(move |connection| {
            read_pending(
                connection,
                "SELECT seq, body, received_at_ms FROM events
                 WHERE done_at_ms IS NULL AND seq = ?1",
                params![seq],
            )
            .map(|mut found| found.pop())
        })
        .await
    }

    async fn record_run(&self, seq: Seq, run: RunRecord) -> Result<(), InboxError> {
        self.write(|reply| Write::RecordRun(seq, run, reply)).await
    }

    async fn complete(&self, seq: Seq) -> Result<bool, InboxError> {
        self.write(|reply| Write::Complete(seq, reply)).await
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, InboxError> {
        self.write(|reply| Write::Prune(before_ms, reply)).await
    }

    async fn append_internal(&self, events: Vec<Event>) -> Result<u64, InboxError> {
        self.write(|reply| Write::AppendInternal(events, reply))
            .await
    }

    async fn runs(&self, seq: Seq) -> Result<Vec<RunRecord>, InboxError> {
        self.read(move |connection| read_runs(connection, seq))
            .await
    }

    async fn stats(&self) -> Result<InboxStats, InboxError> {
        // Health asks for these: an inbox that can no longer write is down.
        if self.writes.is_closed() {
            return Err(InboxError::Stopped("writer thread"));
        }
        self.read(|connection| {
            // One snapshot: counted apart, a split committing in between
            // could show neither its body unsplit nor its events pending.
            let snapshot = connection.unchecked_transaction()?;
            let count = |sql: &str| -> rusqlite::Result<u64> {
                snapshot
                    .query_row(sql, [], |row| row.get::<_, i64>(0))
                    .map(|n| n as u64)
            };
            Ok(InboxStats {
                // Not the delivery standing for igloo itself (timers).
                deliveries: count("SELECT count(*) FROM deliveries WHERE id <> 0")?,
                events: count("SELECT count(*) FROM events")?,
                pending: count("SELECT count(*) FROM events WHERE done_at_ms IS NULL")?,
                unsplit: count(
                    "SELECT count(*) FROM deliveries WHERE id > (SELECT through FROM split_mark)",
                )?,
                runs: count("SELECT count(*) FROM runs")?,
            })
        })
        .await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, InboxError> {
        let filter = filter.clone();
        self.read(move |connection| browse::list(connection, &filter))
            .await
    }

    async fn event_detail(&self, seq: Seq) -> Result<Option<EventDetail>, InboxError> {
        self.read(move |connection| browse::detail(connection, seq))
            .await
    }

    async fn replay(&self, request: ReplayRequest) -> Result<Replayed, InboxError> {
        self.write(|reply| Write::Replay(request, reply)).await
    }

    async fn appended(&self) {
        self.appended.notified().await;
    }
}

#[cfg(test)]
mod tests;
