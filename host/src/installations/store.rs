//! What the operator changed while igloo ran, kept across restarts (its own
//! SQLite file, `installations.sqlite3`): installations made through the
//! admin API, pauses, the trust store, and the secret pseudonyms are keyed
//! by. The bundles themselves are files named by their digest, beside it.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};
use rusqlite_migration::M;

use super::Installation;
use super::trust::{TrustStore, TrustedKey};

fn migrations() -> Vec<M<'static>> {
    vec![M::up(
        "
CREATE TABLE installations (
    id     TEXT PRIMARY KEY,
    -- The installation as JSON: its spec, pause and waiting upgrade.
    record TEXT NOT NULL
) STRICT;
CREATE TABLE trusted_keys (
    key  TEXT PRIMARY KEY,
    name TEXT NOT NULL
) STRICT;
CREATE TABLE revoked (
    item     TEXT PRIMARY KEY,
    at_ms    INTEGER NOT NULL
) STRICT;
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
",
    )]
}

/// Why the installations' store failed.
#[derive(Debug, thiserror::Error)]
#[error("the installations store: {0}")]
pub struct StoreError(String);

fn error(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

/// The installations' store.
pub(super) struct InstallationStore {
    db: Mutex<Connection>,
}

impl InstallationStore {
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let mut db = Connection::open(path).map_err(error)?;
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")
            .map_err(error)?;
        crate::migrate::to_latest(&mut db, migrations(), path).map_err(error)?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    pub(super) fn installations(&self) -> Result<Vec<Installation>, StoreError> {
        let db = self.db();
        let mut query = db
            .prepare("SELECT record FROM installations ORDER BY rowid")
            .map_err(error)?;
        let records = query
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        // One record that does not read (written by a later igloo, say) is
        // reported, not a reason for igloo not to start.
        Ok(records
            .iter()
            .filter_map(|record| match serde_json::from_str(record) {
                Ok(installation) => Some(installation),
                Err(error) => {
                    tracing::error!(%error, "an installation record does not read back: skipped");
                    None
                }
            })
            .collect())
    }

    pub(super) fn save(&self, installation: &Installation) -> Result<(), StoreError> {
        let record = serde_json::to_string(installation).map_err(error)?;
        self.db()
            .execute(
                "INSERT INTO installations (id, record) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                params![installation.spec.id, record],
            )
            .map_err(error)?;
        Ok(())
    }

    pub(super) fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.db()
            .execute("DELETE FROM installations WHERE id = ?1", [id])
            .map_err(error)?;
        Ok(())
    }

    pub(super) fn trust(&self) -> Result<TrustStore, StoreError> {
        let db = self.db();
        let mut keys = db
            .prepare("SELECT key, name FROM trusted_keys ORDER BY name")
            .map_err(error)?;
        let keys = keys
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?
            .into_iter()
            .map(|(key, name)| {
                let key: crate::bundle::PublisherKey = key.parse().map_err(error)?;
                Ok(TrustedKey {
                    fingerprint: key.fingerprint(),
                    name,
                    key,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut revoked = db.prepare("SELECT item FROM revoked").map_err(error)?;
        let revoked = revoked
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(error)?
            .collect::<Result<_, _>>()
            .map_err(error)?;
        Ok(TrustStore { keys, revoked })
    }

    pub(super) fn trust_key(&self, name: &str, key: &str) -> Result<(), StoreError> {
        self.db()
            .execute(
                "INSERT INTO trusted_keys (key, name) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name",
                params![key, name],
            )
            .map_err(error)?;
        Ok(())
    }

    /// Forget the trusted keys `name` or `key` names; how many.
    pub(super) fn distrust(&self, name_or_key: &str) -> Result<usize, StoreError> {
        self.db()
            .execute(
                "DELETE FROM trusted_keys WHERE key = ?1 OR name = ?1",
                [name_or_key],
            )
            .map_err(error)
    }

    pub(super) fn revoke(&self, item: &str) -> Result<(), StoreError> {
        self.db()
            .execute(
                "INSERT OR IGNORE INTO revoked (item, at_ms) VALUES (?1, ?2)",
                params![item, crate::clock::now_ms() as i64],
            )
            .map_err(error)?;
        Ok(())
    }

    /// The secret named `name`, made (32 random bytes) the first time.
    pub(super) fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        use chacha20poly1305::aead::rand_core::RngCore as _;
        let db = self.db();
        let mut fresh = [0u8; 32];
        chacha20poly1305::aead::OsRng.fill_bytes(&mut fresh);
        db.execute(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, fresh.as_slice()],
        )
        .map_err(error)?;
        let value: Vec<u8> = db
            .query_row("SELECT value FROM secrets WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .map_err(error)?;
        value
            .try_into()
            .map_err(|_| StoreError(format!("the secret `{name}` is not 32 bytes")))
    }
}
