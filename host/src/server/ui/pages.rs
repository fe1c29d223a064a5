//! The dashboard's pages and the actions their buttons take.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::Operator;
use super::{Signed, forged, page};
use crate::inbox::{EventFilter, EventSummary, ReplayRequest, Replayed, RunRecord, Seq};
use crate::server::AppState;
use crate::server::admin::timers::CancelTimer;
use crate::state::TimerFilter;

/// Runs shown per plugin on the overview.
const RECENT_RUNS: u32 = 10;
/// Events listed per page.
const LISTED: u32 = 100;

/// A moment as UTC, to the second.
fn when(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(
        || ms.to_string(),
        |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// `/ui/events` with `pairs` as its query, each value encoded: ids come
/// from webhooks, and must not add a parameter or end the address.
fn events_href(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://igloo/ui/events").expect("a valid URL");
    url.query_pairs_mut().extend_pairs(pairs);
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

/// `/ui/<segments>`, each encoded as one path segment.
fn ui_path(segments: &[&str]) -> String {
    let mut url = reqwest::Url::parse("http://igloo/ui").expect("a valid URL");
    url.path_segments_mut()
        .expect("an http URL")
        .extend(segments);
    url.path().to_owned()
}

/// A filter field as sent: an empty box filters nothing.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
}

/// What an action did, shown once on the page it returns to. Only these
/// fixed messages: nothing from the address is shown as it is.
fn flash(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "replayed" => "Replay scheduled: the runs will run again shortly.",
        "handled" => "Nothing replayed: those runs were handled (tick “even if handled”).",
        "nothing" => "Nothing to replay: no such run, or it is pending or retrying already.",
        "resumed" => "Quarantine lifted: the plugin's missed events run next.",
        "no-plugin" => "No loaded plugin has that id.",
        "retried" => "The account is active again with its token; its waiting events run.",
        "not-refused" => "That account's token is not refused: nothing to retry.",
        "unavailable" => "The accounts store is unavailable; try again.",
        "cancelled" => "Timer cancelled: it will not fire, nor its event run.",
        "no-timer" => "No such timer: it fired and ran, or was cancelled already.",
        "state-unavailable" => "The host's state is unavailable; try again.",
        "paused" => "Installation paused: its events wait for it.",
        "running" => "Installation resumed: the events it missed run next.",
        "granted" => "Granted: the waiting upgrade runs now.",
        "removed" => "Installation removed: the events it had not run on are dead letters.",
        "refused" => "The change was refused: see igloo's log, or `igloo installations show`.",
        _ => return None,
    })
}

fn unavailable() -> Response {
    let body = html! { p { "The inbox is unavailable; reload in a moment." } };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        page("Unavailable", None, body),
    )
        .into_response()
}

/// `?done=…` after an action.
#[derive(Deserialize, Default)]
pub(super) struct Done {
    done: Option<String>,
}

/// A run as a badge: plugin and outcome, coloured by what it means.
fn run_badge(run: &RunRecord) -> Markup {
    let class = if run.retry_at_ms.is_some() {
        "retrying"
    } else if run.is_dead_letter() {
        "dead"
    } else {
        "ok"
    };
    html! { span class={"badge " (class)} title=(run.detail) { (run.plugin) ": " (run.outcome) } }
}

