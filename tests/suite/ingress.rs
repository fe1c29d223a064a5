//! The webhook routes: handshake, signatures, malformed and oversized
//! bodies. Every refusal stores nothing and dispatches nothing.

use igloo::inbox::InboxStats;
use igloo::signature;
use igloo_tests::{APP_SECRET, FakeGraph, TestIgloo, VERIFY_TOKEN, fixture, live_config};

async fn refused_and_nothing_stored(
    igloo: &TestIgloo,
    graph: &FakeGraph,
    response: reqwest::Response,
    status: u16,
) {
    assert_eq!(response.status().as_u16(), status);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{body}"
    );
    assert_eq!(igloo.stats().await, InboxStats::default(), "nothing stored");
    assert!(graph.requests().is_empty(), "nothing dispatched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_echoes_the_challenge_only_for_the_right_token_and_mode() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let get = |query: String| {
        let request = igloo
            .client
            .get(format!("{}/webhooks/instagram?{query}", igloo.url));
        async move { request.send().await.unwrap() }
    };

    let ok = get(format!(
        "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    ))
    .await;
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");

    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".to_owned(),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"),
        String::new(),
    ] {
        assert_eq!(get(query.clone()).await.status().as_u16(), 403, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_signature_is_401() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let response = igloo
        .post_webhook_with(&fixture("message_text.json"), None)
        .await;
    refused_and_nothing_stored(&igloo, &graph, response, 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_malformed_signature_is_403() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let body = fixture("message_text.json");
    let other_secret = signature::sign(b"not-the-app-secret", &body);
    let other_body = signature::sign(APP_SECRET.as_bytes(), b"{}");
    for header in [
        other_secret.as_str(),
        other_body.as_str(),
        "sha256=nothex",
        "sha1=abc",
    ] {
        let response = igloo.post_webhook_with(&body, Some(header)).await;
        refused_and_nothing_stored(&igloo, &graph, response, 403).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_with_a_clear_message() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let response = igloo
        .post_webhook(b"{\"object\": \"instagram\", \"entry\": [")
        .await;
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("malformed webhook body"),
        "{body}"
    );
    assert_eq!(igloo.stats().await, InboxStats::default());
    assert!(graph.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.server.max_body_bytes = 1024;
    let igloo = TestIgloo::start(config).await;
    let mut body = fixture("message_text.json");
    let fits = igloo.post_webhook(&body).await;
    assert_eq!(
        fits.status().as_u16(),
        200,
        "the fixture itself fits in 1 KiB"
    );
    igloo.wait_until_idle().await;
    let before = igloo.stats().await;

    body.extend(std::iter::repeat_n(b' ', 1024));
    let response = igloo.post_webhook(&body).await;
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(igloo.stats().await, before, "nothing more stored");
    assert_eq!(
        graph.requests().len(),
        1,
        "only the first delivery was dispatched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_another_meta_product_is_kept_and_acknowledged_but_makes_no_event() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let messenger = String::from_utf8(fixture("message_text.json"))
        .unwrap()
        .replacen("\"object\": \"instagram\"", "\"object\": \"page\"", 1);
    let response = igloo.post_webhook(messenger.as_bytes()).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "acknowledged, so Meta does not retry"
    );
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.deliveries, 1, "the body is kept: {stats:?}");
    assert_eq!(
        stats.events, 0,
        "a Messenger body is no Instagram event: {stats:?}"
    );
    assert!(graph.requests().is_empty(), "no plugin ran");
}
