//! The operator's surfaces held to what anyone can send them: small bodies
//! with a deadline before any token is looked at, the dry run's record
//! behind the admin token off loopback, health that says how old its
//! counts are, timers' payloads kept off event pages, Business Login that
//! fails closed and keeps Meta's words in the log, and a data directory
//! private to igloo's user.

use std::sync::Arc;
use std::time::Duration;

use igloo::config::{Config, GraphMode};
use igloo::events::{Event, EventKind, Timer};
use igloo_tests::{
    ACCOUNT_ID, CONNECTED_ACCOUNT_ID, FakeGraph, OPERATOR_TOKEN, TOKEN_KEY, TestIgloo, eventually,
    live_config, now_ms, webhook,
};
use reqwest::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A live config with the operator's token and the token key.
fn operator_config(graph: &FakeGraph) -> Config {
    let mut config = live_config(graph);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    config.tokens.key = Some(TOKEN_KEY.into());
    config
}

/// Send raw `bytes` to igloo at `address` and read what comes back until
/// it closes the connection or `patience` passes.
async fn raw_exchange(address: &str, bytes: &[u8], patience: Duration) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(patience, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_reads_a_small_body_within_the_deadline_before_authorising() {
    let graph = FakeGraph::start().await;
    let mut config = operator_config(&graph);
    config.server.body_timeout_ms = 300;
    let igloo = TestIgloo::start(config).await;
    let address = igloo.url.trim_start_matches("http://").to_owned();
    let patience = Duration::from_secs(5);

    // Slow: the body never comes; cut off at the deadline, token or not.
    for (path, headers) in [
        (
            "/ui/login",
            "Content-Type: application/x-www-form-urlencoded\r\n",
        ),
        ("/admin/accounts", "Content-Type: application/json\r\n"),
        ("/admin/timers/cancel", "Content-Type: application/json\r\n"),
    ] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: igloo\r\n{headers}Content-Length: 100\r\n\r\ntoken="
        );
        // A 408 is igloo's own answer at its deadline (the client would
        // have waited `patience` for ever more).
        let answer = raw_exchange(&address, request.as_bytes(), patience).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer:?}");
    }

    // Large: refused before reading, when declared.
    let declared = "POST /ui/login HTTP/1.1\r\nHost: igloo\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 2000000\r\n\r\n";
    let answer = raw_exchange(&address, declared.as_bytes(), patience).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");

    // Large and sent: refused before the token is looked at.
    let large = "x".repeat(100 * 1024);
    for (method, path) in [
        (Method::POST, "/ui/login"),
        (Method::POST, "/admin/accounts"),
        (Method::GET, "/admin/events"),
        (Method::POST, "/admin/plugins/auto-reply/resume"),
    ] {
        let response = igloo
            .client
            .request(method, format!("{}{path}", igloo.url))
            .body(large.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 413, "{path}");
    }

    // Within the limits, everything works as before.
    let (status, _) = igloo
        .admin(
            Method::POST,
            "/admin/accounts",
            Some(serde_json::json!({"id": "17841400000000099", "access_token": "a-hand-given-token"})),
        )
        .await;
    assert_eq!(status, 200);
    let (cookie, _) = igloo.dashboard_session().await;
    assert!(cookie.starts_with("igloo_ui="), "{cookie}");
    // And the webhook keeps its own, larger limit.
    let response = igloo
        .post_webhook(&webhook::message("7001", &"y".repeat(100 * 1024)).body())
        .await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_record_needs_the_admin_token_when_one_is_set_or_off_loopback() {
    for (listen, admin_token) in [
        ("0.0.0.0:0", Some(OPERATOR_TOKEN)),
        ("0.0.0.0:0", None),
        ("127.0.0.1:0", Some(OPERATOR_TOKEN)),
        ("127.0.0.1:0", None),
    ] {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config::embedded_defaults();
        assert_eq!(config.graph.mode, GraphMode::DryRun);
        config.server.admin_token = admin_token.map(str::to_owned);
        config.storage.data_dir = data.path().to_owned();
        let igloo = igloo::Igloo::start(config).await.unwrap();
        let listener = TcpListener::bind(listen).await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/dry-run/calls",
            listener.local_addr().unwrap().port()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(igloo.serve(listener, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let anyone = client.get(&url).send().await.unwrap();
        let operator = client
            .get(&url)
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        match admin_token {
            Some(_) => {
                assert_eq!(anyone.status().as_u16(), 401);
                assert_eq!(operator.status().as_u16(), 200);
                let calls: serde_json::Value = operator.json().await.unwrap();
                assert!(calls.is_array(), "{calls}");
            }
            None if listen.starts_with("127.") => {
                assert_eq!(anyone.status().as_u16(), 200, "the quickstart's machine");
            }
            None => {
                assert_eq!(anyone.status().as_u16(), 403, "no token is configured");
                assert_eq!(operator.status().as_u16(), 403);
            }
        }
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_how_old_its_inbox_counts_are() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let before = now_ms();
    let first = igloo.get_json("/healthz").await;
    let as_of = first["inbox"]["as_of_ms"].as_u64().expect("as_of_ms");
    assert!((before..=now_ms()).contains(&as_of), "{first}: counted now");
    assert!(first["inbox"]["age_ms"].as_u64().expect("age_ms") < 1000);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = igloo.get_json("/healthz").await;
    if again["inbox"]["as_of_ms"] == first["inbox"]["as_of_ms"] {
        // The same counts, reused: their age says so.
        assert!(again["inbox"]["age_ms"].as_u64().unwrap() >= 200, "{again}");
    }
    // Within a second or so, the counts are read again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = igloo.get_json("/healthz").await;
    assert!(
        later["inbox"]["as_of_ms"].as_u64().unwrap() > as_of,
        "{later}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timers_payload_is_not_shown_on_its_event_page() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(operator_config(&graph)).await;
    let payload = b"secret-plan-for-this-person".to_vec();
    let timer = Event {
        key: "timer:0123456789abcdef".into(),
        account_id: ACCOUNT_ID.into(),
        timestamp_ms: now_ms(),
        is_echo: false,
        is_self: false,
        is_standby: false,
        kind: EventKind::Timer(Timer {
            plugin: "auto-reply".into(),
            key: "remind".into(),
            person_id: "6543210987654321".into(),
            payload: payload.clone(),
            due_at_ms: now_ms(),
        }),
    };
    assert_eq!(igloo.inbox.append_internal(vec![timer]).await.unwrap(), 1);
    let (_, listed) = igloo.admin(Method::GET, "/admin/events", None).await;
    let seq = listed["events"][0]["seq"].as_u64().unwrap();
    assert_eq!(listed["events"][0]["kind"], "timer", "{listed}");

    let (status, shown) = igloo
        .admin(Method::GET, &format!("/admin/events/{seq}"), None)
        .await;
    assert_eq!(status, 200);
    let kind = &shown["event"]["kind"];
    assert!(kind.get("payload").is_none(), "{shown}");
    assert_eq!(kind["payload_bytes"], payload.len(), "{shown}");
    assert_eq!(kind["key"], "remind", "the rest is shown");

    let (cookie, client) = igloo.dashboard_session().await;
    let page = client
        .get(format!("{}/ui/events/{seq}", igloo.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("payload_bytes"), "{page}");
    assert!(!page.contains("&quot;payload&quot;"), "{page}");
    let first_bytes = format!("{},\n", payload[0]);
    assert!(!page.contains(&first_bytes), "{page}");
}

/// igloo with Business Login configured against `graph`, and a state the
/// operator's *Connect an account* made; the sync at start and the
/// reconciler are off, so nothing but the callback asks Meta anything.
async fn business_login(graph: &FakeGraph) -> (TestIgloo, reqwest::Client, String) {
    let mut config = operator_config(graph);
    config.oauth.app_id = Some("990602627938098".into());
    config.oauth.app_secret = Some("instagram-app-secret-0123456789".into());
    config.oauth.redirect_uri = Some("https://igloo.test/ui/connect/callback".into());
    config.oauth.authorize_url = format!("{}/oauth/authorize", graph.base_url());
    config.oauth.token_url = format!("{}/oauth/access_token", graph.base_url());
    config.sync.at_start = false;
    config.reconcile.interval_secs = 0;
    let igloo = TestIgloo::start(config).await;
    let (cookie, client) = igloo.dashboard_session().await;
    let state = igloo.business_login_state(&client, &cookie).await;
    (igloo, client, state)
}

async fn callback(igloo: &TestIgloo, client: &reqwest::Client, state: &str) -> (u16, String) {
    let response = client
        .get(format!("{}/ui/connect/callback", igloo.url))
        .query(&[("code", "AQBx-code"), ("state", state)])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn connected(igloo: &TestIgloo) -> bool {
    let (_, listed) = igloo.admin(Method::GET, "/admin/accounts", None).await;
    listed.to_string().contains(CONNECTED_ACCOUNT_ID)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_login_refuses_a_token_that_does_not_say_what_was_granted() {
    let graph = FakeGraph::start().await;
    let (igloo, client, state) = business_login(&graph).await;
    graph.script(
        200,
        serde_json::json!({"access_token": "short-lived-token", "user_id": 17841400000000077_u64}),
    );
    let (status, page) = callback(&igloo, &client, &state).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("did not say which permissions"), "{page}");
    assert!(!connected(&igloo).await, "no account was kept");
    assert!(
        !graph.requests().iter().any(|r| r.path == "/access_token"),
        "no long-lived token was asked for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_page_never_shows_metas_own_words() {
    let graph = FakeGraph::start().await;
    let (igloo, client, state) = business_login(&graph).await;
    graph.script(
        400,
        serde_json::json!({"error": {"message": "Internal detail 7f3a: app 990602627938098 lacks review",
            "type": "OAuthException", "code": 10, "fbtrace_id": "AbCdEf"}}),
    );
    let (status, page) = callback(&igloo, &client, &state).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        !page.contains("Internal detail") && !page.contains("lacks review"),
        "{page}"
    );
    assert!(page.contains("the operator's log says why"), "{page}");
    assert!(!connected(&igloo).await);

    // Nor Meta's words in the redirect that refused.
    let (igloo, client, state) = business_login(&graph).await;
    let response = client
        .get(format!("{}/ui/connect/callback", igloo.url))
        .query(&[
            ("error", "access_denied"),
            ("error_description", "Internal detail 7f3a"),
            ("state", state.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let page = response.text().await.unwrap();
    assert!(!page.contains("Internal detail"), "{page}");
    assert!(page.contains("did not grant access"), "{page}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_its_files_are_igloos_users_only() {
    use std::os::unix::fs::PermissionsExt as _;
    // SQLite removes a -wal or -shm file as its last connection closes: a
    // file listed may be gone the moment after (`None`).
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .map(|metadata| metadata.permissions().mode() & 0o777)
    };
    let files = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect()
    };
    let graph = FakeGraph::start().await;
    let data = Arc::new(tempfile::tempdir().unwrap());
    // A folder made by someone else's umask.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let igloo = TestIgloo::start_in(operator_config(&graph), Arc::clone(&data)).await;
    igloo
        .post_webhook(&webhook::message("7001", "hi").body())
        .await;
    igloo.wait_until_idle().await;
    let check = |when: &str| {
        assert_eq!(mode(data.path()), Some(0o700), "{when}: the folder");
        let files = files(data.path());
        for name in [
            "inbox.sqlite3",
            "inbox.sqlite3-wal",
            "inbox.sqlite3-shm",
            "state.sqlite3",
            "accounts.sqlite3",
            "igloo.lock",
        ] {
            assert!(
                files.iter().any(|file| file.ends_with(name)),
                "{when}: {name} in {files:?}"
            );
        }
        for file in &files {
            if let Some(mode) = mode(file) {
                assert_eq!(mode, 0o600, "{when}: {}", file.display());
            }
        }
    };
    check("a new data directory");
    let data = igloo.stop().await;

    // What an older igloo left with the default umask.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in files(data.path()) {
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            other => other.unwrap(),
        }
    }
    let igloo = TestIgloo::start_in(operator_config(&graph), Arc::clone(&data)).await;
    eventually("igloo to answer", || async {
        igloo.get_json("/healthz").await["inbox"]
            .get("events")
            .map(drop)
    })
    .await;
    check("a data directory an older igloo left");
}