/// `GET /ui`: accounts, plugins and the inbox at a glance.
pub(super) async fn overview(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Query(done): Query<Done>,
) -> Response {
    let Ok(counted) = app.stats.get(app.inbox.as_ref()).await else {
        return unavailable();
    };
    let stats = counted.stats;
    let now = crate::clock::now_ms();
    let mut accounts = Vec::new();
    for account in app.runtime.services().accounts().list() {
        let Ok(webhooks) = app.lifecycle.webhooks(&account.id, now).await else {
            return unavailable();
        };
        accounts.push((account, webhooks));
    }
    let mut plugins = Vec::new();
    let loaded = app.runtime.plugins();
    // Read once for the page, not once per plugin.
    let installations = app.installations.list().unwrap_or_default();
    for plugin in loaded.iter() {
        let filter = EventFilter {
            plugin: Some(plugin.info.id.clone()),
            limit: RECENT_RUNS,
            ..EventFilter::default()
        };
        let Ok(events) = app.inbox.list_events(&filter).await else {
            return unavailable();
        };
        let runs: Vec<RunRecord> = events
            .into_iter()
            .filter_map(|event| {
                event
                    .runs
                    .into_iter()
                    .find(|run| run.plugin == plugin.info.id)
            })
            .collect();
        let installation = installations
            .iter()
            .find(|installation| installation.spec.id == plugin.info.id);
        let waits = installation.is_some_and(|installation| installation.pending_upgrade.is_some());
        // The bundle is read only for an upgrade that waits.
        let diff = waits
            .then(|| app.installations.diff(&plugin.info.id).ok().flatten())
            .flatten();
        let removable = installation
            .is_some_and(|installation| installation.origin == crate::installations::Origin::Api);
        plugins.push((plugin, plugin.breaker.status(), runs, diff, removable));
    }
    let body = html! {
            @if let Some(message) = flash(done.done.as_deref()) { p.flash { (message) } }
            h2 { "Accounts" }
            table #accounts {
                tr { th { "Account" } th { "Status" } th { "Token" } th { "Last webhook" } th {} }
                @for (account, webhooks) in &accounts {
                    tr {
                        td {
                            a href=(events_href(&[("account", &account.id)])) { (account.id) }
                            @if let Some(username) = &account.username { br; span.muted { "@" (username) } }
                        }
                        td {
                            span class={"badge " (account.status)} { (account.status) }
                            @if let Some(detail) = &account.status_detail { br; span.muted { (detail) } }
                        }
                        td {
                            @if !account.has_token { "none" }
                            @else if let Some(expires) = account.token_expires_at_ms { "expires " (when(expires)) }
                            @else { "expiry unknown" }
                            @if let Some(error) = &account.refresh_error { br; span.muted { "refresh failed: " (error) } }
                        }
                        td {
                            @match webhooks.last_webhook_at_ms {
                                Some(at) => { (when(at)) }
                                None => { span.muted { "none yet" } }
                            }
                            @if webhooks.silent { " " span.badge.silent { "silent" } }
                        }
                        td {
                            @if account.status == "token-invalid" {
                                form method="post" action=(ui_path(&["accounts", &account.id, "retry"])) {
                                    input type="hidden" name="csrf" value=(operator.csrf);
                                    button { "Retry its token" }
                                }
                            }
                        }
                    }
                }
            }
    form method="post" action="/ui/accounts/sync" {
                input type="hidden" name="csrf" value=(operator.csrf);
                p {
                    button { "Sync subscriptions and profiles with Meta" }
                    @if app.oauth.login().is_some() { " " a href="/ui/accounts/connect" { "Connect an account" } }
                }
            }
            h2 { "Plugins" }
            table #plugins {
                tr { th { "Plugin" } th { "State" } th { "Recent runs" } th {} }
                @for (plugin, breaker, runs, diff, removable) in &plugins {
                    tr {
                        td {
                            a href=(events_href(&[("plugin", &plugin.info.id)])) { (plugin.info.id) }
                            br; span.muted { (plugin.info.name) " " (plugin.info.version) " · igloo:plugin@" (plugin.pre.version().as_str()) }
                            @if let Some(digest) = &plugin.provenance.digest {
                                br; span.muted {
                                    @match &plugin.provenance.publisher {
                                        Some(publisher) => { "signed by " (publisher) }
                                        None => { span.badge.quarantined { "unsigned" } }
                                    }
                                    " · " (digest.get(..19).unwrap_or(digest)) "…"
                                }
                            }
                            @if let Some(diff) = diff {
                                br; span.badge.quarantined { "upgrade waiting" }
                                span.muted { (diff["to"].as_str().unwrap_or_default()) " asks for " (list_of(&diff["needs_grant"])) }
                            }
                        }
                        td {
                            @if let Some(reason) = plugin.held() { span.badge.quarantined { "held" } br; span.muted { (reason) } }
                            @else if breaker.quarantined { span.badge.quarantined { "quarantined" } } @else { span.badge.active { "active" } }
                            @if breaker.consecutive_failures > 0 { br; span.muted { (breaker.consecutive_failures) " failures in a row" } }
                            @if !breaker.last_failure.is_empty() { br; span.muted { (breaker.last_failure) } }
                        }
                        td { @for run in runs { (run_badge(run)) " " } @if runs.is_empty() { span.muted { "none yet" } } }
                        td {
                            @if breaker.quarantined {
                                form method="post" action=(ui_path(&["plugins", &plugin.info.id, "resume"])) {
                                    input type="hidden" name="csrf" value=(operator.csrf);
                                    button { "Resume" }
                                }
                            }
                            @let action = if plugin.held().is_some() { "resume" } else { "pause" };
                            form method="post" action=(ui_path(&["installations", &plugin.info.id, action])) {
                                input type="hidden" name="csrf" value=(operator.csrf);
                                button { @if action == "pause" { "Pause" } @else { "Resume installation" } }
                            }
                            @if diff.is_some() {
                                form method="post" action=(ui_path(&["installations", &plugin.info.id, "grant"])) {
                                    input type="hidden" name="csrf" value=(operator.csrf);
                                    button { "Grant and upgrade" }
                                }
                            }
                            @if *removable {
                                form method="post" action=(ui_path(&["installations", &plugin.info.id, "remove"])) {
                                    input type="hidden" name="csrf" value=(operator.csrf);
                                    button { "Remove" }
                                }
                            }
                        }
                    }
                }
                @for failed in app.runtime.failed() {
                    tr { td { (failed.id) } td {
                        span.badge.failed { "failed to load" } br; span.muted { (failed.error.to_string()) }
                        @if failed.waits.is_some() { br; span.muted { "its events wait for it" } }
                    } td {} td {} }
                }
            }
            h2 { "Inbox" }
            p {
                (stats.events) " events, " (stats.pending) " pending, " (stats.runs) " runs recorded, as of " (when(counted.as_of_ms)) ". "
                a href="/ui/events?dead=true" { "Dead letters" }
            }
        };
    page("Overview", Some(&operator), body).into_response()
}

