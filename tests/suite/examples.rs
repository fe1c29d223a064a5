//! The example plugins, end to end from signed fixtures.

use igloo::config::{PluginConfig, PluginSource};
use igloo_tests::{ACCOUNT_ID, FakeGraph, TestIgloo, fixture, live_config, webhook};
use serde_json::json;

/// igloo running only the example `name`, with `grants` and `settings`.
async fn start_example(
    name: &str,
    grants: &[&str],
    settings: &[(&str, &str)],
) -> (FakeGraph, TestIgloo) {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.plugins = vec![PluginConfig {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PluginConfig::new(name, PluginSource::Builtin(name.into()), grants)
    }];
    let igloo = TestIgloo::start(config).await;
    (graph, igloo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_to_dm_answers_a_keyword_comment_privately_and_publicly() {
    let (graph, igloo) = start_example(
        "comment-to-dm",
        &["messages:reply", "comments:reply"],
        &[
            ("keyword", "price"),
            ("dm", "It is 39 €, here is the link."),
            ("public_reply", "Sent you a DM!"),
        ],
    )
    .await;
    igloo.post_webhook(&fixture("comment_changes.json")).await;
    igloo
        .post_webhook(&fixture("comment_reply_in_thread.json"))
        .await;
    igloo.wait_until_idle().await;

    let requests = graph.wait_for(2).await;
    assert_eq!(
        requests.len(),
        2,
        "the comment without the keyword got nothing: {requests:?}"
    );
    assert_eq!(requests[0].path, format!("/v24.0/{ACCOUNT_ID}/messages"));
    assert_eq!(
        requests[0].body,
        json!({"recipient": {"comment_id": "17900000000000001"}, "message": {"text": "It is 39 €, here is the link."}})
    );
    assert_eq!(requests[1].path, "/v24.0/17900000000000001/replies");
    assert_eq!(requests[1].body, json!({"message": "Sent you a DM!"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faq_bot_answers_ice_breakers_and_offers_its_questions() {
    let (graph, igloo) = start_example(
        "faq-bot",
        &["messages:reply"],
        &[
            ("questions", "Opening hours|FAQ_HOURS;Shipping|FAQ_SHIPPING"),
            ("answer.FAQ_HOURS", "We are open 9:00–18:00."),
            ("intro", "What would you like to know?"),
        ],
    )
    .await;
    igloo
        .post_webhook(&fixture("postback_icebreaker.json"))
        .await;
    igloo.wait_until_idle().await;
    igloo
        .post_webhook(&fixture("message_quick_reply.json"))
        .await;
    igloo.wait_until_idle().await;

    let requests = graph.wait_for(2).await;
    let questions = json!([
        {"content_type": "text", "title": "Opening hours", "payload": "FAQ_HOURS"},
        {"content_type": "text", "title": "Shipping", "payload": "FAQ_SHIPPING"},
    ]);
    assert_eq!(
        requests[0].body,
        json!({"recipient": {"id": "6543210987654321"},
        "message": {"text": "We are open 9:00–18:00.", "quick_replies": questions}})
    );
    // An unknown quick-reply payload gets the questions again.
    assert_eq!(
        requests[1].body,
        json!({"recipient": {"id": "6543210987654321"},
        "message": {"text": "What would you like to know?", "quick_replies": questions}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_capture_greets_by_name_and_keeps_its_progress_in_kv() {
    let (graph, igloo) = start_example(
        "lead-capture",
        &["messages:reply", "profiles:read", "kv"],
        &[],
    )
    .await;
    for text in [
        "hello",
        "not an email",
        "ana@example.com",
        "+351 912 345 678",
        "thanks",
    ] {
        igloo
            .post_webhook(&webhook::message("4242", text).body())
            .await;
        igloo.wait_until_idle().await;
    }
    let requests = graph.requests();
    let texts: Vec<_> = requests
        .iter()
        .filter(|request| request.method == "POST")
        .map(|request| request.body["message"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "Hi Peter Chang! What's your email address?",
            "That doesn't look like an email address. Could you check it?",
            "Thanks! And your phone number?",
            "Got it, we'll be in touch soon!",
        ]
    );
    assert_eq!(requests[0].method, "GET", "the profile was looked up first");
    assert_eq!(
        requests
            .iter()
            .filter(|request| request.method == "GET")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_reminds_a_silent_person_once_and_not_one_who_wrote() {
    let (graph, igloo) = start_example(
        "follow-up",
        &["messages:reply", "schedule"],
        &[("after_seconds", "2"), ("reminder", "Still there?")],
    )
    .await;
    // 1001 writes, the business answers, 1001 stays silent.
    igloo
        .post_webhook(&webhook::message("1001", "hi").body())
        .await;
    igloo
        .post_webhook(&webhook::echo("1001", "Hello!").body())
        .await;
    // 1002 writes, is answered, and writes again before the reminder.
    igloo
        .post_webhook(&webhook::message("1002", "hi").body())
        .await;
    igloo
        .post_webhook(&webhook::echo("1002", "Hello!").body())
        .await;
    igloo.wait_until_idle().await;
    igloo
        .post_webhook(&webhook::message("1002", "thanks").body())
        .await;

    let sent = graph.wait_for(1).await;
    assert_eq!(
        sent[0].body,
        json!({"recipient": {"id": "1001"}, "message": {"text": "Still there?"}})
    );
    // The reminder's own echo starts no second wait.
    igloo
        .post_webhook(&webhook::echo("1001", "Still there?").body())
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    igloo.wait_until_idle().await;
    assert_eq!(graph.requests().len(), 1, "one reminder, to 1001 only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_tells_the_person_and_pauses_the_other_plugins() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    let mut handover = PluginConfig::new(
        "handover",
        PluginSource::Builtin("handover".into()),
        &["messages:reply", "conversations:control"],
    );
    handover
        .settings
        .insert("message".into(), "A person will answer.".into());
    config.plugins.push(handover);
    // The keyword is the handover's alone; anything else, auto-reply's.
    config.exclusive_groups = vec![igloo::config::ExclusiveGroup {
        name: "front-desk".into(),
        plugins: vec!["handover".into(), "auto-reply".into()],
    }];
    let igloo = TestIgloo::start(config).await;

    igloo
        .post_webhook(&webhook::message("1001", " Human ").body())
        .await;
    igloo.wait_until_idle().await;
    igloo
        .post_webhook(&webhook::message("1001", "hello?").body())
        .await;
    igloo
        .post_webhook(&webhook::message("1002", "hello").body())
        .await;
    igloo.wait_until_idle().await;

    let sent: Vec<(String, String)> = graph
        .wait_for(2)
        .await
        .iter()
        .map(|request| {
            (
                request.body["recipient"]["id"].as_str().unwrap().to_owned(),
                request.body["message"]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("1001".to_owned(), "A person will answer.".to_owned()),
            (
                "1002".to_owned(),
                "Thanks for your message! We'll get back to you soon.".to_owned()
            ),
        ],
        "nothing automated reached 1001 after the keyword"
    );
}
