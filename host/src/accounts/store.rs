//! `accounts.sqlite3`: one row per account, its token sealed. Writes are
//! rare (a token added, refreshed or refused), so one connection behind a
//! lock, used off the async threads, is enough.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use rusqlite_migration::M;

/// The schema, one migration per entry; only ever appended to.
fn migrations() -> Vec<M<'static>> {
    vec![
        M::up(
            "CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            username TEXT,
            login TEXT NOT NULL,
            source TEXT NOT NULL,
            token_sealed BLOB,
            config_token_sha256 BLOB,
            token_generation INTEGER NOT NULL DEFAULT 0,
            token_issued_at_ms INTEGER,
            token_expires_at_ms INTEGER,
            status TEXT NOT NULL DEFAULT 'active',
            status_detail TEXT,
            status_since_ms INTEGER,
            refresh_error TEXT
        ) STRICT;",
        ),
        // Version 2: tokens are sealed bound to their generation too. Those
        // sealed before are marked unbound (0), opened so once and sealed
        // again; every token sealed since is bound (1).
        M::up(
            "ALTER TABLE accounts ADD COLUMN token_binding INTEGER NOT NULL DEFAULT 0;
             UPDATE accounts SET token_binding = 1 WHERE token_sealed IS NULL;",
        ),
        // Version 3: what the store has been through. `tokens-bound` is
        // set once every token sealed the old way was sealed again bound.
        M::up("CREATE TABLE store_flags (name TEXT PRIMARY KEY) STRICT;"),
    ]
}

/// The flag set once every token of the store is sealed bound.
const TOKENS_BOUND: &str = "tokens-bound";

/// `token_binding` of a token sealed bound to its account only (before
/// version 2 of the store).
pub(super) const UNBOUND: u8 = 0;
/// `token_binding` of a token sealed bound to its account and generation.
pub(super) const BOUND: u8 = 1;

/// One stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Row {
    pub(super) id: String,
    pub(super) username: Option<String>,
    pub(super) login: String,
    pub(super) source: String,
    pub(super) token_sealed: Option<Vec<u8>>,
    pub(super) config_token_sha256: Option<Vec<u8>>,
    pub(super) token_generation: u64,
    pub(super) token_issued_at_ms: Option<u64>,
    pub(super) token_expires_at_ms: Option<u64>,
    pub(super) status: String,
    pub(super) status_detail: Option<String>,
    pub(super) status_since_ms: Option<u64>,
    pub(super) refresh_error: Option<String>,
    /// How `token_sealed` is bound: [`UNBOUND`] or [`BOUND`].
    pub(super) token_binding: u8,
}

/// The accounts' database.
#[derive(Clone)]
pub(super) struct AccountStore {
    connection: Arc<Mutex<Connection>>,
    /// Whether tokens sealed the old way may still be opened (and sealed
    /// again bound): until every one of them has been, once, which
    /// [`AccountStore::all_tokens_bound`] records. One found after that was
    /// put back from an older copy.
    pub(super) binds_old_tokens: bool,
}

/// Storage failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountStoreError {
    /// SQLite failed.
    #[error("the accounts store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Its schema could not be brought up to date.
    #[error(transparent)]
    Schema(#[from] crate::migrate::SchemaError),
}

impl AccountStore {
    pub(super) fn open(path: &Path) -> Result<Self, AccountStoreError> {
        let mut connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        crate::migrate::to_latest(&mut connection, migrations(), path)?;
        let bound: bool = connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM store_flags WHERE name = ?1)",
            [TOKENS_BOUND],
            |row| row.get(0),
        )?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            binds_old_tokens: !bound,
        })
    }

    /// Record that every token of the store is sealed bound: from now on,
    /// one sealed the old way does not open.
    pub(super) fn all_tokens_bound(&self) -> Result<(), AccountStoreError> {
        self.lock().execute(
            "INSERT OR IGNORE INTO store_flags (name) VALUES (?1)",
            [TOKENS_BOUND],
        )?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(super) fn all(&self) -> Result<Vec<Row>, AccountStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT id, username, login, source, token_sealed, config_token_sha256,
                    token_generation, token_issued_at_ms, token_expires_at_ms, status,
                    status_detail, status_since_ms, refresh_error, token_binding
             FROM accounts ORDER BY id",
        )?;
        let rows = statement
            .query_map([], |row| {
                Ok(Row {
                    id: row.get(0)?,
                    username: row.get(1)?,
                    login: row.get(2)?,
                    source: row.get(3)?,
                    token_sealed: row.get(4)?,
                    config_token_sha256: row.get(5)?,
                    token_generation: row.get(6)?,
                    token_issued_at_ms: row.get(7)?,
                    token_expires_at_ms: row.get(8)?,
                    status: row.get(9)?,
                    status_detail: row.get(10)?,
                    status_since_ms: row.get(11)?,
                    refresh_error: row.get(12)?,
                    token_binding: row.get(13)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Write `row` whole, in place of any earlier one.
    pub(super) fn put(&self, row: &Row) -> Result<(), AccountStoreError> {
        self.lock().execute(
            "INSERT OR REPLACE INTO accounts (id, username, login, source, token_sealed,
                config_token_sha256, token_generation, token_issued_at_ms, token_expires_at_ms,
                status, status_detail, status_since_ms, refresh_error, token_binding)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                row.id,
                row.username,
                row.login,
                row.source,
                row.token_sealed,
                row.config_token_sha256,
                row.token_generation,
                row.token_issued_at_ms,
                row.token_expires_at_ms,
                row.status,
                row.status_detail,
                row.status_since_ms,
                row.refresh_error,
                row.token_binding,
            ],
        )?;
        Ok(())
    }

    /// Forget `id`; whether it was there.
    pub(super) fn remove(&self, id: &str) -> Result<bool, AccountStoreError> {
        Ok(self
            .lock()
            .execute("DELETE FROM accounts WHERE id = ?1", [id])?
            > 0)
    }
}
