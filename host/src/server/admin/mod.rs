//! Operator routes, behind `server.admin_token`.

pub(super) mod accounts;
pub(super) mod installations;
pub(super) mod timers;

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::events::Event;
use crate::inbox::{EventDetail, EventFilter, InboxError, ReplayRequest, Replayed, Seq};
use crate::runtime::LoadedPlugin;
use crate::state::{PausedBy, ResumedBy};

/// Events listed at most per request.
const MAX_LISTED: u32 = 1_000;

type Answer = (StatusCode, Json<Value>);

/// Refuse unless the request carries the configured admin token.
pub(super) fn authorise(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, Json<Value>)> {
    let Some(expected) = &app.admin_token else {
        return Err((
            StatusCode::FORBIDDEN,
            Json(json!({"error": "the admin API is disabled: set server.admin_token"})),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if given.is_some_and(|given| super::secrets_match(given, expected)) {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong admin token"})),
        ))
    }
}

/// The request's JSON body as a `T`, once the token is checked: a body
/// that does not parse is explained only to the operator.
pub(super) fn authorised_json<T: serde::de::DeserializeOwned>(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Answer> {
    authorise(app, headers)?;
    serde_json::from_slice(body).map_err(|error| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("the body: {error}")})),
        )
    })
}

/// `POST /admin/plugins/{id}/resume`: lift a plugin's quarantine now; the
/// events it missed run next.
pub(super) async fn resume_plugin(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    if app.runtime.resume(&id) {
        tracing::info!(plugin = %id, "quarantine lifted by an operator");
        (
            StatusCode::OK,
            Json(json!({"plugin": id, "quarantined": false})),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no plugin with that id"})),
        )
    }
}

/// `GET /admin/events`'s query: every field narrows the list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventQuery {
    account: Option<String>,
    person: Option<String>,
    plugin: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    #[serde(default)]
    dead: bool,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    limit: Option<u32>,
}

/// The query, once the token is checked: a query string that does not
/// parse is explained only to the operator.
fn authorised_query<Q>(
    app: &AppState,
    headers: &HeaderMap,
    query: Result<Query<Q>, QueryRejection>,
) -> Result<Q, Answer> {
    authorise(app, headers)?;
    query.map(|Query(query)| query).map_err(|rejection| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": rejection.body_text()})),
        )
    })
}

fn storage_failed(error: &InboxError) -> Answer {
    tracing::error!(%error, "an admin query failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the inbox is unavailable; try again"})),
    )
}

/// `GET /admin/events`: events by account, person, plugin, kind, outcome
/// (`dead=true` for dead letters) and time, newest first.
pub(super) async fn list_events(
    State(app): State<Arc<AppState>>,
    query: Result<Query<EventQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let query = match authorised_query(&app, &headers, query) {
        Ok(query) => query,
        Err(refusal) => return refusal,
    };
    let filter = EventFilter {
        account_id: query.account,
        person_id: query.person,
        plugin: query.plugin,
        kind: query.kind,
        outcome: query.outcome,
        dead_letters: query.dead,
        since_ms: query.since_ms,
        until_ms: query.until_ms,
        limit: query.limit.unwrap_or(50).min(MAX_LISTED),
    };
    match app.inbox.list_events(&filter).await {
        Ok(events) => (StatusCode::OK, Json(json!({ "events": events }))),
        Err(error) => storage_failed(&error),
    }
}

/// `GET /admin/events/{seq}`: one event with its raw body, runs and journal.
pub(super) async fn show_event(
    State(app): State<Arc<AppState>>,
    Path(seq): Path<Seq>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    match app.inbox.event_detail(seq).await {
        Ok(Some(detail)) => (StatusCode::OK, Json(json!(for_operator(detail)))),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no event at that position"})),
        ),
        Err(error) => storage_failed(&error),
    }
}

/// An event as the operator is shown it: a timer's payload is the
/// plugin's own (as on `/admin/timers`, only its size is shown:
/// `payload_bytes`). What the inbox keeps is unchanged: a sandboxed replay
/// reads the whole event.
pub(super) fn for_operator(mut detail: EventDetail) -> EventDetail {
    if let Some(kind) = detail.event.get_mut("kind")
        && kind.get("kind").and_then(Value::as_str) == Some("timer")
        && let Some(kind) = kind.as_object_mut()
    {
        let bytes = match kind.remove("payload") {
            Some(Value::Array(bytes)) => bytes.len(),
            Some(Value::String(text)) => text.len(),
            _ => 0,
        };
        kind.insert("payload_bytes".into(), json!(bytes));
    }
    detail
}

/// `POST /admin/events/{seq}/replay`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayQuery {
    plugin: Option<String>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    sandbox: bool,
}

/// `POST /admin/events/{seq}/replay[?plugin=ID][&force=true]`: run an
/// event's dead letters again (its handled runs too, with `force`; calls
/// they completed are still not repeated). With `sandbox=true`, run it now
/// in the sandbox instead (see [`sandbox_replay`]).
pub(super) async fn replay_event(
    State(app): State<Arc<AppState>>,
    Path(seq): Path<Seq>,
    query: Result<Query<ReplayQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let query = match authorised_query(&app, &headers, query) {
        Ok(query) => query,
        Err(refusal) => return refusal,
    };
    if query.sandbox {
        return sandbox_replay(&app, seq, query.plugin.as_deref()).await;
    }
    let request = ReplayRequest {
        seq,
        plugin: query.plugin,
        force: query.force,
    };
    let replayed = match app.replay(request).await {
        Ok(replayed) => replayed,
        Err(error) => return storage_failed(&error),
    };
    let status = match &replayed {
        Replayed::Scheduled { .. } => StatusCode::ACCEPTED,
        Replayed::AlreadyHandled { .. } | Replayed::NothingToReplay => StatusCode::CONFLICT,
        Replayed::NotFound => StatusCode::NOT_FOUND,
    };
    (status, Json(json!(replayed)))
}

