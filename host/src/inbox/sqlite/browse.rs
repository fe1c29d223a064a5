//! The operator's queries and replays on the SQLite inbox. Rare and
//! bounded by a limit, so plain scans are fine.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{journal, read_runs};
use crate::inbox::{
    EventDetail, EventFilter, EventSummary, JournaledCall, ReplayRequest, Replayed,
    SETTLED_OUTCOMES_SQL, Seq,
};

/// What a summary reads, from `events e`.
const SUMMARY_COLUMNS: &str =
    "e.seq, e.event_key, e.account_id, e.person_id, e.kind, e.received_at_ms, e.done_at_ms";

fn ms(value: Option<u64>) -> Option<i64> {
    value.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

fn summary_at(connection: &Connection, row: &rusqlite::Row<'_>) -> rusqlite::Result<EventSummary> {
    let seq: Seq = row.get(0)?;
    Ok(EventSummary {
        seq,
        key: row.get(1)?,
        account_id: row.get(2)?,
        person_id: row.get(3)?,
        kind: row.get(4)?,
        received_at_ms: row.get::<_, i64>(5)?.max(0) as u64,
        done_at_ms: row.get::<_, Option<i64>>(6)?.map(|at| at.max(0) as u64),
        runs: read_runs(connection, seq)?,
    })
}

/// Events `filter` selects, newest first.
pub(super) fn list(
    connection: &Connection,
    filter: &EventFilter,
) -> rusqlite::Result<Vec<EventSummary>> {
    let by_run = filter.plugin.is_some() || filter.outcome.is_some() || filter.dead_letters;
    let mut select = connection.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM events e
         WHERE (?1 IS NULL OR e.account_id = ?1)
           AND (?2 IS NULL OR e.person_id = ?2)
           AND (?3 IS NULL OR e.kind = ?3)
           AND (?4 IS NULL OR e.received_at_ms >= ?4)
           AND (?5 IS NULL OR e.received_at_ms < ?5)
           AND (NOT ?6 OR EXISTS (SELECT 1 FROM runs r WHERE r.seq = e.seq
                 AND (?7 IS NULL OR r.plugin = ?7)
                 AND (?8 IS NULL OR r.outcome = ?8)
                 AND (NOT ?9 OR (r.outcome NOT IN {SETTLED_OUTCOMES_SQL} AND r.retry_at_ms IS NULL))))
         ORDER BY e.seq DESC LIMIT ?10"
    ))?;
    let rows = select.query_map(
        params![
            filter.account_id,
            filter.person_id,
            filter.kind,
            ms(filter.since_ms),
            ms(filter.until_ms),
            by_run,
            filter.plugin,
            filter.outcome,
            filter.dead_letters,
            filter.limit,
        ],
        |row| summary_at(connection, row),
    )?;
    rows.collect()
}

/// The event at `seq` whole.
pub(super) fn detail(connection: &Connection, seq: Seq) -> rusqlite::Result<Option<EventDetail>> {
    let found = connection
        .query_row(
            &format!(
                "SELECT {SUMMARY_COLUMNS}, e.body, d.body FROM events e
                 JOIN deliveries d ON d.id = e.delivery_id WHERE e.seq = ?1"
            ),
            [seq],
            |row| {
                let summary = summary_at(connection, row)?;
                let event: String = row.get(7)?;
                let raw: Vec<u8> = row.get(8)?;
                Ok((summary, event, raw))
            },
        )
        .optional()?;
    let Some((summary, event, raw)) = found else {
        return Ok(None);
    };
    let mut select = connection.prepare_cached(&format!(
        "SELECT plugin, {} FROM journal WHERE seq = ?1 ORDER BY plugin, call",
        journal::ENTRY_COLUMNS
    ))?;
    let journal = select
        .query_map([seq], |row| {
            Ok(JournaledCall {
                plugin: row.get(0)?,
                entry: journal::entry_at(row, 1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(EventDetail {
        summary,
        event: serde_json::from_str(&event).unwrap_or(serde_json::Value::Null),
        raw_body: String::from_utf8_lossy(&raw).into_owned(),
        journal,
    }))
}

/// Schedule the dead (or, with `force`, handled) runs `request` names to
/// run now, and make the event pending again.
pub(super) fn replay(
    transaction: &Transaction<'_>,
    request: &ReplayRequest,
    now: i64,
) -> rusqlite::Result<Replayed> {
    let exists: bool = transaction.query_row(
        "SELECT EXISTS (SELECT 1 FROM events WHERE seq = ?1)",
        [request.seq],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(Replayed::NotFound);
    }
    let runs = read_runs(transaction, request.seq)?;
    let named = runs.iter().filter(|run| {
        request
            .plugin
            .as_ref()
            .is_none_or(|plugin| &run.plugin == plugin)
    });
    let (mut chosen, mut handled) = (Vec::new(), Vec::new());
    for run in named {
        if run.is_dead_letter() {
            chosen.push(run.plugin.clone());
        } else if run.is_settled() {
            handled.push(run.plugin.clone());
        }
    }
    if request.force {
        chosen.append(&mut handled);
    }
    if chosen.is_empty() {
        return Ok(if handled.is_empty() {
            Replayed::NothingToReplay
        } else {
            Replayed::AlreadyHandled { plugins: handled }
        });
    }
    for plugin in &chosen {
        // A fresh schedule: the replay is attempt 1 again.
        transaction.execute(
            "UPDATE runs SET retry_at_ms = ?3, attempts = 0 WHERE seq = ?1 AND plugin = ?2",
            params![request.seq, plugin, now],
        )?;
    }
    transaction.execute(
        "UPDATE events SET done_at_ms = NULL WHERE seq = ?1",
        [request.seq],
    )?;
    Ok(Replayed::Scheduled { plugins: chosen })
}
