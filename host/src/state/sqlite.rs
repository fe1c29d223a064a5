//! [`HostState`] in SQLite (its own database file beside the inbox).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::clock::sql_ms;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::M;

use super::{
    CommentSeen, HostState, KvScope, KvSet, KvWrite, Pause, PausedBy, ResumedBy, StateError,
    TimerEntry, TimerFilter, TimerLimits, TimerSet, TimerStanding, TimerView,
};

/// The schema, version by version; a list that only grows at its end.
/// Version 1 is the schema of igloo 0.1, which kept no version: `IF NOT
/// EXISTS` adopts a database it wrote.
fn migrations() -> Vec<M<'static>> {
    vec![
        M::up(
            "
CREATE TABLE IF NOT EXISTS kv (
    plugin        TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         BLOB NOT NULL,
    expires_at_ms INTEGER,
    PRIMARY KEY (plugin, account_id, key)
);
CREATE TABLE IF NOT EXISTS windows (
    account_id      TEXT NOT NULL,
    person_id       TEXT NOT NULL,
    last_inbound_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, person_id)
);
CREATE TABLE IF NOT EXISTS comments (
    account_id   TEXT NOT NULL,
    comment_id   TEXT NOT NULL,
    author_id    TEXT,
    at_ms        INTEGER NOT NULL,
    replied_by   TEXT,
    PRIMARY KEY (account_id, comment_id)
);
CREATE INDEX IF NOT EXISTS kv_expiry ON kv(expires_at_ms) WHERE expires_at_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS windows_age ON windows(last_inbound_ms);
CREATE INDEX IF NOT EXISTS comments_age ON comments(at_ms);
",
        ),
        // Opt-outs, kept until the person opts back in: never pruned.
        M::up(
            "
CREATE TABLE opt_outs (
    account_id TEXT NOT NULL,
    person_id  TEXT NOT NULL,
    opted_out  INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (account_id, person_id)
);
",
        ),
        // Timers, kept until they fire or are cancelled; pauses, until they
        // end. Neither is pruned with windows.
        M::up(
            "
CREATE TABLE timers (
    plugin     TEXT NOT NULL,
    account_id TEXT NOT NULL,
    person_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    due_at_ms  INTEGER NOT NULL,
    payload    BLOB NOT NULL,
    fired      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (plugin, account_id, person_id, key)
);
CREATE INDEX timers_due ON timers(fired, due_at_ms);
CREATE TABLE pauses (
    account_id TEXT NOT NULL,
    person_id  TEXT NOT NULL,
    until_ms   INTEGER,
    paused_by  TEXT NOT NULL,
    since_ms   INTEGER NOT NULL,
    PRIMARY KEY (account_id, person_id)
);
-- When the thread last came back to this app, per conversation.
CREATE TABLE thread_returns (
    account_id TEXT NOT NULL,
    person_id  TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (account_id, person_id)
);
",
        ),
    ]
}

/// Windows cached in memory at most; past it, the cache starts over (the
/// database stays the truth).
const MAX_CACHED_WINDOWS: usize = 100_000;

/// A write, run by the writer thread inside its group's transaction; what
/// it returns answers its caller once the group has committed (or not).
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Answers a write's caller with how its group's commit went.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Most writes committed together.
const MAX_GROUP: usize = 256;

/// The SQLite state store. Reads go through their own connection; writes
/// go to one thread that commits whatever waits in one transaction, so a
/// burst of events (each opening a window) costs one commit, not one each.
pub struct SqliteState {
    /// The database file, for copies.
    path: std::path::PathBuf,
    reader: Arc<Mutex<Connection>>,
    writes: std::sync::mpsc::Sender<Job>,
    /// Windows read or written recently: every send checks one, and a
    /// lookup that suspends the plugin's fiber for a blocking read costs
    /// more than the rest of the run (BENCHMARKS.md). Bounded, and pruned
    /// with the table.
    windows: Mutex<HashMap<(String, String), u64>>,
    /// Who may not be messaged now; see [`Gates`].
    gates: Arc<Mutex<Gates>>,
}

/// People who may not be messaged: those opted out, and those whose
/// conversation is paused. Few, and checked on every send: kept whole in
/// memory, loaded at open and changed as each write commits, in commit
/// order. The database stays the truth; this process is its only writer
/// (the data directory's lock).
#[derive(Debug, Default)]
struct Gates {
    opted_out: HashSet<(String, String)>,
    paused: HashMap<(String, String), Pause>,
}

impl Gates {
    /// The gates stored in `db`.
    fn load(db: &Connection) -> rusqlite::Result<Self> {
        let mut gates = Gates::default();
        let mut opted_out =
            db.prepare("SELECT account_id, person_id FROM opt_outs WHERE opted_out = 1")?;
        for person in opted_out.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
            gates.opted_out.insert(person?);
        }
        let mut paused =
            db.prepare("SELECT account_id, person_id, until_ms, paused_by, since_ms FROM pauses")?;
        for pause in paused.query_map([], pause_row)? {
            let pause = pause?;
            gates.set_pause(
                (pause.account_id.clone(), pause.person_id.clone()),
                Some(pause),
            );
        }
        Ok(gates)
    }

    fn set_pause(&mut self, key: (String, String), pause: Option<Pause>) {
        match pause {
            Some(pause) => self.paused.insert(key, pause),
            None => self.paused.remove(&key),
        };
    }
}

impl SqliteState {
    fn gates(&self) -> std::sync::MutexGuard<'_, Gates> {
        self.gates
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn cache_window(&self, key: (String, String), at_ms: u64) {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if windows.len() >= MAX_CACHED_WINDOWS && !windows.contains_key(&key) {
            windows.clear();
        }
        let last = windows.entry(key).or_insert(at_ms);
        *last = (*last).max(at_ms);
    }
}

