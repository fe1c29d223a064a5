//! Conversation control: a conversation a human took over (paused by the
//! operator, a plugin, or Meta's handover) gets no automated message until
//! it resumes; plugins that run while paused still work.

use igloo::config::LoginKind;
use igloo_tests::{
    ACCOUNT_ID, FakeGraph, PROBE_GRANTS, TestIgloo, install_probe, live_config, webhook,
};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "conversations-admin-token-0123456789";
/// This app, and Meta's Page inbox (where human agents answer).
const OUR_APP: &str = "111111";
const PAGE_INBOX: &str = "263902037430900";

/// A bot probe, and an `agent` probe granted to run while paused.
async fn start() -> (FakeGraph, TestIgloo, tempfile::TempDir) {
    start_with(LoginKind::Instagram).await
}

/// [`start`], the account connected with `login`.
async fn start_with(login: LoginKind) -> (FakeGraph, TestIgloo, tempfile::TempDir) {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.accounts.get_mut(ACCOUNT_ID).unwrap().login = login;
    let agent_grants = [PROBE_GRANTS, &["conversations:while-paused"]].concat();
    let agent = install_probe(plugins.path(), "agent", &agent_grants);
    config.plugins = vec![install_probe(plugins.path(), "bot", PROBE_GRANTS), agent];
    config.runtime.retry_schedule_ms = Vec::new();
    config.server.admin_token = Some(ADMIN_TOKEN.into());
    config.graph.app_id = Some(OUR_APP.into());
    let igloo = TestIgloo::start(config).await;
    (graph, igloo, plugins)
}

