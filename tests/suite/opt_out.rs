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

/// igloo with the probe `one`, after person 1001 sent STOP.
async fn probe_one_after_1001_opted_out() -> (FakeGraph, TestIgloo, tempfile::TempDir) {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.plugins = vec![install_probe(plugins.path(), "one", PROBE_GRANTS)];
    let igloo = TestIgloo::start(config).await;
    igloo
        .run_and_report(&webhook::message("1001", "STOP").body(), "one")
        .await;
    (graph, igloo, plugins)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_gives_up_on_a_send_refused_by_rule_is_declined_not_a_dead_letter() {
    let (_graph, igloo, _plugins) = probe_one_after_1001_opted_out().await;

    // The probe returns its send's error as its own: the opt-out refused it.
    let send = json!({"op": "send_text", "to": "1001", "text": "hi"});
    assert_eq!(
        igloo.probe("one", "1001", send).await,
        "Err(Error::OptedOut)"
    );
    let seq = igloo.stats().await.events as i64;
    let runs = igloo.inbox.runs(seq).await.unwrap();
    assert_eq!(runs[0].outcome, "declined", "{runs:?}");
    assert!(!runs[0].is_dead_letter(), "{runs:?}");
    assert_eq!(runs[0].retry_at_ms, None, "nothing to retry");
    let metrics = igloo.get_text("/metrics").await;
    assert!(metrics.contains("declined"), "counted apart: {metrics}");

    // A plugin's own error is still a dead letter.
    let own = json!({"op": "kv_list", "prefix": ""});
    igloo.probe("one", "2002", own).await;
    let seq = igloo.stats().await.events as i64;
    let runs = igloo.inbox.runs(seq).await.unwrap();
    assert!(runs[0].is_dead_letter(), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_reply_to_a_comment_of_unknown_author_asks_meta_who_wrote_it_or_is_refused() {
    let (graph, igloo, _plugins) = probe_one_after_1001_opted_out().await;
    let private_reply = |comment: &str| {
        json!({"op": "send", "to": {"comment": comment}, "content": {"text": "hi"}}).to_string()
    };

    // Meta knows who wrote it: the person who opted out.
    let known = "17900000000000088";
    graph.add_media_comment(
        "17950000000000001",
        known,
        "1001",
        "hi",
        igloo_tests::now_ms(),
    );
    let body = webhook::comment(known, "1001", &private_reply(known))
        .without_author()
        .body();
    assert_eq!(
        igloo.run_and_report(&body, "one").await,
        "Err(Error::OptedOut)"
    );
    assert!(
        graph
            .requests()
            .iter()
            .any(|request| request.method == "GET" && request.path.ends_with(known)),
        "Meta was asked: {:?}",
        graph.requests()
    );

    // Meta does not say: refused, nothing sent, and Meta is asked once
    // however often the plugin tries.
    let unknown = "17900000000000099";
    let twice = json!({"op": "all", "commands": [
        {"op": "send", "to": {"comment": unknown}, "content": {"text": "hi"}},
        {"op": "send", "to": {"comment": unknown}, "content": {"text": "hi"}},
    ]});
    let body = webhook::comment(unknown, "2002", &twice.to_string())
        .without_author()
        .body();
    let report = igloo.run_and_report(&body, "one").await;
    let refusal = "Err(Error::Denied(\"Meta does not say who wrote comment";
    assert_eq!(report.matches(refusal).count(), 2, "{report}");
    let asked = graph
        .requests()
        .iter()
        .filter(|request| request.path.ends_with(unknown))
        .count();
    assert_eq!(asked, 1, "{:?}", graph.requests());
    assert!(graph.sent_messages().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_reply_to_the_comment_of_a_person_who_opted_out_is_allowed() {
    let (graph, igloo, _plugins) = probe_one_after_1001_opted_out().await;
    // A public reply is the business speaking on its own post, not a
    // message to the person: opt-outs and pauses do not cover it.
    let comment = "17900000000000077";
    let reply = json!({"op": "comment_reply", "id": comment, "text": "Thanks!"});
    let report = igloo.probe_on_comment("one", comment, "1001", reply).await;
    assert!(report.starts_with("Ok("), "{report}");
    assert!(
        graph
            .requests()
            .iter()
            .any(|request| request.path.ends_with(&format!("{comment}/replies"))),
        "{:?}",
        graph.requests()
    );
}
