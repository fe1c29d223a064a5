//! `GET /dry-run/calls`: what igloo would have sent to Meta, when running
//! as a dry run (404 in live mode).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use crate::graph::RecordedCall;

/// The recorded outbound calls, oldest first.
pub(super) async fn calls(
    State(app): State<Arc<AppState>>,
) -> Result<Json<Vec<RecordedCall>>, StatusCode> {
    let dry_run = app.dry_run.as_ref().ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(dry_run.calls()))
}
