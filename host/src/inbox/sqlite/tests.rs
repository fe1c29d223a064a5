//! The SQLite inbox against its contract, on real files.

use super::*;

fn ok_run() -> RunRecord {
    RunRecord::finished("p", "ok", "")
}
use crate::events::{EventKind, Message};

fn event(key: &str) -> Event {
    Event {
        key: key.into(),
        account_id: "acct".into(),
        timestamp_ms: 1,
        is_echo: false,
        is_self: false,
        is_standby: false,
        kind: EventKind::Message(Message {
            mid: key.into(),
            sender_id: "user".into(),
            recipient_id: "acct".into(),
            text: Some("hi".into()),
            ..Message::default()
        }),
    }
}

fn delivery(keys: &[&str]) -> Delivery {
    Delivery::new(
        bytes::Bytes::from_static(b"{}"),
        keys.iter().map(|k| event(k)).collect(),
    )
}

#[tokio::test]
async fn appended_events_are_pending_until_completed_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    {
        let inbox = SqliteInbox::open(&path).unwrap();
        let appended = inbox.append(delivery(&["a", "b"])).await.unwrap();
        assert_eq!(appended.is_new, vec![true, true]);
        let pending = inbox.pending(0, 10, &[], u64::MAX).await.unwrap();
        assert_eq!(pending.len(), 2);
        inbox.record_run(pending[0].seq, ok_run()).await.unwrap();
        inbox.complete(pending[0].seq).await.unwrap();
        inbox.record_run(pending[1].seq, ok_run()).await.unwrap();
    }
    let inbox = SqliteInbox::open(&path).unwrap();
    let pending = inbox.pending(0, 10, &[], u64::MAX).await.unwrap();
    assert_eq!(pending.len(), 1, "completed events stay completed");
    assert_eq!(*pending[0].event, event("b"));
    assert_eq!(pending[0].runs, [ok_run()], "finished runs are remembered");
    assert!(pending[0].is_done_for("p"));
}

#[tokio::test]
async fn a_held_accounts_events_are_left_unread_until_it_is_usable_again() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    let of = |account: &str, key: &str| Event {
        account_id: account.into(),
        ..event(key)
    };
    let events = vec![of("held", "h1"), of("acct", "a1"), of("held", "h2")];
    inbox
        .append(Delivery::new(bytes::Bytes::from_static(b"{}"), events))
        .await
        .unwrap();
    let keys = |pending: Vec<PendingEvent>| -> Vec<String> {
        pending.iter().map(|p| p.event.key.clone()).collect()
    };
    let held = ["held".to_owned(), "another".to_owned()];
    assert_eq!(
        keys(inbox.pending(0, 10, &held, u64::MAX).await.unwrap()),
        ["a1"]
    );
    assert_eq!(
        keys(inbox.pending(0, 10, &[], u64::MAX).await.unwrap()),
        ["h1", "a1", "h2"],
        "nothing is lost meanwhile"
    );
}

#[tokio::test]
async fn an_event_waiting_for_a_later_retry_is_left_unread_until_it_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    inbox.append(delivery(&["retrying", "new"])).await.unwrap();
    let seq = inbox.pending(0, 10, &[], 0).await.unwrap()[0].seq;
    let retry = RunRecord {
        attempts: 1,
        retry_at_ms: Some(5_000),
        ..RunRecord::finished("p", "plugin-error", "Meta failed")
    };
    inbox.record_run(seq, retry).await.unwrap();
    let keys = |pending: Vec<PendingEvent>| -> Vec<String> {
        pending.iter().map(|p| p.event.key.clone()).collect()
    };
    assert_eq!(
        keys(inbox.pending(0, 10, &[], 4_999).await.unwrap()),
        ["new"]
    );
    assert_eq!(inbox.next_retry_at(4_999).await.unwrap(), Some(5_000));
    assert_eq!(
        keys(inbox.pending(0, 10, &[], 5_000).await.unwrap()),
        ["retrying", "new"],
        "read once due"
    );
    assert_eq!(inbox.next_retry_at(5_000).await.unwrap(), None);
    inbox
        .record_run(seq, RunRecord::finished("p", "ok", ""))
        .await
        .unwrap();
    inbox.complete(seq).await.unwrap();
    assert_eq!(inbox.next_retry_at(0).await.unwrap(), None, "done with");
}

