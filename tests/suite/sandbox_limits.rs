//! Strangers' code, contained: every hostile plugin fails alone with its
//! reason recorded, a crashing plugin is quarantined, a saturated plugin
//! makes events wait instead of failing, and every run shows in /metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use igloo::config::Config;
use igloo_plugin_artifacts::{self as built, BuiltPlugin};
use igloo_tests::{
    FakeGraph, TestIgloo, beside_auto_reply, eventually, install_plugin, live_config, webhook,
};

/// How a hostile plugin is contained, and so tested.
#[derive(Debug, Clone, Copy)]
enum Contained {
    /// Installed with `grants` beside auto-reply in
    /// [`every_hostile_plugin_fails_alone_with_its_reason_while_the_good_one_answers`],
    /// its run on every message ends in `outcome` with a detail that says
    /// `detail`.
    Run {
        grants: &'static [&'static str],
        outcome: &'static str,
        detail: &'static str,
    },
    /// Installed there without grants, it is not loaded: its error on
    /// /healthz says each of `error`, and it never runs.
    NotLoaded { error: &'static [&'static str] },
    /// By a test of its own: this one.
    OwnTest(#[expect(dead_code, reason = "naming the test is what makes it exist")] fn()),
}

impl Contained {
    /// [`Contained::Run`] with no grants.
    const fn ungranted(outcome: &'static str, detail: &'static str) -> Self {
        Self::Run {
            grants: &[],
            outcome,
            detail,
        }
    }
}

/// How each plugin under `plugins/hostile/` is contained, under the
/// plugin's name. `foreach_hostile!` names every one of them, so a hostile
/// plugin added without an entry here does not compile.
mod hostile {
    use super::Contained::{self, NotLoaded, OwnTest, Run};
    use crate::{escapes, stops};

    pub(super) fn deep_recursion() -> Contained {
        Contained::ungranted("trap", "call stack exhausted")
    }

    pub(super) fn giant_strings() -> Contained {
        Contained::ungranted("host-limit", "copy more than 262144 bytes")
    }

    pub(super) fn graph_path_injection() -> Contained {
        OwnTest(escapes::forged_ids_never_become_graph_paths_or_queries)
    }

    pub(super) fn host_call_flood() -> Contained {
        Contained::ungranted("host-limit", "host-call budget of 1000")
    }

    pub(super) fn identity_thief() -> Contained {
        OwnTest(escapes::a_plugin_posing_under_another_plugins_name_gets_none_of_its_state)
    }

    pub(super) fn infinite_loop() -> Contained {
        Contained::ungranted("fuel", "")
    }

    pub(super) fn memory_bomb() -> Contained {
        Contained::ungranted("memory", "")
    }

    pub(super) fn memory_refused() -> Contained {
        OwnTest(super::wasmtimes_own_work_is_not_counted_as_host_calls)
    }

    pub(super) fn message_stranger() -> Contained {
        Run {
            grants: &["messages:reply"],
            outcome: "plugin-error",
            detail: "denied: messages:reply only reaches",
        }
    }

    pub(super) fn oversized_data() -> Contained {
        OwnTest(escapes::nothing_a_plugin_hands_over_is_unbounded_or_reaches_a_record_unstripped)
    }

    pub(super) fn panic() -> Contained {
        Contained::ungranted("trap", "unreachable")
    }

    /// The load error names the plugin, the import and the capability.
    pub(super) fn undeclared_import() -> Contained {
        NotLoaded {
            error: &[
                "undeclared-import",
                "igloo:plugin/messaging",
                "messages:reply",
            ],
        }
    }

    /// Its types match no release: refused at load, with the reason.
    pub(super) fn unreleased_shape() -> Contained {
        NotLoaded {
            error: &[
                "unreleased-shape",
                "match no release of igloo:plugin@0.2.0",
                "expected record of",
            ],
        }
    }

    pub(super) fn wasi_escape() -> Contained {
        OwnTest(escapes::wasi_reaches_nothing_on_the_host_and_a_loop_of_wasi_calls_is_bounded)
    }

    pub(super) fn wasi_sleeper() -> Contained {
        OwnTest(
            stops::a_quarantine_stops_runs_waiting_for_a_slot_and_their_events_wait_for_the_plugin,
        )
    }
}

