//! `GET /dry-run/calls`: what igloo would have sent to Meta, when running
//! as a dry run (404 in live mode). The calls carry what plugins said to
//! people: the admin token is needed whenever one is set. Without one, they
//! are served only while igloo listens on loopback addresses only (a
//! developer's machine, the quickstart); a proxy in front on the same host
//! is no reason to drop the token, since one is set for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The recorded outbound calls, oldest first.
pub(super) async fn calls(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let open = app.admin_token.is_none() && app.loopback_only.load(Ordering::Relaxed);
    if !open && let Err(refusal) = super::admin::authorise(&app, &headers) {
        return refusal.into_response();
    }
    match &app.dry_run {
        Some(dry_run) => Json(dry_run.calls()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
