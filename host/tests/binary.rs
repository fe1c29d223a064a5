//! The real `igloo` binary, end to end: started as an operator starts it
//! (`igloo serve --config …`), fed with `igloo simulate`, driven with
//! `igloo events replay`, and read back over HTTP. The rest of the suite
//! (`tests/`) runs the same server in-process; this proves the binary
//! itself keeps the promises that matter most across releases:
//!
//! - a plugin built with every released SDK loads and answers;
//! - wasmtime's own work (memory refused, time slices) is no host call;
//! - a replay gives an exclusive group's skipped members their turn back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ADMIN_TOKEN: &str = "binary-test-admin-token-of-32-characters";

/// What the probe's manifest declares, all granted.
const PROBE_GRANTS: [&str; 7] = [
    "messages:reply",
    "comments:reply",
    "profiles:read",
    "profiles:public-lookup",
    "kv",
    "schedule",
    "conversations:control",
];

/// A running `igloo serve`, killed when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the binary with `args`; its output, which must say it succeeded.
fn igloo(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_igloo"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run igloo");
    assert!(
        output.status.success(),
        "igloo {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A port free on loopback now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `igloo serve --config config`, once `/healthz` answers.
async fn serve(config: &Path, port: u16, log: &Path) -> Served {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_igloo"))
        .args(["serve", "--config"])
        .arg(config)
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start igloo serve");
    let served = Served {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    eventually("igloo to answer /healthz", async || {
        let response = reqwest::get(format!("{}/healthz", served.url)).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    served
}

/// Poll `check` until it answers, for up to a minute.
async fn eventually<T>(what: &str, check: impl AsyncFn() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET `path` as the operator.
async fn get(served: &Served, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", served.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

/// The runs recorded on event `seq`, as `(plugin, outcome)`, sorted.
async fn runs_of(served: &Served, seq: u64) -> Vec<(String, String)> {
    let detail: Value = get(served, &format!("/admin/events/{seq}"))
        .await
        .json()
        .await
        .unwrap();
    let mut runs: Vec<(String, String)> = detail["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|run| {
                    (
                        run["plugin"].as_str().unwrap_or_default().to_owned(),
                        run["outcome"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    runs
}

/// The runs on event 1 once there are `count`, or as they stand after a
/// minute (the assertion that follows says what is missing).
async fn settled_runs(served: &Served, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = runs_of(served, 1).await;
        if runs.len() >= count || Instant::now() > deadline {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/plugins")
}

/// Write `plugin`'s manifest and component into `root/id`.
fn install(root: &Path, id: &str, manifest: &str, component: &[u8]) -> PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    std::fs::write(dir.join("plugin.wasm"), component).unwrap();
    dir
}

/// The config: an auto-reply built with each released SDK, the plugin
/// whose memory is refused, and an exclusive group of two probes, the
/// first playing `first_role`.
fn config(root: &Path, port: u16, first_role: &str) -> PathBuf {
    use igloo_plugin_artifacts::{MEMORY_REFUSED, PROBE};
    let memory = install(
        root,
        "memory-refused",
        MEMORY_REFUSED.manifest,
        MEMORY_REFUSED.component,
    );
    let probe = install(root, "probe", PROBE.manifest, PROBE.component);
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n\n\
         [storage]\ndata_dir = {data:?}\n\n\
         [runtime]\nretry_schedule_ms = []\nfuel = 2000000000\nmax_host_calls = 100\n\n",
        data = root.join("data"),
    );
    for release in ["v0.1.0-first", "v0.1.0", "v0.2.0"] {
        let path = fixtures().join(release).join("auto-reply");
        let id = release.replace('.', "_");
        text += &format!(
            "[[plugins]]\nid = \"auto-reply-{id}\"\npath = {path:?}\n\
             grants = [\"messages:reply\"]\nsettings = {{ reply = \"{release}: {{text}}\" }}\n\n"
        );
    }
    text += &format!("[[plugins]]\nid = \"memory-refused\"\npath = {memory:?}\n\n");
    for (id, role) in [("first", first_role), ("second", "second")] {
        text += &format!(
            "[[plugins]]\nid = \"{id}\"\npath = {probe:?}\ngrants = {PROBE_GRANTS:?}\n\
             settings = {{ role = \"{role}\" }}\n\n"
        );
    }
    text += "[[exclusive_groups]]\nname = \"keywords\"\nplugins = [\"first\", \"second\"]\n";
    let path = root.join(format!("igloo-{first_role}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_every_released_api_counts_only_host_calls_and_replays_group_turns() {
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let broken = config(root.path(), port, "broken");
    let served = serve(&broken, port, &root.path().join("first.log")).await;

    let health: Value = get(&served, "/healthz").await.json().await.unwrap();
    for (release, api) in [
        ("v0.1.0-first", "igloo:plugin@0.1.0"),
        ("v0.1.0", "igloo:plugin@0.1.0"),
        ("v0.2.0", "igloo:plugin@0.2.0"),
    ] {
        let id = format!("auto-reply-{}", release.replace('.', "_"));
        let plugin = health["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|plugin| plugin["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} missing: {health}"));
        assert_eq!(plugin["state"], "active", "{health}");
        assert_eq!(plugin["api"], api, "{health}");
    }

    // `first` (role "broken") fails for good on the command; `second` would
    // answer it; every auto-reply answers.
    let command =
        r#"{"op": "kv_list", "prefix": "", "then": {"fixed": "pass", "second": "handle"}}"#;
    igloo(&[
        "simulate",
        "--config",
        broken.to_str().unwrap(),
        "--from",
        "1001",
        "--text",
        command,
    ]);
    let runs = settled_runs(&served, 6).await;
    let expected = |first: &str, second: &str| {
        let mut runs: Vec<(String, String)> = [
            ("auto-reply-v0_1_0", "ok"),
            ("auto-reply-v0_1_0-first", "ok"),
            ("auto-reply-v0_2_0", "ok"),
            ("first", first),
            ("memory-refused", "ok"),
            ("second", second),
        ]
        .iter()
        .map(|(plugin, outcome)| ((*plugin).to_owned(), (*outcome).to_owned()))
        .collect();
        runs.sort();
        runs
    };
    assert_eq!(runs, expected("plugin-error", "skipped"));
    let calls: Value = get(&served, "/dry-run/calls").await.json().await.unwrap();
    for release in ["v0.1.0-first", "v0.1.0", "v0.2.0"] {
        assert!(
            calls.to_string().contains(&format!("{release}: {{")),
            "the {release} auto-reply answered: {calls}"
        );
    }
    let metrics = get(&served, "/metrics").await.text().await.unwrap();
    let host_calls: u64 = metrics
        .lines()
        .find(|line| line.starts_with(r#"igloo_plugin_host_calls_total{plugin="memory-refused"}"#))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("memory-refused's host calls in {metrics}"));
    assert!(
        host_calls < 10,
        "one log and std's few WASI calls: {host_calls}"
    );
    drop(served);

    // The operator fixes `first` and replays the dead letter, without
    // --force: `first` now passes, and `second` gets its turn back.
    let fixed = config(root.path(), port, "fixed");
    let served = serve(&fixed, port, &root.path().join("second.log")).await;
    igloo(&[
        "events",
        "--url",
        &served.url,
        "--admin-token",
        ADMIN_TOKEN,
        "replay",
        "1",
    ]);
    let runs = eventually("the replay to reach the group's next member", async || {
        let runs = runs_of(&served, 1).await;
        runs.contains(&("second".into(), "ok".into()))
            .then_some(runs)
    })
    .await;
    assert_eq!(runs, expected("passed", "ok"));
}