impl SqliteState {
    /// Open (or create) the state database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let mut writer = open_connection(path)?;
        crate::migrate::to_latest(&mut writer, migrations(), path).map_err(error)?;
        let gates = Gates::load(&writer).map_err(error)?;
        let reader = open_connection(path)?;
        let (writes, jobs) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("igloo-state-writer".into())
            .spawn(move || write_loop(&writer, &jobs))
            .map_err(error)?;
        Ok(Self {
            path: path.to_owned(),
            reader: Arc::new(Mutex::new(reader)),
            writes,
            windows: Mutex::new(HashMap::new()),
            gates: Arc::new(Mutex::new(gates)),
        })
    }

    /// Run a read on the reader connection.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        let connection = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let connection = connection
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            work(&connection).map_err(error)
        })
        .await
        .map_err(error)?
    }

    /// Run a write on the writer thread, in a savepoint of its group's
    /// transaction (so one failed write fails alone); answers once the
    /// group has committed.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        self.write_then(work, |_| {}).await
    }

    /// [`Self::write`], then `committed` with its result once the group has
    /// committed: on the writer thread, in commit order.
    async fn write_then<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        committed: impl FnOnce(&T) + Send + 'static,
    ) -> Result<T, StateError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db| {
            let result = in_savepoint(db, work);
            Box::new(move |group| {
                let _ = reply.send(match group {
                    Ok(()) => result.map_err(error).inspect(|result| {
                        // Committed whatever its follow-up does: a bug there
                        // must not tell the caller otherwise.
                        let follow_up = std::panic::AssertUnwindSafe(|| committed(result));
                        if std::panic::catch_unwind(follow_up).is_err() {
                            tracing::error!("following up a committed state write panicked");
                        }
                    }),
                    Err(failed) => Err(error(std::io::Error::other(failed))),
                });
            })
        });
        self.writes
            .send(job)
            .map_err(|_| error(std::io::Error::other("the state writer stopped")))?;
        answer.await.map_err(|_| {
            error(std::io::Error::other(
                "the state write failed before it was answered",
            ))
        })?
    }
}

fn open_connection(path: &Path) -> Result<Connection, StateError> {
    let connection = Connection::open(path).map_err(error)?;
    // NORMAL in WAL mode survives a crash of igloo; state is small and
    // written per host call, so it is not worth an fsync each.
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(error)?;
    Ok(connection)
}

/// Run `work` in a savepoint: undone alone if it fails. Outside a
/// transaction, the savepoint is a transaction of its own.
fn in_savepoint<T>(
    db: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    db.prepare_cached("SAVEPOINT job")?.execute([])?;
    let result = work(db);
    // SQLite may have rolled everything back itself (a full disk): then
    // there is no savepoint left to undo or release.
    if !db.is_autocommit() {
        if result.is_err() {
            db.prepare_cached("ROLLBACK TO job")?.execute([])?;
        }
        db.prepare_cached("RELEASE job")?.execute([])?;
    }
    result
}

/// Open the group's transaction, first ending one left open by a failure.
/// False if it did not open: each write then commits alone.
fn begin_group(db: &Connection) -> bool {
    if !db.is_autocommit() {
        let _ = db.execute_batch("ROLLBACK");
    }
    db.execute_batch("BEGIN IMMEDIATE").is_ok()
}

/// The writer thread: take every write that waits, run them in one
/// transaction, commit, answer each. Ends when the store is dropped.
fn write_loop(db: &Connection, jobs: &std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut grouped = begin_group(db);
        let mut replies: Vec<Reply> = Vec::with_capacity(group.len());
        for job in group {
            let reply = run_job(db, job);
            if grouped && db.is_autocommit() {
                // SQLite rolled the group back: every write in it so far
                // is undone, and says so; the rest start a new group.
                let undone = "the state store rolled back a group of writes".to_owned();
                for earlier in replies.drain(..).chain(reply) {
                    earlier(Err(undone.clone()));
                }
                grouped = begin_group(db);
                continue;
            }
            replies.extend(reply);
        }
        let committed = if grouped {
            db.execute_batch("COMMIT").map_err(|failed| {
                let _ = db.execute_batch("ROLLBACK");
                failed.to_string()
            })
        } else {
            Ok(())
        };
        for reply in replies {
            reply(committed.clone());
        }
    }
}

/// Run one write. One that panics (a bug) is undone alone, its caller is
/// told the write failed, and the writer goes on with the others: a dead
/// writer would fail every later write of every plugin.
fn run_job(db: &Connection, job: Job) -> Option<Reply> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(db))) {
        Ok(reply) => Some(reply),
        Err(_) => {
            tracing::error!("a state write panicked: it is undone, and the writer goes on");
            // Its savepoint is still open: undo just what it did, or, if
            // that fails, the whole group (which its writes then learn).
            if !db.is_autocommit() && db.execute_batch("ROLLBACK TO job; RELEASE job").is_err() {
                let _ = db.execute_batch("ROLLBACK");
            }
            None
        }
    }
}

/// `timers.fired`: waiting to fire.
const WAITING: i64 = 0;
/// `timers.fired`: fired; its event is stored and not yet done with.
const FIRED: i64 = 1;
/// `timers.fired`: cancelled after it fired. A tombstone, kept until its
/// event is done with, so a retry of that event is held back too (where
/// no row at all means the event ran to its end and may be replayed).
const CANCELLED: i64 = 2;

/// A timer's identity (its key, and the due time it fired for), as the
/// statements above bind it.
fn timer_row(timer: &TimerEntry) -> (&str, &str, &str, &str, i64) {
    (
        &timer.plugin,
        &timer.account_id,
        &timer.person_id,
        &timer.key,
        sql_ms(timer.due_at_ms),
    )
}

/// The pause of a conversation as stored, ended or not.
fn stored_pause(
    db: &Connection,
    account_id: &str,
    person_id: &str,
) -> rusqlite::Result<Option<Pause>> {
    db.prepare_cached(
        "SELECT account_id, person_id, until_ms, paused_by, since_ms FROM pauses
         WHERE account_id = ?1 AND person_id = ?2",
    )?
    .query_row(params![account_id, person_id], pause_row)
    .optional()
}

fn pause_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Pause> {
    Ok(Pause {
        account_id: row.get(0)?,
        person_id: row.get(1)?,
        until_ms: row.get::<_, Option<i64>>(2)?.map(|at| at as u64),
        by: PausedBy::try_from(row.get::<_, String>(3)?).map_err(|by| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown pauser {by:?}").into(),
            )
        })?,
        since_ms: row.get::<_, i64>(4)? as u64,
    })
}

fn error(error: impl std::error::Error + Send + Sync + 'static) -> StateError {
    StateError::backend(error)
}

#[async_trait]
impl HostState for SqliteState {
    async fn copy_to(&self, scratch: &Path) -> Result<Arc<dyn HostState>, StateError> {
        let copy = scratch.join("state.sqlite3");
        let target = copy
            .to_str()
            .ok_or_else(|| error(std::io::Error::other("the scratch path is not UTF-8")))?
            .to_owned();
        let source = self.path.clone();
        // One statement, one consistent snapshot, whatever the WAL holds; on
        // a connection of its own, so live reads do not wait for the copy.
        tokio::task::spawn_blocking(move || {
            Connection::open(&source)?.execute("VACUUM INTO ?1", [target])
        })
        .await
        .map_err(error)?
        .map_err(error)?;
        Ok(Arc::new(Self::open(&copy)?))
    }

