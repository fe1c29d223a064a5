//! Embedded defaults: no config, no Meta credentials; the example plugin's
//! reply is recorded by the dry run instead of sent.

use igloo::config::{Config, DRY_RUN_APP_SECRET, DRY_RUN_VERIFY_TOKEN};
use igloo::signature;
use igloo_tests::{TestIgloo, eventually, fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_embedded_defaults_the_reply_is_recorded_not_sent() {
    let igloo = TestIgloo::start(Config::embedded_defaults()).await;
    let body = fixture("message_text.json");
    let signed = signature::sign(DRY_RUN_APP_SECRET.as_bytes(), &body);
    let response = igloo.post_webhook_with(&body, Some(&signed)).await;
    assert_eq!(response.status().as_u16(), 200);

    let calls = eventually("the dry run to record the reply", || async {
        let calls = igloo.get_json("/dry-run/calls").await;
        (calls.as_array().unwrap().len() == 1).then_some(calls)
    })
    .await;
    let call = &calls[0];
    assert_eq!(call["method"], "POST");
    assert_eq!(
        call["url"],
        "https://graph.instagram.com/v24.0/17841400000000001/messages"
    );
    assert_eq!(call["body"]["recipient"]["id"], "6543210987654321");
    assert_eq!(
        call["body"]["message"]["text"],
        "Thanks for your message! We'll get back to you soon."
    );

    let handshake = igloo
        .get_text(&format!(
            "/webhooks/instagram?hub.mode=subscribe&hub.verify_token={DRY_RUN_VERIFY_TOKEN}&hub.challenge=42"
        ))
        .await;
    assert_eq!(handshake, "42");

    let health = igloo.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["plugins"][0]["name"], "auto-reply");
}
