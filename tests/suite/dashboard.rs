//! The dashboard in a real headless Chromium: sign in, see the accounts
//! and plugins, find a dead letter, replay it, read its runs and host
//! calls, sign out. Set IGLOO_SCREENSHOTS to a folder to keep the pages
//! as pictures (the README's come from here).

use std::time::Duration;

use fantoccini::{Client, Locator};
use igloo_tests::{
    ACCOUNT_ID, Browser, FakeGraph, OPERATOR_TOKEN, PROBE_GRANTS, TestIgloo, eventually,
    install_probe, live_config, webhook,
};
use serde_json::json;

async fn text_of(client: &Client, css: &str) -> String {
    // A click that navigates returns before the next page is there: read
    // again until the element is found on a page that stays.
    for _ in 0..100 {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {css} on the page");
}

/// Wait until `css`'s text contains `needle` (the page a click led to is
/// there); its text.
async fn shown(client: &Client, css: &str, needle: &str) -> String {
    for _ in 0..100 {
        let text = text_of(client, css).await;
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{css} never showed {needle:?}: {}",
        text_of(client, css).await
    );
}

/// The browser is on the sign-in page (`why` it should be).
async fn assert_on_sign_in(client: &Client, why: &str) {
    let url = client.current_url().await.unwrap();
    assert!(url.path().ends_with("/ui/login"), "{why}: {url}");
}

/// Click the element `locator` finds.
async fn click(client: &Client, locator: Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

/// A picture of the page: a PNG, kept when IGLOO_SCREENSHOTS names a folder.
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    if let Some(folder) = std::env::var_os("IGLOO_SCREENSHOTS") {
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            std::path::Path::new(&folder).join(format!("{name}.png")),
            png,
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_sees_the_health_and_replays_a_dead_letter_in_a_real_browser() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    config
        .plugins
        .push(install_probe(plugins.path(), "probe", PROBE_GRANTS));
    let igloo = TestIgloo::start(config).await;
    // The probe sends, then fails: a dead letter with a host call, whose
    // error text a hostile plugin chose.
    let command =
        json!({"op": "send_text", "to": "1001", "text": "<script>alert('owned')</script>"});
    igloo
        .post_webhook(&webhook::message("1001", &command.to_string()).body())
        .await;
    igloo.wait_until_idle().await;
    igloo
        .post_webhook(
            &webhook::message(
                "1002",
                &json!({"op": "kv_get", "key": "k", "then": "handle"}).to_string(),
            )
            .body(),
        )
        .await;
    igloo.wait_until_idle().await;

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&format!("{}/ui", igloo.url)).await.unwrap();
    assert_on_sign_in(client, "signed out: to the sign-in page").await;
    screenshot(client, "sign-in").await;
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys("not-the-token")
        .await
        .unwrap();
    click(client, Locator::Css("button[type=submit]")).await;
    shown(client, "main", "That is not the admin token.").await;
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(OPERATOR_TOKEN)
        .await
        .unwrap();
    click(client, Locator::Css("button[type=submit]")).await;

    shown(client, "h1", "Overview").await;
    let accounts = text_of(client, "#accounts").await;
    assert!(
        accounts.contains(ACCOUNT_ID) && accounts.contains("active"),
        "{accounts}"
    );
    let plugins_shown = text_of(client, "#plugins").await;
    assert!(
        plugins_shown.contains("auto-reply") && plugins_shown.contains("probe"),
        "{plugins_shown}"
    );
    assert!(
        plugins_shown.contains("probe: plugin-error"),
        "its recent runs: {plugins_shown}"
    );
    assert!(plugins_shown.contains("auto-reply: ok"), "{plugins_shown}");
    screenshot(client, "overview").await;

    click(client, Locator::LinkText("Dead letters")).await;
    shown(client, "h1", "Dead letters").await;
    let dead = text_of(client, "#events").await;
    assert!(
        dead.contains("probe: plugin-error") && dead.contains("1001"),
        "{dead}"
    );
    assert!(!dead.contains("1002"), "only dead letters: {dead}");
    screenshot(client, "dead-letters").await;

    let before = graph.requests().len();
    let (_, detail) = igloo
        .admin(reqwest::Method::GET, "/admin/events/1", None)
        .await;
    let done_before = detail["done_at_ms"].as_u64();
    assert!(done_before.is_some(), "{detail}");
    click(client, Locator::Css("#events form.replay button")).await;
    shown(client, ".flash", "Replay scheduled").await;
    let calls = text_of(client, "#calls").await;
    assert!(
        calls.contains("messaging.send") && calls.contains("done"),
        "{calls}"
    );
    // What the plugin chose is shown as text, never run.
    assert!(calls.contains("<script>alert"), "shown escaped: {calls}");
    assert!(
        client
            .find_all(Locator::Css("script"))
            .await
            .unwrap()
            .is_empty(),
        "no script in the page"
    );
    let done_at = |detail: serde_json::Value| detail["done_at_ms"].as_u64();
    eventually("the replay to run", || async {
        let (_, detail) = igloo
            .admin(reqwest::Method::GET, "/admin/events/1", None)
            .await;
        (done_at(detail.clone()) > done_before).then_some(())
    })
    .await;
    client.refresh().await.unwrap();
    let runs = shown(client, "#runs", "probe: plugin-error").await;
    assert!(runs.contains("auto-reply: ok"), "{runs}");
    assert_eq!(
        graph.requests().len(),
        before,
        "the replay did not send again: the journal"
    );
    screenshot(client, "event").await;

    client
        .goto(&format!(
            "{}/ui/events?account={ACCOUNT_ID}&person=1002",
            igloo.url
        ))
        .await
        .unwrap();
    let by_person = text_of(client, "#events").await;
    assert!(
        by_person.contains("auto-reply: ok") && !by_person.contains("1001"),
        "{by_person}"
    );

    // A follow-up the probe scheduled, under a key it chose (markup, and a
    // CR a browser's form would change): the operator sees it and cancels
    // it.
    let set = json!({"op": "timer_set", "key": "<b>follow-up</b>\r", "after_ms": 3_600_000, "payload": "still there?"});
    assert_eq!(igloo.probe("probe", "1003", set).await, "Ok(())");
    click(client, Locator::LinkText("Timers")).await;
    let timers = shown(client, "#timers", "1003").await;
    assert!(
        timers.contains("<b>follow-up</b>") && timers.contains("waiting"),
        "the key shown as text: {timers}"
    );
    screenshot(client, "timers").await;
    click(client, Locator::Css("#timers form button")).await;
    shown(client, ".flash", "Timer cancelled").await;
    shown(client, "main", "No timers.").await;
    let (_, listed) = igloo
        .admin(reqwest::Method::GET, "/admin/timers", None)
        .await;
    assert_eq!(listed["timers"], json!([]), "{listed}");

    click(client, Locator::Css("header form button")).await;
    client.goto(&format!("{}/ui", igloo.url)).await.unwrap();
    assert_on_sign_in(client, "signed out").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_refuses_strangers_and_forms_from_elsewhere() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    let igloo = TestIgloo::start(config).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let overview = client
        .get(format!("{}/ui", igloo.url))
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), 303);
    assert_eq!(overview.headers()["location"], "/ui/login");
    let policy = overview.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let forged_cookie = "igloo_ui=1.00";
    let replay = client
        .post(format!("{}/ui/events/1/replay", igloo.url))
        .header("cookie", forged_cookie)
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303, "a forged cookie is no session");
    let (cookie, _) = igloo.dashboard_session().await;
    let without_form_token = client
        .post(format!("{}/ui/plugins/auto-reply/resume", igloo.url))
        .header("cookie", &cookie)
        .form(&[("csrf", "from-another-site")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        without_form_token.status(),
        403,
        "a form from elsewhere is refused"
    );
    let page = client
        .get(format!("{}/ui", igloo.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}
