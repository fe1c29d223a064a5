//! [`JournalStore`] on the inbox's database: journal writes go through the
//! inbox's one writer, so an intent commits (fsynced) before its call acts,
//! and in order with the run records after it.

use async_trait::async_trait;
use rusqlite::{Transaction, params};

use super::{SqliteInbox, Write};
use crate::inbox::InboxError;
use crate::journal::{CallStatus, JournalEntry, JournalStore, RunKey};

/// Write one entry inside the writer's transaction.
pub(super) fn write_entry(
    transaction: &Transaction<'_>,
    run: &RunKey,
    entry: &JournalEntry,
) -> rusqlite::Result<()> {
    transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO journal
               (seq, plugin, call, operation, request, summary, status, result, started_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            run.seq,
            run.plugin,
            entry.call,
            entry.operation,
            entry.request,
            entry.summary,
            entry.status.label(),
            entry.result,
            i64::try_from(entry.started_at_ms).unwrap_or(i64::MAX),
        ])
        .map(drop)
}

/// The columns [`entry_at`] reads, in order.
pub(super) const ENTRY_COLUMNS: &str =
    "call, operation, request, summary, status, result, started_at_ms";

/// The entry in `row`'s [`ENTRY_COLUMNS`], from column `first` on.
pub(super) fn entry_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<JournalEntry> {
    let status: String = row.get(first + 4)?;
    Ok(JournalEntry {
        call: row.get(first)?,
        operation: row.get(first + 1)?,
        request: row.get(first + 2)?,
        summary: row.get(first + 3)?,
        // An unreadable status is treated as the unsafe one.
        status: CallStatus::from_label(&status).unwrap_or(CallStatus::Unknown),
        result: row.get(first + 5)?,
        started_at_ms: row.get::<_, i64>(first + 6)?.max(0) as u64,
    })
}

#[async_trait]
impl JournalStore for SqliteInbox {
    async fn journal(&self, run: &RunKey) -> Result<Vec<JournalEntry>, InboxError> {
        let run = run.clone();
        self.read(move |connection| {
            let mut select = connection.prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM journal
                 WHERE seq = ?1 AND plugin = ?2 ORDER BY call"
            ))?;
            select
                .query_map(params![run.seq, run.plugin], |row| entry_at(row, 0))?
                .collect()
        })
        .await
    }

    async fn write_entry(&self, run: &RunKey, entry: JournalEntry) -> Result<(), InboxError> {
        let run = run.clone();
        self.write(|reply| Write::Journal(run, entry, reply)).await
    }

    fn write_entry_soon(&self, run: &RunKey, entry: JournalEntry) {
        // Nobody waits for the answer; a failed commit is logged by the
        // writer, and the call stays `started` (resolved if ever re-run).
        let (reply, _) = tokio::sync::oneshot::channel();
        if self
            .writes
            .send(Write::Journal(run.clone(), entry, reply))
            .is_err()
        {
            tracing::warn!("the inbox's writer is gone: a call's outcome was not journaled");
        }
    }

    async fn accounts_for(&self, message_id: &str) -> Result<bool, InboxError> {
        // Results hold ids as JSON strings: match the whole quoted id, so
        // `mid-1` is not found inside `mid-12`.
        let quoted = serde_json::Value::from(message_id).to_string();
        // Rare (only when resolving an unknown call): a scan is fine.
        self.read(move |connection| {
            connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM journal
                   WHERE status = 'done' AND instr(result, ?1) > 0)",
                [quoted],
                |row| row.get(0),
            )
        })
        .await
    }
}
