//! `/admin/installations`, `/admin/bundles` and `/admin/trust`: the
//! operator's installations, the bundles they run and the trust store,
//! changed while igloo runs. Changes load plugins, which runs guest code:
//! they are carried out on the plugin threads.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, authorise};
use crate::bundle::{Bundle, Digest, MAX_BUNDLE_BYTES};
use crate::config::PluginConfig;
use crate::installations::{Changes, Installation, Problem, TrustChange};
use crate::server::AppState;

/// How long an upload of a bundle may take.
const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn refused(problem: &Problem) -> Answer {
    let status = match problem {
        Problem::NotFound(_) => StatusCode::NOT_FOUND,
        Problem::Conflict(_) => StatusCode::CONFLICT,
        Problem::Invalid(_) | Problem::Bundle(_) => StatusCode::BAD_REQUEST,
        Problem::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Problem::Fetch(_) => StatusCode::BAD_GATEWAY,
        Problem::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if let Problem::Storage(error) = problem {
        tracing::error!(%error, "an installation change failed");
        return (status, Json(json!({"error": "storage failed; try again"})));
    }
    (status, Json(json!({"error": problem.to_string()})))
}

/// After an installation changed: in live mode, subscribe each account to
/// the webhook fields its plugins now need (a new plugin's comments, say),
/// in the background on the plugin threads.
fn resubscribe(app: &Arc<AppState>) {
    if app.dry_run.is_some() {
        return;
    }
    let app = Arc::clone(app);
    app.plugin_threads.clone().spawn(async move {
        for report in app.lifecycle.sync_all(&app.runtime, true).await {
            if !report.errors.is_empty() {
                tracing::warn!(account = %report.account, errors = ?report.errors, "resubscribing after an installation changed failed; `igloo accounts sync` tries again");
            }
        }
    });
}

/// One installation as the operator sees it: what is stored, and how its
/// plugin stands now.
fn view(app: &AppState, installation: &Installation) -> Value {
    let id = &installation.spec.id;
    let plugin = app.runtime.plugin(id);
    let failed = app
        .runtime
        .failed()
        .into_iter()
        .find(|failed| failed.id == *id)
        .map(|failed| failed.error.to_string());
    let state = match (&plugin, &failed) {
        (_, Some(_)) => "failed",
        (Some(plugin), None) if plugin.held().is_some() => "held",
        (Some(plugin), None) if plugin.breaker.status().quarantined => "quarantined",
        (Some(_), None) => "active",
        (None, None) => "not-loaded",
    };
    json!({
        "id": id,
        "origin": installation.origin,
        "state": state,
        "held": plugin.as_ref().and_then(|plugin| plugin.held()),
        "error": failed,
        "paused": installation.paused,
        "name": plugin.as_ref().map(|plugin| plugin.info.name.clone()),
        "version": plugin.as_ref().map(|plugin| plugin.info.version.clone()),
        "provenance": plugin.as_ref().map(|plugin| plugin.provenance.clone()),
        "pending_upgrade": installation.pending_upgrade,
        "spec": installation.spec,
    })
}

/// `GET /admin/installations`.
pub(in crate::server) async fn list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    match app.installations.list() {
        Ok(all) => {
            let views: Vec<Value> = all.iter().map(|one| view(&app, one)).collect();
            (StatusCode::OK, Json(json!({ "installations": views })))
        }
        Err(problem) => refused(&problem),
    }
}

/// `GET /admin/installations/{id}`: with the waiting upgrade's difference.
pub(in crate::server) async fn show(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    let shown = app.installations.get(&id).and_then(|installation| {
        let mut shown = view(&app, &installation);
        shown["diff"] = app.installations.diff(&id)?.unwrap_or(Value::Null);
        Ok(shown)
    });
    match shown {
        Ok(shown) => (StatusCode::OK, Json(shown)),
        Err(problem) => refused(&problem),
    }
}

/// `POST /admin/installations`: a body of the installation (its source a
/// stored bundle's `digest`, or a `builtin`).
pub(in crate::server) async fn add(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let spec: PluginConfig = match super::authorised_json(&app, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal,
    };
    match app
        .change_installations(|all| async move { all.add(spec).await })
        .await
    {
        Ok(installation) => {
            resubscribe(&app);
            (StatusCode::CREATED, Json(view(&app, &installation)))
        }
        Err(problem) => refused(&problem),
    }
}