#[tokio::test]
async fn a_redelivered_event_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    inbox.append(delivery(&["a"])).await.unwrap();
    let again = inbox.append(delivery(&["a", "c"])).await.unwrap();
    assert_eq!(again.is_new, vec![false, true]);
    assert_eq!((again.new_events(), again.duplicates()), (1, 1));
    let stats = inbox.stats().await.unwrap();
    assert_eq!((stats.deliveries, stats.events, stats.pending), (2, 2, 2));
}

#[tokio::test]
async fn pruning_forgets_only_completed_events_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    inbox.append(delivery(&["done", "pending"])).await.unwrap();
    let pending = inbox.pending(0, 10, &[], u64::MAX).await.unwrap();
    inbox.complete(pending[0].seq).await.unwrap();

    assert_eq!(
        inbox.prune(0).await.unwrap(),
        0,
        "nothing is older than the epoch"
    );
    assert_eq!(
        inbox
            .prune(crate::clock::now_ms() as i64 + 1)
            .await
            .unwrap(),
        1
    );
    let stats = inbox.stats().await.unwrap();
    assert_eq!((stats.events, stats.pending, stats.deliveries), (1, 1, 1));
    // Once pruned, a redelivery is new again: retention bounds dedupe.
    let done_again = inbox.append(delivery(&["done"])).await.unwrap();
    assert_eq!(done_again.is_new, vec![true]);
    let pending_again = inbox.append(delivery(&["pending"])).await.unwrap();
    assert_eq!(pending_again.is_new, vec![false]);
}

#[tokio::test]
async fn sequence_numbers_never_go_back_after_the_newest_events_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    inbox.append(delivery(&["old", "newest"])).await.unwrap();
    let pending = inbox.pending(0, 10, &[], u64::MAX).await.unwrap();
    let newest = pending[1].seq;
    inbox.complete(newest).await.unwrap();
    let pruned = inbox
        .prune(crate::clock::now_ms() as i64 + 1)
        .await
        .unwrap();
    assert_eq!(pruned, 1, "the newest event was handled and pruned");
    // The dispatcher has read up to `newest`; what comes next must be after it.
    inbox.append(delivery(&["next"])).await.unwrap();
    let next = inbox.pending(newest, 10, &[], u64::MAX).await.unwrap();
    assert_eq!(
        next.len(),
        1,
        "the new event is not hidden behind a reused number"
    );
    assert!(next[0].seq > newest);
}

#[tokio::test]
async fn an_inbox_from_before_autoincrement_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            &SCHEMA_V1.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER PRIMARY KEY"),
        )
        .unwrap();
        old.execute_batch(
            "INSERT INTO deliveries (id, received_at_ms, body) VALUES (1, 0, x'7b7d');
             INSERT INTO events (seq, event_key, delivery_id, account_id, kind, timestamp_ms, received_at_ms, body)
               VALUES (7, 'k', 1, 'acct', 'message', 1, 0, '{}');",
        )
        .unwrap();
    }
    let inbox = SqliteInbox::open(&path).unwrap();
    assert_eq!(inbox.stats().await.unwrap().events, 1, "rows kept");
    inbox.append(delivery(&["after-upgrade"])).await.unwrap();
    let pending = inbox.pending(7, 10, &[], u64::MAX).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].seq > 7);
}

