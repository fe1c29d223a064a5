//! The journal's rules, on a real inbox.

use std::sync::atomic::AtomicUsize;

use super::*;
use crate::events::{Event, EventKind, Message};
use crate::inbox::{Delivery, Inbox, SqliteInbox};
use crate::plugin_api::HostError;

/// An inbox holding one event, and the key of a run on it.
async fn inbox_with_event(dir: &tempfile::TempDir) -> (Arc<SqliteInbox>, RunKey) {
    let inbox = Arc::new(SqliteInbox::open(&dir.path().join("inbox.sqlite3")).unwrap());
    let event = Event {
        key: "k".into(),
        account_id: "1".into(),
        timestamp_ms: 1,
        is_echo: false,
        is_self: false,
        is_standby: false,
        kind: EventKind::Message(Message {
            mid: "m".into(),
            sender_id: "2".into(),
            ..Message::default()
        }),
    };
    inbox
        .append(Delivery::new(bytes::Bytes::from_static(b"{}"), vec![event]))
        .await
        .unwrap();
    let key = RunKey {
        seq: 1,
        plugin: "p".into(),
    };
    (inbox, key)
}

fn send(text: &str) -> Call {
    Call::new("messaging.send", text)
}

/// A run's journal as written so far, read back as the next execution would.
async fn reopened(inbox: &Arc<SqliteInbox>, key: &RunKey) -> RunJournal {
    inbox.prune(i64::MIN).await.unwrap();
    RunJournal::open(inbox.clone(), key.clone()).await.unwrap()
}

/// Where the run's calls stand, once the writes queued so far committed
/// (outcomes are written without waiting; a later awaited write lands
/// after them).
async fn statuses(inbox: &Arc<SqliteInbox>, key: &RunKey) -> Vec<CallStatus> {
    inbox.prune(i64::MIN).await.unwrap();
    let entries = inbox.journal(key).await.unwrap();
    entries.iter().map(|entry| entry.status).collect()
}

fn journal_stop(failure: HostFailure) -> JournalStop {
    match failure {
        HostFailure::Trap(trap) => trap.downcast_ref::<JournalStop>().unwrap().clone(),
        other => panic!("expected the journal to stop the run, got {other:?}"),
    }
}

#[tokio::test]
async fn a_call_done_before_returns_its_result_without_acting_again() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, key) = inbox_with_event(&dir).await;
    let acted = AtomicUsize::new(0);
    let act = async || {
        acted.fetch_add(1, Ordering::Relaxed);
        Ok("mid-1".to_owned())
    };
    let first = RunJournal::fresh(inbox.clone(), key.clone());
    assert_eq!(first.repeatable(send("hi"), act).await.unwrap(), "mid-1");

    let again = reopened(&inbox, &key).await;
    let act = async || {
        acted.fetch_add(1, Ordering::Relaxed);
        Ok("mid-2".to_owned())
    };
    assert_eq!(again.repeatable(send("hi"), act).await.unwrap(), "mid-1");
    assert_eq!(acted.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_different_call_at_the_same_position_stops_the_run_before_it_acts() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, key) = inbox_with_event(&dir).await;
    let first = RunJournal::fresh(inbox.clone(), key.clone());
    first.repeatable(send("hi"), async || Ok(())).await.unwrap();

    let again = reopened(&inbox, &key).await;
    let other = Call::new("comments.delete", "\"42\"");
    let failure = again
        .repeatable(other, async || -> HostResult<()> {
            panic!("a diverged call must not act")
        })
        .await
        .unwrap_err();
    assert!(matches!(
        journal_stop(failure),
        JournalStop::Diverged { call: 0, .. }
    ));
    let same_operation_other_text = reopened(&inbox, &key).await;
    let failure = same_operation_other_text
        .repeatable(send("bye"), async || -> HostResult<()> {
            panic!("must not act")
        })
        .await
        .unwrap_err();
    assert!(matches!(
        journal_stop(failure),
        JournalStop::Diverged { .. }
    ));
}

#[tokio::test]
async fn a_refused_call_is_tried_again_at_the_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, key) = inbox_with_event(&dir).await;
    let first = RunJournal::fresh(inbox.clone(), key.clone());
    let refused = first
        .repeatable(send("hi"), async || -> HostResult<()> {
            Err(HostError::WindowClosed.into())
        })
        .await;
    assert!(matches!(
        refused,
        Err(HostFailure::Refused(HostError::WindowClosed))
    ));
    assert_eq!(statuses(&inbox, &key).await, [CallStatus::Failed]);

    let again = reopened(&inbox, &key).await;
    again.repeatable(send("hi"), async || Ok(())).await.unwrap();
    assert_eq!(statuses(&inbox, &key).await, [CallStatus::Done]);
}

