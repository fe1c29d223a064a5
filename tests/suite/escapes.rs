//! No way out of the sandbox: each hostile plugin tries one family of
//! escape beside the well-behaved auto-reply, which must answer every event
//! while the hostile one is contained with its reason recorded.

use std::time::{Duration, Instant};

use igloo::config::{PluginConfig, PluginSource};
use igloo_plugin_artifacts as built;
use igloo_tests::{
    ACCOUNT_ID, FakeGraph, TestIgloo, beside_auto_reply, install_plugin_as, live_config, webhook,
};

/// The replies auto-reply sent, by recipient.
fn replied_to(graph: &FakeGraph) -> Vec<String> {
    graph
        .requests()
        .iter()
        .filter(|request| request.body["message"]["text"].is_string())
        .map(|request| request.body["recipient"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn forged_ids_never_become_graph_paths_or_queries() {
    let (graph, igloo, _plugins) = beside_auto_reply(
        &built::GRAPH_PATH_INJECTION,
        &["messages:reply", "comments:moderate", "profiles:read"],
        |_| {},
    )
    .await;
    let report = igloo
        .run_and_report(
            &webhook::message("7001", "go").body(),
            "graph-path-injection",
        )
        .await;
    let invalid: usize = report
        .strip_prefix("invalid=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    // Hides, deletes, profile reads and sends with a forged id are all
    // refused; only reactions whose forged message id happens to be a
    // well-formed one (`me`, `0x1F`) may go, in a JSON body, to the sender.
    const FORGED: &[&str] = include!("../fixtures/forged_graph_ids.rs");
    assert!(invalid >= 4 * FORGED.len(), "{report}");
    let messages = format!("/v24.0/{ACCOUNT_ID}/messages");
    for request in graph.requests() {
        assert_eq!(request.path, messages, "{request:?}");
        assert_eq!(request.query, None, "{request:?}");
        assert_eq!(request.body["recipient"]["id"], "7001", "{request:?}");
    }
    assert_eq!(replied_to(&graph), ["7001"], "auto-reply answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_plugin_posing_under_another_plugins_name_gets_none_of_its_state() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.plugins = vec![
        PluginConfig::new(
            "lead-capture",
            PluginSource::Builtin("lead-capture".into()),
            &["messages:reply", "profiles:read", "kv"],
        ),
        // Its manifest also says `lead-capture`; the operator calls it `thief`.
        install_plugin_as(plugins.path(), "thief", &built::IDENTITY_THIEF, &["kv"]),
    ];
    let igloo = TestIgloo::start(config).await;
    igloo
        .run_and_report(&webhook::message("4242", "hello").body(), "thief")
        .await;
    let report = igloo
        .run_and_report(&webhook::message("4242", "ana@example.com").body(), "thief")
        .await;
    assert_eq!(report, "keys=0 values=0");
    let texts: Vec<String> = graph
        .requests()
        .iter()
        .filter_map(|request| request.body["message"]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(
        texts.last().map(String::as_str),
        Some("Thanks! And your phone number?"),
        "lead-capture kept its own state: {texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn wasi_reaches_nothing_on_the_host_and_a_loop_of_wasi_calls_is_bounded() {
    let (graph, igloo, _plugins) = beside_auto_reply(&built::WASI_ESCAPE, &[], |_| {}).await;
    let sockets = igloo
        .run_and_report(&webhook::message("7001", "sockets").body(), "wasi-escape")
        .await;
    assert_eq!(sockets, "tcp=0 udp=0 connect=err lookup=err");
    let host = igloo
        .run_and_report(&webhook::message("7002", "host").body(), "wasi-escape")
        .await;
    assert_eq!(host, "env=0 args=0 root=err cwd=err read=err write=err");
    let flood = igloo
        .run_and_report(&webhook::message("7003", "flood").body(), "wasi-escape")
        .await;
    assert!(flood.contains("host-call budget"), "{flood}");
    let runs = igloo.inbox.runs(3).await.unwrap();
    let flood_run = runs.iter().find(|run| run.plugin == "wasi-escape").unwrap();
    assert_eq!(flood_run.outcome, "host-limit");
    let random = igloo
        .run_and_report(&webhook::message("7004", "random").body(), "wasi-escape")
        .await;
    assert_ne!(random, "random=done", "64 MiB of randomness was refused");
    assert_eq!(replied_to(&graph), ["7001", "7002", "7003", "7004"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn nothing_a_plugin_hands_over_is_unbounded_or_reaches_a_record_unstripped() {
    let (graph, igloo, _plugins) = beside_auto_reply(
        &built::OVERSIZED_DATA,
        &["messages:reply", "kv"],
        |config| {
            // Every way it is stopped counts as a crash; keep it running here.
            config.runtime.breaker_threshold = 1000;
        },
    )
    .await;
    let error = igloo
        .run_and_report(&webhook::message("7001", "error").body(), "oversized-data")
        .await;
    assert!(
        error.len() <= 1100,
        "a 1 MiB error is cut: {} bytes",
        error.len()
    );
    assert!(
        !error.contains('\n') && !error.contains('\r') && !error.contains('\x1b'),
        "no forged lines: {error:?}"
    );
    for (n, mode) in ["quick-replies", "elements", "template", "attachment", "kv"]
        .iter()
        .enumerate()
    {
        let body = webhook::message(&format!("720{n}"), mode).body();
        let before = igloo.stats().await.events;
        igloo.run_and_report(&body, "oversized-data").await;
        let runs = igloo.inbox.runs((before + 1) as i64).await.unwrap();
        let run = runs
            .iter()
            .find(|run| run.plugin == "oversized-data")
            .unwrap();
        // Either refused as invalid, or the run stopped at the boundary.
        assert!(
            run.outcome == "host-limit"
                || run.detail.contains("Invalid")
                || run.detail.contains("QuotaExceeded"),
            "{mode}: {run:?}"
        );
        assert!(!run.detail.contains("Ok("), "{mode}: {run:?}");
    }
    let logged = igloo
        .run_and_report(&webhook::message("7300", "log").body(), "oversized-data")
        .await;
    assert_eq!(
        logged, "",
        "logging is allowed; the lines are cut and stripped"
    );
    // What did reach Meta (a small upload by URL, say) is small.
    for request in graph.requests() {
        let size = request.body.to_string().len() + request.query.map_or(0, |q| q.len());
        assert!(size < 4096, "{size} bytes reached Meta: {:?}", request.path);
    }
    assert_eq!(
        replied_to(&graph).len(),
        7,
        "auto-reply answered every event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_spinning_to_their_deadline_do_not_slow_webhook_acknowledgements() {
    const DEADLINE_MS: u64 = 3_000;
    let (_graph, igloo, _plugins) = beside_auto_reply(&built::INFINITE_LOOP, &[], |config| {
        config.runtime.fuel = u64::MAX / 2;
        config.runtime.deadline_ms = DEADLINE_MS;
        config.runtime.breaker_threshold = 1000;
    })
    .await;
    // Keep the plugin threads busy spinning, then measure acknowledgements.
    for n in 0..4 {
        igloo
            .post_webhook(&webhook::message(&format!("800{n}"), "spin").body())
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slowest = Duration::ZERO;
    for n in 0..10 {
        let started = Instant::now();
        let status = igloo
            .post_webhook(&webhook::message(&format!("810{n}"), "ping").body())
            .await
            .status();
        slowest = slowest.max(started.elapsed());
        assert_eq!(status.as_u16(), 200);
    }
    // Guest code shares no thread with the front door: acknowledgements
    // never wait for a spinning plugin's deadline.
    assert!(
        slowest < Duration::from_millis(DEADLINE_MS / 2),
        "slowest acknowledgement took {slowest:?} while plugins spun"
    );
}
