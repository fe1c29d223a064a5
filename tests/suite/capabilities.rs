//! Every host function against the fake Graph API (or fake provider), with
//! the exact request Meta would receive; every rule with its typed error
//! and nothing sent. The `probe` plugin makes each call.

use igloo::config::Config;
use igloo_tests::{
    ACCESS_TOKEN, ACCOUNT_ID, FakeGraph, RecordedRequest, TestIgloo, install_probe, live_config,
    webhook,
};
use serde_json::{Value, json};

const ALL: &[&str] = &[
    "messages:reply",
    "messages:send",
    "messages:human-agent",
    "comments:reply",
    "comments:moderate",
    "profiles:read",
    "profiles:public-lookup",
    "kv",
];

/// The probe imports every interface, so each variant holds at least one
/// capability per interface; the tests vary the rest.
const REPLIER: &[&str] = &[
    "messages:reply",
    "comments:reply",
    "profiles:read",
    "profiles:public-lookup",
    "kv",
];
const SENDER: &[&str] = &[
    "messages:send",
    "comments:reply",
    "profiles:read",
    "profiles:public-lookup",
    "kv",
];

struct Setup {
    graph: FakeGraph,
    igloo: TestIgloo,
    _plugins: tempfile::TempDir,
}

/// igloo with one probe per entry of `probes` (name, capabilities).
async fn setup(probes: &[(&str, &[&str])], adjust: impl FnOnce(&mut Config, &FakeGraph)) -> Setup {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.plugins = probes
        .iter()
        .map(|(name, caps)| install_probe(plugins.path(), name, caps))
        .collect();
    // The probe reports each result as its run's error: a report, not a
    // failure to retry.
    config.runtime.retry_schedule_ms = Vec::new();
    adjust(&mut config, &graph);
    let igloo = TestIgloo::start(config).await;
    Setup {
        graph,
        igloo,
        _plugins: plugins,
    }
}

fn assert_meta(
    request: &RecordedRequest,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: Value,
) {
    assert_eq!(request.method, method);
    assert_eq!(request.path, path);
    assert_eq!(request.query.as_deref(), query);
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {ACCESS_TOKEN}").as_str())
    );
    assert_eq!(request.body, body);
}

