//! `GET /sandbox/calls`: what igloo would have sent to Meta, when running
//! against the sandbox (404 in live mode).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use crate::graph::RecordedCall;

/// The recorded outbound calls, oldest first.
pub async fn calls(
    State(app): State<Arc<AppState>>,
) -> Result<Json<Vec<RecordedCall>>, StatusCode> {
    let sandbox = app.services.graph.sandbox().ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(sandbox.calls()))
}