/// `GET /ui/events`'s filters.
#[derive(Deserialize, Default)]
pub(super) struct EventsQuery {
    account: Option<String>,
    person: Option<String>,
    plugin: Option<String>,
    #[serde(default)]
    dead: bool,
}

/// `GET /ui/events`: recent events, by account, person and plugin, or the
/// dead letters, each with its runs.
pub(super) async fn events(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let filter = EventFilter {
        account_id: given(query.account.clone()),
        person_id: given(query.person.clone()),
        plugin: given(query.plugin.clone()),
        dead_letters: query.dead,
        limit: LISTED,
        ..EventFilter::default()
    };
    let Ok(events) = app.inbox.list_events(&filter).await else {
        return unavailable();
    };
    let title = if query.dead { "Dead letters" } else { "Events" };
    let body = html! {
        form.filters method="get" action="/ui/events" {
            label { "Account" input type="text" name="account" value=[filter.account_id.as_deref()]; }
            label { "Person" input type="text" name="person" value=[filter.person_id.as_deref()]; }
            label { "Plugin" input type="text" name="plugin" value=[filter.plugin.as_deref()]; }
            label { "Dead letters only" input type="checkbox" name="dead" value="true" checked[query.dead]; }
            button { "Show" }
        }
        @if events.is_empty() { p.muted { "No events." } }
        @else { (events_table(&events, &operator, query.dead)) }
    };
    page(title, Some(&operator), body).into_response()
}

fn events_table(events: &[EventSummary], operator: &Operator, replayable: bool) -> Markup {
    html! {
        table #events {
            tr { th { "#" } th { "Received" } th { "Kind" } th { "Account" } th { "Person" } th { "Runs" } @if replayable { th {} } }
            @for event in events {
                tr {
                    td { a href={"/ui/events/" (event.seq)} { (event.seq) } }
                    td { (when(event.received_at_ms)) }
                    td { (event.kind) }
                    td { a href=(events_href(&[("account", &event.account_id)])) { (event.account_id) } }
                    td {
                        @if let Some(person) = &event.person_id {
                            a href=(events_href(&[("account", &event.account_id), ("person", person)])) { (person) }
                        }
                    }
                    td { @for run in &event.runs { (run_badge(run)) " " } }
                    @if replayable { td { (replay_form(event.seq, operator, None)) } }
                }
            }
        }
    }
}

