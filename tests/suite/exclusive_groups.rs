//! Exclusive groups: one answer per event between the group's plugins, in
//! priority order; plugins outside the group are not affected.

use igloo::config::ExclusiveGroup;
use igloo::inbox::RunRecord;
use igloo_tests::{FakeGraph, OPERATOR_TOKEN, PROBE_GRANTS, TestIgloo, install_probe, live_config};
use serde_json::{Value, json};

/// Probes `first`, `second` (grouped, in that order) and `outside`, each
/// told its role; the events to run are posted by the tests.
async fn start() -> (FakeGraph, TestIgloo, tempfile::TempDir) {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.plugins = ["first", "second", "outside"]
        .into_iter()
        .map(|role| {
            let mut plugin = install_probe(plugins.path(), role, PROBE_GRANTS);
            plugin.settings.insert("role".into(), role.into());
            plugin
        })
        .collect();
    config.exclusive_groups = vec![ExclusiveGroup {
        name: "keywords".into(),
        plugins: vec!["first".into(), "second".into()],
    }];
    let igloo = TestIgloo::start(config).await;
    (graph, igloo, plugins)
}

/// Post `command` from person 1001 and return the runs recorded on it.
async fn runs_on(igloo: &TestIgloo, command: Value) -> Vec<RunRecord> {
    let before = igloo.wait_until_idle().await.events;
    igloo
        .post_webhook(&igloo_tests::webhook::message("1001", &command.to_string()).body())
        .await;
    igloo.wait_until_idle().await;
    let mut runs = igloo.inbox.runs((before + 1) as i64).await.unwrap();
    runs.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    runs
}

/// The runs on event `seq`, by plugin, once `plugin`'s has ended
/// `outcome` and igloo is idle.
async fn runs_once(igloo: &TestIgloo, seq: i64, plugin: &str, outcome: &str) -> Vec<RunRecord> {
    igloo_tests::eventually(&format!("{plugin}'s run to end {outcome}"), || async {
        let runs = igloo.inbox.runs(seq).await.unwrap();
        runs.iter()
            .any(|run| run.plugin == plugin && run.outcome == outcome)
            .then_some(())
    })
    .await;
    igloo.wait_until_idle().await;
    let mut runs = igloo.inbox.runs(seq).await.unwrap();
    runs.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    runs
}