/// `PATCH /admin/installations/{id}`: grants, settings, accounts…
pub(in crate::server) async fn set(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let changes: Changes = match super::authorised_json(&app, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal,
    };
    match app
        .change_installations(|all| async move { all.set(&id, changes).await })
        .await
    {
        Ok(installation) => {
            resubscribe(&app);
            (StatusCode::OK, Json(view(&app, &installation)))
        }
        Err(problem) => refused(&problem),
    }
}

/// `POST /admin/installations/{id}/upgrade`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct UpgradeTo {
    digest: Digest,
}

/// `POST /admin/installations/{id}/upgrade`.
pub(in crate::server) async fn upgrade(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let to: UpgradeTo = match super::authorised_json(&app, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal,
    };
    match app
        .change_installations(|all| async move { all.upgrade(&id, to.digest).await })
        .await
    {
        Ok(upgrade) => {
            resubscribe(&app);
            (StatusCode::OK, Json(json!(upgrade)))
        }
        Err(problem) => refused(&problem),
    }
}

/// `POST /admin/installations/{id}/pause` and `…/resume`.
pub(in crate::server) async fn pause(
    State(app): State<Arc<AppState>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such action"})),
            );
        }
    };
    match app.installations.pause(&id, paused).await {
        Ok(installation) => (StatusCode::OK, Json(view(&app, &installation))),
        Err(problem) => refused(&problem),
    }
}

/// `DELETE /admin/installations/{id}`.
pub(in crate::server) async fn remove(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    let removing = id.clone();
    match app
        .change_installations(|all| async move { all.remove(&removing).await })
        .await
    {
        Ok(dead_letters) => {
            resubscribe(&app);
            (
                StatusCode::OK,
                Json(json!({"removed": id, "dead_letters": dead_letters})),
            )
        }
        Err(problem) => refused(&problem),
    }
}

/// A bundle as `inspect` shows it, with the trust store's verdict.
fn inspected(app: &AppState, bundle: &Bundle) -> Value {
    let mut shown = bundle.inspect();
    // As live mode would judge it, whatever this igloo's mode: a dry run
    // loads unsigned code, and says so here.
    shown["trust"] = match app
        .installations
        .trust()
        .map(|trust| trust.check(bundle, true, false))
    {
        Ok(Ok(verdict)) => json!({"runs_in_live_mode": true, "publisher": verdict.publisher}),
        Ok(Err(refusal)) => json!({"runs_in_live_mode": false, "why": refusal.to_string()}),
        Err(problem) => json!({"runs_in_live_mode": false, "why": problem.to_string()}),
    };
    shown
}

/// `PUT /admin/bundles`: store a bundle file (the body), once it is
/// checked to be one. The token is checked before the body is read.
pub(in crate::server) async fn upload(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    let limits = crate::server::BodyLimits {
        max_bytes: MAX_BUNDLE_BYTES as usize,
        timeout: UPLOAD_TIMEOUT,
    };
    let bytes = match crate::server::body::read(&headers, body, limits).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": error.to_string()})),
            );
        }
    };
    match app.installations.store_bundle(bytes).await {
        Ok(bundle) => (StatusCode::CREATED, Json(inspected(&app, &bundle))),
        Err(problem) => refused(&problem),
    }
}

/// `POST /admin/bundles/fetch`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct FetchRequest {
    reference: String,
}

/// `POST /admin/bundles/fetch`: fetch a bundle by reference (OCI or
/// URL), check it and store it.
pub(in crate::server) async fn fetch(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let request: FetchRequest = match super::authorised_json(&app, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal,
    };
    match app.installations.fetch(&request.reference).await {
        Ok(bundle) => (StatusCode::CREATED, Json(inspected(&app, &bundle))),
        Err(problem) => refused(&problem),
    }
}

/// `GET /admin/trust`: trusted publishers and revocations.
pub(in crate::server) async fn trust(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Answer {
    if let Err(refusal) = authorise(&app, &headers) {
        return refusal;
    }
    match app.installations.trust() {
        Ok(trust) => (
            StatusCode::OK,
            Json(json!({"publishers": trust.keys, "revoked": trust.revoked})),
        ),
        Err(problem) => refused(&problem),
    }
}

/// `POST /admin/trust`.
pub(in crate::server) async fn change_trust(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let change: TrustChange = match super::authorised_json(&app, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal,
    };
    // A change of trust may load an installation held back: on the
    // plugin threads.
    let done = app
        .change_installations(|all| async move { all.change_trust(change).await })
        .await;
    match done {
        Ok(changed) => (StatusCode::OK, Json(json!({"changed": changed}))),
        Err(problem) => refused(&problem),
    }
}