fn replay_form(seq: Seq, operator: &Operator, plugins: Option<&[RunRecord]>) -> Markup {
    html! {
        form.replay method="post" action={"/ui/events/" (seq) "/replay"} {
            input type="hidden" name="csrf" value=(operator.csrf);
            @if let Some(runs) = plugins {
                label { "Plugin"
                    select name="plugin" {
                        option value="" { "every dead letter" }
                        @for run in runs { option value=(run.plugin) { (run.plugin) } }
                    }
                }
                label { "Even if handled" input type="checkbox" name="force" value="true"; }
            }
            button { "Replay" }
        }
    }
}

/// `GET /ui/events/{seq}`: one event whole: its runs, the host calls each
/// made (the journal), the event and the body it came in.
pub(super) async fn event(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Path(seq): Path<Seq>,
    Query(done): Query<Done>,
) -> Response {
    let detail = match app.inbox.event_detail(seq).await {
        Ok(Some(detail)) => crate::server::admin::for_operator(detail),
        Ok(None) => {
            let body = html! { p { "No event #" (seq) " (never, or pruned)." } };
            return (
                StatusCode::NOT_FOUND,
                page("Not found", Some(&operator), body),
            )
                .into_response();
        }
        Err(_) => return unavailable(),
    };
    let summary = &detail.summary;
    let event_json = serde_json::to_string_pretty(&detail.event).unwrap_or_default();
    let body = html! {
            @if let Some(message) = flash(done.done.as_deref()) { p.flash { (message) } }
            p {
                (summary.kind) " for account "
                a href=(events_href(&[("account", &summary.account_id)])) { (summary.account_id) }
                @if let Some(person) = &summary.person_id { ", from " (person) }
                ", received " (when(summary.received_at_ms))
                @match summary.done_at_ms { Some(at) => { ", done " (when(at)) } None => { ", pending" } }
                "."
            }
            h2 { "Runs" }
            table #runs {
                tr { th { "Plugin" } th { "Outcome" } th { "Attempts" } th { "Detail" } }
                @for run in &summary.runs {
                    tr {
                        td { (run.plugin) }
                        td { (run_badge(run)) @if let Some(at) = run.retry_at_ms { br; span.muted { "retries " (when(at)) } } }
                        td { (run.attempts) }
                        td { (run.detail) }
                    }
                }
            }
            (replay_form(seq, &operator, Some(&summary.runs)))
            h2 { "Host calls" }
            @if detail.journal.is_empty() { p.muted { "None journaled." } }
            @else {
                table #calls {
                    tr { th { "Plugin" } th { "#" } th { "Call" } th { "Status" } th { "Arguments" } th { "Result" } }
                    @for call in &detail.journal {
                        tr {
                            td { (call.plugin) }
                            td { (call.entry.call) }
                            td { (call.entry.operation) }
                            td { (call.entry.status.label()) }
                            td { code { (call.entry.summary) } }
                            td { @if let Some(result) = &call.entry.result { code { (result) } } }
                        }
                    }
                }
            }
            h2 { "Event" }
            pre { (event_json) }
    @if made_by_reconciler(&detail.raw_body) {
                h2 { "Body made by igloo's reconciler" }
                p.muted { "No webhook came for this comment: igloo read it back from Meta and made this body, unsigned." }
            } @else {
                h2 { "Body as received" }
            }
            pre { (detail.raw_body) }
        };
    page(&format!("Event #{seq}"), Some(&operator), body).into_response()
}

/// Whether `raw_body` is one the reconciler made, not Meta's.
fn made_by_reconciler(raw_body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(raw_body)
        .is_ok_and(|body| body["igloo_source"] == crate::lifecycle::reconcile::RECONCILER_SOURCE)
}

/// The replay form.
#[derive(Deserialize)]
pub(super) struct ReplayForm {
    csrf: String,
    #[serde(default)]
    plugin: String,
    #[serde(default)]
    force: bool,
}

