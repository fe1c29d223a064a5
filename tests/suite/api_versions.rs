//! Plugins built with an older release of igloo's SDK keep loading and
//! working. Each folder under `tests/fixtures/plugins/` holds components
//! built with one release's SDK and WIT, unmodified (see its README), and
//! is never rebuilt.

use std::path::PathBuf;

use igloo::config::{PluginConfig, PluginSource};
use igloo_tests::{FakeGraph, PROBE_GRANTS, TestIgloo, live_config, webhook};
use serde_json::json;

/// The build of plugin `name` kept from `release`, granted `grants`.
fn built_with(release: &str, name: &str, grants: &[&str]) -> PluginConfig {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/plugins")
        .join(release);
    PluginConfig::new(name, PluginSource::Path(dir.join(name)), grants)
}

/// [`built_with`] the release that last served 0.1.0 (its second shape).
fn built_against_0_1_0(name: &str, grants: &[&str]) -> PluginConfig {
    built_with("v0.1.0", name, grants)
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

/// Every release's auto-reply, built with that release's SDK, loads as the
/// API version it targets and answers, all in one igloo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_reply_built_with_each_released_sdk_loads_and_answers() {
    let releases = [
        ("v0.1.0-first", "igloo:plugin@0.1.0"),
        ("v0.1.0", "igloo:plugin@0.1.0"),
        ("v0.2.0", "igloo:plugin@0.2.0"),
    ];
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.plugins = releases
        .iter()
        .map(|(release, _)| {
            let mut plugin = built_with(release, "auto-reply", &["messages:reply"]);
            plugin.id = format!("auto-reply-{}", release.replace('.', "_"));
            plugin
                .settings
                .insert("reply".into(), format!("{release} heard: {{text}}"));
            plugin
        })
        .collect();
    let igloo = TestIgloo::start(config).await;

    let health = igloo.get_json("/healthz").await;
    for (index, (release, api)) in releases.iter().enumerate() {
        let plugin = &health["plugins"][index];
        let id = format!("auto-reply-{}", release.replace('.', "_"));
        assert_eq!(plugin["id"], id, "{health}");
        assert_eq!(plugin["api"], *api, "{health}");
    }

    igloo
        .post_webhook(&webhook::message("1001", "hello").body())
        .await;
    let mut texts: Vec<String> = graph
        .wait_for(releases.len())
        .await
        .iter()
        .map(|request| request.body["message"]["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "v0.1.0 heard: hello",
            "v0.1.0-first heard: hello",
            "v0.2.0 heard: hello"
        ]
    );
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert!(runs.iter().all(|run| run.outcome == "ok"), "{runs:?}");
}

/// Every `wit/vX.Y.Z` folder that has been released stays as it was, byte
/// for byte: a change goes to a new version.
#[test]
fn released_plugin_apis_are_frozen() {
    use sha2::{Digest, Sha256};
    let released = [
        (
            "v0.1.0-first/igloo.wit",
            "d7a85db12d533006467fb1c9c07f51f7a77077fb7340e6afcab3f6e0ea4f8963",
        ),
        (
            "v0.1.0/igloo.wit",
            "c29e3d5e7e8e3d455870593dd5346caf3beca2e08f1c24d649244688bc58f4a7",
        ),
        (
            "v0.2.0/igloo.wit",
            "c3b137ab8ad99551c5f5c597eb75a5ea21d9faefccc3736fe4d358af77684b29",
        ),
    ];
    let wit = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../wit");
    for (file, digest) in released {
        let bytes = std::fs::read(wit.join(file)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            digest,
            "wit/{file} changed after its release"
        );
    }
}
