//! Durable timers: set by a plugin for the conversation it handles, fired
//! once, through the inbox, even across a restart; cancelled ones never
//! fire; and a timer is no way round the 24-hour window.

use std::sync::Arc;
use std::time::Duration;

use igloo::config::Config;
use igloo_tests::{
    ACCOUNT_ID, FakeGraph, OPERATOR_TOKEN, PROBE_GRANTS, TestIgloo, eventually, install_plugin,
    install_probe, live_config, webhook,
};
use reqwest::Method;
use serde_json::json;

/// igloo's config with the probe installed under `plugins`.
fn with_probe(graph: &FakeGraph, plugins: &tempfile::TempDir) -> Config {
    let mut config = live_config(graph);
    config.plugins = vec![install_probe(plugins.path(), "probe", PROBE_GRANTS)];
    // The probe reports through errors: reports, not failures to retry.
    config.runtime.retry_schedule_ms = Vec::new();
    config
}

/// The detail of the probe's run on the event at `seq`, once it ran.
async fn report_at(igloo: &TestIgloo, seq: i64) -> String {
    eventually("the probe's run", || async {
        let runs = igloo.inbox.runs(seq).await.unwrap();
        let probe = runs.into_iter().find(|run| run.plugin == "probe");
        probe.map(|run| run.detail)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_timers_and_cancels_one_which_then_never_fires() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = with_probe(&graph, &plugins);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    let igloo = TestIgloo::start(config).await;
    for (person, key, after_ms) in [("1001", "soon", 1500), ("1002", "later", 3_600_000)] {
        let set =
            json!({"op": "timer_set", "key": key, "after_ms": after_ms, "payload": "still there?"});
        assert_eq!(igloo.probe("probe", person, set).await, "Ok(())");
    }

    let (status, listed) = igloo.admin(Method::GET, "/admin/timers", None).await;
    assert_eq!(status, 200, "{listed}");
    let timers = listed["timers"].as_array().unwrap();
    assert_eq!(timers.len(), 2, "{listed}");
    assert_eq!(
        (
            &timers[0]["plugin"],
            &timers[0]["account_id"],
            &timers[0]["person_id"],
            &timers[0]["key"],
            &timers[0]["fired"],
            &timers[0]["payload_bytes"],
        ),
        (
            &json!("probe"),
            &json!(ACCOUNT_ID),
            &json!("1001"),
            &json!("soon"),
            &json!(false),
            &json!(12),
        ),
        "soonest first: {listed}"
    );
    let (_, one) = igloo
        .admin(Method::GET, "/admin/timers?person=1002&plugin=probe", None)
        .await;
    assert_eq!(one["timers"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one["timers"][0]["key"], "later");
    // Cancelled only as listed: not if it is due at another time now.
    let due = one["timers"][0]["due_at_ms"].as_u64().unwrap();
    let stale = json!({"plugin": "probe", "account": ACCOUNT_ID, "person": "1002", "key": "later", "due_at_ms": due + 1});
    let (status, _) = igloo
        .admin(Method::POST, "/admin/timers/cancel", Some(stale))
        .await;
    assert_eq!(status, 404);
    igloo
        .cli(&["timers", "list", "--account", ACCOUNT_ID])
        .await
        .unwrap();

    igloo
        .cli(&["timers", "cancel", "probe", ACCOUNT_ID, "1001", "soon"])
        .await
        .unwrap();
    let again = igloo
        .cli(&["timers", "cancel", "probe", ACCOUNT_ID, "1001", "soon"])
        .await
        .unwrap_err();
    assert!(again.to_string().contains("404"), "{again}");
    // Past when it was due: it never fired.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.events, 2, "no timer event: {stats:?}");
    assert!(graph.requests().is_empty());
    let (_, left) = igloo.admin(Method::GET, "/admin/timers", None).await;
    assert_eq!(left["timers"][0]["key"], "later", "{left}");

    // The operator's alone, and checked.
    let stranger = reqwest::get(format!("{}/admin/timers", igloo.url))
        .await
        .unwrap();
    assert_eq!(stranger.status(), 401);
    let (status, _) = igloo
        .admin(Method::GET, "/admin/timers?colour=blue", None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = igloo
        .admin(
            Method::POST,
            "/admin/timers/cancel",
            Some(json!({"plugin": "probe"})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_cancelled_while_its_event_waits_for_a_retry_is_not_retried() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = with_probe(&graph, &plugins);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    config.runtime.retry_schedule_ms = vec![2_000];
    config.timers.min_delay_ms = 300;
    let igloo = TestIgloo::start(config).await;
    // Meta fails the timer's send: its run is to be retried.
    graph.script(
        500,
        json!({"error": {"message": "An unexpected error has occurred.", "code": 2}}),
    );
    let set =
        json!({"op": "timer_set", "key": "remind", "after_ms": 300, "payload": "still there?"});
    assert_eq!(igloo.probe("probe", "1001", set).await, "Ok(())");
    let waiting = eventually("the timer's run to wait for its retry", || async {
        let runs = igloo.inbox.runs(2).await.unwrap();
        runs.into_iter()
            .find(|run| run.plugin == "probe" && run.retry_at_ms.is_some())
    })
    .await;
    assert_eq!(waiting.attempts, 1);
    let (_, listed) = igloo.admin(Method::GET, "/admin/timers", None).await;
    assert_eq!(listed["timers"][0]["fired"], true, "{listed}");

    let cancel =
        json!({"plugin": "probe", "account": ACCOUNT_ID, "person": "1001", "key": "remind"});
    let (status, answer) = igloo
        .admin(Method::POST, "/admin/timers/cancel", Some(cancel))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, listed) = igloo.admin(Method::GET, "/admin/timers", None).await;
    assert_eq!(listed["timers"], json!([]), "{listed}");
    let held = eventually("the retry to be held back", || async {
        let runs = igloo.inbox.runs(2).await.unwrap();
        runs.into_iter()
            .find(|run| run.plugin == "probe" && run.retry_at_ms.is_none())
    })
    .await;
    assert_eq!(
        (held.outcome.as_str(), held.detail.as_str()),
        (
            "skipped",
            "the timer was cancelled, or set again, before its event ran"
        )
    );
    igloo.wait_until_idle().await;
    assert_eq!(graph.requests().len(), 1, "only the send Meta failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_fires_once_after_a_restart_in_between() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let igloo = TestIgloo::start(with_probe(&graph, &plugins)).await;
    let set =
        json!({"op": "timer_set", "key": "remind", "after_ms": 1500, "payload": "still there?"});
    assert_eq!(igloo.probe("probe", "1001", set).await, "Ok(())");
    let data_dir = igloo.stop().await;

    let igloo = TestIgloo::start_in(with_probe(&graph, &plugins), Arc::clone(&data_dir)).await;
    assert_eq!(
        report_at(&igloo, 2).await,
        r#"timer remind: Ok(Sent { recipient-id: "1001", message-id: "fake-mid-1" })"#
    );
    let sends = graph.wait_for(1).await;
    assert_eq!(
        sends[0].body,
        json!({"recipient": {"id": "1001"}, "message": {"text": "still there?"}})
    );
    // Long enough for a second firing, were there one.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.events, 2, "the message and one timer: {stats:?}");
    assert_eq!(graph.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_timer_never_fires_and_limits_are_typed_errors() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = with_probe(&graph, &plugins);
    config.timers.max_per_plugin_account = 3;
    config.timers.max_per_conversation = 2;
    config.timers.max_horizon_secs = 3600;
    let igloo = TestIgloo::start(config).await;

    let report = igloo
        .probe(
            "probe",
            "1001",
            json!({"op": "all", "commands": [
                {"op": "timer_set", "key": "a", "after_ms": 400, "payload": "a"},
                {"op": "timer_set", "key": "b", "after_ms": 400, "payload": "b"},
                {"op": "timer_set", "key": "c", "after_ms": 400, "payload": "c"},
                {"op": "timer_set", "key": "a", "after_ms": 400, "payload": "a again"},
                {"op": "timer_set", "key": "d", "after_ms": 3_601_000, "payload": "d"},
                {"op": "timer_set", "key": "", "after_ms": 1, "payload": ""},
                {"op": "timer_cancel", "key": "a"},
                {"op": "timer_cancel", "key": "b"},
                {"op": "timer_cancel", "key": "b"},
            ]}),
        )
        .await;
    assert_eq!(
        report,
        "Ok(()) | Ok(()) \
         | Err(Error::QuotaExceeded(\"2 timers is the most a plugin keeps waiting per conversation\")) \
         | Ok(()) \
         | Err(Error::Invalid(\"timers are set at most 3600 seconds ahead\")) \
         | Err(Error::Invalid(\"timer keys are 1 to 128 bytes\")) \
         | Ok(true) | Ok(true) | Ok(false)"
    );
    // The account holds three at most, whoever they are for.
    let set = json!({"op": "timer_set", "key": "x", "after_ms": 60_000, "payload": "x"});
    let elsewhere = async |person: &'static str| igloo.probe("probe", person, set.clone()).await;
    for person in ["1002", "1003", "1004"] {
        assert_eq!(elsewhere(person).await, "Ok(())");
    }
    assert_eq!(
        elsewhere("1005").await,
        "Err(Error::QuotaExceeded(\"3 timers is the most a plugin keeps waiting per account\"))"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.events, 5, "no timer fired: {stats:?}");
    assert!(graph.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_that_fires_after_the_window_closed_gets_window_closed_and_sends_nothing() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let igloo = TestIgloo::start(with_probe(&graph, &plugins)).await;
    let set = json!({"op": "timer_set", "key": "late", "after_ms": 500, "payload": "too late"});
    assert_eq!(igloo.probe("probe", "1001", set).await, "Ok(())");
    let data_dir = igloo.stop().await;

    // While igloo is down, a day passes for the person's window.
    let day_ago = igloo_tests::now_ms() as i64 - 25 * 3600 * 1000;
    rusqlite::Connection::open(data_dir.path().join("state.sqlite3"))
        .unwrap()
        .execute(
            "UPDATE windows SET last_inbound_ms = ?1 WHERE account_id = ?2 AND person_id = '1001'",
            rusqlite::params![day_ago, ACCOUNT_ID],
        )
        .unwrap();

    let igloo = TestIgloo::start_in(with_probe(&graph, &plugins), data_dir).await;
    assert_eq!(
        report_at(&igloo, 2).await,
        "timer late: Err(Error::WindowClosed)"
    );
    assert!(graph.requests().is_empty(), "nothing reached Meta");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_cancelled_after_it_fired_but_before_its_event_ran_does_not_run() {
    cancelled_after_it_fired(false).await;
}

/// The same for a plugin in an exclusive group: its timer's event, held
/// back, completes (the hold's record is no group skip to revive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_plugins_timer_cancelled_after_it_fired_does_not_run_and_its_event_completes() {
    cancelled_after_it_fired(true).await;
}

async fn cancelled_after_it_fired(grouped: bool) {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = with_probe(&graph, &plugins);
    // A plugin that holds each of 1001's events for its whole deadline, so
    // the timer fires, and the cancel arrives, while the lane is busy.
    let sleeper = &igloo_plugin_artifacts::WASI_SLEEPER;
    config
        .plugins
        .push(install_plugin(plugins.path(), sleeper, &[]));
    if grouped {
        // The probe answers first (its reports end the turn), so its
        // partner never runs.
        let partner = install_probe(plugins.path(), "partner", PROBE_GRANTS);
        config.plugins.push(partner);
        config.exclusive_groups = vec![igloo::config::ExclusiveGroup {
            name: "g".into(),
            plugins: vec!["probe".into(), "partner".into()],
        }];
    }
    config.runtime.deadline_ms = 1500;
    config.timers.min_delay_ms = 300;
    let igloo = TestIgloo::start(config).await;

    let at = igloo_tests::now_ms();
    let set = json!({"op": "timer_set", "key": "t", "after_ms": 300, "payload": "never"});
    let body = webhook::message("1001", &set.to_string()).at(at).body();
    igloo.post_webhook(&body).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Written before the timer was due: its turn in the lane comes first.
    let cancel = json!({"op": "timer_cancel", "key": "t"});
    let body = webhook::message("1001", &cancel.to_string())
        .at(at + 1)
        .body();
    igloo.post_webhook(&body).await;

    let fired = eventually("the timer's run", || async {
        let runs = igloo.inbox.runs(2).await.unwrap();
        runs.into_iter().find(|run| run.plugin == "probe")
    })
    .await;
    assert_eq!(
        (fired.outcome.as_str(), fired.detail.as_str()),
        (
            "skipped",
            "the timer was cancelled, or set again, before its event ran"
        )
    );
    assert_eq!(
        report_at(&igloo, 3).await,
        "Ok(true)",
        "the cancel found it"
    );
    assert!(graph.requests().is_empty(), "its send never happened");
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.pending, 0, "every event completed: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_that_fired_their_budget_of_the_minute_cannot_set_themselves_again() {
    // Not across a minute's turn, where the budget starts afresh.
    while igloo_tests::now_ms() % 60_000 > 45_000 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = with_probe(&graph, &plugins);
    config.timers.min_delay_ms = 100;
    config.timers.max_firings_per_minute = 2;
    let igloo = TestIgloo::start(config).await;
    // A timer that sets itself again each time it fires.
    let rearm = json!({"op": "timer_set", "key": "loop", "after_ms": 100, "payload": "rearm"});
    assert_eq!(igloo.probe("probe", "1001", rearm).await, "Ok(())");
    // Event 1 is the message; 2 and 3 the timer's firings.
    assert_eq!(report_at(&igloo, 2).await, "timer loop: Ok(())");
    assert_eq!(
        report_at(&igloo, 3).await,
        "timer loop: Err(Error::QuotaExceeded(\"this plugin's timers fired their budget of 2 a \
         minute in this account; a timer may set one again after the minute\"))"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(igloo.wait_until_idle().await.events, 3, "the loop ended");

    // A person's message still sets a timer.
    let set = json!({"op": "timer_set", "key": "later", "after_ms": 60_000, "payload": "x"});
    assert_eq!(igloo.probe("probe", "1002", set).await, "Ok(())");
    let metrics = igloo.get_text("/metrics").await;
    assert!(
        metrics.contains("igloo_timer_sets_over_budget_total 1"),
        "counted: {metrics}"
    );
}
