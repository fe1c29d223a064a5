//! What the integration tests share: a fake Graph API that records every
//! request over real HTTP, and the real igloo server started on port 0.

mod browser;
mod fake_graph;
mod probe;
mod server;
pub mod webhook;

pub use browser::Browser;
pub use fake_graph::{AccountSetup, CONNECTED_ACCOUNT_ID, FakeGraph, RecordedRequest, SentMessage};
pub use probe::{PROBE_GRANTS, install_probe};
pub use server::{
    ACCESS_TOKEN, ACCOUNT_ID, APP_SECRET, OPERATOR_TOKEN, TOKEN_KEY, TestIgloo, VERIFY_TOKEN,
    live_config,
};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use igloo::config::{PluginConfig, PluginSource};

/// How long a test waits for something asynchronous before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    igloo::clock::now_ms()
}

/// A fixture from this repository's `tests/fixtures/webhooks/`, with its
/// timestamps moved to the last hour so that messaging windows are open,
/// as they would be for live traffic. The same
/// name gives the same bytes for the whole test run, so redelivering a
/// fixture is a real redelivery.
pub fn fixture(name: &str) -> Vec<u8> {
    static FRESH: Mutex<Option<HashMap<String, Vec<u8>>>> = Mutex::new(None);
    let mut fresh = FRESH.lock().unwrap_or_else(|poison| poison.into_inner());
    fresh
        .get_or_insert_with(HashMap::new)
        .entry(name.to_owned())
        .or_insert_with(|| freshen(&raw_fixture(name)))
        .clone()
}

/// A fixture exactly as stored.
pub fn raw_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/webhooks/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// `body` with every `"time"` and `"timestamp"` number shifted by whole
/// hours so the latest lies within the last hour; order and spacing are
/// kept, and so is every other byte.
pub fn freshen(body: &[u8]) -> Vec<u8> {
    const HOUR_MS: u64 = 3600 * 1000;
    let text = std::str::from_utf8(body).expect("fixtures are UTF-8");
    let stamps = timestamp_spans(text);
    let as_ms = |value: u64| {
        if value < 100_000_000_000 {
            value * 1000
        } else {
            value
        }
    };
    let Some(latest) = stamps.iter().map(|&(_, _, value)| as_ms(value)).max() else {
        return body.to_vec();
    };
    let shift = now_ms().saturating_sub(latest) / HOUR_MS * HOUR_MS;
    let mut out = String::with_capacity(text.len() + 16);
    let mut at = 0;
    for (start, end, value) in stamps {
        out.push_str(&text[at..start]);
        let shifted = if value < 100_000_000_000 {
            value + shift / 1000
        } else {
            value + shift
        };
        out.push_str(&shifted.to_string());
        at = end;
    }
    out.push_str(&text[at..]);
    out.into_bytes()
}

/// Where the numbers of `"time": N` and `"timestamp": N` are.
fn timestamp_spans(text: &str) -> Vec<(usize, usize, u64)> {
    let mut spans = Vec::new();
    for key in ["\"time\"", "\"timestamp\""] {
        let mut from = 0;
        while let Some(found) = text[from..].find(key) {
            let after_key = from + found + key.len();
            from = after_key;
            let rest = &text[after_key..];
            let value_at = rest.len() - rest.trim_start().len();
            let Some(rest) = rest.trim_start().strip_prefix(':') else {
                continue;
            };
            let start = after_key + value_at + 1 + (rest.len() - rest.trim_start().len());
            let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
            if let Ok(value) = text[start..start + digits].parse() {
                spans.push((start, start + digits, value));
            }
        }
    }
    spans.sort_unstable();
    spans
}

/// Install a built plugin as an operator would, under its own name as id:
/// a folder holding `plugin.toml` and `plugin.wasm`, under `root`.
pub fn install_plugin(
    root: &std::path::Path,
    plugin: &igloo_plugin_artifacts::BuiltPlugin,
    grants: &[&str],
) -> PluginConfig {
    install_plugin_as(root, plugin.name, plugin, grants)
}

/// igloo on [`live_config`], whose auto-reply answers every message, with
/// `plugin` installed beside it with `grants`, once `adjust` has changed the
/// config. Returns the fake Graph API, igloo, and the folder the plugin is
/// installed in (keep it while igloo runs).
pub async fn beside_auto_reply(
    plugin: &igloo_plugin_artifacts::BuiltPlugin,
    grants: &[&str],
    adjust: impl FnOnce(&mut igloo::config::Config),
) -> (FakeGraph, TestIgloo, tempfile::TempDir) {
    let graph = FakeGraph::start().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut config = live_config(&graph);
    config
        .plugins
        .push(install_plugin(plugins.path(), plugin, grants));
    adjust(&mut config);
    let igloo = TestIgloo::start(config).await;
    (graph, igloo, plugins)
}

/// [`install_plugin`] with the operator's id `id`.
pub fn install_plugin_as(
    root: &std::path::Path,
    id: &str,
    plugin: &igloo_plugin_artifacts::BuiltPlugin,
    grants: &[&str],
) -> PluginConfig {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), plugin.manifest).unwrap();
    std::fs::write(dir.join("plugin.wasm"), plugin.component).unwrap();
    PluginConfig::new(id, PluginSource::Path(dir), grants)
}

/// Poll `check` until it returns `Some`, or panic after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
