//! No silent stop and no lost work: a slow Meta is not a plugin's fault, a
//! quarantine defers events instead of dropping them, hostile clients
//! cannot hold the front door, shutdown drains, and windows count from
//! when the person wrote.

use std::time::Duration;

use igloo_plugin_artifacts as built;
use igloo_tests::{
    FakeGraph, TestIgloo, beside_auto_reply, install_probe, live_config, now_ms, webhook,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_TOKEN: &str = "operator-token-of-at-least-32-chars";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_meta_neither_fails_nor_quarantines_a_healthy_plugin() {
    let graph = FakeGraph::start_with_delay(Duration::from_millis(700)).await;
    let mut config = live_config(&graph);
    config.runtime.deadline_ms = 100;
    config.runtime.breaker_threshold = 2;
    let igloo = TestIgloo::start(config).await;
    for n in 1..=3 {
        igloo
            .post_webhook(&webhook::message(&format!("700{n}"), "hi").body())
            .await;
    }
    igloo.wait_until_idle().await;
    for seq in 1..=3 {
        let runs = igloo.inbox.runs(seq).await.unwrap();
        assert_eq!(
            runs[0].outcome, "ok",
            "waiting on Meta is not the plugin's time: {runs:?}"
        );
    }
    assert_eq!(graph.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_quarantine_stops_runs_waiting_for_a_slot_and_their_events_wait_for_the_plugin()
 {
    let (graph, igloo, _plugins) = beside_auto_reply(&built::WASI_SLEEPER, &[], |config| {
        config.runtime.deadline_ms = 200;
        config.runtime.max_concurrency_per_plugin = 1;
        config.runtime.breaker_threshold = 2;
        config.runtime.breaker_cooldown_secs = 3600;
        config.server.admin_token = Some(ADMIN_TOKEN.into());
    })
    .await;
    for n in 1..=6 {
        igloo
            .post_webhook(&webhook::message(&format!("700{n}"), "hi").body())
            .await;
    }
    graph.wait_for(6).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut sleeper_runs = Vec::new();
    for seq in 1..=6 {
        for run in igloo.inbox.runs(seq).await.unwrap() {
            if run.plugin == "wasi-sleeper" {
                sleeper_runs.push(run.outcome);
            }
        }
    }
    assert_eq!(
        sleeper_runs,
        ["deadline", "deadline"],
        "a sleep in WASI is the plugin's own time; no run started once it was quarantined"
    );
    assert_eq!(igloo.stats().await.pending, 4, "four events wait for it");
    assert_eq!(graph.requests().len(), 6, "auto-reply answered all six");

    let resumed = igloo
        .client
        .post(format!("{}/admin/plugins/wasi-sleeper/resume", igloo.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status().as_u16(), 200);
    igloo_tests::eventually("the deferred events to run", || async {
        let mut ran = 0;
        for seq in 1..=6 {
            ran += igloo
                .inbox
                .runs(seq)
                .await
                .unwrap()
                .iter()
                .filter(|run| run.plugin == "wasi-sleeper")
                .count();
        }
        (ran >= 4).then_some(())
    })
    .await;
    assert_eq!(graph.requests().len(), 6, "auto-reply did not run twice");
}

/// Send raw `bytes` to igloo and read what comes back until it closes the
/// connection or `patience` passes.
async fn raw_exchange(url: &str, bytes: &[u8], pause: Duration, patience: Duration) -> String {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    tokio::time::sleep(pause).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(patience, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_lying_clients_are_cut_off_and_answered_at_once() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.server.header_timeout_ms = 300;
    config.server.body_timeout_ms = 300;
    config.server.max_connections = 4;
    let igloo = TestIgloo::start(config).await;
    let patience = Duration::from_secs(3);

    let huge = b"POST /webhooks/instagram HTTP/1.1\r\nHost: igloo\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n";
    let answer = raw_exchange(&igloo.url, huge, Duration::ZERO, patience).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "refused before reading: {answer:?}"
    );

    let slow_headers = b"POST /webhooks/instagram HTTP/1.1\r\nHost: igloo\r\n";
    let started = std::time::Instant::now();
    let answer = raw_exchange(&igloo.url, slow_headers, Duration::ZERO, patience).await;
    assert!(
        started.elapsed() < patience,
        "a client that never finishes its headers is cut off"
    );
    assert!(!answer.contains("200"), "{answer:?}");

    let slow_body = b"POST /webhooks/instagram HTTP/1.1\r\nHost: igloo\r\nContent-Length: 100\r\n\r\n{\"object\":";
    let answer = raw_exchange(&igloo.url, slow_body, Duration::ZERO, patience).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");

    // Idle connections fill every slot, then are closed by the idle limit,
    // so a real webhook is still answered.
    let address = igloo.url.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let started = std::time::Instant::now();
    let response = igloo
        .post_webhook(&webhook::message("7001", "hi").body())
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        started.elapsed() < patience,
        "answered within {:?}",
        started.elapsed()
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_after_its_maximum_age_however_busy() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.server.max_connection_age_ms = 500;
    config.server.header_timeout_ms = 300;
    let igloo = TestIgloo::start(config).await;
    let address = igloo.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let started = std::time::Instant::now();
    // Keep asking without ever reading the answers.
    let request = b"GET /healthz HTTP/1.1\r\nHost: igloo\r\n\r\n";
    while started.elapsed() < Duration::from_secs(5) {
        if stream.write_all(request).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the connection was closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_runs_under_way_finish_and_leaves_nothing_half_done() {
    let graph = FakeGraph::start_with_delay(Duration::from_millis(600)).await;
    let config = live_config(&graph);
    let igloo = TestIgloo::start(config.clone()).await;
    igloo
        .post_webhook(&webhook::message("7001", "hi").body())
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let data = igloo.stop().await;
    assert_eq!(graph.requests().len(), 1, "the run under way finished");
    let again = TestIgloo::start_in(config, data).await;
    let stats = again.wait_until_idle().await;
    assert_eq!(stats.pending, 0);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        graph.requests().len(),
        1,
        "and was not repeated after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_delivery_does_not_reopen_a_window_meta_has_closed() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let thirty_hours_ago = now_ms() - 30 * 3600 * 1000;
    igloo
        .post_webhook(
            &webhook::message("7001", "hello")
                .at(thirty_hours_ago)
                .body(),
        )
        .await;
    igloo.wait_until_idle().await;
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert!(runs[0].detail.contains("WindowClosed"), "{runs:?}");
    assert!(
        graph.requests().is_empty(),
        "nothing was sent outside the window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_open_for_events_no_plugin_subscribes_to() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    // The probe takes messages and comments, not postbacks.
    config.plugins = vec![install_probe(
        plugins.path(),
        "probe",
        &[
            "messages:send",
            "comments:reply",
            "profiles:read",
            "profiles:public-lookup",
            "kv",
        ],
    )];
    let igloo = TestIgloo::start(config).await;
    let postback = webhook::postback("7005", "Talk to us", "TALK").mid("pb-1");
    igloo.post_webhook(&postback.body()).await;
    let command = json!({"op": "send_text", "to": "7005", "text": "Happy to help"});
    let report = igloo
        .run_and_report(
            &webhook::comment("9001", "7006", &command.to_string()).body(),
            "probe",
        )
        .await;
    assert!(
        report.starts_with("Ok("),
        "the postback opened the window: {report}"
    );
    assert_eq!(graph.requests().len(), 1);
}
