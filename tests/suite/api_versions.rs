//! Plugins built against an older `igloo:plugin` keep loading and working.
//! The components under `tests/fixtures/plugins/v0.1.0` were built from
//! this repository before 0.2.0 existed, and are never rebuilt.

use std::path::PathBuf;

use igloo::config::{PluginConfig, PluginSource};
use igloo_tests::{FakeGraph, PROBE_GRANTS, TestIgloo, live_config, webhook};
use serde_json::json;

/// The frozen 0.1.0 build of plugin `name`, granted `grants`.
fn built_against_0_1_0(name: &str, grants: &[&str]) -> PluginConfig {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/plugins/v0.1.0");
    PluginConfig::new(name, PluginSource::Path(dir.join(name)), grants)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_0_1_0_still_loads_and_answers() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    let mut plugin = built_against_0_1_0("auto-reply", &["messages:reply"]);
    plugin
        .settings
        .insert("reply".into(), "0.1.0 heard: {text}".into());
    config.plugins = vec![plugin];
    let igloo = TestIgloo::start(config).await;

    let health = igloo.get_json("/healthz").await;
    let loaded = &health["plugins"][0];
    assert_eq!(loaded["id"], "auto-reply", "{health}");
    assert_eq!(loaded["api"], "igloo:plugin@0.1.0", "{health}");

    igloo
        .post_webhook(&webhook::message("1001", "hello").body())
        .await;
    let requests = graph.wait_for(1).await;
    assert_eq!(
        requests[0].body,
        json!({"recipient": {"id": "1001"}, "message": {"text": "0.1.0 heard: hello"}})
    );
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(runs[0].outcome, "ok", "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_0_plugin_reaches_its_capabilities_with_0_1_0_values_and_errors() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.plugins = vec![built_against_0_1_0("probe", PROBE_GRANTS)];
    let igloo = TestIgloo::start(config).await;

    let report = igloo
        .probe(
            "probe",
            "1001",
            json!({"op": "all", "commands": [
                {"op": "kv_set", "key": "k", "value": "v"},
                {"op": "kv_get", "key": "k"},
                {"op": "send_text", "to": "4444", "text": "hi"},
                {"op": "send", "to": {"person": "1001"}, "content": {"text": "hi"}, "quick_replies": [["Yes", "Y"]]},
            ]}),
        )
        .await;
    let parts: Vec<&str> = report.split(" | ").collect();
    assert_eq!(parts[0], "Ok(())", "{report}");
    assert_eq!(parts[1], r#"Ok(Some("v"))"#, "{report}");
    assert!(
        parts[2].contains("Denied(\"messages:reply only reaches the person"),
        "a refusal arrives as 0.1.0's error: {report}"
    );
    assert!(
        parts[3].starts_with("Ok(Sent { recipient-id: \"1001\""),
        "{report}"
    );
    let requests = graph.wait_for(1).await;
    assert_eq!(
        requests[0].body,
        json!({"recipient": {"id": "1001"}, "message": {"text": "hi", "quick_replies": [{"content_type": "text", "title": "Yes", "payload": "Y"}]}}),
        "the 0.1.0 message crossed whole"
    );
}
