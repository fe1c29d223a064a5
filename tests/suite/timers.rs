//! Durable timers: set by a plugin for the conversation it handles, fired
//! once, through the inbox, even across a restart; cancelled ones never
//! fire; and a timer is no way round the 24-hour window.

use std::sync::Arc;
use std::time::Duration;

use igloo::config::Config;
use igloo_tests::{
    ACCOUNT_ID, FakeGraph, PROBE_GRANTS, TestIgloo, eventually, install_probe, live_config,
};
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
        runs.first().map(|run| run.detail.clone())
    })
    .await
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