async fn admin(igloo: &TestIgloo, method: reqwest::Method, path: &str) -> (u16, Value) {
    let response = igloo
        .client
        .request(method, format!("{}{path}", igloo.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The runs on 1001's message `command`, as (plugin, outcome, detail).
async fn on_message(igloo: &TestIgloo, command: Value) -> Vec<(String, String, String)> {
    let before = igloo.wait_until_idle().await.events;
    let body = webhook::message("1001", &command.to_string()).body();
    igloo.post_webhook(&body).await;
    igloo.wait_until_idle().await;
    let mut runs: Vec<_> = igloo
        .inbox
        .runs((before + 1) as i64)
        .await
        .unwrap()
        .into_iter()
        .map(|run| (run.plugin, run.outcome, run.detail))
        .collect();
    runs.sort();
    runs
}

fn send(text: &str) -> Value {
    json!({"op": "send_text", "to": "1001", "text": text})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_conversation_gets_no_automated_sends_until_it_resumes() {
    let (graph, igloo, _plugins) = start().await;
    let pause = format!("/admin/conversations/{ACCOUNT_ID}/1001/pause");
    let (status, answer) = admin(&igloo, reqwest::Method::POST, &pause).await;
    assert_eq!(status, 200, "{answer}");
    let (_, listed) = admin(&igloo, reqwest::Method::GET, "/admin/conversations/paused").await;
    assert_eq!(listed["paused"][0]["person_id"], "1001", "{listed}");
    assert_eq!(listed["paused"][0]["by"], "operator");

    let runs = on_message(&igloo, send("hi")).await;
    assert_eq!(runs[1].0, "bot");
    assert_eq!(
        (runs[1].1.as_str(), runs[1].2.as_str()),
        ("paused", "automation is paused in this conversation")
    );
    assert!(runs[0].2.starts_with("Ok(Sent"), "the agent runs: {runs:?}");
    assert_eq!(graph.wait_for(1).await.len(), 1, "only the agent's send");

    // The bot cannot reach 1001 from another event either: a private reply
    // to their comment is refused as paused.
    let reply =
        json!({"op": "send", "to": {"comment": "17900000000000088"}, "content": {"text": "hi"}});
    let body = webhook::comment("17900000000000088", "1001", &reply.to_string()).body();
    assert_eq!(
        igloo.run_and_report(&body, "bot").await,
        "Err(Error::Paused)"
    );

    let resume = format!("/admin/conversations/{ACCOUNT_ID}/1001/resume");
    let (status, answer) = admin(&igloo, reqwest::Method::POST, &resume).await;
    assert_eq!((status, &answer["was_paused"]), (200, &json!(true)));
    let runs = on_message(&igloo, send("back")).await;
    assert!(runs[1].2.starts_with("Ok(Sent"), "the bot again: {runs:?}");
    // The agent's send and private reply while paused; both sends now.
    assert_eq!(graph.wait_for(4).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_pauses_its_conversation_for_a_while_or_until_resumed() {
    let (_graph, igloo, _plugins) = start().await;
    let runs = on_message(&igloo, json!({"op": "pause", "for_ms": 400})).await;
    assert_eq!(runs[1].2, "Ok(())", "{runs:?}");
    let runs = on_message(&igloo, send("during")).await;
    assert_eq!(runs[1].1, "paused", "{runs:?}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let runs = on_message(&igloo, send("after")).await;
    assert!(
        runs[1].2.starts_with("Ok(Sent"),
        "the pause ran out: {runs:?}"
    );

    // Until resumed: the agent (running while paused) hands it back.
    on_message(&igloo, json!({"op": "pause"})).await;
    let runs = on_message(&igloo, json!({"op": "resume"})).await;
    assert_eq!(runs[0].2, "Ok(true)", "{runs:?}");
    let runs = on_message(&igloo, send("resumed")).await;
    assert!(runs[1].2.starts_with("Ok(Sent"), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_to_another_app_pauses_and_back_to_this_one_resumes() {
    let (_graph, igloo, _plugins) = start().await;
    let handover = |action: &str, from: &str, to: &str| {
        json!({"object": "instagram", "entry": [{"id": ACCOUNT_ID, "time": igloo_tests::now_ms(),
            "messaging": [{"sender": {"id": "1001"}, "recipient": {"id": ACCOUNT_ID},
                "timestamp": igloo_tests::now_ms(),
                action: {"previous_owner_app_id": from, "new_owner_app_id": to, "metadata": "m"}}]}]})
        .to_string()
        .into_bytes()
    };
    igloo
        .post_webhook(&handover("pass_thread_control", OUR_APP, PAGE_INBOX))
        .await;
    igloo.wait_until_idle().await;
    let (_, listed) = admin(&igloo, reqwest::Method::GET, "/admin/conversations/paused").await;
    assert_eq!(listed["paused"][0]["by"], "handover", "{listed}");
    let runs = on_message(&igloo, send("to a human")).await;
    assert_eq!(runs[1].1, "paused", "{runs:?}");

    igloo
        .post_webhook(&handover("take_thread_control", PAGE_INBOX, OUR_APP))
        .await;
    igloo.wait_until_idle().await;
    let runs = on_message(&igloo, send("to the bot")).await;
    assert!(runs[1].2.starts_with("Ok(Sent"), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_calls_go_to_meta_for_facebook_login_and_pause_or_resume() {
    let (graph, igloo, _plugins) = start_with(LoginKind::Facebook).await;
    let pass = json!({"op": "pass_thread", "target": PAGE_INBOX, "metadata": "wants a human"});
    let runs = on_message(&igloo, pass).await;
    assert_eq!(runs[1].2, "Ok(())", "{runs:?}");
    let requests = graph.wait_for(1).await;
    let pass_call = requests
        .iter()
        .find(|request| request.path.ends_with("/pass_thread_control"))
        .unwrap_or_else(|| panic!("{requests:?}"));
    assert_eq!(
        pass_call.path,
        format!("/v24.0/{ACCOUNT_ID}/pass_thread_control")
    );
    assert_eq!(
        pass_call.body,
        json!({"recipient": {"id": "1001"}, "target_app_id": PAGE_INBOX, "metadata": "wants a human"})
    );
    // A handover's pause: the thread's return ends it.
    let (_, listed) = admin(&igloo, reqwest::Method::GET, "/admin/conversations/paused").await;
    assert_eq!(listed["paused"][0]["by"], "handover", "{listed}");

    // The agent (running while paused) takes the thread back: resumed.
    let runs = on_message(&igloo, json!({"op": "take_thread"})).await;
    assert_eq!(runs[0].2, "Ok(())", "{runs:?}");
    let (_, listed) = admin(&igloo, reqwest::Method::GET, "/admin/conversations/paused").await;
    assert_eq!(listed["paused"], json!([]));

    let bad = json!({"op": "pass_thread", "target": "../../me", "metadata": null});
    let runs = on_message(&igloo, bad).await;
    assert!(runs[1].2.contains("Invalid"), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_calls_are_invalid_for_instagram_login_and_send_nothing() {
    let (graph, igloo, _plugins) = start().await;
    let pass = json!({"op": "pass_thread", "target": PAGE_INBOX});
    let runs = on_message(&igloo, pass).await;
    assert_eq!(
        runs[1].2,
        r#"Err(Error::Invalid("thread control needs an account connected with Facebook Login"))"#
    );
    assert!(graph.requests().is_empty());
}
