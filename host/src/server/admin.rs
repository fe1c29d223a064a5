//! Operator routes, behind `server.admin_token`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::AppState;

/// Refuse unless the request carries the configured admin token.
fn authorise(app: &AppState, headers: &HeaderMap) -> Result<(), (StatusCode, Json<Value>)> {
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
