//! Webhooks end to end: batches split, redeliveries dispatched once,
//! conversations kept in order, subscriptions and echoes honoured, legacy
//! signatures only when enabled, and 503 only when storage fails.

use std::collections::BTreeMap;

use igloo::cli::simulate::{SimulateArgs, SimulatedKind, run as simulate};
use igloo_tests::{ACCOUNT_ID, APP_SECRET, FakeGraph, TestIgloo, fixture, live_config, webhook};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_batch_is_dispatched_once() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let batch = fixture("batch_mixed.json");

    assert_eq!(igloo.post_webhook(&batch).await.status().as_u16(), 200);
    let first = igloo.wait_until_idle().await;
    assert_eq!(first.events, 4, "two messages, a postback and a comment");
    let replies = graph.wait_for(2).await;
    assert_eq!(replies.len(), 2, "auto-reply answers the two messages only");

    assert_eq!(
        igloo.post_webhook(&batch).await.status().as_u16(),
        200,
        "Meta's retry is acknowledged"
    );
    let second = igloo.wait_until_idle().await;
    assert_eq!(second.deliveries, 2, "the redelivery itself is kept");
    assert_eq!(
        (second.events, second.runs),
        (first.events, first.runs),
        "no event stored or run twice"
    );
    assert_eq!(graph.requests().len(), 2, "no second reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_conversation_is_answered_once_in_order_across_deliveries_and_a_restart() {
    const CONVERSATIONS: u64 = 20;
    const MESSAGES: u64 = 6;
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.plugins[0]
        .settings
        .insert("reply".into(), "re: {text}".into());
    let start = igloo_tests::now_ms() - 60_000;
    let message = |conversation: u64, message: u64| {
        webhook::message(&format!("5000{conversation}"), &format!("{message}"))
            .mid(&format!("m-{conversation}-{message}"))
            .at(start + message * 1000 + conversation)
    };

    // The first half: one delivery per message, conversations interleaved,
    // and one batch with a conversation's messages latest first.
    let mut igloo = TestIgloo::start(config.clone()).await;
    for n in 0..MESSAGES / 2 - 1 {
        for conversation in 0..CONVERSATIONS {
            let body = message(conversation, n).body();
            assert_eq!(igloo.post_webhook(&body).await.status().as_u16(), 200);
        }
    }
    let batch: Vec<_> = (0..CONVERSATIONS)
        .map(|conversation| message(conversation, MESSAGES / 2 - 1))
        .collect();
    igloo.post_webhook(&webhook::delivery(batch)).await;
    // Shut down mid-stream, then start again on the same data.
    let data = igloo.stop().await;
    igloo = TestIgloo::start_in(config, data).await;
    for n in MESSAGES / 2..MESSAGES {
        for conversation in 0..CONVERSATIONS {
            igloo.post_webhook(&message(conversation, n).body()).await;
        }
    }
    // A redelivery of everything changes nothing.
    let all: Vec<_> = (0..MESSAGES)
        .flat_map(|n| (0..CONVERSATIONS).map(move |conversation| (conversation, n)))
        .map(|(conversation, n)| message(conversation, n))
        .collect();
    igloo.post_webhook(&webhook::delivery(all)).await;
    igloo.wait_until_idle().await;

    let requests = graph.wait_for((CONVERSATIONS * MESSAGES) as usize).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        graph.requests().len(),
        (CONVERSATIONS * MESSAGES) as usize,
        "each message answered exactly once"
    );
    let mut replies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in &requests {
        let recipient = request.body["recipient"]["id"].as_str().unwrap().to_owned();
        replies
            .entry(recipient)
            .or_default()
            .push(request.body["message"]["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(replies.len(), CONVERSATIONS as usize);
    let in_order: Vec<String> = (0..MESSAGES)
        .map(|message| format!("re: {message}"))
        .collect();
    for (recipient, texts) in &replies {
        assert_eq!(texts, &in_order, "conversation with {recipient}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_get_only_their_kinds_and_never_their_own_echoes() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    for name in [
        "comment_changes.json",
        "message_echo.json",
        "self_echo.json",
        "reaction_react.json",
        "seen.json",
    ] {
        assert_eq!(
            igloo.post_webhook(&fixture(name)).await.status().as_u16(),
            200,
            "{name}"
        );
    }
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.events, 5, "every event is stored");
    assert_eq!(
        stats.runs, 0,
        "auto-reply subscribes to messages and ignores echoes"
    );
    assert!(graph.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sha1_signatures_are_accepted_only_when_enabled() {
    let graph = FakeGraph::start().await;
    let body = fixture("message_text.json");
    let sha1 = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
        mac.update(&body);
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    };
    let post = |igloo: &TestIgloo| {
        igloo
            .client
            .post(format!("{}/webhooks/instagram", igloo.url))
            .header("x-hub-signature", sha1.clone())
            .body(body.clone())
            .send()
    };

    let strict = TestIgloo::start(live_config(&graph)).await;
    assert_eq!(post(&strict).await.unwrap().status().as_u16(), 401);
    assert_eq!(strict.stats().await.deliveries, 0);

    let mut config = live_config(&graph);
    config.webhook.accept_sha1 = true;
    let lenient = TestIgloo::start(config).await;
    assert_eq!(post(&lenient).await.unwrap().status().as_u16(), 200);
    assert_eq!(lenient.stats().await.deliveries, 1);
    assert_eq!(lenient.wait_until_idle().await.events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_storage_answers_503_so_meta_retries() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let database = igloo.data_dir.path().join("inbox.sqlite3");
    rusqlite::Connection::open(&database)
        .unwrap()
        .execute_batch(
            "DROP TABLE journal; DROP TABLE runs; DROP TABLE events; DROP TABLE deliveries;",
        )
        .unwrap();

    let response = igloo.post_webhook(&fixture("message_text.json")).await;
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"], "storage unavailable, retry later",
        "no internals leak"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn igloo_simulate_signs_and_posts_events_built_from_flags() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let args = |kind| SimulateArgs {
        file: None,
        kind,
        text: "hi from simulate".into(),
        from: "777".into(),
        account: ACCOUNT_ID.into(),
        payload: "GET_STARTED".into(),
        url: Some(format!("{}/webhooks/instagram", igloo.url)),
        secret: Some(APP_SECRET.into()),
        config: None,
    };
    simulate(args(SimulatedKind::Message)).await.unwrap();
    simulate(args(SimulatedKind::Comment)).await.unwrap();
    simulate(args(SimulatedKind::Postback)).await.unwrap();

    let reply = &graph.wait_for(1).await[0];
    assert_eq!(reply.body["recipient"]["id"], "777");
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.events, 3);

    let wrong_secret = SimulateArgs {
        secret: Some("wrong".into()),
        ..args(SimulatedKind::Message)
    };
    assert!(
        simulate(wrong_secret).await.is_err(),
        "a refused webhook is an error"
    );
}