#[tokio::test]
async fn an_event_read_again_shows_its_runs_so_far_and_nothing_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    inbox.append(delivery(&["a"])).await.unwrap();
    let seq = inbox.pending(0, 10, &[], u64::MAX).await.unwrap()[0].seq;
    let retry = RunRecord {
        retry_at_ms: Some(5_000),
        ..RunRecord::finished("p", "plugin-error", "Meta had a bad minute")
    };
    inbox.record_run(seq, retry.clone()).await.unwrap();
    let again = inbox
        .pending_event(seq)
        .await
        .unwrap()
        .expect("still pending");
    assert_eq!(again.runs, [retry]);
    assert!(!again.is_done_for("p"), "a retry is to come");
    assert!(!again.is_due_for("p", 4_999));
    assert!(again.is_due_for("p", 5_000));
    assert_eq!(again.attempts_of("p"), 1);
    inbox.record_run(seq, ok_run()).await.unwrap();
    let again = inbox
        .pending_event(seq)
        .await
        .unwrap()
        .expect("still pending");
    assert!(again.is_done_for("p"));
    inbox.complete(seq).await.unwrap();
    assert!(inbox.pending_event(seq).await.unwrap().is_none());
}

#[tokio::test]
async fn concurrent_appends_are_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(SqliteInbox::open(&dir.path().join("inbox.db")).unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let inbox = Arc::clone(&inbox);
            tokio::spawn(async move { inbox.append(delivery(&[&format!("e{i}")])).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().is_new, vec![true]);
    }
    assert_eq!(inbox.stats().await.unwrap().events, 200);
}

#[tokio::test]
async fn events_are_listed_by_account_person_plugin_outcome_and_time_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    let mut other = event("c");
    other.account_id = "other".into();
    if let EventKind::Message(message) = &mut other.kind {
        message.sender_id = "someone".into();
    }
    inbox.append(delivery(&["a", "b"])).await.unwrap();
    inbox
        .append(Delivery::new(
            bytes::Bytes::from_static(b"{\"raw\":1}"),
            vec![other],
        ))
        .await
        .unwrap();
    inbox.record_run(1, ok_run()).await.unwrap();
    inbox
        .record_run(2, RunRecord::finished("p", "trap", "unreachable"))
        .await
        .unwrap();
    let seqs = |filter: EventFilter| {
        let inbox = &inbox;
        async move {
            let filter = EventFilter {
                limit: 10,
                ..filter
            };
            let listed = inbox.list_events(&filter).await.unwrap();
            listed.iter().map(|event| event.seq).collect::<Vec<_>>()
        }
    };
    assert_eq!(seqs(EventFilter::default()).await, [3, 2, 1]);
    let by = |account: &str| EventFilter {
        account_id: Some(account.into()),
        ..EventFilter::default()
    };
    assert_eq!(seqs(by("other")).await, [3]);
    let person = EventFilter {
        person_id: Some("user".into()),
        ..EventFilter::default()
    };
    assert_eq!(seqs(person).await, [2, 1]);
    let dead = EventFilter {
        dead_letters: true,
        ..EventFilter::default()
    };
    assert_eq!(seqs(dead).await, [2]);
    let ok = EventFilter {
        plugin: Some("p".into()),
        outcome: Some("ok".into()),
        ..EventFilter::default()
    };
    assert_eq!(seqs(ok).await, [1]);
    let future = EventFilter {
        since_ms: Some(crate::clock::now_ms() + 60_000),
        ..EventFilter::default()
    };
    assert!(seqs(future).await.is_empty());

    let detail = inbox.event_detail(3).await.unwrap().unwrap();
    assert_eq!(detail.raw_body, "{\"raw\":1}");
    assert_eq!(detail.summary.person_id.as_deref(), Some("someone"));
    assert!(inbox.event_detail(99).await.unwrap().is_none());
}