fn outcomes(runs: &[RunRecord]) -> Vec<(&str, &str)> {
    runs.iter()
        .map(|run| (run.plugin.as_str(), run.outcome.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_first_handling_plugin_of_a_group_answers() {
    let (graph, igloo, _plugins) = start().await;
    let runs = runs_on(
        &igloo,
        json!({"op": "send_text", "to": "1001", "text": "hi", "then": "handle"}),
    )
    .await;
    assert_eq!(
        outcomes(&runs),
        [("first", "ok"), ("outside", "ok"), ("second", "skipped")]
    );
    let skipped = runs.iter().find(|run| run.plugin == "second").unwrap();
    assert_eq!(
        skipped.detail,
        "exclusive group `keywords`: `first` answered the event"
    );
    let sends = graph.wait_for(2).await;
    assert_eq!(
        sends.len(),
        2,
        "first's and outside's sends, not second's: {sends:?}"
    );
    let pending = igloo.stats().await.pending;
    assert_eq!(pending, 0, "the event is complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_passes_hands_the_event_to_the_next() {
    let (graph, igloo, _plugins) = start().await;
    let runs = runs_on(
        &igloo,
        json!({"op": "kv_list", "prefix": "", "then": {"first": "pass", "second": "handle", "outside": "pass"}}),
    )
    .await;
    assert_eq!(
        outcomes(&runs),
        [("first", "passed"), ("outside", "passed"), ("second", "ok")]
    );
    let all_pass = runs_on(
        &igloo,
        json!({"op": "kv_list", "prefix": "", "then": "pass"}),
    )
    .await;
    assert_eq!(
        outcomes(&all_pass),
        [
            ("first", "passed"),
            ("outside", "passed"),
            ("second", "passed")
        ]
    );
    assert!(graph.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_sent_something_cannot_pass_the_event_on() {
    let (graph, igloo, _plugins) = start().await;
    let runs = runs_on(
        &igloo,
        json!({"op": "send_text", "to": "1001", "text": "hi", "then": {"first": "pass", "second": "handle", "outside": "pass"}}),
    )
    .await;
    assert_eq!(
        outcomes(&runs),
        [("first", "ok"), ("outside", "ok"), ("second", "skipped")],
        "a send is an answer, whatever the plugin says after it"
    );
    assert_eq!(graph.wait_for(2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_fails_for_good_ends_the_turn() {
    let (_graph, igloo, _plugins) = start().await;
    // Without `then`, the probe reports through a plugin error: final.
    let runs = runs_on(&igloo, json!({"op": "kv_list", "prefix": ""})).await;
    assert_eq!(
        outcomes(&runs),
        [
            ("first", "plugin-error"),
            ("outside", "plugin-error"),
            ("second", "skipped")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_without_force_gives_the_skipped_members_their_turn_back() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let config_with = |first_role: &str| {
        let mut config = live_config(&graph);
        config.server.admin_token = Some(OPERATOR_TOKEN.into());
        config.plugins = [
            ("first", first_role),
            ("second", "second"),
            ("third", "third"),
        ]
        .into_iter()
        .map(|(id, role)| {
            let mut plugin = install_probe(plugins.path(), id, PROBE_GRANTS);
            plugin.settings.insert("role".into(), role.into());
            plugin
        })
        .collect();
        config.exclusive_groups = vec![ExclusiveGroup {
            name: "keywords".into(),
            plugins: vec!["first".into(), "second".into(), "third".into()],
        }];
        config
    };
    // `first` (role "broken") fails for good; once fixed, it passes and
    // `second` answers.
    let command = json!({"op": "kv_list", "prefix": "",
        "then": {"fixed": "pass", "second": "handle", "third": "handle"}});
    let igloo = TestIgloo::start(config_with("broken")).await;
    let runs = runs_on(&igloo, command).await;
    assert_eq!(
        outcomes(&runs),
        [
            ("first", "plugin-error"),
            ("second", "skipped"),
            ("third", "skipped")
        ]
    );
    let data = igloo.stop().await;

    let igloo = TestIgloo::start_in(config_with("fixed"), data).await;
    igloo.cli(&["events", "replay", "1"]).await.unwrap();
    let runs = runs_once(&igloo, 1, "second", "ok").await;
    assert_eq!(
        outcomes(&runs),
        [("first", "passed"), ("second", "ok"), ("third", "skipped")],
        "{runs:?}"
    );
    let third = runs.iter().find(|run| run.plugin == "third").unwrap();
    assert_eq!(
        third.detail, "exclusive group `keywords`: `second` answered the event",
        "the skip names who answers now"
    );
    assert_eq!(igloo.stats().await.pending, 0, "the event is complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_before_a_pause_still_ends_the_turn_when_the_event_is_taken_again() {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    let while_paused = [PROBE_GRANTS, &["conversations:while-paused"]].concat();
    config.plugins = vec![
        install_probe(plugins.path(), "first", PROBE_GRANTS),
        // Runs in paused conversations: the pause cannot keep it from a turn.
        install_probe(plugins.path(), "second", &while_paused),
        install_probe(plugins.path(), "outside", PROBE_GRANTS),
    ];
    config.exclusive_groups = vec![ExclusiveGroup {
        name: "keywords".into(),
        plugins: vec!["first".into(), "second".into()],
    }];
    let igloo = TestIgloo::start(config).await;
    let runs = runs_on(
        &igloo,
        json!({"op": "kv_list", "prefix": "", "then": "handle"}),
    )
    .await;
    assert_eq!(
        outcomes(&runs),
        [("first", "ok"), ("outside", "ok"), ("second", "skipped")]
    );

    // A human takes the conversation; the operator replays the event for
    // the plugin outside the group. `first`, paused, is left out of the
    // run, but its answer stands: `second` must not answer too.
    let (status, _) = igloo
        .admin(
            reqwest::Method::POST,
            &format!(
                "/admin/conversations/{}/1001/pause",
                igloo_tests::ACCOUNT_ID
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    igloo
        .cli(&["events", "replay", "1", "--plugin", "outside", "--force"])
        .await
        .unwrap();
    let runs = runs_once(&igloo, 1, "outside", "paused").await;
    assert_eq!(
        outcomes(&runs),
        [
            ("first", "ok"),
            ("outside", "paused"),
            ("second", "skipped")
        ],
        "{runs:?}"
    );
}
