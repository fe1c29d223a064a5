//! What the integration tests share: a fake Graph API that records every
//! request over real HTTP, and the real igloo server started on port 0.

mod fake_graph;
mod probe;
mod server;

pub use fake_graph::{FakeGraph, RecordedRequest};
pub use probe::{comment_body, install_probe, message_body};
pub use server::{ACCESS_TOKEN, ACCOUNT_ID, APP_SECRET, TestIgloo, VERIFY_TOKEN, live_config};

use std::time::Duration;

/// How long a test waits for something asynchronous before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A fixture from `../shared/fixtures/webhooks/`, as raw bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/fixtures/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// Install a built plugin as an operator would: a folder holding
/// `plugin.toml` and `plugin.wasm`, under `root`.
pub fn install_plugin(
    root: &std::path::Path,
    plugin: &igloo_plugin_artifacts::BuiltPlugin,
    grants: &[&str],
) -> igloo::config::PluginConfig {
    let dir = root.join(plugin.name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), plugin.manifest).unwrap();
    std::fs::write(dir.join("plugin.wasm"), plugin.component).unwrap();
    igloo::config::PluginConfig {
        source: igloo::config::PluginSource::Path(dir),
        grants: grants.iter().map(|grant| grant.to_string()).collect(),
        settings: Default::default(),
    }
}

/// GET `path` on `base` and parse the JSON answer.
pub async fn get_json(client: &reqwest::Client, base: &str, path: &str) -> serde_json::Value {
    client
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
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
