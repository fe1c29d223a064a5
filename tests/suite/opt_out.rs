//! Opt-out: after a stop keyword, no plugin can send the person an
//! automated message until they opt back in.

use std::path::PathBuf;

use igloo::config::{PluginConfig, PluginSource};
use igloo_tests::{FakeGraph, PROBE_GRANTS, TestIgloo, install_probe, live_config, webhook};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_blocks_every_plugins_sends_to_that_person_until_start() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    let frozen = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/plugins/v0.1.0/probe");
    config.plugins = vec![
        install_probe(plugins.path(), "one", PROBE_GRANTS),
        install_probe(plugins.path(), "two", PROBE_GRANTS),
        PluginConfig::new("old", PluginSource::Path(frozen), PROBE_GRANTS),
    ];
    let igloo = TestIgloo::start(config).await;
    let say = |text: &str| webhook::message("1001", text).body();
    let send = json!({"op": "send_text", "to": "1001", "text": "hi"});

    igloo.run_and_report(&say("  stop "), "one").await;
    for plugin in ["one", "two"] {
        assert_eq!(
            igloo.probe(plugin, "1001", send.clone()).await,
            "Err(Error::OptedOut)",
            "{plugin}"
        );
    }
    assert_eq!(
        igloo.probe("old", "1001", send.clone()).await,
        r#"Err(Error::Denied("the person opted out of automated messages"))"#,
        "a 0.1.0 plugin gets the reason in words"
    );
    let private_reply =
        json!({"op": "send", "to": {"comment": "17900000000000077"}, "content": {"text": "hi"}});
    let body = webhook::comment("17900000000000077", "1001", &private_reply.to_string()).body();
    assert_eq!(
        igloo.run_and_report(&body, "one").await,
        "Err(Error::OptedOut)",
        "nor a private reply to their comment"
    );
    assert!(graph.requests().is_empty(), "nothing reached Meta");
    assert_eq!(
        igloo.probe("one", "2002", send.clone()).await,
        "Err(Error::Denied(\"messages:reply only reaches the person whose event is being handled; 1001 is not them (messages:send would allow it)\"))",
        "someone else is unaffected (here, by the reply scope)"
    );

    igloo.run_and_report(&say("START"), "one").await;
    let report = igloo.probe("two", "1001", send).await;
    assert!(report.starts_with("Ok(Sent"), "{report}");
    // Every probe ran the command: all three may send again.
    assert_eq!(graph.wait_for(3).await.len(), 3);
}