#[tokio::test]
async fn a_replay_takes_dead_letters_and_handled_runs_only_when_forced() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    inbox.append(delivery(&["a"])).await.unwrap();
    inbox.record_run(1, ok_run()).await.unwrap();
    inbox
        .record_run(1, RunRecord::finished("q", "trap", "unreachable"))
        .await
        .unwrap();
    inbox.complete(1).await.unwrap();
    let replay = |plugin: Option<&str>, force| ReplayRequest {
        seq: 1,
        plugin: plugin.map(str::to_owned),
        force,
    };
    assert_eq!(
        inbox.replay(replay(Some("p"), false)).await.unwrap(),
        Replayed::AlreadyHandled {
            plugins: vec!["p".into()]
        }
    );
    assert!(inbox.pending_event(1).await.unwrap().is_none(), "untouched");
    assert_eq!(
        inbox.replay(replay(None, false)).await.unwrap(),
        Replayed::Scheduled {
            plugins: vec!["q".into()]
        }
    );
    let pending = inbox
        .pending_event(1)
        .await
        .unwrap()
        .expect("pending again");
    assert!(pending.is_done_for("p") && !pending.is_done_for("q"));
    assert_eq!(pending.attempts_of("q"), 0);
    assert_eq!(
        inbox.replay(replay(Some("q"), false)).await.unwrap(),
        Replayed::NothingToReplay,
        "already waiting to run"
    );
    assert_eq!(
        inbox
            .replay(ReplayRequest {
                seq: 7,
                plugin: None,
                force: true
            })
            .await
            .unwrap(),
        Replayed::NotFound
    );
}

#[tokio::test]
async fn the_wal_is_emptied_once_writes_pause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let inbox = SqliteInbox::open(&path).unwrap();
    let big = vec![b'x'; 64 * 1024];
    for n in 0..160 {
        let delivery = Delivery::new(
            bytes::Bytes::from(big.clone()),
            vec![event(&format!("k{n}"))],
        );
        inbox.append(delivery).await.unwrap();
        let _ = inbox.pending(0, 10, &[], u64::MAX).await.unwrap();
    }
    let wal = dir.path().join("inbox.db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "writes went to the WAL"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&wal).unwrap().len() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL was never emptied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(inbox.stats().await.unwrap().events, 160, "nothing lost");
}

#[tokio::test]
async fn an_event_is_not_completed_while_a_run_waits_for_its_retry_or_replay() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    inbox.append(delivery(&["a"])).await.unwrap();
    let waiting = RunRecord {
        retry_at_ms: Some(1),
        ..RunRecord::finished("q", "trap", "replayed by an operator")
    };
    inbox.record_run(1, waiting).await.unwrap();
    assert!(!inbox.complete(1).await.unwrap(), "q still has to run");
    assert!(inbox.pending_event(1).await.unwrap().is_some());
    inbox.record_run(1, ok_run()).await.unwrap();
    inbox
        .record_run(1, RunRecord::finished("q", "ok", ""))
        .await
        .unwrap();
    assert!(inbox.complete(1).await.unwrap());
    assert!(inbox.pending_event(1).await.unwrap().is_none());
}

/// A real webhook body with two messages (a batch).
const BATCH: &[u8] = include_bytes!("../../../../tests/fixtures/webhooks/batch_mixed.json");

/// Everyone wants messages (and nothing else).
fn messages_wanted() -> crate::events::Subscriptions {
    crate::events::Subscriptions::new([crate::events::Subscription {
        kinds: ["message".to_owned()].into(),
        accounts: crate::events::AccountScope::All,
        echoes: false,
    }])
}

/// What a crash between the commit of a body and its split leaves: the
/// body, marked unsplit, and no events.
fn commit_unsplit_body(path: &Path, body: &[u8]) {
    Connection::open(path)
        .unwrap()
        .execute(
            "INSERT INTO deliveries (received_at_ms, body) VALUES (1000, ?1)",
            [body],
        )
        .unwrap();
}

#[tokio::test]
async fn a_body_committed_but_not_split_before_a_crash_is_split_once_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    drop(SqliteInbox::open(&path).unwrap());
    commit_unsplit_body(&path, BATCH);

    let inbox = SqliteInbox::open(&path).unwrap();
    assert_eq!(inbox.stats().await.unwrap().unsplit, 1);
    assert_eq!(inbox.stats().await.unwrap().events, 0);
    let subscriptions = messages_wanted();
    assert_eq!(
        crate::inbox::recover_unsplit(&inbox, &subscriptions)
            .await
            .unwrap(),
        1
    );
    let stats = inbox.stats().await.unwrap();
    assert_eq!(
        (stats.unsplit, stats.events, stats.pending),
        (0, 4, 2),
        "all four events stored; the two messages, which someone wants, pending"
    );
    let pending = inbox.pending(0, 10, &[], u64::MAX).await.unwrap();
    assert!(
        pending.iter().all(|event| event.received_at_ms == 1000),
        "events keep the time their body was accepted"
    );
    assert_eq!(
        crate::inbox::recover_unsplit(&inbox, &subscriptions)
            .await
            .unwrap(),
        0,
        "nothing is split twice"
    );
    assert_eq!(inbox.stats().await.unwrap().events, 4);
}