/// Run the event at `seq` now, in the sandbox, through `plugin` or every
/// plugin that subscribes to it, and answer what each run did: its outcome
/// and the calls to Meta it would have made. Nothing is sent, the host's
/// state is a copy, and the inbox does not change: a dry run of a replay.
async fn sandbox_replay(app: &AppState, seq: Seq, plugin: Option<&str>) -> Answer {
    let detail = match app.inbox.event_detail(seq).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            return (StatusCode::NOT_FOUND, Json(json!({"result": "not-found"})));
        }
        Err(error) => return storage_failed(&error),
    };
    let event: Event = match serde_json::from_value(detail.event) {
        Ok(event) => event,
        Err(error) => {
            tracing::error!(seq, %error, "a stored event does not read back");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "the stored event does not read back"})),
            );
        }
    };
    let plugins: Vec<Arc<LoadedPlugin>> = match plugin {
        Some(id) => match app.runtime.plugin(id) {
            Some(plugin) => vec![plugin],
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({"error": "no loaded plugin has that id"})),
                );
            }
        },
        None => app
            .runtime
            .plugins()
            .iter()
            // Held back (paused, revoked): not run unless named.
            .filter(|plugin| plugin.info.receives(&event) && plugin.held().is_none())
            .cloned()
            .collect(),
    };
    let ran = async {
        let scratch = tempfile::Builder::new()
            .prefix("igloo-sandbox-")
            .tempdir()?;
        let received_at_ms = detail.summary.received_at_ms;
        app.runtime
            .sandbox_runs(&plugins, Arc::new(event), received_at_ms, scratch.path())
            .await
    };
    let runs: Vec<Value> = match ran.await {
        Ok(runs) => runs
            .into_iter()
            .map(|ran| {
                json!({
                    "plugin": ran.receipt.plugin,
                    "outcome": ran.receipt.outcome.label(),
                    "detail": ran.receipt.outcome.detail(),
                    "calls": ran.calls,
                })
            })
            .collect(),
        Err(error) => {
            tracing::error!(seq, error = %format!("{error:#}"), "a sandboxed replay could not start");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "the sandbox could not be set up; try again"})),
            );
        }
    };
    tracing::info!(
        seq,
        runs = runs.len(),
        "sandboxed replay run by an operator"
    );
    (
        StatusCode::OK,
        Json(json!({"result": "sandboxed", "seq": seq, "runs": runs})),
    )
}

/// `POST /admin/conversations/{account}/{person}/pause`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseQuery {
    /// For this long; until resumed when absent.
    for_secs: Option<u64>,
}

/// The conversation named by a path, once both ids are checked to be ids.
fn conversation(account: &str, person: &str) -> Result<(), Answer> {
    for (what, id) in [("account id", account), ("person IGSID", person)] {
        crate::graph::GraphId::parse(what, id).map_err(|error| {
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": error.to_string()})),
            )
        })?;
    }
    Ok(())
}

fn state_failed(error: &crate::state::StateError) -> Answer {
    tracing::error!(%error, "an admin request to the host's state failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the host's state is unavailable; try again"})),
    )
}

/// `POST /admin/conversations/{account}/{person}/pause[?for_secs=N]`: a
/// human takes the conversation over; automation stops there for that
/// long, or until resumed.
pub(super) async fn pause_conversation(
    State(app): State<Arc<AppState>>,
    Path((account, person)): Path<(String, String)>,
    query: Result<Query<PauseQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let query = match authorised_query(&app, &headers, query) {
        Ok(query) => query,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = conversation(&account, &person) {
        return refusal;
    }
    let for_ms = query.for_secs.map(|secs| secs.saturating_mul(1000));
    let conversations = &app.runtime.services().conversations;
    let (by, now) = (PausedBy::Operator, crate::clock::now_ms());
    match conversations
        .pause(&account, &person, for_ms, by, now)
        .await
    {
        Ok(()) => {
            tracing::info!(%account, %person, for_secs = ?query.for_secs, "conversation paused by an operator");
            (
                StatusCode::OK,
                Json(
                    json!({"account": account, "person": person, "paused": true, "for_secs": query.for_secs}),
                ),
            )
        }
        Err(error) => state_failed(&error),
    }
}

/// `POST /admin/conversations/{account}/{person}/resume`: automation
/// resumes in the conversation.
pub(super) async fn resume_conversation(
    State(app): State<Arc<AppState>>,
    Path((account, person)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    if let Err(refusal) = conversation(&account, &person) {
        return refusal;
    }
    let conversations = &app.runtime.services().conversations;
    match conversations
        .resume(&account, &person, ResumedBy::Operator)
        .await
    {
        Ok(was_paused) => {
            tracing::info!(%account, %person, was_paused, "conversation resumed by an operator");
            (
                StatusCode::OK,
                Json(
                    json!({"account": account, "person": person, "paused": false, "was_paused": was_paused}),
                ),
            )
        }
        Err(error) => state_failed(&error),
    }
}

/// `GET /admin/conversations/paused`: every paused conversation.
pub(super) async fn paused_conversations(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    match app.runtime.services().conversations.paused().await {
        Ok(paused) => (StatusCode::OK, Json(json!({"paused": paused}))),
        Err(error) => state_failed(&error),
    }
}
