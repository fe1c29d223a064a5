//! `/admin/timers`: the plugins' timers waiting in conversations, for the
//! operator to see and cancel. A timer's key is the plugin's string: it
//! travels in query strings and JSON bodies, never in a path.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{Answer, MAX_LISTED, authorise, authorised_query, state_failed};
use crate::server::AppState;
use crate::state::TimerFilter;

/// `GET /admin/timers`'s query: every field narrows the list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct TimerQuery {
    plugin: Option<String>,
    account: Option<String>,
    person: Option<String>,
    limit: Option<u32>,
}

impl TimerQuery {
    /// The state's filter for this query.
    pub(in crate::server) fn filter(self) -> TimerFilter {
        TimerFilter {
            plugin: self.plugin,
            account_id: self.account,
            person_id: self.person,
            limit: self.limit.unwrap_or(100).min(MAX_LISTED),
        }
    }
}

/// `POST /admin/timers/cancel`'s body: which timer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct CancelTimer {
    /// The plugin's id.
    pub plugin: String,
    /// The account.
    pub account: String,
    /// The person the conversation is with.
    pub person: String,
    /// The plugin's key for the timer.
    pub key: String,
    /// Only if it is still the one due then (as listed), not one the
    /// plugin set again since.
    #[serde(default)]
    pub due_at_ms: Option<u64>,
}

/// `GET /admin/timers`: timers by plugin, account and person, soonest
/// first; fired ones are those whose event waits to run.
pub(in crate::server) async fn list(
    State(app): State<Arc<AppState>>,
    query: Result<Query<TimerQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let query = match authorised_query(&app, &headers, query) {
        Ok(query) => query,
        Err(refusal) => return refusal,
    };
    match app.runtime.services().scheduler.list(query.filter()).await {
        Ok(timers) => (StatusCode::OK, Json(json!({ "timers": timers }))),
        Err(error) => state_failed(&error),
    }
}

/// `POST /admin/timers/cancel`: the timer never fires, or, fired already,
/// its event does not run.
pub(in crate::server) async fn cancel(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<CancelTimer>, JsonRejection>,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    let Json(timer) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": rejection.body_text()})),
            );
        }
    };
    match app.cancel_timer(&timer).await {
        Ok(true) => (StatusCode::OK, Json(json!({"cancelled": true}))),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such timer"})),
        ),
        Err(error) => state_failed(&error),
    }
}