fn messages_path() -> String {
    format!("/v24.0/{ACCOUNT_ID}/messages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_send_api_message_has_the_shape_the_reference_shows() {
    let s = setup(&[("probe", ALL)], |_, _| {}).await;
    let send = |content: Value, quick_replies: Value, human_agent: bool| json!({"op": "send", "to": {"person": "1001"}, "content": content, "quick_replies": quick_replies, "human_agent": human_agent});
    let cases: Vec<(Value, Value)> = vec![
        (
            send(json!({"text": "hi"}), json!([]), false),
            json!({"recipient": {"id": "1001"}, "message": {"text": "hi"}}),
        ),
        (
            send(
                json!({"media": {"kind": "image", "url": "https://cdn/x.png"}}),
                json!([]),
                false,
            ),
            json!({"recipient": {"id": "1001"}, "message": {"attachment": {"type": "image", "payload": {"url": "https://cdn/x.png"}}}}),
        ),
        (
            send(
                json!({"media": {"kind": "video", "attachment_id": "7001"}}),
                json!([]),
                false,
            ),
            json!({"recipient": {"id": "1001"}, "message": {"attachment": {"type": "video", "payload": {"attachment_id": "7001"}}}}),
        ),
        (
            send(json!("like_heart"), json!([]), false),
            json!({"recipient": {"id": "1001"}, "message": {"attachment": {"type": "like_heart"}}}),
        ),
        (
            send(
                json!({"button_template": {"text": "Pick", "buttons": [{"url": ["Shop", "https://shop"]}, {"postback": ["Help", "HELP"]}]}}),
                json!([]),
                false,
            ),
            json!({"recipient": {"id": "1001"}, "message": {"attachment": {"type": "template", "payload": {"template_type": "button", "text": "Pick",
                "buttons": [{"type": "web_url", "title": "Shop", "url": "https://shop"}, {"type": "postback", "title": "Help", "payload": "HELP"}]}}}}),
        ),
        (
            send(
                json!({"generic": [{"title": "Shirt", "subtitle": "Linen", "image_url": "https://cdn/s.jpg", "default_action_url": "https://shop/s", "buttons": [{"postback": ["Buy", "BUY_S"]}]}]}),
                json!([]),
                false,
            ),
            json!({"recipient": {"id": "1001"}, "message": {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": [{
                "title": "Shirt", "subtitle": "Linen", "image_url": "https://cdn/s.jpg", "default_action": {"type": "web_url", "url": "https://shop/s"},
                "buttons": [{"type": "postback", "title": "Buy", "payload": "BUY_S"}]}]}}}}),
        ),
        (
            send(
                json!({"media_share": "17950000000000001"}),
                json!([]),
                false,
            ),
            json!({"recipient": {"id": "1001"}, "message": {"attachment": {"type": "MEDIA_SHARE", "payload": {"id": "17950000000000001"}}}}),
        ),
        (
            send(
                json!({"text": "Size?"}),
                json!([["S", "SIZE_S"], ["M", "SIZE_M"]]),
                false,
            ),
            json!({"recipient": {"id": "1001"}, "message": {"text": "Size?", "quick_replies": [
                {"content_type": "text", "title": "S", "payload": "SIZE_S"}, {"content_type": "text", "title": "M", "payload": "SIZE_M"}]}}),
        ),
        (
            send(json!({"text": "Your visit is booked"}), json!([]), true),
            json!({"recipient": {"id": "1001"}, "message": {"text": "Your visit is booked"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}),
        ),
        (
            json!({"op": "react", "to": "1001", "mid": "m-9", "reaction": "love"}),
            json!({"recipient": {"id": "1001"}, "sender_action": "react", "payload": {"message_id": "m-9", "reaction": "love"}}),
        ),
        (
            json!({"op": "react", "to": "1001", "mid": "m-9", "reaction": null}),
            json!({"recipient": {"id": "1001"}, "sender_action": "unreact", "payload": {"message_id": "m-9"}}),
        ),
    ];
    for (n, (command, expected)) in cases.iter().enumerate() {
        let report = s.igloo.probe("probe", "1001", command.clone()).await;
        assert!(report.starts_with("Ok("), "{command}: {report}");
        let requests = s.graph.requests();
        assert_eq!(requests.len(), n + 1, "{command}");
        assert_meta(
            &requests[n],
            "POST",
            &messages_path(),
            None,
            expected.clone(),
        );
    }

    let report = s
        .igloo
        .probe(
            "probe",
            "1001",
            json!({"op": "upload", "kind": "image", "url": "https://cdn/logo.png"}),
        )
        .await;
    assert!(report.contains("attachment-"), "{report}");
    let upload = s.graph.requests().pop().unwrap();
    assert_meta(
        &upload,
        "POST",
        &format!("/v24.0/{ACCOUNT_ID}/message_attachments"),
        None,
        json!({"message": {"attachment": {"type": "image", "payload": {"url": "https://cdn/logo.png", "is_reusable": true}}}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_replied_to_hidden_and_deleted() {
    let s = setup(&[("probe", ALL)], |_, _| {}).await;
    let reply = s
        .igloo
        .probe_on_comment(
            "probe",
            "9001",
            "1002",
            json!({"op": "comment_reply", "id": "9001", "text": "Thanks!"}),
        )
        .await;
    assert!(reply.contains("Ok(\"reply-1\")"), "{reply}");
    assert_meta(
        &s.graph.requests()[0],
        "POST",
        "/v24.0/9001/replies",
        None,
        json!({"message": "Thanks!"}),
    );

    // Hidden, then shown again.
    for (n, (comment, hidden)) in [("9002", true), ("9003", false)].into_iter().enumerate() {
        let report = s
            .igloo
            .probe_on_comment(
                "probe",
                comment,
                "1002",
                json!({"op": "hide", "id": "9001", "hidden": hidden}),
            )
            .await;
        assert_eq!(report, "Ok(())", "hidden: {hidden}");
        assert_meta(
            &s.graph.requests()[1 + n],
            "POST",
            "/v24.0/9001",
            Some(&format!("hide={hidden}")),
            Value::Null,
        );
    }
    let delete = s
        .igloo
        .probe_on_comment(
            "probe",
            "9004",
            "1002",
            json!({"op": "delete", "id": "9001"}),
        )
        .await;
    assert_eq!(delete, "Ok(())");
    assert_meta(
        &s.graph.requests()[3],
        "DELETE",
        "/v24.0/9001",
        None,
        Value::Null,
    );
    // Only comments igloo received for the account: not a post, not
    // another account's object, whatever the token could reach.
    let unseen = s
        .igloo
        .probe_on_comment(
            "probe",
            "9006",
            "1002",
            json!({"op": "delete", "id": "17950000000000001"}),
        )
        .await;
    assert!(
        unseen.starts_with(
            "Err(Error::Denied(\"comments:moderate reaches only comments igloo has received"
        ),
        "{unseen}"
    );
    assert_eq!(s.graph.requests().len(), 4, "nothing more reached Meta");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_gets_one_private_reply_across_every_plugin() {
    let s = setup(&[("probe-a", REPLIER), ("probe-b", REPLIER)], |_, _| {}).await;
    let command =
        json!({"op": "send", "to": {"comment": "9005"}, "content": {"text": "Sent you the price"}});
    let body = webhook::comment("9005", "1005", &command.to_string()).body();
    let a = s.igloo.run_and_report(&body, "probe-a").await;
    let runs = s.igloo.inbox.runs(1).await.unwrap();
    let b = runs
        .iter()
        .find(|run| run.plugin == "probe-b")
        .unwrap()
        .detail
        .clone();
    let (won, lost) = if a.starts_with("Ok(") { (a, b) } else { (b, a) };
    assert!(won.starts_with("Ok("), "{won}");
    assert!(
        lost.contains("Invalid(\"comment 9005 already had its one private reply\")"),
        "{lost}"
    );
    let requests = s.graph.requests();
    assert_eq!(requests.len(), 1, "one private reply reached Meta");
    assert_meta(
        &requests[0],
        "POST",
        &messages_path(),
        None,
        json!({"recipient": {"comment_id": "9005"}, "message": {"text": "Sent you the price"}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scope_and_limit_rule_is_a_typed_error_and_nothing_reaches_meta() {
    let s = setup(&[("replier", REPLIER), ("sender", SENDER)], |config, _| {
        config.kv.max_keys = 2;
    })
    .await;
    let long_text = "é".repeat(501);
    let fourteen: Vec<Value> = (0..14)
        .map(|n| json!([format!("Q{n}"), format!("P{n}")]))
        .collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "replier",
            json!({"op": "send_text", "to": "4444", "text": "hi"}),
            "Denied(\"messages:reply only reaches the person whose event is being handled",
        ),
        (
            "replier",
            json!({"op": "send", "to": {"comment": "9999"}, "content": {"text": "hi"}}),
            "Denied(\"messages:reply may privately answer only the comment being handled",
        ),
        (
            "replier",
            json!({"op": "send", "to": {"person": "1001"}, "content": {"text": "hi"}, "human_agent": true}),
            "Denied(\"the HUMAN_AGENT tag needs messages:human-agent\")",
        ),
        (
            "sender",
            json!({"op": "send_text", "to": "5555", "text": "hi"}),
            "Error::WindowClosed",
        ),
        (
            "replier",
            json!({"op": "send_text", "to": "1001", "text": long_text}),
            "Invalid(\"text is 1002 bytes; Meta accepts at most 1000\")",
        ),
        (
            "replier",
            json!({"op": "send", "to": {"person": "1001"}, "content": {"text": "pick"}, "quick_replies": fourteen}),
            "Invalid(\"14 quick replies; Meta accepts at most 13\")",
        ),
        (
            "replier",
            json!({"op": "send", "to": {"person": "1001"}, "content": {"text": "pick"}, "quick_replies": [["A title of 21 chars!!", "P"]]}),
            "is 21 characters; Meta accepts 1 to 20",
        ),
        (
            "replier",
            json!({"op": "send", "to": {"person": "1001"}, "content": {"button_template": {"text": "t", "buttons": [
            {"postback": ["1", "1"]}, {"postback": ["2", "2"]}, {"postback": ["3", "3"]}, {"postback": ["4", "4"]}]}}}),
            "Invalid(\"4 buttons; Meta accepts at most 3\")",
        ),
        (
            "replier",
            json!({"op": "comment_reply", "id": "9998", "text": "hi"}),
            "Denied(\"comments:reply may answer only the comment being handled",
        ),
        (
            "replier",
            json!({"op": "hide", "id": "9001"}),
            "Denied(\"hiding and deleting comments needs comments:moderate\")",
        ),
        (
            "replier",
            json!({"op": "all", "commands": [{"op": "kv_set", "key": "a", "value": "1"}, {"op": "kv_set", "key": "b", "value": "2"}, {"op": "kv_set", "key": "c", "value": "3"}]}),
            "Ok(()) | Ok(()) | Err(Error::QuotaExceeded(\"2 keys is the most a plugin keeps per account\"))",
        ),
    ];
    for (plugin, command, expected) in cases {
        let report = s.igloo.probe(plugin, "1001", command.clone()).await;
        assert!(
            report.contains(expected),
            "{command}\n  expected {expected}\n  got {report}"
        );
    }
    assert!(
        s.graph.requests().is_empty(),
        "nothing reached Meta: {:?}",
        s.graph.requests()
    );

    // The person who wrote has an open window for messages:send.
    let report = s
        .igloo
        .probe(
            "sender",
            "1007",
            json!({"op": "send_text", "to": "1007", "text": "hi"}),
        )
        .await;
    assert!(report.starts_with("Ok("), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_declared_but_not_granted_stops_the_plugin_loading_by_name() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    let mut probe = install_probe(plugins.path(), "probe", REPLIER);
    probe.grants.retain(|grant| grant != "kv");
    config.plugins = vec![probe];
    let igloo = TestIgloo::start(config).await;
    let health = igloo.get_json("/healthz").await;
    let error = health["plugins"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("declares capability `kv` but the config does not grant it"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_read_cached_and_consent_errors_typed() {
    let s = setup(&[("probe", ALL)], |_, _| {}).await;
    let first = s
        .igloo
        .probe("probe", "1001", json!({"op": "profile", "id": "1001"}))
        .await;
    assert!(
        first.contains("name: Some(\"Peter Chang\")")
            && first.contains("follower-count: Some(1234)"),
        "{first}"
    );
    let requests = s.graph.requests();
    assert_meta(
        &requests[0],
        "GET",
        "/v24.0/1001",
        Some(
            "fields=name%2Cusername%2Cprofile_pic%2Cfollower_count%2Cis_user_follow_business%2Cis_business_follow_user%2Cis_verified_user",
        ),
        Value::Null,
    );
    let cached = s
        .igloo
        .probe("probe", "1001", json!({"op": "profile", "id": "1001"}))
        .await;
    assert_eq!(cached, first);
    assert_eq!(s.graph.requests().len(), 1, "served from the cache");

    s.graph.script(400, json!({"error": {"message": "User consent is required to access user profile", "code": 230}}));
    let commenter = s
        .igloo
        .probe("probe", "1001", json!({"op": "profile", "id": "2001"}))
        .await;
    assert_eq!(commenter, "Err(Error::ConsentRequired)");
    s.graph.script(400, json!({"error": {"message": "This person isn't available right now.", "code": 551, "error_subcode": 1545041}}));
    let blocked = s
        .igloo
        .probe("probe", "1001", json!({"op": "profile", "id": "2002"}))
        .await;
    assert_eq!(blocked, "Err(Error::Blocked)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_profiles_come_from_the_provider_with_its_key_budget_and_errors() {
    let s = setup(&[("probe", ALL)], |config, graph| {
        config.public_profiles.base_url = graph.base_url().to_owned();
        config.public_profiles.access_key = Some("hiker-key".into());
        config.public_profiles.requests_per_hour = 6;
    })
    .await;
    let natgeo = s
        .igloo
        .probe(
            "probe",
            "1001",
            json!({"op": "public_by_username", "value": "natgeo"}),
        )
        .await;
    assert!(
        natgeo.contains("id: \"17841400573960012\"")
            && natgeo.contains("follower-count: Some(274988955)"),
        "{natgeo}"
    );
    let request = &s.graph.requests()[0];
    assert_eq!(
        (
            request.method.as_str(),
            request.path.as_str(),
            request.query.as_deref()
        ),
        ("GET", "/v2/user/by/username", Some("username=natgeo"))
    );
    assert_eq!(request.access_key.as_deref(), Some("hiker-key"));
    assert_eq!(
        request.authorization, None,
        "Meta's token never goes to the provider"
    );

    let by_id = s
        .igloo
        .probe(
            "probe",
            "1001",
            json!({"op": "public_by_id", "value": "787132"}),
        )
        .await;
    assert!(by_id.starts_with("Ok("), "{by_id}");
    assert_eq!(s.graph.requests()[1].query.as_deref(), Some("id=787132"));

    for (status, expected) in [
        (
            402,
            "QuotaExceeded(\"the provider's balance is exhausted\")",
        ),
        (403, "Error::PrivateAccount"),
        (404, "Error::NotFound"),
        (429, "Error::RateLimited"),
    ] {
        s.graph.script(status, json!({"detail": "x"}));
        let report = s
            .igloo
            .probe(
                "probe",
                "1001",
                json!({"op": "public_by_username", "value": "someone"}),
            )
            .await;
        assert!(report.contains(expected), "{status}: {report}");
    }
    let over = s
        .igloo
        .probe(
            "probe",
            "1001",
            json!({"op": "public_by_username", "value": "one_too_many"}),
        )
        .await;
    assert!(
        over.contains("QuotaExceeded(\"public-profiles budget of 6 requests per hour used\")"),
        "{over}"
    );
    assert_eq!(
        s.graph.requests().len(),
        6,
        "the seventh lookup never left igloo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_keeps_state_per_plugin_and_account() {
    // Isolation between plugins and accounts is the state store's unit test.
    let s = setup(&[("probe", ALL)], |_, _| {}).await;
    let report = s
        .igloo
        .probe(
            "probe",
            "1001",
            json!({"op": "all", "commands": [
                {"op": "kv_set", "key": "lead:1", "value": "ana@example.com"},
                {"op": "kv_set", "key": "lead:2", "value": "rui@example.com"},
                {"op": "kv_set", "key": "gone", "value": "x", "ttl": 0},
                {"op": "kv_get", "key": "lead:1"},
                {"op": "kv_get", "key": "gone"},
                {"op": "kv_list", "prefix": "lead:"},
                {"op": "kv_delete", "key": "lead:1"},
                {"op": "kv_list", "prefix": "lead:"},
            ]}),
        )
        .await;
    assert_eq!(
        report,
        r#"Ok(()) | Ok(()) | Ok(()) | Ok(Some("ana@example.com")) | Ok(None) | Ok(["lead:1", "lead:2"]) | Ok(()) | Ok(["lead:2"])"#
    );
    let later = s
        .igloo
        .probe("probe", "1009", json!({"op": "kv_get", "key": "lead:2"}))
        .await;
    assert_eq!(
        later, r#"Ok(Some("rui@example.com"))"#,
        "state outlives the instance"
    );
    assert!(s.graph.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_errors_are_typed_throttling_is_honoured_and_only_idempotent_calls_retry() {
    let s = setup(&[("probe", ALL)], |_, _| {}).await;
    let send = json!({"op": "send_text", "to": "1001", "text": "hi"});

    s.graph.script(403, json!({"error": {"message": "outside of allowed window", "code": 10, "error_subcode": 2534022}}));
    assert_eq!(
        s.igloo.probe("probe", "1001", send.clone()).await,
        "Err(Error::WindowClosed)"
    );
    // A refused token (190) never reaches the plugin: see `accounts`.

    // A send that fails transiently is not retried: it might have been sent.
    s.graph.script(
        500,
        json!({"error": {"message": "An unknown error occurred", "code": 1200}}),
    );
    let transient = s.igloo.probe("probe", "1001", send.clone()).await;
    assert!(transient.contains("Transient"), "{transient}");
    assert_eq!(s.graph.requests().len(), 2);
    // A hide is idempotent: retried until it succeeds.
    s.graph.script(
        500,
        json!({"error": {"message": "An unknown error occurred", "code": 1200}}),
    );
    s.graph.script(503, json!({}));
    let hide = s
        .igloo
        .probe_on_comment("probe", "9001", "1002", json!({"op": "hide", "id": "9001"}))
        .await;
    assert_eq!(hide, "Ok(())");
    assert_eq!(s.graph.requests().len(), 5, "two failures, then success");

    // Meta's usage header at 100% backs the account off: nothing is sent.
    s.graph.script_with_headers(200, json!({"recipient_id": "1001", "message_id": "m"}), vec![(
        "x-business-use-case-usage",
        format!(r#"{{"{ACCOUNT_ID}":[{{"type":"instagram","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":3}}]}}"#),
    )]);
    assert!(
        s.igloo
            .probe("probe", "1001", send.clone())
            .await
            .starts_with("Ok(")
    );
    let throttled = s.igloo.probe("probe", "1001", send.clone()).await;
    assert!(
        throttled.starts_with("Err(Error::RateLimited("),
        "{throttled}"
    );
    assert_eq!(
        s.graph.requests().len(),
        6,
        "the throttled send never left igloo"
    );
}