#[tokio::test]
async fn a_call_that_may_have_acted_is_resolved_and_never_repeated_blindly() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, key) = inbox_with_event(&dir).await;
    let first = RunJournal::fresh(inbox.clone(), key.clone());
    let unanswered = first
        .effect(
            send("hi"),
            async || -> HostResult<String> {
                Err(HostFailure::Unanswered(HostError::Transient(
                    "timeout".into(),
                )))
            },
            async |_| Resolution::NotDone,
        )
        .await;
    // Handed back, the plugin would send again: the run stops instead.
    assert!(matches!(
        journal_stop(unanswered.unwrap_err()),
        JournalStop::CutShort { call: 0, .. }
    ));
    assert_eq!(statuses(&inbox, &key).await, [CallStatus::Unknown]);

    // Nobody can tell: the run stops, the call stays unknown.
    let unresolved = reopened(&inbox, &key).await;
    let failure = unresolved
        .effect(
            send("hi"),
            async || -> HostResult<String> { panic!("must not act blindly") },
            async |_| Resolution::Unresolved("no way to look".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        journal_stop(failure),
        JournalStop::Unknown { call: 0, .. }
    ));
    assert_eq!(statuses(&inbox, &key).await, [CallStatus::Unknown]);

    // Looking failed for now: the run stops to be retried, and nothing is
    // acted or written meanwhile.
    let unlooked = reopened(&inbox, &key).await;
    let failure = unlooked
        .effect(
            send("hi"),
            async || -> HostResult<String> { panic!("must not act before looking") },
            async |_| Resolution::LookupFailed("rate limited".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        journal_stop(failure),
        JournalStop::LookupFailed { call: 0, .. }
    ));
    assert_eq!(statuses(&inbox, &key).await, [CallStatus::Unknown]);

    // Found where it acted: done with what was found, not acted again.
    let resolved = reopened(&inbox, &key).await;
    let found = resolved
        .effect(
            send("hi"),
            async || -> HostResult<String> { panic!("found, so not sent again") },
            async |_| Resolution::Done("mid-found".to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(found, "mid-found");
    assert!(inbox.accounts_for("mid-found").await.unwrap());
    assert!(!inbox.accounts_for("mid-other").await.unwrap());
    assert!(
        !inbox.accounts_for("mid").await.unwrap(),
        "a prefix is not the id"
    );
}

#[tokio::test]
async fn an_unanswered_repeatable_call_is_the_plugins_to_try_again() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, key) = inbox_with_event(&dir).await;
    let journal = RunJournal::fresh(inbox.clone(), key.clone());
    let hide = Call::new("comments.set-hidden", "\"42\" true");
    let unanswered = journal
        .repeatable(hide, async || -> HostResult<()> {
            Err(HostFailure::Unanswered(HostError::Transient(
                "timeout".into(),
            )))
        })
        .await;
    assert!(matches!(unanswered, Err(HostFailure::Unanswered(_))));
    assert_eq!(statuses(&inbox, &key).await, [CallStatus::Failed]);
}

#[tokio::test]
async fn a_refusal_the_plugin_went_on_from_is_given_back_the_same_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, key) = inbox_with_event(&dir).await;
    let first = RunJournal::fresh(inbox.clone(), key.clone());
    let refused = first
        .effect(
            send("hi"),
            async || -> HostResult<String> { Err(HostError::RateLimited(1_500).into()) },
            async |_| Resolution::NotDone,
        )
        .await;
    assert!(matches!(
        refused,
        Err(HostFailure::Refused(HostError::RateLimited(1_500)))
    ));
    first
        .repeatable(Call::new("kv.set", "\"gave-up\""), async || Ok(()))
        .await
        .unwrap();

    // The refusal is not the last call: replayed as it was, so the plugin
    // takes the same path and its next call still matches the journal.
    let again = reopened(&inbox, &key).await;
    let replayed = again
        .effect(
            send("hi"),
            async || -> HostResult<String> { panic!("not the last call: not done again") },
            async |_| Resolution::NotDone,
        )
        .await;
    assert!(matches!(
        replayed,
        Err(HostFailure::Refused(HostError::RateLimited(1_500)))
    ));
    again
        .repeatable(
            Call::new("kv.set", "\"gave-up\""),
            async || -> HostResult<()> { panic!("done before") },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_call_with_huge_arguments_stores_a_digest_and_a_short_preview() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, key) = inbox_with_event(&dir).await;
    let journal = RunJournal::fresh(inbox.clone(), key.clone());
    let huge = "\u{1}".repeat(256 * 1024);
    journal
        .repeatable(Call::new("kv.set", &huge), async || Ok(()))
        .await
        .unwrap();
    inbox.prune(i64::MIN).await.unwrap();
    let entry = &inbox.journal(&key).await.unwrap()[0];
    assert_eq!(entry.request.len(), 64, "a SHA-256, in hex");
    // Each stripped byte may widen to U+FFFD: bounded all the same.
    assert!(entry.summary.len() <= 600, "{}", entry.summary.len());
}

#[tokio::test]
async fn a_send_done_in_an_earlier_execution_counts_as_acted_though_not_called_again() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, key) = inbox_with_event(&dir).await;
    let first = RunJournal::fresh(inbox.clone(), key.clone());
    assert!(!first.acted(), "nothing done yet");
    first
        .effect(
            send("hi"),
            async || Ok("mid-1".to_owned()),
            async |_| Resolution::NotDone,
        )
        .await
        .unwrap();
    assert!(first.acted());

    // The retry makes no call at all (it passes): it answered all the same.
    let retry = reopened(&inbox, &key).await;
    assert!(
        retry.acted(),
        "the earlier execution's send answered the event"
    );

    // A refused send, or a kv write, answered nothing.
    let other = RunKey {
        plugin: "q".into(),
        ..key.clone()
    };
    let refused = RunJournal::fresh(inbox.clone(), other.clone());
    let _ = refused
        .effect(
            send("no"),
            async || Err::<String, _>(HostError::WindowClosed.into()),
            async |_| Resolution::NotDone,
        )
        .await;
    refused
        .repeatable(Call::new("kv.set", "k"), async || Ok(()))
        .await
        .unwrap();
    assert!(!reopened(&inbox, &other).await.acted());
}