/// Every hostile plugin, with how it is contained.
fn every_hostile_plugin() -> Vec<(BuiltPlugin, Contained)> {
    let mut all = Vec::new();
    macro_rules! with_containment {
        ($name:ident, $plugin:expr) => {
            all.push(($plugin, hostile::$name()));
        };
    }
    // A hostile plugin missing from `mod hostile` fails to compile here.
    built::foreach_hostile!(with_containment);
    all
}

/// auto-reply beside every hostile plugin that has no test of its own, each
/// installed from a folder.
fn hostile_config(graph: &FakeGraph, plugins_dir: &std::path::Path) -> Config {
    let mut config = live_config(graph);
    for (plugin, contained) in every_hostile_plugin() {
        let grants = match contained {
            Contained::Run { grants, .. } => grants,
            Contained::NotLoaded { .. } => &[],
            Contained::OwnTest(_) => continue,
        };
        config
            .plugins
            .push(install_plugin(plugins_dir, &plugin, grants));
    }
    // Keep every hostile plugin running for this test.
    config.runtime.breaker_threshold = 1000;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_plugin_fails_alone_with_its_reason_while_the_good_one_answers() {
    let graph = FakeGraph::start().await;
    let plugins_dir = tempfile::tempdir().unwrap();
    let igloo = TestIgloo::start(hostile_config(&graph, plugins_dir.path())).await;

    let health = igloo.get_json("/healthz").await;
    assert_eq!(health["status"], "degraded");
    let failed: BTreeMap<&str, &str> = health["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "failed")
        .map(|p| (p["id"].as_str().unwrap(), p["error"].as_str().unwrap()))
        .collect();
    let not_loaded: BTreeMap<&str, &[&str]> = every_hostile_plugin()
        .into_iter()
        .filter_map(|(plugin, contained)| match contained {
            Contained::NotLoaded { error } => Some((plugin.name, error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed.keys().collect::<Vec<_>>(),
        not_loaded.keys().collect::<Vec<_>>(),
        "{failed:?}"
    );
    for (plugin, says) in not_loaded {
        let error = failed[plugin];
        for part in says {
            assert!(error.contains(part), "{plugin}: `{part}` in {error}");
        }
    }

    let senders = ["111", "222", "333"];
    for sender in senders {
        let response = igloo
            .post_webhook(&webhook::message(sender, "hello").body())
            .await;
        assert_eq!(response.status().as_u16(), 200);
    }
    igloo.wait_until_idle().await;

    let replies = graph.requests();
    let mut recipients: Vec<_> = replies
        .iter()
        .map(|r| r.body["recipient"]["id"].as_str().unwrap().to_owned())
        .collect();
    recipients.sort();
    assert_eq!(
        recipients, senders,
        "auto-reply answered everyone; the stranger got nothing"
    );

    for seq in 1..=3 {
        let runs: BTreeMap<String, (String, String)> = igloo
            .inbox
            .runs(seq)
            .await
            .unwrap()
            .into_iter()
            .map(|run| (run.plugin, (run.outcome, run.detail)))
            .collect();
        let (outcome, detail) = &runs["auto-reply"];
        assert_eq!((outcome.as_str(), detail.as_str()), ("ok", ""));
        for (plugin, contained) in every_hostile_plugin() {
            let name = plugin.name;
            match contained {
                Contained::Run {
                    outcome, detail, ..
                } => {
                    let (actual_outcome, actual_detail) = &runs[name];
                    assert_eq!(actual_outcome, outcome, "{name}: {actual_detail}");
                    assert!(actual_detail.contains(detail), "{name}: {actual_detail}");
                }
                Contained::NotLoaded { .. } => assert!(!runs.contains_key(name), "{name}"),
                Contained::OwnTest(_) => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_with_fuel_to_spare_is_stopped_by_the_wall_clock_deadline() {
    let graph = FakeGraph::start().await;
    let plugins_dir = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config.plugins = vec![install_plugin(
        plugins_dir.path(),
        &built::INFINITE_LOOP,
        &[],
    )];
    config.runtime.fuel = u64::MAX / 2;
    config.runtime.deadline_ms = 200;
    let igloo = TestIgloo::start(config).await;
    igloo
        .post_webhook(&webhook::message("111", "hello").body())
        .await;
    igloo.wait_until_idle().await;
    let runs = igloo.inbox.runs(1).await.unwrap();
    assert_eq!(runs[0].outcome, "deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_keeps_crashing_is_quarantined_and_its_events_wait_until_it_is_resumed() {
    let (graph, igloo, _plugins) = beside_auto_reply(&built::PANIC, &[], |config| {
        config.runtime.breaker_threshold = 2;
        config.runtime.breaker_cooldown_secs = 3600;
        config.server.admin_token = Some("operator-token-of-at-least-32-chars".into());
    })
    .await;

    for n in 1..=2 {
        igloo
            .post_webhook(&webhook::message(&format!("7000{n}"), "hello").body())
            .await;
        igloo.wait_until_idle().await;
    }
    assert_eq!(
        futures_outcomes(&igloo, "panic", 1..=2).await,
        ["trap", "trap"]
    );
    // Quarantined now: the third event is handled by auto-reply, and waits
    // for the panic plugin instead of being completed without it.
    igloo
        .post_webhook(&webhook::message("70003", "hello").body())
        .await;
    graph.wait_for(3).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        igloo.stats().await.pending,
        1,
        "kept pending for the quarantined plugin"
    );
    let runs = igloo.inbox.runs(3).await.unwrap();
    assert_eq!(
        runs.iter()
            .map(|run| run.plugin.as_str())
            .collect::<Vec<_>>(),
        ["auto-reply"],
        "no run of the quarantined plugin is recorded as done"
    );
    assert_eq!(graph.requests().len(), 3, "auto-reply was never held up");

    let health = igloo.get_json("/healthz").await;
    let panic = health["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "panic")
        .unwrap()
        .clone();
    assert_eq!(
        (health["status"].as_str(), panic["state"].as_str()),
        (Some("degraded"), Some("quarantined"))
    );
    let metrics = igloo.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"igloo_plugin_quarantined{plugin="panic"} 1"#),
        "{metrics}"
    );

    let resume = |token: Option<&'static str>| {
        let mut request = igloo
            .client
            .post(format!("{}/admin/plugins/panic/resume", igloo.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(resume(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(resume(Some("guess")).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        resume(Some("operator-token-of-at-least-32-chars"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    igloo.wait_until_idle().await;
    assert_eq!(
        futures_outcomes(&igloo, "panic", 3..=3).await,
        ["trap"],
        "the event it missed ran once it was resumed"
    );
    assert_eq!(graph.requests().len(), 3, "auto-reply did not answer twice");
}

async fn futures_outcomes(
    igloo: &TestIgloo,
    plugin: &str,
    seqs: std::ops::RangeInclusive<i64>,
) -> Vec<String> {
    let mut outcomes = Vec::new();
    for seq in seqs {
        let runs = igloo.inbox.runs(seq).await.unwrap();
        outcomes.push(
            runs.into_iter()
                .find(|run| run.plugin == plugin)
                .unwrap()
                .outcome,
        );
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_off_without_a_token() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(live_config(&graph)).await;
    let response = igloo
        .client
        .post(format!("{}/admin/plugins/auto-reply/resume", igloo.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_plugin_makes_hundreds_of_events_wait_in_the_inbox_none_lost() {
    const EVENTS: usize = 300;
    // Meta answers slowly and auto-reply may run only 4 at a time.
    let graph = FakeGraph::start_with_delay(Duration::from_millis(25)).await;
    let mut config = live_config(&graph);
    config.runtime.max_concurrency_per_plugin = 4;
    config.runtime.max_queued_events = 32;
    let igloo = TestIgloo::start(config).await;

    let posts = (0..EVENTS).map(|n| {
        let body = webhook::message(&format!("7000{n}"), "hello").body();
        let igloo = &igloo;
        async move { igloo.post_webhook(&body).await.status().as_u16() }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(
        statuses.iter().all(|status| *status == 200),
        "every sender got 200: {statuses:?}"
    );
    assert_eq!(
        igloo.stats().await.deliveries,
        EVENTS as u64,
        "every body committed before answering"
    );
    let split = igloo_tests::eventually("every body split into events", || async {
        let stats = igloo.stats().await;
        (stats.unsplit == 0).then_some(stats)
    })
    .await;
    assert_eq!(split.events, EVENTS as u64);
    assert!(
        split.pending > 0,
        "events wait in the inbox while the plugin is saturated"
    );

    let done = igloo.wait_until_idle().await;
    assert_eq!(done.runs, EVENTS as u64);
    let requests = graph.wait_for(EVENTS).await;
    let mut recipients: Vec<_> = requests
        .iter()
        .map(|r| r.body["recipient"]["id"].as_str().unwrap().to_owned())
        .collect();
    recipients.sort();
    let mut expected: Vec<String> = (0..EVENTS).map(|n| format!("7000{n}")).collect();
    expected.sort();
    assert_eq!(recipients, expected, "every event answered exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_receipts() {
    let (_graph, igloo, _plugins) = beside_auto_reply(&built::PANIC, &[], |_| {}).await;
    for _ in 0..3 {
        igloo
            .post_webhook(&webhook::message("111", "hello").body())
            .await;
    }
    igloo.post_webhook(b"{not json").await;
    igloo.wait_until_idle().await;

    let metrics = eventually("the receipts in /metrics", || async {
        let text = igloo.get_text("/metrics").await;
        text.contains(r#"igloo_plugin_runs_total{plugin="panic",outcome="trap"} 3"#)
            .then_some(text)
    })
    .await;
    for line in [
        r#"igloo_webhooks_total{status="accepted"} 3"#,
        r#"igloo_webhooks_total{status="malformed"} 1"#,
        r#"igloo_events_stored_total{kind="message"} 3"#,
        r#"igloo_plugin_runs_total{plugin="auto-reply",outcome="ok"} 3"#,
        r#"igloo_plugin_run_seconds_count{plugin="auto-reply"} 3"#,
        "igloo_inbox_pending_events 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    // Its own three calls a run, and whatever WASI calls std makes.
    let calls_line = metrics
        .lines()
        .find(|l| l.starts_with(r#"igloo_plugin_host_calls_total{plugin="auto-reply"}"#))
        .unwrap();
    let calls: u64 = calls_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((9..30).contains(&calls), "{calls_line}");
    let fuel_line = metrics
        .lines()
        .find(|l| l.starts_with(r#"igloo_plugin_fuel_total{plugin="auto-reply"}"#))
        .unwrap();
    let fuel: u64 = fuel_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(fuel > 0, "{fuel_line}");
    let memory_line = metrics
        .lines()
        .find(|l| l.starts_with(r#"igloo_plugin_peak_memory_bytes{plugin="auto-reply"}"#))
        .unwrap();
    assert!(!memory_line.ends_with(" 0"), "{memory_line}");
}

/// Growing memory past the cap (refused, 2,000 times) and running through
/// several time slices cross into wasmtime's runtime, but they are not
/// host calls: the budget and the receipt count only igloo's and WASI's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmtimes_own_work_is_not_counted_as_host_calls() {
    let (_graph, igloo, _plugins) = beside_auto_reply(&built::MEMORY_REFUSED, &[], |config| {
        config.runtime.max_host_calls = 100;
        config.runtime.fuel = 2_000_000_000;
    })
    .await;
    igloo
        .post_webhook(&webhook::message("111", "hello").body())
        .await;
    igloo.wait_until_idle().await;
    let runs = igloo.inbox.runs(1).await.unwrap();
    let run = runs
        .iter()
        .find(|run| run.plugin == "memory-refused")
        .unwrap();
    assert_eq!(
        (run.outcome.as_str(), run.detail.as_str()),
        ("ok", ""),
        "{runs:?}"
    );
    let metrics = igloo.get_text("/metrics").await;
    let calls_line = metrics
        .lines()
        .find(|l| l.starts_with(r#"igloo_plugin_host_calls_total{plugin="memory-refused"}"#))
        .unwrap_or_else(|| panic!("no host calls line in {metrics}"));
    let calls: u64 = calls_line.rsplit(' ').next().unwrap().parse().unwrap();
    // Its one `log`, and the few WASI calls std makes.
    assert!(calls < 10, "{calls_line}");
}
