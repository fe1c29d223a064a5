//! igloo's configuration: one TOML file, overridable by `IGLOO_*` environment
//! variables, with embedded defaults that run without any file at all.
//!
//! Every key is documented in `examples/igloo.toml`; keep the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The app secret used when none is configured and igloo runs against the
/// sandbox, so that anyone can sign test webhooks. Never valid in live mode.
pub const SANDBOX_APP_SECRET: &str = "igloo-sandbox-secret";
/// The verify token used for the handshake when none is configured, in
/// sandbox mode only.
pub const SANDBOX_VERIFY_TOKEN: &str = "igloo-sandbox-verify-token";

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// Webhook verification.
    pub webhook: WebhookConfig,
    /// Where igloo keeps its data.
    pub storage: StorageConfig,
    /// Meta's Graph API, or the sandbox that stands in for it.
    pub graph: GraphConfig,
    /// The Instagram business accounts igloo acts for, keyed by account id
    /// (the `entry.id` of their webhooks).
    pub accounts: BTreeMap<String, AccountConfig>,
    /// Sandbox limits for every plugin run.
    pub runtime: RuntimeConfig,
    /// The User Profile API's cache.
    pub profiles: ProfilesConfig,
    /// The third-party profile provider.
    pub public_profiles: PublicProfilesConfig,
    /// Quotas on plugins' state.
    pub kv: KvConfig,
    /// The plugins to run, in order. Defaults to the example plugins.
    pub plugins: Vec<PluginConfig>,
}

/// The HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest webhook body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Bearer token for the `/admin` routes; they are refused without one.
    pub admin_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            // Meta batches up to 1000 updates per POST: a few MiB at most.
            max_body_bytes: 4 * 1024 * 1024,
            admin_token: None,
        }
    }
}

/// Webhook verification.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The token Meta echoes in the subscription handshake.
    pub verify_token: Option<String>,
    /// App secrets that may sign webhooks (the Instagram app secret and/or
    /// the Meta app secret). Any one of them verifies a delivery.
    pub app_secrets: Vec<String>,
    /// Also accept the legacy `X-Hub-Signature: sha1=…` header when no
    /// SHA-256 signature is sent. Off by default.
    pub accept_sha1: bool,
}

/// Where igloo keeps its data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Folder for the SQLite database; created if missing.
    pub data_dir: PathBuf,
    /// How long handled events are kept, in hours, so that Meta's
    /// redeliveries (retried for up to 36 hours) are recognised.
    pub dedupe_retention_hours: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("igloo-data"),
            dedupe_retention_hours: 48,
        }
    }
}

/// Whether outbound calls reach Meta or are only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphMode {
    /// Record and print every outbound call instead of sending it.
    #[default]
    Sandbox,
    /// Send outbound calls to the Graph API.
    Live,
}

/// Meta's Graph API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// `sandbox` (the default) or `live`.
    pub mode: GraphMode,
    /// Base URL for accounts using Instagram Login.
    pub instagram_base_url: String,
    /// Base URL for accounts using Facebook Login.
    pub facebook_base_url: String,
    /// Graph API version, e.g. `v24.0`.
    pub api_version: String,
    /// Timeout of one outbound request, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            mode: GraphMode::Sandbox,
            instagram_base_url: "https://graph.instagram.com".into(),
            facebook_base_url: "https://graph.facebook.com".into(),
            api_version: "v24.0".into(),
            timeout_ms: 10_000,
        }
    }
}

/// How an account was connected, which decides the Graph API host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginKind {
    /// Instagram API with Instagram Login (graph.instagram.com).
    #[default]
    Instagram,
    /// Instagram API with Facebook Login (graph.facebook.com).
    Facebook,
}

/// One Instagram business account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountConfig {
    /// The access token igloo uses for this account. Plugins never see it.
    pub access_token: Option<String>,
    /// How the account was connected.
    pub login: LoginKind,
}

/// Sandbox limits: each is the default for every plugin and the ceiling a
/// plugin's manifest may lower but not raise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Wall-clock budget of one run, in milliseconds.
    pub deadline_ms: u64,
    /// Instruction budget of one run (wasmtime fuel).
    pub fuel: u64,
    /// Largest linear memory of one instance, in bytes.
    pub max_memory_bytes: usize,
    /// Largest table of one instance, in elements.
    pub max_table_elements: usize,
    /// Host functions one run may call.
    pub max_host_calls: u32,
    /// Longest string one host call may take from a plugin, in bytes.
    pub max_string_bytes: usize,
    /// How many instances may exist at once (sizes the pooling allocator).
    pub max_instances: u32,
    /// Runs of one plugin at once.
    pub max_concurrency_per_plugin: u32,
    /// Events of one account being handled at once.
    pub max_in_flight_per_account: u32,
    /// Events taken from the inbox into memory at once; the rest wait in
    /// the inbox.
    pub max_queued_events: u32,
    /// Crashes in a row (traps, deadlines, budgets) that quarantine a plugin.
    pub breaker_threshold: u32,
    /// How long a quarantine lasts, in seconds.
    pub breaker_cooldown_secs: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            deadline_ms: 1_000,
            fuel: 100_000_000,
            max_memory_bytes: 16 * 1024 * 1024,
            max_table_elements: 10_000,
            max_host_calls: 1_000,
            max_string_bytes: 256 * 1024,
            max_instances: 256,
            max_concurrency_per_plugin: 32,
            max_in_flight_per_account: 64,
            max_queued_events: 10_000,
            breaker_threshold: 5,
            breaker_cooldown_secs: 60,
        }
    }
}