/// `POST /ui/events/{seq}/replay`: run its dead letters again (or the
/// chosen plugin's run, even if handled), then back to the event.
pub(super) async fn replay(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Path(seq): Path<Seq>,
    Form(form): Form<ReplayForm>,
) -> Response {
    if !operator.sent(&form.csrf) {
        return forged();
    }
    let request = ReplayRequest {
        seq,
        plugin: Some(form.plugin).filter(|plugin| !plugin.is_empty()),
        force: form.force,
    };
    let done = match app.replay(request).await {
        Ok(Replayed::Scheduled { .. }) => "replayed",
        Ok(Replayed::AlreadyHandled { .. }) => "handled",
        Ok(Replayed::NothingToReplay | Replayed::NotFound) => "nothing",
        Err(_) => return unavailable(),
    };
    Redirect::to(&format!("/ui/events/{seq}?done={done}")).into_response()
}

/// `POST /ui/plugins/{id}/resume`: lift a quarantine.
pub(super) async fn resume_plugin(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Form(form): Form<Signed>,
) -> Response {
    if !operator.sent(&form.csrf) {
        return forged();
    }
    let done = if app.runtime.resume(&id) {
        tracing::info!(plugin = %id, "quarantine lifted from the dashboard");
        "resumed"
    } else {
        "no-plugin"
    };
    Redirect::to(&format!("/ui?done={done}")).into_response()
}

/// The strings of a JSON list, comma-separated.
fn list_of(value: &serde_json::Value) -> String {
    let items: Vec<&str> = value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect();
    items.join(", ")
}

/// `POST /ui/installations/{id}/{pause|resume|grant|remove}`: hold an
/// installation's events back, let it run again, grant what its waiting
/// upgrade asks for (the upgrade then runs), or remove it.
pub(super) async fn change_installation(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Signed>,
) -> Response {
    if !operator.sent(&form.csrf) {
        return forged();
    }
    let done = match action.as_str() {
        "pause" | "resume" => match app.installations.pause(&id, action == "pause").await {
            Ok(_) if action == "pause" => "paused",
            Ok(_) => "running",
            Err(_) => "refused",
        },
        "grant" => match app
            .change_installations(|all| async move { all.grant_waiting(&id).await })
            .await
        {
            Ok(_) => "granted",
            Err(_) => "refused",
        },
        "remove" => match app
            .change_installations(|all| async move { all.remove(&id).await })
            .await
        {
            Ok(_) => "removed",
            Err(_) => "refused",
        },
        _ => "refused",
    };
    Redirect::to(&format!("/ui?done={done}")).into_response()
}

/// `POST /ui/accounts/{id}/retry`: take a `token-invalid` account back.
pub(super) async fn retry_account(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Form(form): Form<Signed>,
) -> Response {
    if !operator.sent(&form.csrf) {
        return forged();
    }
    let done = match app.retry_account(&id).await {
        Ok(true) => "retried",
        Ok(false) => "not-refused",
        Err(error) => {
            tracing::error!(%error, "retrying an account's token failed");
            "unavailable"
        }
    };
    Redirect::to(&format!("/ui?done={done}")).into_response()
}