    async fn kv_get(
        &self,
        scope: &KvScope,
        key: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let (scope, key) = (scope.clone(), key.to_owned());
        self.read(move |db| {
            db.query_row(
                "SELECT value FROM kv WHERE plugin = ?1 AND account_id = ?2 AND key = ?3
                   AND (expires_at_ms IS NULL OR expires_at_ms > ?4)",
                params![scope.plugin, scope.account_id, key, now_ms as i64],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn kv_set(&self, scope: &KvScope, set: KvSet<'_>) -> Result<KvWrite, StateError> {
        let KvSet {
            expires_at_ms,
            now_ms,
            quota,
            ..
        } = set;
        let (scope, key, value) = (scope.clone(), set.key.to_owned(), set.value.to_vec());
        // One closure under the connection's lock: the usage read and the
        // write cannot interleave with another run's.
        self.write(move |db| {
            let (keys, bytes): (i64, i64) = db.query_row(
                "SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM kv
                 WHERE plugin = ?1 AND account_id = ?2 AND key <> ?3
                   AND (expires_at_ms IS NULL OR expires_at_ms > ?4)",
                params![scope.plugin, scope.account_id, key, now_ms as i64],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if keys as u64 + 1 > quota.max_keys {
                return Ok(KvWrite::TooManyKeys);
            }
            if bytes as u64 + (key.len() + value.len()) as u64 > quota.max_bytes {
                return Ok(KvWrite::TooManyBytes);
            }
            db.prepare_cached(
                "INSERT OR REPLACE INTO kv (plugin, account_id, key, value, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(
                // A plugin's far-future TTL saturates; stored as i64 it must
                // not wrap into the past.
                params![
                    scope.plugin,
                    scope.account_id,
                    key,
                    value,
                    expires_at_ms.map(sql_ms)
                ],
            )?;
            Ok(KvWrite::Stored)
        })
        .await
    }

    async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StateError> {
        let (scope, key) = (scope.clone(), key.to_owned());
        self.write(move |db| {
            db.prepare_cached("DELETE FROM kv WHERE plugin = ?1 AND account_id = ?2 AND key = ?3")?
                .execute(params![scope.plugin, scope.account_id, key])
                .map(|_| ())
        })
        .await
    }

    async fn kv_list(
        &self,
        scope: &KvScope,
        prefix: &str,
        now_ms: u64,
    ) -> Result<Vec<String>, StateError> {
        let (scope, prefix) = (scope.clone(), prefix.to_owned());
        self.read(move |db| {
            // substr, not LIKE: a prefix may hold % and _.
            let mut select = db.prepare_cached(
                "SELECT key FROM kv WHERE plugin = ?1 AND account_id = ?2 AND substr(key, 1, length(?3)) = ?3
                   AND (expires_at_ms IS NULL OR expires_at_ms > ?4) ORDER BY key",
            )?;
            select
                .query_map(params![scope.plugin, scope.account_id, prefix, now_ms as i64], |row| row.get(0))?
                .collect()
        })
        .await
    }

    async fn record_inbound(
        &self,
        account_id: &str,
        person_id: &str,
        at_ms: u64,
    ) -> Result<(), StateError> {
        let key = (account_id.to_owned(), person_id.to_owned());
        self.cache_window(key.clone(), at_ms);
        let (account_id, person_id) = key;
        self.write(move |db| {
            db.prepare_cached(
                "INSERT INTO windows (account_id, person_id, last_inbound_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account_id, person_id) DO UPDATE
                   SET last_inbound_ms = max(last_inbound_ms, excluded.last_inbound_ms)",
            )?
            .execute(params![account_id, person_id, at_ms as i64])
            .map(|_| ())
        })
        .await
    }

    async fn last_inbound(
        &self,
        account_id: &str,
        person_id: &str,
    ) -> Result<Option<u64>, StateError> {
        let key = (account_id.to_owned(), person_id.to_owned());
        if let Some(last) = self
            .windows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(&key)
        {
            return Ok(Some(*last));
        }
        let (account_id, person_id) = key.clone();
        let stored = self
            .read(move |db| {
                db.query_row(
                    "SELECT last_inbound_ms FROM windows WHERE account_id = ?1 AND person_id = ?2",
                    params![account_id, person_id],
                    |row| row.get::<_, i64>(0).map(|at| at as u64),
                )
                .optional()
            })
            .await?;
        if let Some(last) = stored {
            self.cache_window(key, last);
        }
        Ok(stored)
    }

    async fn record_comment(&self, comment: &CommentSeen<'_>) -> Result<(), StateError> {
        let (account_id, comment_id, author_id, at_ms) = (
            comment.account_id.to_owned(),
            comment.comment_id.to_owned(),
            comment.author_id.map(str::to_owned),
            comment.at_ms,
        );
        self.write(move |db| {
            db.prepare_cached(
                "INSERT OR IGNORE INTO comments (account_id, comment_id, author_id, at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![account_id, comment_id, author_id, at_ms as i64])
            .map(|_| ())
        })
        .await
    }

    async fn comment_author(
        &self,
        account_id: &str,
        comment_id: &str,
    ) -> Result<Option<String>, StateError> {
        let (account_id, comment_id) = (account_id.to_owned(), comment_id.to_owned());
        self.read(move |db| {
            db.query_row(
                "SELECT author_id FROM comments WHERE account_id = ?1 AND comment_id = ?2",
                params![account_id, comment_id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
        .await
    }

    async fn learn_comment_author(
        &self,
        account_id: &str,
        comment_id: &str,
        author_id: Option<&str>,
    ) -> Result<(), StateError> {
        let (account_id, comment_id) = (account_id.to_owned(), comment_id.to_owned());
        let author_id = author_id.unwrap_or_default().to_owned();
        self.write(move |db| {
            db.prepare_cached(
                "UPDATE comments SET author_id = ?3
                 WHERE account_id = ?1 AND comment_id = ?2 AND author_id IS NULL",
            )?
            .execute(params![account_id, comment_id, author_id])
            .map(|_| ())
        })
        .await
    }

    async fn record_opt_out(
        &self,
        account_id: &str,
        person_id: &str,
        opted_out: bool,
        at_ms: u64,
    ) -> Result<(), StateError> {
        let key = (account_id.to_owned(), person_id.to_owned());
        let (account_id, person_id) = key.clone();
        let gates = Arc::clone(&self.gates);
        self.write_then(
            move |db| {
                db.prepare_cached(
                    "INSERT INTO opt_outs (account_id, person_id, opted_out, at_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account_id, person_id) DO UPDATE
                       SET opted_out = excluded.opted_out, at_ms = excluded.at_ms
                       WHERE excluded.at_ms >= opt_outs.at_ms",
                )?
                .execute(params![
                    account_id,
                    person_id,
                    opted_out,
                    at_ms as i64
                ])?;
                // What stands now: this decision, or a later one.
                db.prepare_cached(
                    "SELECT opted_out FROM opt_outs WHERE account_id = ?1 AND person_id = ?2",
                )?
                .query_row(params![account_id, person_id], |row| row.get::<_, bool>(0))
            },
            move |&stands| {
                let mut gates = gates.lock().unwrap_or_else(|poison| poison.into_inner());
                if stands {
                    gates.opted_out.insert(key);
                } else {
                    gates.opted_out.remove(&key);
                }
            },
        )
        .await
        .map(drop)
    }

    async fn opted_out(&self, account_id: &str, person_id: &str) -> Result<bool, StateError> {
        let key = (account_id.to_owned(), person_id.to_owned());
        Ok(self.gates().opted_out.contains(&key))
    }

    async fn pause(&self, pause: Pause) -> Result<(), StateError> {
        let key = (pause.account_id.clone(), pause.person_id.clone());
        let gates = Arc::clone(&self.gates);
        let by = String::from(pause.by.clone());
        self.write_then(
            move |db| {
                // A handover's pause is not taken if the thread came back
                // after it; none replaces a later pause; a handover's
                // replaces only a handover's, a plugin's only a plugin's.
                db.prepare_cached(
                    "INSERT INTO pauses (account_id, person_id, until_ms, paused_by, since_ms)
                     SELECT ?1, ?2, ?3, ?4, ?5
                     WHERE ?4 <> 'handover' OR NOT EXISTS (SELECT 1 FROM thread_returns
                       WHERE account_id = ?1 AND person_id = ?2 AND at_ms >= ?5)
                     ON CONFLICT (account_id, person_id) DO UPDATE
                       SET until_ms = excluded.until_ms, paused_by = excluded.paused_by,
                           since_ms = excluded.since_ms
                       WHERE excluded.since_ms >= pauses.since_ms
                         AND (excluded.paused_by <> 'handover' OR pauses.paused_by = 'handover')
                         AND (excluded.paused_by NOT LIKE 'plugin:%'
                              OR pauses.paused_by LIKE 'plugin:%')",
                )?
                .execute(params![
                    pause.account_id,
                    pause.person_id,
                    pause.until_ms.map(sql_ms),
                    by,
                    sql_ms(pause.since_ms)
                ])?;
                stored_pause(db, &pause.account_id, &pause.person_id)
            },
            move |stands| {
                let mut gates = gates.lock().unwrap_or_else(|poison| poison.into_inner());
                gates.set_pause(key, stands.clone());
            },
        )
        .await
        .map(drop)
    }

    async fn resume(
        &self,
        account_id: &str,
        person_id: &str,
        by: ResumedBy,
    ) -> Result<bool, StateError> {
        let key = (account_id.to_owned(), person_id.to_owned());
        let (account_id, person_id) = key.clone();
        let gates = Arc::clone(&self.gates);
        // Which pauses `by` may lift: ?3 is a `paused_by` pattern, ?4 the
        // latest decision time it may undo.
        let (pattern, until) = match by {
            ResumedBy::Operator => ("%", i64::MAX),
            ResumedBy::Handover { at_ms } => ("handover", sql_ms(at_ms)),
            ResumedBy::Plugin => ("plugin:%", i64::MAX),
        };
        self.write_then(
            move |db| {
                let lifted = db
                    .prepare_cached(
                        "DELETE FROM pauses WHERE account_id = ?1 AND person_id = ?2
                           AND paused_by LIKE ?3 AND since_ms <= ?4",
                    )?
                    .execute(params![account_id, person_id, pattern, until])?;
                if let ResumedBy::Handover { at_ms } = by {
                    // Remembered, so an older handover away, handled late,
                    // does not pause again.
                    db.prepare_cached(
                        "INSERT INTO thread_returns (account_id, person_id, at_ms)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT (account_id, person_id) DO UPDATE
                           SET at_ms = max(at_ms, excluded.at_ms)",
                    )?
                    .execute(params![account_id, person_id, sql_ms(at_ms)])?;
                }
                Ok((lifted > 0, stored_pause(db, &account_id, &person_id)?))
            },
            move |(_, stands)| {
                let mut gates = gates.lock().unwrap_or_else(|poison| poison.into_inner());
                gates.set_pause(key, stands.clone());
            },
        )
        .await
        .map(|(lifted, _)| lifted)
    }

    async fn pause_of(
        &self,
        account_id: &str,
        person_id: &str,
        now_ms: u64,
    ) -> Result<Option<Pause>, StateError> {
        let key = (account_id.to_owned(), person_id.to_owned());
        let gates = self.gates();
        let pause = gates.paused.get(&key);
        Ok(pause
            .filter(|pause| pause.until_ms.is_none_or(|until| until > now_ms))
            .cloned())
    }

    async fn pauses(&self, now_ms: u64) -> Result<Vec<Pause>, StateError> {
        let gates = self.gates();
        let mut pauses: Vec<Pause> = gates
            .paused
            .values()
            .filter(|pause| pause.until_ms.is_none_or(|until| until > now_ms))
            .cloned()
            .collect();
        pauses.sort_by(|a, b| (&a.account_id, &a.person_id).cmp(&(&b.account_id, &b.person_id)));
        Ok(pauses)
    }

    async fn set_timer(
        &self,
        timer: TimerEntry,
        limits: TimerLimits,
    ) -> Result<TimerSet, StateError> {
        self.write(move |db| {
            let (in_account, in_conversation): (i64, i64) = db.query_row(
                "SELECT count(*), coalesce(sum(person_id = ?3), 0) FROM timers
                 WHERE plugin = ?1 AND account_id = ?2 AND NOT (person_id = ?3 AND key = ?4)
                   AND fired <> ?5",
                params![
                    timer.plugin,
                    timer.account_id,
                    timer.person_id,
                    timer.key,
                    CANCELLED
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if in_account as u64 >= limits.per_account {
                return Ok(TimerSet::AccountFull);
            }
            if in_conversation as u64 >= limits.per_conversation {
                return Ok(TimerSet::ConversationFull);
            }
            db.prepare_cached(
                "INSERT OR REPLACE INTO timers
                   (plugin, account_id, person_id, key, due_at_ms, payload, fired)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                timer.plugin,
                timer.account_id,
                timer.person_id,
                timer.key,
                sql_ms(timer.due_at_ms),
                timer.payload,
                WAITING
            ])?;
            Ok(TimerSet::Set)
        })
        .await
    }

    async fn cancel_timer(
        &self,
        plugin: &str,
        account_id: &str,
        person_id: &str,
        key: &str,
        due_at_ms: Option<u64>,
    ) -> Result<bool, StateError> {
        let row = [plugin, account_id, person_id, key].map(str::to_owned);
        let due = due_at_ms.map(sql_ms);
        self.write(move |db| {
            let fired = db
                .prepare_cached(
                    "UPDATE timers SET fired = ?5
                     WHERE plugin = ?1 AND account_id = ?2 AND person_id = ?3 AND key = ?4
                       AND fired = ?6 AND (?7 IS NULL OR due_at_ms = ?7)",
                )?
                .execute(params![
                    row[0], row[1], row[2], row[3], CANCELLED, FIRED, due
                ])?;
            let waiting = db
                .prepare_cached(
                    "DELETE FROM timers
                     WHERE plugin = ?1 AND account_id = ?2 AND person_id = ?3 AND key = ?4
                       AND fired = ?5 AND (?6 IS NULL OR due_at_ms = ?6)",
                )?
                .execute(params![row[0], row[1], row[2], row[3], WAITING, due])?;
            Ok(fired + waiting > 0)
        })
        .await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, StateError> {
        self.read(move |db| {
            let mut select = db.prepare_cached(
                "SELECT plugin, account_id, person_id, key, due_at_ms, payload FROM timers
                 WHERE fired = ?3 AND due_at_ms <= ?1 ORDER BY due_at_ms LIMIT ?2",
            )?;
            let rows = select.query_map(params![sql_ms(now_ms), limit as i64, WAITING], |row| {
                Ok(TimerEntry {
                    plugin: row.get(0)?,
                    account_id: row.get(1)?,
                    person_id: row.get(2)?,
                    key: row.get(3)?,
                    due_at_ms: row.get::<_, i64>(4)? as u64,
                    payload: row.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn mark_fired(&self, fired: Vec<TimerEntry>) -> Result<(), StateError> {
        self.write(move |db| {
            let mut mark = db.prepare_cached(
                "UPDATE timers SET fired = ?6 WHERE plugin = ?1 AND account_id = ?2
                   AND person_id = ?3 AND key = ?4 AND due_at_ms = ?5 AND fired = ?7",
            )?;
            for timer in &fired {
                let (plugin, account_id, person_id, key, due_at_ms) = timer_row(timer);
                mark.execute(params![
                    plugin, account_id, person_id, key, due_at_ms, FIRED, WAITING
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn timer_standing(&self, timer: &TimerEntry) -> Result<TimerStanding, StateError> {
        let timer = timer.clone();
        self.read(move |db| {
            let (plugin, account_id, person_id, key, due_at_ms) = timer_row(&timer);
            let stored: Option<(i64, i64)> = db
                .prepare_cached(
                    "SELECT due_at_ms, fired FROM timers
                     WHERE plugin = ?1 AND account_id = ?2 AND person_id = ?3 AND key = ?4",
                )?
                .query_row(params![plugin, account_id, person_id, key], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            Ok(match stored {
                None => TimerStanding::Forgotten,
                Some((due, _)) if due != due_at_ms => TimerStanding::SetAgain,
                Some((_, CANCELLED)) => TimerStanding::Cancelled,
                Some(_) => TimerStanding::Live,
            })
        })
        .await
    }

    async fn forget_timer(&self, timer: &TimerEntry) -> Result<(), StateError> {
        let timer = timer.clone();
        self.write(move |db| {
            db.prepare_cached(
                "DELETE FROM timers WHERE plugin = ?1 AND account_id = ?2 AND person_id = ?3
                   AND key = ?4 AND due_at_ms = ?5",
            )?
            .execute(timer_row(&timer))
            .map(drop)
        })
        .await
    }

    async fn forget_plugin(&self, plugin: &str) -> Result<u64, StateError> {
        let plugin = plugin.to_owned();
        self.write(move |db| {
            let kv = db.execute("DELETE FROM kv WHERE plugin = ?1", [&plugin])?;
            let timers = db.execute("DELETE FROM timers WHERE plugin = ?1", [&plugin])?;
            Ok((kv + timers) as u64)
        })
        .await
    }

    async fn next_timer_due(&self) -> Result<Option<u64>, StateError> {
        self.read(|db| {
            db.query_row(
                "SELECT min(due_at_ms) FROM timers WHERE fired = ?1",
                [WAITING],
                |row| row.get::<_, Option<i64>>(0),
            )
            .map(|due| due.map(|at| at as u64))
        })
        .await
    }

    async fn timers(&self, filter: TimerFilter) -> Result<Vec<TimerView>, StateError> {
        self.read(move |db| {
            let mut select = db.prepare_cached(
                "SELECT plugin, account_id, person_id, key, due_at_ms, fired, length(payload)
                 FROM timers
                 WHERE (?1 IS NULL OR plugin = ?1) AND (?2 IS NULL OR account_id = ?2)
                   AND (?3 IS NULL OR person_id = ?3) AND fired <> ?5
                 ORDER BY due_at_ms, plugin, account_id, person_id, key LIMIT ?4",
            )?;
            select
                .query_map(
                    params![
                        filter.plugin,
                        filter.account_id,
                        filter.person_id,
                        filter.limit,
                        CANCELLED
                    ],
                    |row| {
                        Ok(TimerView {
                            plugin: row.get(0)?,
                            account_id: row.get(1)?,
                            person_id: row.get(2)?,
                            key: row.get(3)?,
                            due_at_ms: row.get::<_, i64>(4)?.max(0) as u64,
                            fired: row.get::<_, i64>(5)? == FIRED,
                            payload_bytes: row.get::<_, i64>(6)?.max(0) as u64,
                        })
                    },
                )?
                .collect()
        })
        .await
    }

    async fn comment_time(
        &self,
        account_id: &str,
        comment_id: &str,
    ) -> Result<Option<u64>, StateError> {
        let (account_id, comment_id) = (account_id.to_owned(), comment_id.to_owned());
        self.read(move |db| {
            db.query_row(
                "SELECT at_ms FROM comments WHERE account_id = ?1 AND comment_id = ?2",
                params![account_id, comment_id],
                |row| row.get::<_, i64>(0).map(|at| at as u64),
            )
            .optional()
        })
        .await
    }

    async fn claim_private_reply(
        &self,
        account_id: &str,
        comment_id: &str,
        plugin: &str,
    ) -> Result<bool, StateError> {
        let (account_id, comment_id, plugin) = (
            account_id.to_owned(),
            comment_id.to_owned(),
            plugin.to_owned(),
        );
        self.write(move |db| {
            // One statement: two plugins racing for the same comment cannot
            // both win.
            db.prepare_cached(
                "UPDATE comments SET replied_by = ?3
                 WHERE account_id = ?1 AND comment_id = ?2 AND replied_by IS NULL",
            )?
            .execute(params![account_id, comment_id, plugin])
            .map(|changed| changed == 1)
        })
        .await
    }

    async fn release_private_reply(
        &self,
        account_id: &str,
        comment_id: &str,
    ) -> Result<(), StateError> {
        let (account_id, comment_id) = (account_id.to_owned(), comment_id.to_owned());
        self.write(move |db| {
            db.prepare_cached(
                "UPDATE comments SET replied_by = NULL WHERE account_id = ?1 AND comment_id = ?2",
            )?
            .execute(params![account_id, comment_id])
            .map(|_| ())
        })
        .await
    }

    async fn prune(&self, now_ms: u64, before_ms: u64) -> Result<u64, StateError> {
        self.windows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|_, last| *last >= before_ms);
        let (now, before) = (now_ms as i64, before_ms as i64);
        let gates = Arc::clone(&self.gates);
        self.write_then(
            move |db| {
                let kv = db
                    .prepare_cached(
                        "DELETE FROM kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1",
                    )?
                    .execute([now])?;
                let windows =
                    db.execute("DELETE FROM windows WHERE last_inbound_ms < ?1", [before])?;
                let comments = db.execute("DELETE FROM comments WHERE at_ms < ?1", [before])?;
                let pauses = db.execute(
                    "DELETE FROM pauses WHERE until_ms IS NOT NULL AND until_ms <= ?1",
                    [now],
                )?;
                let returns =
                    db.execute("DELETE FROM thread_returns WHERE at_ms < ?1", [before])?;
                Ok((kv + windows + comments + pauses + returns) as u64)
            },
            move |_| {
                let mut gates = gates.lock().unwrap_or_else(|poison| poison.into_inner());
                gates
                    .paused
                    .retain(|_, pause| pause.until_ms.is_none_or(|until| until > now_ms));
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::KvQuota;

    #[tokio::test]
    async fn a_write_that_panics_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let state = SqliteState::open(&dir.path().join("state.sqlite3")).unwrap();
        let write = |key: &'static str| {
            move |db: &Connection| {
                db.execute(
                    "INSERT INTO opt_outs (account_id, person_id, opted_out, at_ms) VALUES ('a', ?1, 1, 0)",
                    [key],
                )
            }
        };
        let panicking = state.write(move |db| -> rusqlite::Result<()> {
            write("undone")(db)?;
            panic!("a bug in a write");
        });
        let (panicked, written) = tokio::join!(panicking, state.write(write("kept")));
        assert!(panicked.is_err());
        written.unwrap();
        state.write(write("after")).await.unwrap();
        let people: Vec<String> = state
            .read(|db| {
                db.prepare("SELECT person_id FROM opt_outs ORDER BY person_id")?
                    .query_map([], |row| row.get(0))?
                    .collect()
            })
            .await
            .unwrap();
        assert_eq!(people, ["after", "kept"], "the panicking write is undone");
    }

    #[tokio::test]
    async fn a_fired_timer_stands_until_cancelled_set_again_or_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let state = SqliteState::open(&dir.path().join("state.sqlite3")).unwrap();
        let limits = TimerLimits {
            per_account: 10,
            per_conversation: 10,
        };
        let timer = |key: &str, due_at_ms: u64| TimerEntry {
            plugin: "p".into(),
            account_id: "a".into(),
            person_id: "1".into(),
            key: key.into(),
            due_at_ms,
            payload: Vec::new(),
        };
        for key in ["cancelled", "set-again", "ran"] {
            let set = state.set_timer(timer(key, 5), limits).await.unwrap();
            assert_eq!(set, TimerSet::Set);
        }
        assert_eq!(state.next_timer_due().await.unwrap(), Some(5));
        let due = state.due_timers(5, 10).await.unwrap();
        assert_eq!(due.len(), 3);
        state.mark_fired(due).await.unwrap();
        assert!(
            state.due_timers(5, 10).await.unwrap().is_empty(),
            "fired once"
        );
        assert_eq!(state.next_timer_due().await.unwrap(), None);

        assert!(
            state
                .cancel_timer("p", "a", "1", "cancelled", None)
                .await
                .unwrap()
        );
        let standing = async |key: &str, due_at_ms: u64| {
            state.timer_standing(&timer(key, due_at_ms)).await.unwrap()
        };
        assert_eq!(standing("cancelled", 5).await, TimerStanding::Cancelled);
        assert!(
            !state
                .cancel_timer("p", "a", "1", "cancelled", None)
                .await
                .unwrap(),
            "cancelled once"
        );
        let tight = TimerLimits {
            per_account: 3,
            per_conversation: 3,
        };
        assert_eq!(
            state.set_timer(timer("new", 50), tight).await.unwrap(),
            TimerSet::Set,
            "a cancelled timer counts against no limit"
        );
        assert!(
            !state
                .cancel_timer("p", "a", "1", "new", Some(49))
                .await
                .unwrap(),
            "not the one due then"
        );
        assert!(
            state
                .cancel_timer("p", "a", "1", "new", Some(50))
                .await
                .unwrap()
        );
        assert_eq!(
            standing("new", 50).await,
            TimerStanding::Forgotten,
            "one cancelled before it fired leaves nothing"
        );
        state
            .set_timer(timer("set-again", 9), limits)
            .await
            .unwrap();
        assert_eq!(standing("set-again", 5).await, TimerStanding::SetAgain);
        assert_eq!(
            state.next_timer_due().await.unwrap(),
            Some(9),
            "the new one waits"
        );
        assert_eq!(standing("ran", 5).await, TimerStanding::Live);
        let listed = state
            .timers(TimerFilter {
                plugin: Some("p".into()),
                person_id: Some("1".into()),
                limit: 10,
                ..TimerFilter::default()
            })
            .await
            .unwrap();
        let listed: Vec<_> = listed
            .iter()
            .map(|timer| (timer.key.as_str(), timer.due_at_ms, timer.fired))
            .collect();
        assert_eq!(listed, [("ran", 5, true), ("set-again", 9, false)]);
        let elsewhere = TimerFilter {
            account_id: Some("b".into()),
            limit: 10,
            ..TimerFilter::default()
        };
        assert!(state.timers(elsewhere).await.unwrap().is_empty());
        state.forget_timer(&timer("ran", 5)).await.unwrap();
        assert_eq!(standing("ran", 5).await, TimerStanding::Forgotten);
        state.forget_timer(&timer("cancelled", 5)).await.unwrap();
        assert_eq!(standing("cancelled", 5).await, TimerStanding::Forgotten);
    }

    #[tokio::test]
    async fn pauses_are_lifted_only_by_who_may() {
        let dir = tempfile::tempdir().unwrap();
        let state = SqliteState::open(&dir.path().join("state.sqlite3")).unwrap();
        let pause = |by: PausedBy, since_ms: u64| Pause {
            account_id: "a".into(),
            person_id: "1".into(),
            until_ms: None,
            by,
            since_ms,
        };
        let paused_by = async || state.pause_of("a", "1", 0).await.unwrap().map(|p| p.by);
        state.pause(pause(PausedBy::Operator, 10)).await.unwrap();
        state.pause(pause(PausedBy::Handover, 20)).await.unwrap();
        assert_eq!(
            paused_by().await,
            Some(PausedBy::Operator),
            "a handover does not replace it"
        );
        for resumer in [ResumedBy::Plugin, ResumedBy::Handover { at_ms: 30 }] {
            assert!(
                !state.resume("a", "1", resumer).await.unwrap(),
                "{resumer:?}"
            );
        }
        assert!(state.resume("a", "1", ResumedBy::Operator).await.unwrap());

        state.pause(pause(PausedBy::Handover, 40)).await.unwrap();
        assert!(
            !state
                .resume("a", "1", ResumedBy::Handover { at_ms: 35 })
                .await
                .unwrap(),
            "an older handover does not undo a newer one"
        );
        assert!(!state.resume("a", "1", ResumedBy::Plugin).await.unwrap());
        assert!(
            state
                .resume("a", "1", ResumedBy::Handover { at_ms: 45 })
                .await
                .unwrap()
        );

        state.pause(pause(PausedBy::Handover, 42)).await.unwrap();
        assert_eq!(
            paused_by().await,
            None,
            "away at 42, back at 45: not paused"
        );

        state.pause(pause(PausedBy::Operator, 50)).await.unwrap();
        let plugin = PausedBy::Plugin("p".into());
        state.pause(pause(plugin.clone(), 51)).await.unwrap();
        assert_eq!(
            paused_by().await,
            Some(PausedBy::Operator),
            "a plugin replaces no operator's pause"
        );
        assert!(state.resume("a", "1", ResumedBy::Operator).await.unwrap());

        state.pause(pause(plugin, 60)).await.unwrap();
        state.pause(pause(PausedBy::Operator, 55)).await.unwrap();
        assert_eq!(
            paused_by().await,
            Some(PausedBy::Plugin("p".into())),
            "older: ignored"
        );
        assert!(state.resume("a", "1", ResumedBy::Plugin).await.unwrap());
    }

    #[tokio::test]
    async fn opt_outs_and_pauses_are_read_back_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        let state = SqliteState::open(&path).unwrap();
        state.record_opt_out("a", "out", true, 1).await.unwrap();
        state.record_opt_out("a", "back", true, 1).await.unwrap();
        state.record_opt_out("a", "back", false, 2).await.unwrap();
        let pause = |person: &str, until_ms| Pause {
            account_id: "a".into(),
            person_id: person.into(),
            until_ms,
            by: PausedBy::Operator,
            since_ms: 1,
        };
        state.pause(pause("held", None)).await.unwrap();
        state.pause(pause("ended", Some(5))).await.unwrap();
        drop(state);

        let state = SqliteState::open(&path).unwrap();
        assert!(state.opted_out("a", "out").await.unwrap());
        assert!(!state.opted_out("a", "back").await.unwrap());
        assert!(state.pause_of("a", "held", 10).await.unwrap().is_some());
        assert!(state.pause_of("a", "ended", 10).await.unwrap().is_none());
        assert!(state.pause_of("a", "ended", 4).await.unwrap().is_some());
        let listed: Vec<_> = state.pauses(10).await.unwrap();
        assert_eq!(listed, vec![pause("held", None)]);
    }

    #[tokio::test]
    async fn an_opt_out_is_changed_only_by_a_later_message() {
        let dir = tempfile::tempdir().unwrap();
        let state = SqliteState::open(&dir.path().join("state.sqlite3")).unwrap();
        assert!(!state.opted_out("a", "p").await.unwrap());
        state.record_opt_out("a", "p", true, 1_000).await.unwrap();
        assert!(state.opted_out("a", "p").await.unwrap());
        assert!(!state.opted_out("a", "q").await.unwrap(), "per person");
        assert!(!state.opted_out("b", "p").await.unwrap(), "per account");
        state.record_opt_out("a", "p", false, 2_000).await.unwrap();
        assert!(!state.opted_out("a", "p").await.unwrap());
        state.record_opt_out("a", "p", true, 1_000).await.unwrap();
        assert!(
            !state.opted_out("a", "p").await.unwrap(),
            "the old STOP handled again does not undo the START"
        );
        state.prune(u64::MAX, u64::MAX).await.unwrap();
        state.record_opt_out("a", "p", true, 3_000).await.unwrap();
        state.prune(u64::MAX, u64::MAX).await.unwrap();
        assert!(state.opted_out("a", "p").await.unwrap(), "never pruned");
    }

    #[tokio::test]
    async fn a_far_future_expiry_keeps_the_value_instead_of_wrapping_into_the_past() {
        let (_dir, state) = store();
        let scope = KvScope {
            plugin: "p".into(),
            account_id: "a".into(),
        };
        let set = roomy("forever", b"x", Some(u64::MAX));
        assert_eq!(state.kv_set(&scope, set).await.unwrap(), KvWrite::Stored);
        let read = state.kv_get(&scope, "forever", 1_000).await.unwrap();
        assert_eq!(read.as_deref(), Some(&b"x"[..]));
    }

    #[tokio::test]
    async fn pruning_forgets_expired_state_and_old_windows_and_comments() {
        let (_dir, state) = store();
        let scope = KvScope {
            plugin: "p".into(),
            account_id: "a".into(),
        };
        state
            .kv_set(&scope, roomy("gone", b"x", Some(1_000)))
            .await
            .unwrap();
        state
            .kv_set(&scope, roomy("kept", b"x", None))
            .await
            .unwrap();
        state.record_inbound("a", "old", 1_000).await.unwrap();
        state.record_inbound("a", "new", 9_000).await.unwrap();
        state
            .record_comment(&comment("c-old", None, 1_000))
            .await
            .unwrap();
        state
            .record_comment(&comment("c-new", None, 9_000))
            .await
            .unwrap();

        let pruned = state.prune(5_000, 5_000).await.unwrap();
        assert_eq!(pruned, 3);
        assert_eq!(
            state.kv_list(&scope, "", 0).await.unwrap(),
            ["kept"],
            "expired rows are gone, not just hidden"
        );
        assert_eq!(
            state.last_inbound("a", "old").await.unwrap(),
            None,
            "and from the cache"
        );
        assert_eq!(state.last_inbound("a", "new").await.unwrap(), Some(9_000));
        assert_eq!(state.comment_time("a", "c-old").await.unwrap(), None);
        assert_eq!(state.comment_time("a", "c-new").await.unwrap(), Some(9_000));
    }

    const ROOMY: KvQuota = KvQuota {
        max_keys: 100,
        max_bytes: 1 << 20,
    };

    /// A write at time 0 under a quota it never reaches.
    fn comment(
        comment_id: &'static str,
        author_id: Option<&'static str>,
        at_ms: u64,
    ) -> CommentSeen<'static> {
        CommentSeen {
            account_id: "a",
            comment_id,
            author_id,
            at_ms,
        }
    }

    fn roomy<'a>(key: &'a str, value: &'a [u8], expires_at_ms: Option<u64>) -> KvSet<'a> {
        KvSet {
            key,
            value,
            expires_at_ms,
            now_ms: 0,
            quota: ROOMY,
        }
    }

    fn store() -> (tempfile::TempDir, SqliteState) {
        let dir = tempfile::tempdir().unwrap();
        let state = SqliteState::open(&dir.path().join("state.db")).unwrap();
        (dir, state)
    }

    #[tokio::test]
    async fn kv_values_expire_and_list_by_prefix_per_scope() {
        let (_dir, state) = store();
        let mine = KvScope {
            plugin: "p".into(),
            account_id: "a".into(),
        };
        let theirs = KvScope {
            plugin: "q".into(),
            account_id: "a".into(),
        };
        state
            .kv_set(&mine, roomy("lead:1", b"one", None))
            .await
            .unwrap();
        state
            .kv_set(&mine, roomy("lead:2", b"two", Some(1_000)))
            .await
            .unwrap();
        state
            .kv_set(&mine, roomy("other", b"x", None))
            .await
            .unwrap();
        state
            .kv_set(&theirs, roomy("lead:9", b"nine", None))
            .await
            .unwrap();

        assert_eq!(
            state.kv_get(&mine, "lead:2", 999).await.unwrap(),
            Some(b"two".to_vec())
        );
        assert_eq!(
            state.kv_get(&mine, "lead:2", 1_000).await.unwrap(),
            None,
            "expired"
        );
        assert_eq!(
            state.kv_list(&mine, "lead:", 0).await.unwrap(),
            ["lead:1", "lead:2"]
        );
        assert_eq!(
            state.kv_list(&mine, "lead:", 2_000).await.unwrap(),
            ["lead:1"]
        );
        assert_eq!(
            state.kv_get(&theirs, "lead:1", 0).await.unwrap(),
            None,
            "plugins are isolated"
        );
        // At 2_000 `mine` holds lead:1 (9 bytes) and other (6): replacing
        // `other` is measured without its old value.
        let tight = KvQuota {
            max_keys: 2,
            max_bytes: 9 + 7,
        };
        let set = |key: &'static str, value: &'static [u8]| {
            state.kv_set(
                &mine,
                KvSet {
                    key,
                    value,
                    expires_at_ms: None,
                    now_ms: 2_000,
                    quota: tight,
                },
            )
        };
        assert_eq!(set("other", b"xx").await.unwrap(), KvWrite::Stored);
        assert_eq!(set("other", b"xxx").await.unwrap(), KvWrite::TooManyBytes);
        assert_eq!(set("third", b"").await.unwrap(), KvWrite::TooManyKeys);
        state.kv_delete(&mine, "lead:1").await.unwrap();
        assert_eq!(state.kv_get(&mine, "lead:1", 0).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone_in_its_group() {
        let (dir, state) = store();
        let (failed, recorded) = tokio::join!(
            state.write(|db| db.execute("INSERT INTO nowhere VALUES (1)", [])),
            state.record_inbound("a", "u", 5_000),
        );
        assert!(failed.is_err());
        recorded.unwrap();
        let reopened = SqliteState::open(&dir.path().join("state.db")).unwrap();
        assert_eq!(reopened.last_inbound("a", "u").await.unwrap(), Some(5_000));
    }

    #[tokio::test]
    async fn windows_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        SqliteState::open(&path)
            .unwrap()
            .record_inbound("a", "u", 7_000)
            .await
            .unwrap();
        let reopened = SqliteState::open(&path).unwrap();
        assert_eq!(reopened.last_inbound("a", "u").await.unwrap(), Some(7_000));
    }

    #[tokio::test]
    async fn windows_keep_the_latest_inbound_and_a_comment_has_one_private_reply() {
        let (_dir, state) = store();
        state.record_inbound("a", "u", 2_000).await.unwrap();
        state.record_inbound("a", "u", 1_000).await.unwrap();
        assert_eq!(state.last_inbound("a", "u").await.unwrap(), Some(2_000));
        assert_eq!(state.last_inbound("a", "v").await.unwrap(), None);

        state
            .record_comment(&comment("c1", Some("u"), 5_000))
            .await
            .unwrap();
        assert_eq!(state.comment_time("a", "c1").await.unwrap(), Some(5_000));
        assert!(state.claim_private_reply("a", "c1", "p").await.unwrap());
        assert!(
            !state.claim_private_reply("a", "c1", "q").await.unwrap(),
            "across plugins"
        );
        state.release_private_reply("a", "c1").await.unwrap();
        assert!(state.claim_private_reply("a", "c1", "q").await.unwrap());
        assert!(
            !state
                .claim_private_reply("a", "unknown", "p")
                .await
                .unwrap()
        );
    }
}
