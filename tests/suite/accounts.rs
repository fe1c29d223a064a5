//! Accounts that keep working: tokens kept sealed, refreshed before they
//! expire, and a token Meta refuses holding the account's events until a
//! new one arrives.

use std::time::Duration;

use igloo::config::{Config, PluginConfig, PluginSource};
use igloo_tests::{
    ACCESS_TOKEN, ACCOUNT_ID, AccountSetup, CONNECTED_ACCOUNT_ID, FakeGraph, OPERATOR_TOKEN,
    TOKEN_KEY, TestIgloo, eventually, live_config, now_ms, webhook,
};
use reqwest::Method;
use serde_json::{Value, json};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// A live config with the operator's token, the token key, and tokens
/// looked at every second.
fn lifecycle_config(graph: &FakeGraph) -> Config {
    let mut config = live_config(graph);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    config.tokens.key = Some(TOKEN_KEY.into());
    config.tokens.check_interval_secs = 1;
    config
}

async fn account(igloo: &TestIgloo) -> Value {
    let (status, answer) = igloo.admin(Method::GET, "/admin/accounts", None).await;
    assert_eq!(status, 200, "{answer}");
    answer["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["id"] == ACCOUNT_ID)
        .cloned()
        .unwrap()
}

/// The bearer tokens of the Send API calls so far.
fn send_tokens(graph: &FakeGraph) -> Vec<String> {
    graph
        .requests()
        .into_iter()
        .filter(|request| request.path.ends_with("/messages"))
        .map(|request| request.authorization.unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_holds_the_accounts_events_until_a_new_token_then_they_are_handled() {
    let graph = FakeGraph::start().await;
    graph.refuse_token(ACCESS_TOKEN);
    let igloo = TestIgloo::start(lifecycle_config(&graph)).await;

    igloo
        .post_webhook(&webhook::message("1001", "first").body())
        .await;
    graph.wait_for(1).await;
    let refused = eventually("the account to be token-invalid", || async {
        let account = account(&igloo).await;
        (account["status"] == "token-invalid").then_some(account)
    })
    .await;
    assert!(
        refused["status_detail"]
            .as_str()
            .unwrap()
            .contains("Session has expired")
    );

    igloo
        .post_webhook(&webhook::message("1002", "second").body())
        .await;
    eventually("both events to wait in the inbox", || async {
        let stats = igloo.stats().await;
        (stats.events == 2 && stats.unsplit == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = igloo.stats().await;
    assert_eq!(
        (stats.pending, stats.runs),
        (2, 0),
        "kept, and no run counted against them"
    );
    assert_eq!(
        graph.requests().len(),
        1,
        "nothing more reaches Meta with the refused token"
    );

    // The operator retries the same token (`igloo accounts retry`); Meta
    // refuses it again.
    igloo.cli(&["accounts", "retry", ACCOUNT_ID]).await.unwrap();
    graph.wait_for(2).await;
    eventually("the account to be token-invalid again", || async {
        (account(&igloo).await["status"] == "token-invalid").then_some(())
    })
    .await;
    // Both waiting events may have been under way: one try each at most.
    let tried = graph.requests().len();
    assert!(tried <= 3, "{tried}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(graph.requests().len(), tried, "then held again");
    assert_eq!(igloo.stats().await.pending, 2);

    let (status, answer) = igloo
        .admin(
            Method::POST,
            "/admin/accounts",
            Some(json!({"id": ACCOUNT_ID, "access_token": "a-new-token"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["account"]["status"], "active");
    igloo.wait_until_idle().await;
    let mut answered: Vec<String> = graph
        .sent_messages()
        .into_iter()
        .map(|message| message.recipient_id)
        .collect();
    answered.sort();
    assert_eq!(
        answered,
        ["1001", "1002"],
        "each waiting event was handled once"
    );
    let tokens = send_tokens(&graph);
    let (old, new) = tokens.split_at(tried);
    assert!(
        old.iter().all(|token| token == "Bearer test-access-token"),
        "{tokens:?}"
    );
    assert_eq!(new, ["Bearer a-new-token", "Bearer a-new-token"]);
    let listed = igloo
        .admin(Method::GET, "/admin/accounts", None)
        .await
        .1
        .to_string();
    assert!(
        !listed.contains("a-new-token") && !listed.contains(ACCESS_TOKEN),
        "tokens never come back out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refreshed_once_old_enough_kept_sealed_and_used_after_a_restart() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(lifecycle_config(&graph)).await;
    // The configured token is new to igloo: Meta would not refresh it yet.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        graph.requests().is_empty(),
        "a token younger than a day is not refreshed"
    );

    // A long-lived token that expires in ten days was issued fifty ago.
    let expires_at_ms = now_ms() + 10 * DAY_MS;
    let (status, answer) = igloo
        .admin(
            Method::POST,
            "/admin/accounts",
            Some(json!({"id": ACCOUNT_ID, "access_token": "aging-token", "expires_at_ms": expires_at_ms})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let refresh = graph.wait_for(1).await.remove(0);
    assert!(
        refresh.path.ends_with("/refresh_access_token"),
        "{refresh:?}"
    );
    assert_eq!(
        refresh.query.as_deref(),
        Some("grant_type=ig_refresh_token&access_token=aging-token")
    );
    let refreshed = eventually("the refreshed token to be stored", || async {
        let account = account(&igloo).await;
        (account["token_expires_at_ms"].as_u64() > Some(expires_at_ms)).then_some(account)
    })
    .await;
    let expires = refreshed["token_expires_at_ms"].as_u64().unwrap();
    assert!(
        expires >= now_ms() + 59 * DAY_MS,
        "60 days from the refresh: {refreshed}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        graph.requests().len(),
        1,
        "a fresh token is not refreshed again"
    );

    let data_dir = igloo.stop().await;
    let stored = std::fs::read(data_dir.path().join("accounts.sqlite3")).unwrap();
    assert!(
        !stored
            .windows(16)
            .any(|window| window == b"refreshed-token-"),
        "tokens are sealed at rest"
    );
    let igloo = TestIgloo::start_in(lifecycle_config(&graph), data_dir).await;
    igloo
        .post_webhook(&webhook::message("1001", "hello").body())
        .await;
    igloo.wait_until_idle().await;
    assert_eq!(
        send_tokens(&graph),
        ["Bearer refreshed-token-1"],
        "the refreshed token outlived the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounts_routes_are_the_operators_and_check_what_they_are_given() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(lifecycle_config(&graph)).await;
    let unauthorised = igloo
        .client
        .post(format!("{}/admin/accounts", igloo.url))
        .json(&json!({"id": "42", "access_token": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    for (body, why) in [
        (
            json!({"id": "../42", "access_token": "t"}),
            "an id is numeric",
        ),
        (
            json!({"id": "42", "access_token": "t\r\nX-Evil: 1"}),
            "no header injection",
        ),
        (json!({"id": "42", "access_token": ""}), "no empty token"),
        (
            json!({"id": "42", "access_token": "t", "admin": true}),
            "no unknown fields",
        ),
    ] {
        let (status, answer) = igloo
            .admin(Method::POST, "/admin/accounts", Some(body))
            .await;
        assert_eq!(status, 400, "{why}: {answer}");
    }
    let (status, _) = igloo
        .admin(
            Method::POST,
            "/admin/accounts",
            Some(json!({"id": "42", "access_token": "t"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = igloo
        .admin(
            Method::DELETE,
            &format!("/admin/accounts/{ACCOUNT_ID}"),
            None,
        )
        .await;
    assert_eq!(
        status, 409,
        "a configured account is removed in the configuration: {answer}"
    );
    igloo.cli(&["accounts", "remove", "42"]).await.unwrap();
    let again = igloo.cli(&["accounts", "remove", "42"]).await.unwrap_err();
    assert!(again.to_string().contains("404"), "{again}");
    igloo.cli(&["accounts", "list"]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_sync_subscribes_exactly_the_fields_the_plugins_need_and_sets_the_configured_profile()
 {
    let graph = FakeGraph::start().await;
    // Subscribed long ago to a field nobody needs now, and not to comments.
    graph.set_account_setup(
        ACCOUNT_ID,
        AccountSetup {
            subscribed_fields: vec!["messages".into(), "story_insights".into()],
            ..AccountSetup::default()
        },
    );
    let mut config = lifecycle_config(&graph);
    config.plugins.push(PluginConfig::new(
        "comment-to-dm",
        PluginSource::Builtin("comment-to-dm".into()),
        &["messages:reply", "comments:reply"],
    ));
    let ice_breakers = json!([{"question": "Opening hours?", "payload": "FAQ_HOURS"},
        {"question": "Shipping?", "payload": "FAQ_SHIPPING"}]);
    config.messenger_profile.ice_breakers =
        Some(serde_json::from_value(ice_breakers.clone()).unwrap());
    let igloo = TestIgloo::start(config).await;
    igloo
        .post_webhook(&webhook::message("1001", "hi").body())
        .await;
    igloo.wait_until_idle().await;
    let before = graph.requests().len();

    let (status, answer) = igloo
        .admin(Method::GET, "/admin/accounts/status", None)
        .await;
    assert_eq!(status, 200, "{answer}");
    let account = &answer["accounts"][0];
    assert_eq!(
        account["setup"]["needed_fields"],
        json!(["comments", "messages"]),
        "{account}"
    );
    assert_eq!(
        account["setup"]["subscribed_fields"],
        json!(["messages", "story_insights"])
    );
    assert_eq!(account["setup"]["fields"], "differs");
    assert_eq!(account["setup"]["ice_breakers"], "differs");
    assert_eq!(
        account["setup"]["persistent_menu"], "unmanaged",
        "not configured: left alone"
    );
    assert!(
        account["webhooks"]["last_webhook_at_ms"].as_u64().is_some(),
        "{account}"
    );
    assert_eq!(account["webhooks"]["silent"], false);
    assert!(account.get("access_token").is_none() && !answer.to_string().contains(ACCESS_TOKEN));
    let writes = |from: usize| -> Vec<String> {
        graph.requests()[from..]
            .iter()
            .filter(|request| request.method == "POST")
            .map(|request| {
                format!(
                    "{} {}",
                    request.path,
                    request.query.clone().unwrap_or_default()
                )
            })
            .collect()
    };
    assert!(writes(before).is_empty(), "a status changes nothing");

    let before = graph.requests().len();
    let (status, answer) = igloo
        .admin(Method::POST, "/admin/accounts/sync", None)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accounts"][0]["fields"], "set", "{answer}");
    assert_eq!(answer["accounts"][0]["ice_breakers"], "set");
    assert_eq!(
        writes(before),
        [
            format!("/v24.0/{ACCOUNT_ID}/subscribed_apps subscribed_fields=comments%2Cmessages"),
            format!("/v24.0/{ACCOUNT_ID}/messenger_profile "),
        ],
        "exactly the calls the plugins need"
    );
    let setup = graph.account_setup(ACCOUNT_ID);
    assert_eq!(setup.subscribed_fields, ["comments", "messages"]);
    assert_eq!(
        setup.profile["ice_breakers"],
        json!([{"call_to_actions": ice_breakers, "locale": "default"}])
    );

    let before = graph.requests().len();
    let (_, answer) = igloo
        .admin(Method::POST, "/admin/accounts/sync", None)
        .await;
    assert_eq!(answer["accounts"][0]["fields"], "in-step", "{answer}");
    assert_eq!(answer["accounts"][0]["ice_breakers"], "in-step");
    assert!(writes(before).is_empty(), "in step: nothing set again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_webhooks_missed_is_handled_once_by_the_reconciler_and_not_again_when_its_webhook_comes_late()
 {
    let graph = FakeGraph::start().await;
    let mut config = lifecycle_config(&graph);
    config.plugins = vec![PluginConfig::new(
        "comment-to-dm",
        PluginSource::Builtin("comment-to-dm".into()),
        &["messages:reply", "comments:reply"],
    )];
    config.reconcile.interval_secs = 1;
    let igloo = TestIgloo::start(config).await;
    // Meta never delivered this one.
    graph.add_media_comment(
        "17950000000000001",
        "17900000000000042",
        "6543210987654322",
        "PRICE please",
        now_ms(),
    );
    // Nor this one, made before igloo started: it may have been handled
    // long ago and forgotten since, or by the tool igloo replaced.
    graph.add_media_comment(
        "17950000000000001",
        "17900000000000041",
        "6543210987654322",
        "PRICE?",
        now_ms() - 2 * DAY_MS,
    );

    let replies = || {
        graph
            .requests()
            .into_iter()
            .filter(|request| request.method == "POST")
            .map(|request| request.path)
            .collect::<Vec<_>>()
    };
    let answered = eventually("the missed comment to be answered", || async {
        let replies = replies();
        (replies.len() >= 2).then_some(replies)
    })
    .await;
    assert_eq!(
        answered,
        [
            format!("/v24.0/{ACCOUNT_ID}/messages"),
            "/v24.0/17900000000000042/replies".to_owned()
        ],
        "a private reply and a public one"
    );
    let stored = igloo
        .admin(Method::GET, "/admin/events?kind=comment", None)
        .await
        .1;
    assert_eq!(stored["events"].as_array().unwrap().len(), 1, "{stored}");
    assert_eq!(
        stored["events"][0]["key"],
        format!("comment:{ACCOUNT_ID}:17900000000000042")
    );

    // Its webhook arrives late, and the reconciler keeps reading it back.
    let late = webhook::comment("17900000000000042", "6543210987654322", "PRICE please").body();
    assert_eq!(igloo.post_webhook(&late).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    igloo.wait_until_idle().await;
    assert_eq!(replies().len(), 2, "handled once: {:?}", replies());
    let stats = igloo.stats().await;
    assert_eq!(stats.events, 1, "the same event, by its key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_login_connects_an_account_whose_webhooks_are_then_answered_with_its_token() {
    let graph = FakeGraph::start().await;
    let mut config = lifecycle_config(&graph);
    config.oauth.app_id = Some("990602627938098".into());
    config.oauth.app_secret = Some("instagram-app-secret-0123456789".into());
    config.oauth.redirect_uri = Some("https://igloo.test/ui/connect/callback".into());
    config.oauth.authorize_url = format!("{}/oauth/authorize", graph.base_url());
    config.oauth.token_url = format!("{}/oauth/access_token", graph.base_url());
    let igloo = TestIgloo::start(config).await;
    let (cookie, client) = igloo.dashboard_session().await;

    let start = client
        .get(format!("{}/ui/accounts/connect", igloo.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let authorize = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(authorize.path(), "/oauth/authorize");
    let query: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "990602627938098");
    assert_eq!(
        query["redirect_uri"],
        "https://igloo.test/ui/connect/callback"
    );
    assert_eq!(query["response_type"], "code");
    assert!(query["scope"].contains("instagram_business_manage_messages"));
    let state = query["state"].clone();

    // Meta sends the owner back with a code.
    let callback = |state: String| {
        let client = client.clone();
        let url = format!("{}/ui/connect/callback", igloo.url);
        async move {
            client
                .get(url)
                .query(&[("code", "AQBx-code"), ("state", state.as_str())])
                .send()
                .await
                .unwrap()
        }
    };
    let connected = callback(state.clone()).await;
    assert_eq!(connected.status(), 200);
    let page = connected.text().await.unwrap();
    assert!(
        page.contains(CONNECTED_ACCOUNT_ID) && page.contains("@new_shop"),
        "{page}"
    );
    assert!(
        !page.contains("long-lived-token"),
        "the token is never shown"
    );

    let requests = graph.requests();
    let exchange = requests
        .iter()
        .find(|r| r.path == "/oauth/access_token")
        .unwrap();
    let form = exchange.body.as_str().unwrap();
    for field in [
        "client_id=990602627938098",
        "client_secret=instagram-app-secret-0123456789",
        "grant_type=authorization_code",
        "redirect_uri=https%3A%2F%2Figloo.test%2Fui%2Fconnect%2Fcallback",
        "code=AQBx-code",
    ] {
        assert!(
            form.split('&').any(|pair| pair == field),
            "{field} in {form}"
        );
    }
    let long = requests.iter().find(|r| r.path == "/access_token").unwrap();
    assert!(
        long.query
            .as_deref()
            .unwrap()
            .contains("access_token=short-lived-token")
    );
    let me = requests.iter().find(|r| r.path.ends_with("/me")).unwrap();
    assert_eq!(me.authorization.as_deref(), Some("Bearer long-lived-token"));

    let (_, listed) = igloo.admin(Method::GET, "/admin/accounts", None).await;
    let account = listed["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["id"] == CONNECTED_ACCOUNT_ID)
        .unwrap()
        .clone();
    assert_eq!(
        (account["source"].as_str(), account["username"].as_str()),
        (Some("connected"), Some("new_shop"))
    );
    assert!(
        account["token_expires_at_ms"].as_u64().unwrap() > now_ms() + 59 * DAY_MS,
        "{account}"
    );

    // The link is good once, and only igloo's.
    assert_eq!(callback(state).await.status(), 400, "used already");
    assert_eq!(callback("1.2.3".into()).await.status(), 400, "not igloo's");

    // Its webhooks are answered with its own token.
    let body = serde_json::to_vec(&json!({"object": "instagram", "entry": [{"id": CONNECTED_ACCOUNT_ID, "time": now_ms(),
        "messaging": [{"sender": {"id": "1001"}, "recipient": {"id": CONNECTED_ACCOUNT_ID}, "timestamp": now_ms(),
            "message": {"mid": "m-connected-1", "text": "hi"}}]}]}))
    .unwrap();
    igloo.post_webhook(&body).await;
    igloo.wait_until_idle().await;
    let reply = graph
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/messages"))
        .unwrap();
    assert_eq!(
        reply.path,
        format!("/v24.0/{CONNECTED_ACCOUNT_ID}/messages")
    );
    assert_eq!(
        reply.authorization.as_deref(),
        Some("Bearer long-lived-token")
    );

    // An account the operator set up by hand is not a link's to change.
    let (status, _) = igloo
        .admin(
            Method::POST,
            "/admin/accounts",
            Some(json!({"id": CONNECTED_ACCOUNT_ID, "access_token": "hand-token"})),
        )
        .await;
    assert_eq!(status, 200);
    let state = igloo.business_login_state(&client, &cookie).await;
    assert_eq!(callback(state).await.status(), 409);
    let (_, listed) = igloo.admin(Method::GET, "/admin/accounts", None).await;
    assert!(
        listed.to_string().contains(r#""source":"added""#),
        "still the operator's: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_plugin_has_not_loaded_sync_takes_no_field_away() {
    let graph = FakeGraph::start().await;
    graph.set_account_setup(
        ACCOUNT_ID,
        AccountSetup {
            subscribed_fields: vec!["live_comments".into()],
            ..AccountSetup::default()
        },
    );
    let mut config = lifecycle_config(&graph);
    let missing = tempfile::tempdir().unwrap();
    config.plugins.push(PluginConfig::new(
        "broken",
        PluginSource::Path(missing.path().join("nowhere")),
        &[],
    ));
    let igloo = TestIgloo::start(config).await;
    let (_, answer) = igloo
        .admin(Method::POST, "/admin/accounts/sync", None)
        .await;
    assert_eq!(answer["accounts"][0]["fields"], "set", "{answer}");
    assert_eq!(
        graph.account_setup(ACCOUNT_ID).subscribed_fields,
        ["live_comments", "messages"],
        "what the broken plugin may need stays"
    );
}
