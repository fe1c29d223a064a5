//! `GET /dry-run/calls`: what igloo would have sent to Meta, when running
//! as a dry run (404 in live mode). The calls carry what plugins said to
//! people: the admin token is needed, unless igloo listens on loopback
//! addresses only (a developer's machine).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The recorded outbound calls, oldest first.
pub(super) async fn calls(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !app.loopback_only.load(Ordering::Relaxed)
        && let Err(refusal) = super::admin::authorise(&app, &headers)
    {
        return refusal.into_response();
    }
    match &app.dry_run {
        Some(dry_run) => Json(dry_run.calls()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
