//! A signed message webhook in, the example plugin's reply out to the
//! Graph API, exactly as Meta's Send API expects it.

use igloo::config::PluginSource;
use igloo_tests::{ACCESS_TOKEN, ACCOUNT_ID, FakeGraph, TestIgloo, fixture, live_config};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_text_message_gets_the_plugins_reply_through_the_send_api() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    assert_eq!(
        config.plugins[0].source,
        PluginSource::Builtin("auto-reply".into())
    );
    config.plugins[0]
        .settings
        .insert("reply".into(), "We ship to Lisbon!".into());
    let igloo = TestIgloo::start(config).await;

    let response = igloo.post_webhook(&fixture("message_text.json")).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "EVENT_RECEIVED");

    let requests = graph.wait_for(1).await;
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, format!("/v24.0/{ACCOUNT_ID}/messages"));
    assert_eq!(
        sent.query, None,
        "the token travels in a header, not the URL"
    );
    assert_eq!(
        sent.authorization.as_deref(),
        Some(format!("Bearer {ACCESS_TOKEN}").as_str())
    );
    assert_eq!(
        sent.body,
        json!({ "recipient": { "id": "6543210987654321" }, "message": { "text": "We ship to Lisbon!" } })
    );

    let stats = igloo.wait_until_idle().await;
    assert_eq!((stats.deliveries, stats.events, stats.runs), (1, 1, 1));
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].plugin.as_str(), runs[0].outcome.as_str()),
        ("auto-reply", "ok")
    );
}
