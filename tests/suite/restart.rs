//! Events committed before a crash are dispatched after a restart (bodies
//! acknowledged but not yet split too), and a plugin that already ran on an
//! event is not run on it again.

use std::sync::Arc;

use bytes::Bytes;
use igloo::events;
use igloo::inbox::{Delivery, Inbox, RunRecord, SqliteInbox};
use igloo::state::{HostState, KvScope, SqliteState};
use igloo_tests::{ACCOUNT_ID, FakeGraph, TestIgloo, live_config, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_what_was_not_done() {
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    // The state a crash leaves: two events committed and acknowledged; the
    // plugin finished on the second but the event was not marked complete;
    // a third body acknowledged (committed) but not yet split into events.
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
            .record_run(2, RunRecord::finished("auto-reply", "ok", ""))
            .await
            .unwrap();
    }
    rusqlite::Connection::open(data_dir.path().join("inbox.sqlite3"))
        .unwrap()
        .execute(
            "INSERT INTO deliveries (received_at_ms, body) VALUES (?1, ?2)",
            rusqlite::params![
                igloo::clock::now_ms() as i64,
                webhook::message("333", "hello").mid("mid-3").body()
            ],
        )
        .unwrap();

    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start_in(live_config(&graph), data_dir).await;
    let stats = igloo.wait_until_idle().await;
    assert_eq!((stats.events, stats.unsplit), (3, 0));

    let requests = graph.wait_for(2).await;
    let mut recipients: Vec<_> = requests
        .iter()
        .map(|request| request.body["recipient"]["id"].as_str().unwrap())
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["111", "333"],
        "the unsplit body was split and answered; the finished run was not repeated"
    );
}

/// A data directory written by igloo 0.1.0 (no schema versions yet): one
/// event handled, one on which auto-reply had run but that was not marked
/// complete, one not yet touched; auto-reply's key `greeted:111`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_igloo_0_1_keeps_its_events_and_state_after_the_upgrade() {
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    let written_by_0_1 = format!("{}/fixtures/data-dir-0.1.0", env!("CARGO_MANIFEST_DIR"));
    for file in ["inbox.sqlite3", "state.sqlite3"] {
        std::fs::copy(
            format!("{written_by_0_1}/{file}"),
            data_dir.path().join(file),
        )
        .unwrap();
    }

    // As if written a moment ago, not when the fixture was made: its
    // events within their messaging window and their retention.
    let inbox = rusqlite::Connection::open(data_dir.path().join("inbox.sqlite3")).unwrap();
    let shift = igloo_tests::now_ms() as i64
        - inbox
            .query_row("SELECT max(received_at_ms) FROM events", [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap();
    inbox
        .execute_batch(&format!(
            "UPDATE events SET timestamp_ms = timestamp_ms + {shift},
                 received_at_ms = received_at_ms + {shift},
                 body = json_set(body, '$.timestamp_ms', timestamp_ms + {shift});
             UPDATE deliveries SET received_at_ms = received_at_ms + {shift};"
        ))
        .unwrap();
    drop(inbox);

    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start_in(live_config(&graph), Arc::clone(&data_dir)).await;
    let stats = igloo.wait_until_idle().await;
    assert_eq!((stats.events, stats.pending), (3, 0), "{stats:?}");
    let requests = graph.wait_for(1).await;
    assert_eq!(requests.len(), 1, "only the untouched event: {requests:?}");
    assert_eq!(requests[0].body["recipient"]["id"], "333");

    let state = SqliteState::open(&data_dir.path().join("state.sqlite3")).unwrap();
    let scope = KvScope {
        plugin: "auto-reply".into(),
        account_id: ACCOUNT_ID.into(),
    };
    assert_eq!(
        state
            .kv_get(&scope, "greeted:111", 2)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"yes"[..])
    );
    let version = |file: &str| -> i64 {
        rusqlite::Connection::open(data_dir.path().join(file))
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    };
    assert!(version("inbox.sqlite3") >= 2, "the inbox was migrated");
    assert!(
        version("state.sqlite3") >= 1,
        "the state store was migrated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_igloo_on_the_same_data_is_refused_until_the_first_stops() {
    let graph = FakeGraph::start().await;
    let first = TestIgloo::start(live_config(&graph)).await;
    let mut config = live_config(&graph);
    config.storage.data_dir = first.data_dir.path().to_owned();
    let refused = igloo::Igloo::start(config).await.err().expect("refused");
    assert!(
        format!("{refused:#}").contains("another igloo is using the data directory"),
        "{refused:#}"
    );

    let data_dir = first.stop().await;
    let second = TestIgloo::start_in(live_config(&graph), data_dir).await;
    assert_eq!(second.stats().await.deliveries, 0);
}
