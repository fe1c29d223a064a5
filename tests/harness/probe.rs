//! Driving the test-only `probe` plugin: the text of a message or comment
//! is a JSON command naming one host call; the probe makes it and reports
//! the result as its run's detail.

use igloo::config::{PluginConfig, PluginSource};
use serde_json::Value;

use crate::{TestIgloo, webhook};

/// The capabilities the probe imports (its default manifest's): the least
/// it loads with.
pub const PROBE_GRANTS: &[&str] = &[
    "messages:reply",
    "comments:reply",
    "profiles:read",
    "profiles:public-lookup",
    "kv",
];

/// Capabilities of interfaces the probe imports that no test varies.
const ALWAYS_GRANTED: &[&str] = &["schedule", "conversations:control"];

/// Install the probe as `name`, declaring and granted `capabilities`, and
/// [`ALWAYS_GRANTED`].
pub fn install_probe(root: &std::path::Path, name: &str, capabilities: &[&str]) -> PluginConfig {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut capabilities = capabilities.to_vec();
    for always in ALWAYS_GRANTED {
        if !capabilities.contains(always) {
            capabilities.push(always);
        }
    }
    let quoted: Vec<String> = capabilities.iter().map(|c| format!("{c:?}")).collect();
    let manifest = format!(
        "name = {name:?}\nversion = \"0.1.0\"\nevents = [\"message\", \"comment\"]\ncapabilities = [{}]\n",
        quoted.join(", ")
    );
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    std::fs::write(
        dir.join("plugin.wasm"),
        igloo_plugin_artifacts::PROBE.component,
    )
    .unwrap();
    PluginConfig::new(name, PluginSource::Path(dir), &capabilities)
}

impl TestIgloo {
    /// Post `body`, wait until it is handled, and return what `plugin`'s
    /// run on it reported (the probe's result, or another plugin's error).
    pub async fn run_and_report(&self, body: &[u8], plugin: &str) -> String {
        // Whatever was posted before is stored first, so this body's event
        // is the next one.
        let before = self.wait_until_idle().await.events;
        assert_eq!(self.post_webhook(body).await.status().as_u16(), 200);
        self.wait_until_idle().await;
        let seq = (before + 1) as i64;
        let runs = self.inbox.runs(seq).await.unwrap();
        let run = runs
            .iter()
            .find(|run| run.plugin == plugin)
            .unwrap_or_else(|| panic!("no run of {plugin}: {runs:?}"));
        run.detail.clone()
    }

    /// Have the probe `plugin` run `command` on a message from `sender`.
    pub async fn probe(&self, plugin: &str, sender: &str, command: Value) -> String {
        let body = webhook::message(sender, &command.to_string()).body();
        self.run_and_report(&body, plugin).await
    }

    /// Have the probe `plugin` run `command` on comment `comment_id` by `author`.
    pub async fn probe_on_comment(
        &self,
        plugin: &str,
        comment_id: &str,
        author: &str,
        command: Value,
    ) -> String {
        let body = webhook::comment(comment_id, author, &command.to_string()).body();
        self.run_and_report(&body, plugin).await
    }
}
