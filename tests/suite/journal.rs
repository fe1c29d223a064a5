//! The journal of effects across a crash: igloo dies while auto-reply's
//! send is in flight (its intent journaled, no answer yet), and the next
//! igloo on the same data neither loses the reply nor sends it twice.

use std::sync::Arc;
use std::time::Duration;

use igloo::inbox::EventFilter;
use igloo_plugin_artifacts as built;
use igloo_tests::{
    ACCOUNT_ID, FakeGraph, OPERATOR_TOKEN, TestIgloo, eventually, install_plugin_as, live_config,
    now_ms, webhook,
};
use tempfile::TempDir;

/// Journal entries as `(operation, status)`, in call order.
fn journal(data_dir: &TempDir) -> Vec<(String, String)> {
    let connection = rusqlite::Connection::open(data_dir.path().join("inbox.sqlite3")).unwrap();
    let mut select = connection
        .prepare("SELECT operation, status FROM journal ORDER BY seq, call")
        .unwrap();
    select
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Start igloo on `data_dir` in a runtime of its own, deliver a message
/// from `person`, and kill that runtime the moment the reply's intent is
/// journaled, while `graph` (slow) still holds the request: a crash, as
/// far as igloo's data can tell.
async fn crash_while_sending(graph: &FakeGraph, data_dir: &Arc<TempDir>, person: &str) {
    graph.set_delay(Duration::from_secs(2));
    let config = live_config(graph);
    let dir = Arc::clone(data_dir);
    let person = person.to_owned();
    let (journaled_tx, journaled_rx) = tokio::sync::oneshot::channel();
    let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
    let life = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let igloo = TestIgloo::start_in(config, Arc::clone(&dir)).await;
            let body = webhook::message(&person, "hello").mid("mid-crash").body();
            assert_eq!(igloo.post_webhook(&body).await.status(), 200);
            eventually("the send's intent to be journaled", || async {
                journal(&dir)
                    .iter()
                    .any(|(_, status)| status == "started")
                    .then_some(())
            })
            .await;
            journaled_tx.send(()).unwrap();
            std::mem::forget(igloo);
        });
        crash_rx.recv().unwrap();
        // Every task dropped where it stood: no outcome is ever written.
        runtime.shutdown_background();
    });
    journaled_rx.await.unwrap();
    crash_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || life.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        journal(data_dir),
        [("messaging.send".to_owned(), "started".to_owned())]
    );
    graph.set_delay(Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_short_by_a_crash_that_meta_received_is_not_sent_again() {
    let graph = FakeGraph::start().await;
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    crash_while_sending(&graph, &data_dir, "111").await;
    // Meta got the request and sent the message; igloo never heard.
    eventually("Meta to accept the send", || async {
        (graph.sent_messages().len() == 1).then_some(())
    })
    .await;

    let igloo = TestIgloo::start_in(live_config(&graph), Arc::clone(&data_dir)).await;
    let stats = igloo.wait_until_idle().await;
    assert_eq!(stats.events, 1);
    let sends = graph
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST" && request.path.ends_with("/messages"))
        .count();
    assert_eq!(sends, 1, "found in the conversation, not sent again");
    assert_eq!(graph.sent_messages().len(), 1);
    assert_eq!(
        journal(&data_dir),
        [("messaging.send".to_owned(), "done".to_owned())]
    );
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(runs[0].outcome, "ok", "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_meta_fails_is_retried_not_taken_for_an_unknown_effect() {
    let graph = FakeGraph::start().await;
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    crash_while_sending(&graph, &data_dir, "112").await;
    eventually("Meta to accept the send", || async {
        (graph.sent_messages().len() == 1).then_some(())
    })
    .await;
    // Meta's bad minute, through every quick retry of the first lookup.
    for _ in 0..3 {
        graph.script(
            500,
            serde_json::json!({"error": {"message": "An unexpected error has occurred.", "code": 2}}),
        );
    }

    let mut config = live_config(&graph);
    config.runtime.retry_schedule_ms = vec![50];
    let igloo = TestIgloo::start_in(config, Arc::clone(&data_dir)).await;
    igloo.wait_until_idle().await;
    let lookups = graph
        .requests()
        .into_iter()
        .filter(|request| request.method == "GET" && request.path.ends_with("/conversations"))
        .count();
    assert!(lookups >= 4, "looked again at the retry: {lookups}");
    assert_eq!(graph.sent_messages().len(), 1, "not sent again");
    assert_eq!(
        journal(&data_dir),
        [("messaging.send".to_owned(), "done".to_owned())]
    );
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(runs[0].outcome, "ok", "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_short_by_a_crash_that_meta_never_acted_on_is_sent_once() {
    let graph = FakeGraph::start().await;
    // Meta fails the request igloo will not live to hear about.
    graph.script(
        500,
        serde_json::json!({"error": {"message": "down", "code": 2}}),
    );
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    crash_while_sending(&graph, &data_dir, "222").await;

    let igloo = TestIgloo::start_in(live_config(&graph), Arc::clone(&data_dir)).await;
    igloo.wait_until_idle().await;
    let sent = graph.sent_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].recipient_id, "222");
    assert_eq!(sent[0].account_id, ACCOUNT_ID);
    assert_eq!(
        journal(&data_dir),
        [("messaging.send".to_owned(), "done".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_meta_failed_once_is_retried_and_sends_once() {
    let graph = FakeGraph::start().await;
    graph.script(
        500,
        serde_json::json!({"error": {"message": "An unexpected error has occurred.", "code": 2}}),
    );
    let mut config = live_config(&graph);
    config.runtime.retry_schedule_ms = vec![50];
    let igloo = TestIgloo::start(config).await;
    let body = webhook::message("333", "hello").body();
    assert_eq!(igloo.post_webhook(&body).await.status(), 200);

    igloo.wait_until_idle().await;
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(
        (
            runs[0].outcome.as_str(),
            runs[0].attempts,
            runs[0].retry_at_ms
        ),
        ("ok", 2, None),
        "{runs:?}"
    );
    let sent = graph.sent_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].recipient_id, "333");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_keeps_failing_on_meta_becomes_a_dead_letter_after_the_schedule() {
    let graph = FakeGraph::start().await;
    for _ in 0..3 {
        graph.script(
            503,
            serde_json::json!({"error": {"message": "down", "code": 2}}),
        );
    }
    let mut config = live_config(&graph);
    config.runtime.retry_schedule_ms = vec![20, 20];
    let igloo = TestIgloo::start(config).await;
    let body = webhook::message("444", "hello").body();
    assert_eq!(igloo.post_webhook(&body).await.status(), 200);

    igloo.wait_until_idle().await;
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(
        (runs[0].outcome.as_str(), runs[0].attempts),
        ("plugin-error", 3),
        "{runs:?}"
    );
    assert!(runs[0].is_dead_letter());
    assert!(graph.sent_messages().is_empty());
}

/// Run `igloo events …` (after `igloo`) against `igloo`, as an operator
/// would from a shell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_replayed_with_igloo_events_replay_once_the_plugin_is_fixed() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let config_with = |plugin: &igloo_plugin_artifacts::BuiltPlugin| {
        let mut config = live_config(&graph);
        config.plugins = vec![install_plugin_as(
            plugins.path(),
            "bot",
            plugin,
            &["messages:reply"],
        )];
        config.server.admin_token = Some(OPERATOR_TOKEN.into());
        config
    };

    // The broken release traps on the event: a dead letter at once.
    let igloo = TestIgloo::start(config_with(&built::PANIC)).await;
    let body = webhook::message("555", "hello").body();
    assert_eq!(igloo.post_webhook(&body).await.status(), 200);
    igloo.wait_until_idle().await;
    let dead = igloo
        .inbox
        .list_events(&EventFilter {
            dead_letters: true,
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].person_id.as_deref(), Some("555"));
    assert_eq!(dead[0].runs[0].outcome, "trap");
    igloo
        .cli(&["events", "list", "--dead", "--plugin", "bot"])
        .await
        .unwrap();
    let data = igloo.stop().await;

    // The fixed release: the operator replays the dead letter.
    let igloo = TestIgloo::start_in(config_with(&built::AUTO_REPLY), data).await;
    igloo.wait_until_idle().await;
    assert!(
        graph.sent_messages().is_empty(),
        "nothing replays by itself"
    );
    // The fix is tried in the sandbox first: it would reply, and nothing
    // is sent or recorded.
    igloo
        .cli(&["events", "replay", "1", "--sandbox"])
        .await
        .unwrap();
    let tried = sandbox_replay(&igloo, 1).await;
    assert_eq!(tried["runs"][0]["outcome"], "ok", "{tried}");
    let call = &tried["runs"][0]["calls"][0];
    assert!(
        call["url"].as_str().unwrap().ends_with("/messages"),
        "{tried}"
    );
    assert_eq!(call["body"]["recipient"]["id"], "555", "{tried}");
    assert!(
        graph.sent_messages().is_empty(),
        "the sandbox sends nothing"
    );
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert!(runs[0].is_dead_letter(), "nor records anything: {runs:?}");

    igloo.cli(&["events", "replay", "1"]).await.unwrap();
    eventually("the replayed run to send its reply", || async {
        (graph.sent_messages().len() == 1).then_some(())
    })
    .await;
    igloo.wait_until_idle().await;
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(
        (runs[0].outcome.as_str(), runs[0].attempts),
        ("ok", 1),
        "{runs:?}"
    );
    assert_eq!(graph.sent_messages()[0].recipient_id, "555");

    // Handled now: a second replay is refused unless forced, and a forced
    // one goes through the journal, so the person still gets one reply.
    let refused = igloo.cli(&["events", "replay", "1"]).await.unwrap_err();
    assert!(refused.to_string().contains("not replayed"), "{refused}");
    igloo
        .cli(&["events", "replay", "1", "--force"])
        .await
        .unwrap();
    eventually("the forced replay to finish", || async {
        let runs = igloo.inbox.runs(1).await.unwrap();
        (runs[0].attempts == 1 && runs[0].retry_at_ms.is_none() && igloo.stats().await.pending == 0)
            .then_some(())
    })
    .await;
    assert_eq!(graph.sent_messages().len(), 1, "the journal kept it to one");
    igloo.cli(&["events", "show", "1"]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_cuts_a_send_short_is_resumed_by_the_next_start_without_a_second_send() {
    let graph = FakeGraph::start_with_delay(Duration::from_secs(3)).await;
    let mut config = live_config(&graph);
    config.server.drain_timeout_ms = 100;
    let igloo = TestIgloo::start(config.clone()).await;
    let body = webhook::message("666", "hello").body();
    assert_eq!(igloo.post_webhook(&body).await.status(), 200);
    eventually("the send to reach Meta", || async {
        (graph.sent_messages().len() == 1).then_some(())
    })
    .await;
    // SIGTERM: the drain gives up on the send still waiting for Meta.
    let data = igloo.stop().await;
    assert_eq!(
        journal(&data),
        [("messaging.send".to_owned(), "started".to_owned())]
    );

    graph.set_delay(Duration::ZERO);
    let igloo = TestIgloo::start_in(config, data).await;
    igloo.wait_until_idle().await;
    assert_eq!(graph.sent_messages().len(), 1, "read back, not sent again");
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(runs[0].outcome, "ok", "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_wrote_state_before_meta_failed_takes_the_same_path_on_its_retry() {
    let graph = FakeGraph::start().await;
    // lead-capture reads its step, looks the person up, writes the next
    // step, then sends: Meta fails that send once.
    graph.script(
        200,
        serde_json::json!({"name": "Peter Chang", "username": "peter_chang_live", "id": "777"}),
    );
    graph.script(
        500,
        serde_json::json!({"error": {"message": "An unexpected error has occurred.", "code": 2}}),
    );
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.plugins = vec![install_plugin_as(
        plugins.path(),
        "leads",
        &built::LEAD_CAPTURE,
        &["messages:reply", "profiles:read", "kv"],
    )];
    config.runtime.retry_schedule_ms = vec![50];
    let igloo = TestIgloo::start(config).await;
    let body = webhook::message("777", "hello").body();
    assert_eq!(igloo.post_webhook(&body).await.status(), 200);
    igloo.wait_until_idle().await;

    // The retry read the step as the first attempt did (journaled), not its
    // own write, so it asked for the same calls and sent the greeting.
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(
        (runs[0].outcome.as_str(), runs[0].attempts),
        ("ok", 2),
        "{runs:?}"
    );
    let sent = graph.sent_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].text.as_deref(),
        Some("Hi Peter Chang! What's your email address?")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_can_mark_its_own_failure_retryable() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    // `run` itself needs no capability.
    config.plugins = vec![igloo_tests::install_probe(
        plugins.path(),
        "probe",
        igloo_tests::PROBE_GRANTS,
    )];
    config.runtime.retry_schedule_ms = vec![20];
    let igloo = TestIgloo::start(config).await;

    let marked = serde_json::json!({"op": "retry_on_failure"}).to_string();
    let unmarked = serde_json::json!({"op": "no such op"}).to_string();
    let returned = serde_json::json!({"op": "no such op", "then": "retryable"}).to_string();
    for (sender, text) in [("551", &marked), ("552", &unmarked), ("553", &returned)] {
        let body = webhook::message(sender, text).body();
        assert_eq!(igloo.post_webhook(&body).await.status(), 200);
    }
    igloo.wait_until_idle().await;

    let marked_runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(
        (marked_runs[0].outcome.as_str(), marked_runs[0].attempts),
        ("plugin-error", 2),
        "retried once, on the schedule: {marked_runs:?}"
    );
    assert!(marked_runs[0].is_dead_letter(), "then a dead letter");
    let unmarked_runs = igloo.inbox.runs(2).await.unwrap();
    assert_eq!(
        unmarked_runs[0].attempts, 1,
        "a plugin error is final unless marked: {unmarked_runs:?}"
    );
    let returned_runs = igloo.inbox.runs(3).await.unwrap();
    assert_eq!(
        returned_runs[0].attempts, 2,
        "a returned error marked retryable (0.2.0) is retried too: {returned_runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_runs_at_once_though_another_plugin_waits_an_hour_for_its_retry() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    config.plugins = vec![
        igloo_tests::install_probe(plugins.path(), "probe", igloo_tests::PROBE_GRANTS),
        install_plugin_as(plugins.path(), "broken", &built::PANIC, &[]),
    ];
    config.runtime.retry_schedule_ms = vec![3_600_000];
    let igloo = TestIgloo::start(config).await;
    // Meta fails the probe's send: its retry is an hour away. The broken
    // plugin traps: a dead letter.
    graph.script(
        500,
        serde_json::json!({"error": {"message": "An unexpected error has occurred.", "code": 2}}),
    );
    let command = serde_json::json!({"op": "send_text", "to": "771", "text": "hi"});
    let body = webhook::message("771", &command.to_string()).body();
    assert_eq!(igloo.post_webhook(&body).await.status(), 200);
    let run_of = async |plugin: &str| {
        let runs = igloo.inbox.runs(1).await.unwrap();
        runs.into_iter().find(|run| run.plugin == plugin)
    };
    eventually("both runs to be recorded", || async {
        let probe = run_of("probe").await?;
        let broken = run_of("broken").await?;
        (probe.retry_at_ms.is_some() && broken.is_dead_letter()).then_some(())
    })
    .await;

    igloo
        .cli(&["events", "replay", "1", "--plugin", "broken"])
        .await
        .unwrap();
    let replayed = eventually("the replay to run", || async {
        run_of("broken")
            .await
            .filter(|run| run.attempts == 1 && run.retry_at_ms.is_none())
    })
    .await;
    assert_eq!(replayed.outcome, "trap");
    let probe = run_of("probe").await.unwrap();
    assert!(
        probe.retry_at_ms.unwrap() > now_ms() + 3_000_000,
        "the probe still waits for its hour: {probe:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_meta_throttled_is_retried_no_sooner_than_meta_lets_the_account_call() {
    let graph = FakeGraph::start().await;
    let mut config = live_config(&graph);
    config.runtime.retry_schedule_ms = vec![50];
    let igloo = TestIgloo::start(config).await;
    // Meta throttles the account (error 4), saying nothing of how long:
    // a minute, by default.
    graph.script(
        400,
        serde_json::json!({"error": {"message": "Application request limit reached", "code": 4}}),
    );
    let before = now_ms();
    let body = webhook::message("772", "hello").body();
    assert_eq!(igloo.post_webhook(&body).await.status(), 200);
    let waiting = eventually("auto-reply's run to wait for its retry", || async {
        let runs = igloo.inbox.runs(1).await.unwrap();
        runs.into_iter().find(|run| run.retry_at_ms.is_some())
    })
    .await;
    assert!(
        waiting.retry_at_ms.unwrap() >= before + 60_000,
        "not after 50 ms, while Meta still refuses: {waiting:?}"
    );
    assert_eq!(graph.requests().len(), 1, "nothing sent meanwhile");
}

/// `POST /admin/events/{seq}/replay?sandbox=true`'s answer.
async fn sandbox_replay(igloo: &TestIgloo, seq: i64) -> serde_json::Value {
    let response = igloo
        .client
        .post(format!(
            "{}/admin/events/{seq}/replay?sandbox=true",
            igloo.url
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_replay_reads_the_hosts_state_and_writes_none_of_it() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.plugins = vec![igloo_tests::install_probe(
        plugins.path(),
        "probe",
        igloo_tests::PROBE_GRANTS,
    )];
    config.runtime.retry_schedule_ms = Vec::new();
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    let igloo = TestIgloo::start(config).await;
    let command = serde_json::json!({"op": "all", "commands": [
        {"op": "kv_get", "key": "seen"},
        {"op": "kv_set", "key": "seen", "value": "again"},
    ]});
    let live = igloo.probe("probe", "661", command).await;
    assert_eq!(live, "Ok(None) | Ok(())", "the live run stored `seen`");

    let state =
        igloo::state::SqliteState::open(&igloo.data_dir.path().join("state.sqlite3")).unwrap();
    let scope = igloo::state::KvScope {
        plugin: "probe".into(),
        account_id: ACCOUNT_ID.into(),
    };
    let seen = || async {
        use igloo::state::HostState as _;
        state
            .kv_get(&scope, "seen", igloo::clock::now_ms())
            .await
            .unwrap()
    };
    assert_eq!(seen().await.as_deref(), Some(&b"again"[..]));

    let tried = sandbox_replay(&igloo, 1).await;
    assert_eq!(
        tried["runs"][0]["detail"], "Ok(Some(\"again\")) | Ok(())",
        "the sandbox read the live state: {tried}"
    );
    assert_eq!(seen().await.as_deref(), Some(&b"again"[..]));
    // What the sandbox wrote went to its copy: deleting the key for real
    // and trying again, the sandbox finds it missing.
    {
        use igloo::state::HostState as _;
        state.kv_delete(&scope, "seen").await.unwrap();
    }
    let tried = sandbox_replay(&igloo, 1).await;
    assert_eq!(tried["runs"][0]["detail"], "Ok(None) | Ok(())", "{tried}");
    assert_eq!(seen().await, None, "the sandbox's write stayed in its copy");
    assert!(graph.requests().is_empty(), "nothing reached Meta");
}
