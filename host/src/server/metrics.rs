//! `GET /metrics`: Prometheus text format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::error::ApiError;

/// Render the metrics, with each plugin's quarantine state now and the
/// inbox's counts as of at most a second ago.
pub(super) async fn metrics(
    State(app): State<Arc<AppState>>,
) -> Result<impl IntoResponse, ApiError> {
    let stats = app.stats.get(app.inbox.as_ref()).await?;
    for plugin in app.runtime.plugins().iter() {
        app.metrics
            .set_quarantined(&plugin.info.id, plugin.breaker.status().quarantined);
    }
    app.metrics
        .set_timer_sets_over_budget(app.runtime.services().scheduler.refused_over_budget());
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(stats.stats),
    ))
}
