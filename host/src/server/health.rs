//! `GET /healthz`: 200 with the loaded plugins and inbox counts while
//! storage answers; 503 when it does not.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;

/// Report health.
pub async fn healthz(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let stats = app.inbox.stats().await?;
    let plugins: Vec<_> = app
        .runtime
        .plugins()
        .iter()
        .map(|plugin| json!({ "name": plugin.info.name, "version": plugin.info.version }))
        .collect();
    Ok(Json(json!({
        "status": "ok",
        "plugins": plugins,
        "inbox": {
            "deliveries": stats.deliveries,
            "events": stats.events,
            "pending": stats.pending,
            "runs": stats.runs,
        },
    })))
}