/// The User Profile API's cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfilesConfig {
    /// How long a fetched profile is reused, in seconds.
    pub cache_ttl_secs: u64,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        Self {
            cache_ttl_secs: 3600,
        }
    }
}

/// The third-party (HikerAPI-compatible) profile provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublicProfilesConfig {
    /// The provider's base URL.
    pub base_url: String,
    /// The provider's access key (`x-access-key`); lookups fail without one.
    pub access_key: Option<String>,
    /// Lookups each plugin may make per hour.
    pub requests_per_hour: u32,
    /// Timeout of one lookup, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for PublicProfilesConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.hikerapi.com".into(),
            access_key: None,
            requests_per_hour: 100,
            timeout_ms: 10_000,
        }
    }
}

/// Quotas on each plugin's state, per account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvConfig {
    /// Live keys.
    pub max_keys: u64,
    /// Bytes of keys and values together.
    pub max_bytes: u64,
    /// Bytes of one key.
    pub max_key_bytes: usize,
    /// Bytes of one value.
    pub max_value_bytes: usize,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            max_keys: 10_000,
            max_bytes: 16 * 1024 * 1024,
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
        }
    }
}

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginSource {
    /// One of the example plugins built into the binary, by name.
    Builtin(String),
    /// A folder holding `plugin.toml` and `plugin.wasm`.
    Path(PathBuf),
}

/// One plugin the operator runs, and what it is granted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Where the plugin comes from.
    #[serde(flatten)]
    pub source: PluginSource,
    /// Capabilities granted to it. It must declare each in its manifest too.
    #[serde(default)]
    pub grants: Vec<String>,
    /// The plugin's own settings, readable through its `config` interface.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl Config {
    /// Load the configuration: embedded defaults, then the TOML file if one
    /// is given, then `IGLOO_*` environment variables (`__` separates
    /// levels: `IGLOO_GRAPH__MODE=live`,
    /// `IGLOO_ACCOUNTS__17841400000000001__ACCESS_TOKEN=…`).
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::embedded_defaults()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("IGLOO_").split("__"))
            .extract()
            .map_err(Box::new)
    }

    /// The configuration with no file at all: the example plugins, each
    /// granted what its manifest declares, against the sandbox.
    pub fn embedded_defaults() -> Self {
        Config {
            plugins: vec![PluginConfig {
                source: PluginSource::Builtin("auto-reply".into()),
                grants: vec!["messages:reply".into()],
                settings: BTreeMap::new(),
            }],
            ..Config::default()
        }
    }

    /// The app secrets to verify with: the configured ones, or the sandbox
    /// secret when none is configured in sandbox mode.
    pub fn effective_app_secrets(&self) -> Vec<String> {
        if self.webhook.app_secrets.is_empty() && self.graph.mode == GraphMode::Sandbox {
            vec![SANDBOX_APP_SECRET.to_owned()]
        } else {
            self.webhook.app_secrets.clone()
        }
    }

    /// The handshake token: the configured one, or the sandbox token in
    /// sandbox mode.
    pub fn effective_verify_token(&self) -> Option<String> {
        match (&self.webhook.verify_token, self.graph.mode) {
            (Some(token), _) => Some(token.clone()),
            (None, GraphMode::Sandbox) => Some(SANDBOX_VERIFY_TOKEN.to_owned()),
            (None, GraphMode::Live) => None,
        }
    }

    /// Check what serde cannot: the settings that live mode requires.
    pub fn validate(&self) -> Result<(), String> {
        if self.graph.mode == GraphMode::Live {
            if self.webhook.app_secrets.is_empty() {
                return Err("graph.mode is live but webhook.app_secrets is empty".into());
            }
            if self.webhook.verify_token.is_none() {
                return Err("graph.mode is live but webhook.verify_token is not set".into());
            }
        }
        if self.storage.dedupe_retention_hours < 36 {
            return Err(
                "storage.dedupe_retention_hours must be at least 36: Meta retries for 36 hours"
                    .into(),
            );
        }
        if self.runtime.max_instances == 0 {
            return Err("runtime.max_instances must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_config_parses_and_sets_every_section() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/igloo.toml");
        let config = Config::load(Some(&path)).expect("examples/igloo.toml parses");
        assert_eq!(config.graph.mode, GraphMode::Live);
        assert_eq!(config.graph.api_version, "v24.0");
        assert!(!config.accounts.is_empty());
        assert!(!config.plugins.is_empty());
        config
            .validate()
            .expect("the example is a valid live config");
    }

    #[test]
    fn no_file_means_sandbox_defaults_with_the_example_plugin() {
        let config = Config::embedded_defaults();
        assert_eq!(config.graph.mode, GraphMode::Sandbox);
        assert_eq!(config.effective_app_secrets(), vec![SANDBOX_APP_SECRET]);
        assert_eq!(
            config.plugins[0].source,
            PluginSource::Builtin("auto-reply".into())
        );
        config.validate().unwrap();
    }

    #[test]
    fn live_mode_without_secrets_is_refused() {
        let mut config = Config::default();
        config.graph.mode = GraphMode::Live;
        let error = config.validate().unwrap_err();
        assert!(error.contains("app_secrets"), "{error}");
        assert!(config.effective_app_secrets().is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("igloo.toml");
        std::fs::write(&path, "[server]\nlisten_on = \"127.0.0.1:1\"\n").unwrap();
        let error = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("listen_on"), "{error}");
    }
}
