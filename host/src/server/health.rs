//! `GET /healthz`: 200 with each plugin's state and the inbox's counts
//! while storage answers; 503 when it does not. The counts are read at
//! most once a second, and say when (`as_of_ms`, `age_ms`). `status` is
//! `degraded` while a plugin failed to load, is quarantined or held back
//! (paused, revoked), or an
//! account's token is refused or its webhooks stopped (see
//! `lifecycle::silence`). Anyone may ask, so accounts are only counted
//! here: which ones is for `/admin/accounts`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;

/// Report health.
pub(super) async fn healthz(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let counted = app.stats.get(app.inbox.as_ref()).await?;
    let stats = counted.stats;
    let mut degraded = !app.runtime.failed().is_empty();
    let mut plugins: Vec<Value> = app
        .runtime
        .plugins()
        .iter()
        .map(|plugin| {
            let breaker = plugin.breaker.status();
            let held = plugin.held();
            degraded |= breaker.quarantined;
            let state = match (&held, breaker.quarantined) {
                (Some(_), _) => "held",
                (None, true) => "quarantined",
                (None, false) => "active",
            };
            json!({
                "id": plugin.info.id,
                "name": plugin.info.name,
                "version": plugin.info.version,
                "api": format!("igloo:plugin@{}", plugin.pre.version().as_str()),
                "state": state,
                "held": held,
                // Who vouches for its code; `unsigned` in a dry run or
                // where the operator allowed it.
                "provenance": plugin.provenance,
                "consecutive_failures": breaker.consecutive_failures,
                "quarantine_remaining_secs": breaker.remaining.map(|left| left.as_secs()),
                "last_failure": breaker.last_failure,
            })
        })
        .collect();
    plugins.extend(app.runtime.failed().iter().map(|failed| {
        json!({
            "id": failed.id,
            "state": "failed",
            "error": failed.error.to_string(),
            // Fail closed: its events wait until the trust store allows it.
            "events_wait": failed.waits.is_some(),
        })
    }));
    let (accounts, token_invalid) = app.runtime.services().accounts().counts();
    let silent = app.lifecycle.silent_accounts();
    degraded |= token_invalid > 0 || silent > 0;
    Ok(Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "plugins": plugins,
        "accounts": { "total": accounts, "token_invalid": token_invalid, "silent": silent },
        // Counted at most a second ago (a flood of requests reads the
        // database once a second): as of when, and how old, is said.
        "inbox": {
            "as_of_ms": counted.as_of_ms,
            "age_ms": counted.age_ms(),
            "deliveries": stats.deliveries,
            "events": stats.events,
            "pending": stats.pending,
            "unsplit_deliveries": stats.unsplit,
            "runs": stats.runs,
        },
    })))
}