/// `GET /ui/timers`: the plugins' timers, soonest first, by account,
/// person and plugin, each with *Cancel*.
pub(super) async fn timers(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Query(query): Query<TimersPage>,
) -> Response {
    let filter = TimerFilter {
        plugin: given(query.plugin),
        account_id: given(query.account),
        person_id: given(query.person),
        limit: LISTED,
    };
    let scheduler = &app.runtime.services().scheduler;
    let Ok(timers) = scheduler.list(filter.clone()).await else {
        return unavailable();
    };
    let untrusted = |text: &str| crate::untrusted::sanitize(text, 200);
    let body = html! {
        @if let Some(message) = flash(query.done.as_deref()) { p.flash { (message) } }
        form.filters method="get" action="/ui/timers" {
            label { "Account" input type="text" name="account" value=[filter.account_id.as_deref()]; }
            label { "Person" input type="text" name="person" value=[filter.person_id.as_deref()]; }
            label { "Plugin" input type="text" name="plugin" value=[filter.plugin.as_deref()]; }
            button { "Show" }
        }
        @if timers.is_empty() { p.muted { "No timers." } }
        @else {
            table #timers {
                tr { th { "Due" } th { "Plugin" } th { "Account" } th { "Person" } th { "Key" } th { "State" } th {} }
                @for timer in &timers {
                    tr {
                        td { (when(timer.due_at_ms)) }
                        td { (untrusted(&timer.plugin)) }
                        td { (untrusted(&timer.account_id)) }
                        td { a href=(events_href(&[("account", &timer.account_id), ("person", &timer.person_id)])) { (untrusted(&timer.person_id)) } }
                        td { code { (untrusted(&timer.key)) } br; span.muted { (timer.payload_bytes) " bytes" } }
                        td {
                            @if timer.fired { span.badge.retrying { "fired: its event waits" } }
                            @else { span.badge.ok { "waiting" } }
                        }
                        td {
                            form method="post" action="/ui/timers/cancel" {
                                input type="hidden" name="csrf" value=(operator.csrf);
                                input type="hidden" name="plugin" value=(timer.plugin);
                                input type="hidden" name="account" value=(timer.account_id);
                                input type="hidden" name="person" value=(timer.person_id);
                                input type="hidden" name="key_hex" value=(hex::encode(&timer.key));
                                input type="hidden" name="due_at_ms" value=(timer.due_at_ms);
                                button { "Cancel" }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Timers", Some(&operator), body).into_response()
}

/// `GET /ui/timers`'s filters, and what an action did.
#[derive(Deserialize, Default)]
pub(super) struct TimersPage {
    account: Option<String>,
    person: Option<String>,
    plugin: Option<String>,
    done: Option<String>,
}

/// `POST /ui/timers/cancel`'s form: the session's token and the timer,
/// as listed. The key is the plugin's string, in hex: a browser would
/// change some characters of it in a form field (a CR, a NUL).
#[derive(Deserialize)]
pub(super) struct CancelTimerForm {
    csrf: String,
    plugin: String,
    account: String,
    person: String,
    key_hex: String,
    due_at_ms: u64,
}

/// `POST /ui/timers/cancel`: cancel one timer.
pub(super) async fn cancel_timer(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Form(form): Form<CancelTimerForm>,
) -> Response {
    if !operator.sent(&form.csrf) {
        return forged();
    }
    let Some(key) = hex::decode(&form.key_hex)
        .ok()
        .and_then(|key| String::from_utf8(key).ok())
    else {
        return forged();
    };
    let timer = CancelTimer {
        plugin: form.plugin,
        account: form.account,
        person: form.person,
        key,
        due_at_ms: Some(form.due_at_ms),
    };
    let done = match app.cancel_timer(&timer).await {
        Ok(true) => "cancelled",
        Ok(false) => "no-timer",
        Err(error) => {
            tracing::error!(%error, "cancelling a timer failed");
            "state-unavailable"
        }
    };
    Redirect::to(&format!("/ui/timers?done={done}")).into_response()
}

/// `POST /ui/accounts/sync`: sync every account, and show what was done.
pub(super) async fn sync_accounts(
    operator: Operator,
    State(app): State<Arc<AppState>>,
    Form(form): Form<Signed>,
) -> Response {
    if !operator.sent(&form.csrf) {
        return forged();
    }
    let reports = app.lifecycle.sync_all(&app.runtime, true).await;
    let step = |step: &crate::lifecycle::sync::SetupState| {
        let label = serde_json::to_value(step)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        html! { span class={"badge " (label)} { (label) } }
    };
    let body = html! {
        table #sync {
            tr { th { "Account" } th { "Webhook fields" } th { "Ice breakers" } th { "Menu" } th { "Errors" } }
            @for report in &reports {
                tr {
                    td { (report.account) }
                    td { (step(&report.fields)) br; span.muted { (report.needed_fields.iter().cloned().collect::<Vec<_>>().join(", ")) } }
                    td { (step(&report.ice_breakers)) }
                    td { (step(&report.persistent_menu)) }
                    td { @for error in &report.errors { (error) br; } }
                }
            }
        }
        p { a href="/ui" { "Back to the overview" } }
    };
    page("Sync with Meta", Some(&operator), body).into_response()
}
