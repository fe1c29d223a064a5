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
    // Constant time, so the token cannot be guessed byte by byte.
    let matches = given.is_some_and(|given| {
        given.len() == expected.len()
            && given
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if matches {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong admin token"})),
        ))
    }
}

/// `POST /admin/plugins/{name}/resume`: lift a plugin's quarantine now.
pub async fn resume_plugin(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    match app.runtime.plugin(&name) {
        Some(plugin) => {
            plugin.breaker.reset();
            tracing::info!(plugin = %name, "quarantine lifted by an operator");
            (
                StatusCode::OK,
                Json(json!({"plugin": name, "quarantined": false})),
            )
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no plugin named `{name}`")})),
        ),
    }
}