#[tokio::test]
async fn splitting_a_body_again_stores_nothing_and_reports_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let inbox = SqliteInbox::open(&path).unwrap();
    inbox.append(delivery(&["a"])).await.unwrap();
    let again = inbox
        .split_stored(1, delivery(&["a", "z"]).events)
        .await
        .unwrap();
    assert_eq!(
        again.is_new,
        vec![false, false],
        "the body was split already"
    );
    assert_eq!(inbox.stats().await.unwrap().events, 1);
}

#[tokio::test]
async fn pruning_keeps_a_body_not_split_yet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    drop(SqliteInbox::open(&path).unwrap());
    commit_unsplit_body(&path, BATCH);
    let inbox = SqliteInbox::open(&path).unwrap();
    inbox.prune(i64::MAX).await.unwrap();
    assert_eq!(inbox.stats().await.unwrap().unsplit, 1);
    crate::inbox::recover_unsplit(&inbox, &messages_wanted())
        .await
        .unwrap();
    assert_eq!(inbox.stats().await.unwrap().events, 4);
}

#[tokio::test]
async fn a_body_that_no_longer_parses_stops_recovery_and_stays_unsplit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    drop(SqliteInbox::open(&path).unwrap());
    commit_unsplit_body(&path, b"not json");
    commit_unsplit_body(&path, BATCH);
    let inbox = SqliteInbox::open(&path).unwrap();
    let error = crate::inbox::recover_unsplit(&inbox, &messages_wanted())
        .await
        .unwrap_err();
    assert!(
        matches!(error, InboxError::Unreadable { delivery: 1, .. }),
        "{error}"
    );
    let stats = inbox.stats().await.unwrap();
    assert_eq!(
        (stats.unsplit, stats.events),
        (2, 0),
        "nothing is lost, and nothing after it is split out of order"
    );
}

#[tokio::test]
async fn an_inbox_whose_writer_stopped_reports_itself_down() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(&dir.path().join("inbox.db")).unwrap();
    // What a failed restore of durable commits does: the writer returns.
    let (closed, _) = mpsc::unbounded_channel();
    let inbox = SqliteInbox {
        writes: closed,
        ..inbox
    };
    assert!(matches!(inbox.stats().await, Err(InboxError::Stopped(_))));
}

/// The inbox of `tests/fixtures/data-dir-0.1.0`: three messages, from
/// people 111, 222 and 333, stored before events named their person.
#[tokio::test]
async fn events_stored_before_they_named_their_person_are_found_by_person_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.sqlite3");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/data-dir-0.1.0/inbox.sqlite3"
        ),
        &path,
    )
    .unwrap();
    let inbox = SqliteInbox::open(&path).unwrap();
    for (person, seq) in [("111", 1), ("222", 2), ("333", 3)] {
        let filter = EventFilter {
            person_id: Some(person.into()),
            limit: 10,
            ..EventFilter::default()
        };
        let listed = inbox.list_events(&filter).await.unwrap();
        let found: Vec<(Seq, Option<&str>)> = listed
            .iter()
            .map(|event| (event.seq, event.person_id.as_deref()))
            .collect();
        assert_eq!(found, [(seq, Some(person))], "person {person}");
    }
    // Events stored since name their person as before.
    inbox.append(delivery(&["new"])).await.unwrap();
    let filter = EventFilter {
        person_id: Some("user".into()),
        limit: 10,
        ..EventFilter::default()
    };
    assert_eq!(inbox.list_events(&filter).await.unwrap().len(), 1);
}
