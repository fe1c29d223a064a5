//! Disk under sustained traffic: rounds of webhooks stored, handled (runs
//! recorded, journaled sends, completed) and pruned once past a retention
//! of two rounds, as igloo's pruner does past `dedupe_retention_hours`.
//! The inbox's files are measured after each round: bytes per event, and
//! whether the total levels off instead of growing with traffic.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use igloo::inbox::{Delivery, Inbox, RunRecord, SqliteInbox};
use igloo::journal::{CallStatus, JournalEntry, JournalStore, RunKey};
use sha2::{Digest, Sha256};

use crate::payload;

/// The inbox's size after one round.
pub(crate) struct Sample {
    /// Events stored and not yet pruned.
    pub live_events: u64,
    /// Pages the database holds, in bytes, wherever they sit (file or WAL):
    /// what grows with traffic unless pruning frees pages for reuse.
    pub allocated: u64,
    /// The database file, in bytes.
    pub database: u64,
    /// Its write-ahead log, in bytes.
    pub wal: u64,
}

/// What the soak measured.
pub(crate) struct Soak {
    /// After each round.
    pub rounds: Vec<Sample>,
    /// The WAL a second after the traffic stopped, in bytes.
    pub idle_wal: u64,
}

/// Store, handle and prune `rounds` rounds of `per_round` events.
pub(crate) async fn soak(rounds: usize, per_round: usize) -> anyhow::Result<Soak> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("inbox.sqlite3");
    let inbox = Arc::new(SqliteInbox::open(&path)?);
    let mut round_started = Vec::new();
    let mut samples = Vec::new();
    for round in 0..rounds {
        round_started.push(igloo::clock::now_ms());
        let bodies = payload::single_messages(per_round, &format!("disk-{round}"));
        // As the webhook route does: many deliveries committed together.
        let appends = bodies.into_iter().map(|signed| {
            let inbox = Arc::clone(&inbox);
            async move {
                let events = igloo::events::normalise(&signed.body)?;
                inbox
                    .append(Delivery::new(Bytes::clone(&signed.body), events))
                    .await?;
                anyhow::Ok(())
            }
        });
        for result in futures::future::join_all(appends).await {
            result?;
        }
        handle_everything(&inbox).await?;
        if round >= 2 {
            inbox.prune(round_started[round - 1] as i64).await?;
        }
        let stats = inbox.stats().await?;
        samples.push(Sample {
            live_events: stats.events,
            allocated: allocated_bytes(&path)?,
            database: file_size(&path),
            wal: file_size(&path.with_extension("sqlite3-wal")),
        });
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    Ok(Soak {
        rounds: samples,
        idle_wal: file_size(&path.with_extension("sqlite3-wal")),
    })
}

/// What the dispatcher leaves for each event: a run, a journaled send, and
/// the event completed.
async fn handle_everything(inbox: &Arc<SqliteInbox>) -> anyhow::Result<()> {
    loop {
        let batch = inbox.pending(0, 512, &[], u64::MAX).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let handled = batch.iter().map(|pending| async move {
            let key = RunKey {
                seq: pending.seq,
                plugin: "auto-reply".into(),
            };
            let request = format!("Person({:?}) Text(\"Thanks! You said: hi\")", pending.seq);
            let send = JournalEntry {
                call: 0,
                operation: "messaging.send".into(),
                request: hex::encode(Sha256::digest(&request)),
                summary: request,
                status: CallStatus::Done,
                result: Some(format!("[\"{}\",\"mid-{}\"]", pending.seq, pending.seq)),
                started_at_ms: igloo::clock::now_ms(),
            };
            inbox.write_entry(&key, send).await?;
            inbox
                .record_run(pending.seq, RunRecord::finished("auto-reply", "ok", ""))
                .await?;
            inbox.complete(pending.seq).await?;
            anyhow::Ok(())
        });
        for result in futures::future::join_all(handled).await {
            result?;
        }
    }
}

/// The database's pages, as a reader sees it (its WAL included).
fn allocated_bytes(path: &Path) -> anyhow::Result<u64> {
    let connection = rusqlite::Connection::open(path)?;
    let pages: u64 = connection.pragma_query_value(None, "page_count", |row| row.get(0))?;
    let page_size: u64 = connection.pragma_query_value(None, "page_size", |row| row.get(0))?;
    Ok(pages * page_size)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}
