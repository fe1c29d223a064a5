//! Events committed before a crash are dispatched after a restart, and a
//! plugin that already ran on an event is not run on it again.

use std::sync::Arc;

use bytes::Bytes;
use igloo::events;
use igloo::inbox::{Delivery, Inbox, RunRecord, SqliteInbox};
use igloo_tests::{FakeGraph, TestIgloo, live_config, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_what_was_not_done() {
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    // The state a crash leaves: two events committed and acknowledged; the
    // plugin finished on the second but the event was not marked complete.
    {
        let inbox = SqliteInbox::open(&data_dir.path().join("inbox.sqlite3")).unwrap();
        for (mid, sender) in [("mid-1", "111"), ("mid-2", "222")] {
            let body = webhook::message(sender, "hello").mid(mid).body();
            let events = events::normalise(&body).unwrap();
            inbox
                .append(Delivery::new(Bytes::from(body), events))
                .await
                .unwrap();
        }
        inbox
            .record_run(
                2,
                RunRecord {
                    plugin: "auto-reply".into(),
                    outcome: "ok".into(),
                    detail: String::new(),
                },
            )
            .await
            .unwrap();
    }

    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start_in(live_config(&graph), data_dir).await;
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.events, 2);

    let requests = graph.wait_for(1).await;
    assert_eq!(
        requests.len(),
        1,
        "the finished run was not repeated: {requests:?}"
    );
    assert_eq!(requests[0].body["recipient"]["id"], "111");
}
