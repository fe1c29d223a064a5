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

use crate::capabilities::{
    KvConfig, OptOutConfig, OptOutRules, ProfilesConfig, PublicProfilesConfig, TimersConfig,
};
pub use crate::dispatch::{ExclusiveGroup, GroupPlace};
use crate::graph::{IceBreaker, MenuItem};

/// The app secret used when none is configured and igloo runs as a dry run,
/// so that anyone can sign test webhooks. Never valid in live mode.
pub const DRY_RUN_APP_SECRET: &str = "igloo-dry-run-secret";
/// The verify token used for the handshake when none is configured, in a
/// dry run only.
pub const DRY_RUN_VERIFY_TOKEN: &str = "igloo-dry-run-verify-token";

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
    /// Meta's Graph API, or the dry run that stands in for it.
    pub graph: GraphConfig,
    /// The Instagram business accounts igloo acts for, keyed by account id
    /// (the `entry.id` of their webhooks).
    pub accounts: BTreeMap<String, AccountConfig>,
    /// Limits of every plugin run.
    pub runtime: RuntimeConfig,
    /// The User Profile API's cache.
    pub profiles: ProfilesConfig,
    /// The third-party profile provider.
    pub public_profiles: PublicProfilesConfig,
    /// Quotas on plugins' state.
    pub kv: KvConfig,
    /// The plugins to run, in order. Defaults to the example plugins.
    pub plugins: Vec<PluginConfig>,
    /// Plugins that answer an event once between them, in priority order.
    pub exclusive_groups: Vec<ExclusiveGroup>,
    /// Keywords that opt a person out of automated messages, and back in.
    pub opt_out: OptOutConfig,
    /// Limits on plugins' timers.
    pub timers: TimersConfig,
    /// How access tokens are kept and refreshed.
    pub tokens: TokensConfig,
    /// Every account's ice breakers and persistent menu, unless its own
    /// `accounts.<id>.messenger_profile` says otherwise.
    pub messenger_profile: MessengerProfileConfig,
    /// Keeping accounts' subscriptions and profiles in step.
    pub sync: SyncConfig,
    /// Reading recent comments back, for those webhooks missed.
    pub reconcile: ReconcileConfig,
    /// Business Login for Instagram: accounts connected from the dashboard.
    pub oauth: OauthConfig,
    /// igloo's own log.
    pub log: LogConfig,
    /// Where bundles are fetched from.
    #[serde(default)]
    pub bundles: BundlesConfig,
}

/// Fetching bundles by reference.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundlesConfig {
    /// `host:port` of OCI registries (and bundle servers) reached over
    /// plain HTTP: a registry on the operator's own network. Every other
    /// is reached over HTTPS.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
}

/// igloo's own log, on standard output.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (the default) or `json`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event, `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line (for Loki, Elasticsearch, Datadog, …):
    /// `timestamp`, `level`, `target`, `fields` (the message among them).
    Json,
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
    /// At least [`MIN_ADMIN_TOKEN_CHARS`] characters.
    pub admin_token: Option<String>,
    /// Connections served at once; further ones wait in the listen backlog
    /// until one closes, so igloo never runs out of descriptors.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and the longest a
    /// kept-alive connection may sit idle between requests, in milliseconds.
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body, in milliseconds.
    pub body_timeout_ms: u64,
    /// Longest a connection is kept open, in milliseconds, however busy:
    /// it then finishes the request under way and closes, so a client that
    /// stops reading its answers cannot hold a connection.
    pub max_connection_age_ms: u64,
    /// On SIGTERM or Ctrl-C, how long plugin runs already under way may
    /// take to finish before igloo exits, in milliseconds. Events not
    /// finished by then stay pending and are handled after a restart.
    pub drain_timeout_ms: u64,
}

/// The shortest admin token accepted: long enough not to be guessed.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            // Meta batches up to 1000 updates per POST: a few MiB at most.
            max_body_bytes: 4 * 1024 * 1024,
            admin_token: None,
            max_connections: 512,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            max_connection_age_ms: 60_000,
            drain_timeout_ms: 10_000,
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
#[serde(rename_all = "kebab-case")]
pub enum GraphMode {
    /// Record and print every outbound call instead of sending it.
    /// `sandbox`, its name before 0.2, is still read (with a warning).
    #[default]
    #[serde(alias = "sandbox")]
    DryRun,
    /// Send outbound calls to the Graph API.
    Live,
}

/// Meta's Graph API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// `dry-run` (the default) or `live`.
    pub mode: GraphMode,
    /// Base URL for accounts using Instagram Login.
    pub instagram_base_url: String,
    /// Base URL for accounts using Facebook Login.
    pub facebook_base_url: String,
    /// Graph API version, e.g. `v24.0`.
    pub api_version: String,
    /// Timeout of one outbound request, in milliseconds.
    pub timeout_ms: u64,
    /// This Meta app's id. With it, handover events pause a conversation
    /// whose thread went to another app, and resume it when the thread
    /// comes back.
    pub app_id: Option<String>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            mode: GraphMode::DryRun,
            instagram_base_url: "https://graph.instagram.com".into(),
            facebook_base_url: "https://graph.facebook.com".into(),
            api_version: "v24.0".into(),
            timeout_ms: 10_000,
            app_id: None,
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
    /// Its own opt-out keywords, instead of `[opt_out]`.
    pub opt_out: Option<OptOutConfig>,
    /// Its own ice breakers and persistent menu, instead of
    /// `[messenger_profile]`.
    pub messenger_profile: Option<MessengerProfileConfig>,
}

/// What people see before they write, set by `igloo accounts sync`. What
/// is absent is left as it is at Meta.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessengerProfileConfig {
    /// At most 4 questions offered before the first message.
    pub ice_breakers: Option<Vec<IceBreaker>>,
    /// The menu beside the message field.
    pub persistent_menu: Option<Vec<MenuItem>>,
}

impl MessengerProfileConfig {
    /// Meta's limits, checked before any call.
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(format!("{key}: {what}")));
        let text_fits = |text: &str, max_chars: usize| {
            !text.trim().is_empty() && text.chars().count() <= max_chars
        };
        if let Some(ice_breakers) = &self.ice_breakers {
            if ice_breakers.is_empty() || ice_breakers.len() > MAX_ICE_BREAKERS {
                return invalid(format!(
                    "1 to {MAX_ICE_BREAKERS} ice breakers (leave the key out to leave them alone)"
                ));
            }
            for ice_breaker in ice_breakers {
                if !text_fits(&ice_breaker.question, 80) || !text_fits(&ice_breaker.payload, 1000) {
                    return invalid(
                        "an ice breaker's question is 1 to 80 characters, its payload 1 to 1000"
                            .into(),
                    );
                }
            }
        }
        if let Some(menu) = &self.persistent_menu {
            if menu.is_empty() || menu.len() > MAX_MENU_ITEMS {
                return invalid(format!(
                    "1 to {MAX_MENU_ITEMS} persistent menu entries (leave the key out to leave it alone)"
                ));
            }
            for item in menu {
                let fits = match item {
                    MenuItem::Postback { title, payload } => {
                        text_fits(title, 30) && text_fits(payload, 1000)
                    }
                    MenuItem::WebUrl { title, url } => {
                        text_fits(title, 30) && crate::graph::WebUrl::parse(url).is_ok()
                    }
                };
                if !fits {
                    return invalid("a menu entry's title is 1 to 30 characters, with a payload of 1 to 1000 or an http(s) url".into());
                }
            }
        }
        Ok(())
    }
}

/// Reading each account's recent comments back, so that a comment whose
/// webhook Meta dropped is still handled (once: it gets the key its webhook
/// would have).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Seconds between passes; 0 turns the reconciler off. Live mode only,
    /// and only accounts whose plugins want comments.
    pub interval_secs: u64,
    /// Newest media read per account and pass.
    pub media_per_pass: u32,
    /// Newest comments read per media.
    pub comments_per_media: u32,
    /// Comments older than this, in hours, are left alone. Less than
    /// `storage.dedupe_retention_hours`, or a comment handled long ago would
    /// look new.
    pub lookback_hours: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            interval_secs: 900,
            media_per_pass: 10,
            comments_per_media: 50,
            lookback_hours: 24,
        }
    }
}

/// Business Login for Instagram (PLATFORM.md A5): the dashboard's
/// *Connect an account* sends the account's owner to Instagram, and igloo
/// takes the code Meta sends back, exchanges it for a long-lived token,
/// and stores the account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OauthConfig {
    /// The Instagram app's id (`client_id`).
    pub app_id: Option<String>,
    /// The Instagram app's secret. Prefer IGLOO_OAUTH__APP_SECRET.
    pub app_secret: Option<String>,
    /// igloo's `/ui/connect/callback` as the world reaches it, exactly as
    /// registered in the app's Business Login settings.
    pub redirect_uri: Option<String>,
    /// Where the owner is sent to grant access.
    pub authorize_url: String,
    /// Where the code is exchanged.
    pub token_url: String,
    /// The permissions asked for.
    pub scopes: Vec<String>,
}

impl Default for OauthConfig {
    fn default() -> Self {
        Self {
            app_id: None,
            app_secret: None,
            redirect_uri: None,
            authorize_url: "https://www.instagram.com/oauth/authorize".into(),
            token_url: "https://api.instagram.com/oauth/access_token".into(),
            scopes: vec![
                "instagram_business_basic".into(),
                "instagram_business_manage_messages".into(),
                "instagram_business_manage_comments".into(),
            ],
        }
    }
}

impl OauthConfig {
    /// What the exchange needs, when Business Login is configured.
    pub fn login(&self) -> Option<crate::graph::BusinessLogin<'_>> {
        Some(crate::graph::BusinessLogin {
            app_id: self.app_id.as_deref()?,
            app_secret: self.app_secret.as_deref()?,
            redirect_uri: self.redirect_uri.as_deref()?,
            token_url: &self.token_url,
        })
    }

    fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let set = [&self.app_id, &self.app_secret, &self.redirect_uri]
            .iter()
            .filter(|value| value.is_some())
            .count();
        if set == 0 {
            return Ok(());
        }
        let invalid = |what: &str| Err(ConfigError::Invalid(format!("oauth: {what}")));
        if set < 3 {
            return invalid("app_id, app_secret and redirect_uri go together");
        }
        check_secret(
            "oauth.app_secret",
            self.app_secret.as_deref().unwrap_or_default(),
            MIN_APP_SECRET_CHARS,
        )?;
        for (key, url) in [
            (
                "redirect_uri",
                self.redirect_uri.as_deref().unwrap_or_default(),
            ),
            ("authorize_url", &self.authorize_url),
            ("token_url", &self.token_url),
        ] {
            let Ok(parsed) = reqwest::Url::parse(url) else {
                return invalid(&format!("{key} must be an absolute https URL"));
            };
            // The app secret and the codes travel here: https, but for a
            // test server on this machine.
            let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if crate::graph::WebUrl::parse(url).is_err()
                || (parsed.scheme() != "https" && !loopback)
            {
                return invalid(&format!("{key} must be an absolute https URL"));
            }
        }
        if !self
            .redirect_uri
            .as_deref()
            .is_some_and(|uri| uri.trim_end_matches('/').ends_with("/ui/connect/callback"))
        {
            return invalid("redirect_uri must be igloo's /ui/connect/callback");
        }
        if self.scopes.is_empty() {
            return invalid("scopes must name at least instagram_business_basic");
        }
        if config.tokens.key.is_none() || config.server.admin_token.is_none() {
            return invalid(
                "Business Login needs tokens.key (tokens are kept sealed) and server.admin_token (it starts from the dashboard)",
            );
        }
        Ok(())
    }
}

/// Meta's most ice breakers per account.
const MAX_ICE_BREAKERS: usize = 4;
/// Most persistent menu entries accepted.
const MAX_MENU_ITEMS: usize = 20;

/// Keeping accounts' webhook subscriptions and profiles in step with what
/// the plugins need (`igloo accounts sync`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Also sync every account when igloo starts (live mode).
    pub at_start: bool,
    /// An account is flagged silent when no webhook came for longer than
    /// four times its usual gap between webhooks, and never sooner than
    /// this, in seconds.
    pub silence_floor_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            at_start: false,
            silence_floor_secs: 3600,
        }
    }
}

/// How access tokens are kept and refreshed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// The key tokens are sealed with at rest: 32 random bytes in base64.
    /// Without it, only configured tokens work, in memory, never refreshed.
    pub key: Option<String>,
    /// Refresh an Instagram Login token once it is this old, in hours: at
    /// least 24 (Meta's minimum), well under the 60 days it lives.
    pub refresh_after_hours: u64,
    /// How often tokens due for a refresh are looked for, in seconds.
    pub check_interval_secs: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            key: None,
            refresh_after_hours: 7 * 24,
            check_interval_secs: 3600,
        }
    }
}

impl TokensConfig {
    /// The key, if one is set.
    pub fn key(&self) -> Result<Option<crate::accounts::TokenKey>, ConfigError> {
        self.key
            .as_deref()
            .map(crate::accounts::TokenKey::from_base64)
            .transpose()
            .map_err(|error| ConfigError::Invalid(error.to_string()))
    }
}

/// Limits of plugin runs: each is the default for every plugin and the ceiling a
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
    /// Threads that run guest code, apart from the threads that accept
    /// webhooks. 0: one less than the machine's cores, at least one.
    pub plugin_threads: usize,
    /// Time one run may spend waiting on Meta (Graph calls and rate-limit
    /// queues), in milliseconds. Not counted against the plugin's deadline;
    /// past it the run stops as `upstream-timeout`, which is not a crash.
    pub max_upstream_wait_ms: u64,
    /// When a run that failed for a passing reason (Meta's 5xx or timeout,
    /// a rate limit, storage) runs again: milliseconds after each failed
    /// attempt, in order. Past the last, the run is a dead letter.
    pub retry_schedule_ms: Vec<u64>,
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
            plugin_threads: 0,
            max_upstream_wait_ms: 30_000,
            // 5 s, 30 s, 2 min, 10 min, 1 h.
            retry_schedule_ms: vec![5_000, 30_000, 120_000, 600_000, 3_600_000],
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
    /// A bundle file (`igloo plugin pack`), checked against the trust
    /// store in live mode.
    Bundle(PathBuf),
    /// A bundle igloo stored when it was installed, by its digest.
    Digest(crate::bundle::Digest),
}

/// One plugin the operator runs, and what it is granted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The operator's name for this plugin: unique among `[[plugins]]`, of
    /// lowercase letters, digits, `-` and `_`. Everything that is the
    /// plugin's (its state, runs, budgets, breaker, admin routes) is keyed
    /// by it, never by the name the plugin's own manifest gives itself.
    pub id: String,
    /// Where the plugin comes from.
    #[serde(flatten)]
    pub source: PluginSource,
    /// Capabilities granted to it. It must declare each in its manifest too.
    #[serde(default)]
    pub grants: Vec<String>,
    /// The plugin's own settings, readable through its `config` interface.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Only events of these accounts reach the plugin (intersected with
    /// its manifest's `accounts`); every account when empty.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Per account, settings that take the place of `settings`' (one
    /// keyword list for one shop, another for the next).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub account_settings: BTreeMap<String, BTreeMap<String, String>>,
    /// Run this installation's bundle unsigned, or signed by a publisher
    /// the trust store does not know, in live mode. Never for a bundle
    /// whose bytes changed after it was packed, or one revoked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unsigned: bool,
    /// The plugin sees a pseudonym (stable for this installation) in place
    /// of each person's IGSID, and no usernames; igloo maps pseudonyms
    /// back when it acts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pseudonymous: bool,
    /// Its place in an exclusive group, for an installation the config's
    /// `[[exclusive_groups]]` does not list (one made through the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_group: Option<GroupPlace>,
}

impl PluginConfig {
    /// A plugin with `id` from `source`, granted `grants`, no settings.
    pub fn new(id: &str, source: PluginSource, grants: &[&str]) -> Self {
        Self {
            id: id.to_owned(),
            source,
            grants: grants.iter().map(|grant| (*grant).to_owned()).collect(),
            settings: BTreeMap::new(),
            accounts: Vec::new(),
            account_settings: BTreeMap::new(),
            allow_unsigned: false,
            pseudonymous: false,
            exclusive_group: None,
        }
    }
}

impl Config {
    /// Each account's opt-out keywords: its own, or `[opt_out]`.
    pub fn opt_out_rules(&self) -> OptOutRules {
        OptOutRules {
            default: self.opt_out.clone(),
            accounts: self
                .accounts
                .iter()
                .filter_map(|(id, account)| Some((id.clone(), account.opt_out.clone()?)))
                .collect(),
        }
    }

    /// Load the configuration: embedded defaults, then the TOML file if one
    /// is given, then `IGLOO_*` environment variables (`__` separates
    /// levels: `IGLOO_GRAPH__MODE=live`,
    /// `IGLOO_ACCOUNTS__17841400000000001__ACCESS_TOKEN=…`).
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::embedded_defaults()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // The CLI's own variables (IGLOO_CONFIG, …) are not config keys.
        let figment = figment.merge(Env::prefixed("IGLOO_").ignore(CLI_VARIABLES).split("__"));
        if figment
            .find_value("graph.mode")
            .ok()
            .and_then(|mode| mode.into_string())
            == Some("sandbox".into())
        {
            tracing::warn!("graph.mode = \"sandbox\" is deprecated; it is now called \"dry-run\"");
        }
        figment.extract().map_err(Box::new)
    }

    /// The configuration with no file at all: the example plugins, each
    /// granted what its manifest declares, as a dry run.
    pub fn embedded_defaults() -> Self {
        Config {
            plugins: vec![PluginConfig::new(
                "auto-reply",
                PluginSource::Builtin("auto-reply".into()),
                &["messages:reply"],
            )],
            ..Config::default()
        }
    }

    /// The ice breakers and persistent menu `account_id` should have.
    pub fn messenger_profile_for(&self, account_id: &str) -> &MessengerProfileConfig {
        self.accounts
            .get(account_id)
            .and_then(|account| account.messenger_profile.as_ref())
            .unwrap_or(&self.messenger_profile)
    }

    /// The app secrets to verify with: the configured ones, or the dry-run
    /// secret when none is configured in a dry run.
    pub fn effective_app_secrets(&self) -> Vec<String> {
        if self.webhook.app_secrets.is_empty() && self.graph.mode == GraphMode::DryRun {
            vec![DRY_RUN_APP_SECRET.to_owned()]
        } else {
            self.webhook.app_secrets.clone()
        }
    }

    /// The handshake token: the configured one, or the dry-run token in a
    /// dry run.
    pub fn effective_verify_token(&self) -> Option<String> {
        match (&self.webhook.verify_token, self.graph.mode) {
            (Some(token), _) => Some(token.clone()),
            (None, GraphMode::DryRun) => Some(DRY_RUN_VERIFY_TOKEN.to_owned()),
            (None, GraphMode::Live) => None,
        }
    }

    /// Check what serde cannot: the secrets live mode requires (real ones,
    /// not the example's placeholders), plugin ids, and limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.graph.mode == GraphMode::Live {
            if self.webhook.app_secrets.is_empty() {
                return Err(ConfigError::Missing("webhook.app_secrets"));
            }
            for secret in &self.webhook.app_secrets {
                check_secret("webhook.app_secrets", secret, MIN_APP_SECRET_CHARS)?;
            }
            let token = self
                .webhook
                .verify_token
                .as_deref()
                .ok_or(ConfigError::Missing("webhook.verify_token"))?;
            check_secret("webhook.verify_token", token, MIN_VERIFY_TOKEN_CHARS)?;
            for (id, account) in &self.accounts {
                if let Some(token) = &account.access_token {
                    check_secret(&format!("accounts.{id}.access_token"), token, 1)?;
                }
            }
            if let Some(key) = &self.public_profiles.access_key {
                check_secret("public_profiles.access_key", key, 1)?;
            }
        }
        if let Some(token) = &self.server.admin_token {
            check_secret("server.admin_token", token, MIN_ADMIN_TOKEN_CHARS)?;
        }
        let mut ids = std::collections::BTreeSet::new();
        for plugin in &self.plugins {
            check_plugin_id(&plugin.id)?;
            if !ids.insert(plugin.id.as_str()) {
                return Err(ConfigError::DuplicatePluginId(plugin.id.clone()));
            }
        }
        ExclusiveGroup::validate(
            &self.exclusive_groups,
            self.plugins.iter().map(|plugin| plugin.id.as_str()),
        )
        .map_err(ConfigError::Invalid)?;
        self.opt_out
            .validate("opt_out")
            .map_err(ConfigError::Invalid)?;
        self.messenger_profile.validate("messenger_profile")?;
        self.oauth.validate(self)?;
        for (id, account) in &self.accounts {
            if let Some(profile) = &account.messenger_profile {
                profile.validate(&format!("accounts.{id}.messenger_profile"))?;
            }
            if let Some(opt_out) = &account.opt_out {
                opt_out
                    .validate(&format!("accounts.{id}.opt_out"))
                    .map_err(ConfigError::Invalid)?;
            }
        }
        if let Some(key) = &self.tokens.key {
            check_secret("tokens.key", key, 1)?;
        }
        self.tokens.key()?;
        if !(24..=50 * 24).contains(&self.tokens.refresh_after_hours) {
            return Err(ConfigError::Invalid(
                "tokens.refresh_after_hours must be between 24 (Meta refreshes no younger \
                 token) and 1200 (well before the 60 days a token lives)"
                    .into(),
            ));
        }
        if self.tokens.check_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "tokens.check_interval_secs must be at least 1".into(),
            ));
        }
        if self.reconcile.lookback_hours >= self.storage.dedupe_retention_hours {
            return Err(ConfigError::Invalid(
                "reconcile.lookback_hours must be less than storage.dedupe_retention_hours: \
                 a comment handled before igloo forgot it would look new"
                    .into(),
            ));
        }
        if !(1..=100).contains(&self.reconcile.media_per_pass)
            || !(1..=100).contains(&self.reconcile.comments_per_media)
        {
            return Err(ConfigError::Invalid(
                "reconcile.media_per_pass and reconcile.comments_per_media must be 1 to 100".into(),
            ));
        }
        if self.storage.dedupe_retention_hours < 36 {
            return Err(ConfigError::Invalid(
                "storage.dedupe_retention_hours must be at least 36: Meta retries for 36 hours"
                    .into(),
            ));
        }
        if self.runtime.max_instances == 0 {
            return Err(ConfigError::Invalid(
                "runtime.max_instances must be at least 1".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "server.max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Environment variables the command line reads itself; never config keys.
const CLI_VARIABLES: &[&str] = &["CONFIG"];

/// The shortest app secret accepted (Meta's are 32 hex digits).
const MIN_APP_SECRET_CHARS: usize = 16;
/// The shortest verify token accepted.
const MIN_VERIFY_TOKEN_CHARS: usize = 16;

/// Values that mark a secret as not filled in: the placeholders of
/// `examples/igloo.toml` and their like.
const PLACEHOLDER_MARKERS: &[&str] = &[
    "set-me",
    "your-",
    "choose-a",
    "changeme",
    "change-me",
    "placeholder",
    "example",
    "xxxx",
    "<",
];

/// Why a configuration cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required key is missing.
    #[error("graph.mode is live but {0} is not set")]
    Missing(&'static str),
    /// A secret is empty, a placeholder, or too short.
    #[error("{key} {problem}")]
    WeakSecret {
        /// The key.
        key: String,
        /// What is wrong with it (never the value itself).
        problem: String,
    },
    /// A plugin id is not of the allowed alphabet.
    #[error(
        "plugin id `{0}` is invalid: use 1 to 64 lowercase letters, digits, `-` and `_`, \
         starting with a letter or digit"
    )]
    InvalidPluginId(String),
    /// Two `[[plugins]]` share an id.
    #[error("plugin id `{0}` is used by more than one [[plugins]] entry; ids must be unique")]
    DuplicatePluginId(String),
    /// Anything else.
    #[error("{0}")]
    Invalid(String),
}

fn check_secret(key: &str, value: &str, min_chars: usize) -> Result<(), ConfigError> {
    let weak = |problem: String| ConfigError::WeakSecret {
        key: key.to_owned(),
        problem,
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(weak("is empty".into()));
    }
    let lower = trimmed.to_ascii_lowercase();
    if PLACEHOLDER_MARKERS
        .iter()
        .any(|marker| lower.contains(marker))
    {
        return Err(weak(
            "is still a placeholder: set the real value (preferably from the environment)".into(),
        ));
    }
    if trimmed.chars().count() < min_chars {
        return Err(weak(format!("is shorter than {min_chars} characters")));
    }
    Ok(())
}

/// Whether `id` is a valid plugin id.
pub fn check_plugin_id(id: &str) -> Result<(), ConfigError> {
    let valid = (1..=64).contains(&id.len())
        && id.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
        })
        && id.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(ConfigError::InvalidPluginId(id.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/igloo.toml")
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn the_documented_example_parses_but_its_placeholders_do_not_run_live() {
        // In a Jail: the other tests' environment variables are not seen.
        figment::Jail::expect_with(|_| {
            let config = Config::load(Some(&example_path())).expect("examples/igloo.toml parses");
            assert_eq!(config.graph.mode, GraphMode::Live);
            assert_eq!(config.graph.api_version, "v24.0");
            assert!(!config.accounts.is_empty());
            assert!(!config.plugins.is_empty());
            let error = config.validate().unwrap_err();
            assert!(
                matches!(&error, ConfigError::WeakSecret { problem, .. } if problem.contains("placeholder")),
                "{error}"
            );
            Ok(())
        });
    }

    /// Every key of the documented example, as igloo reads it: a change in
    /// how any key parses (a renamed field, a new default) shows here.
    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn the_example_and_the_embedded_defaults_parse_as_recorded() {
        figment::Jail::expect_with(|_| {
            let example = Config::load(Some(&example_path())).expect("examples/igloo.toml parses");
            insta::assert_debug_snapshot!("example_config", example);
            insta::assert_debug_snapshot!("embedded_defaults", Config::load(None).unwrap());
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn the_old_name_of_the_dry_run_is_still_read() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("old.toml", "[graph]\nmode = \"sandbox\"\n")?;
            let config = Config::load(Some(Path::new("old.toml"))).expect("sandbox still parses");
            assert_eq!(config.graph.mode, GraphMode::DryRun);
            jail.create_file("new.toml", "[graph]\nmode = \"dry-run\"\n")?;
            let config = Config::load(Some(Path::new("new.toml"))).unwrap();
            assert_eq!(config.graph.mode, GraphMode::DryRun);
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn the_example_runs_live_once_the_environment_supplies_real_secrets() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "IGLOO_WEBHOOK__APP_SECRETS",
                r#"["0123456789abcdef0123456789abcdef"]"#,
            );
            jail.set_env(
                "IGLOO_WEBHOOK__VERIFY_TOKEN",
                "a-verify-token-of-some-length",
            );
            jail.set_env(
                "IGLOO_SERVER__ADMIN_TOKEN",
                "k".repeat(MIN_ADMIN_TOKEN_CHARS),
            );
            jail.set_env(
                "IGLOO_ACCOUNTS__17841400000000001__ACCESS_TOKEN",
                "IGQVJ-real-looking-token",
            );
            jail.set_env("IGLOO_PUBLIC_PROFILES__ACCESS_KEY", "hiker-key-1234");
            let config = Config::load(Some(&example_path())).unwrap();
            config.validate().expect("valid with real secrets");
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn igloo_config_is_read_by_the_cli_not_taken_for_a_config_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("IGLOO_CONFIG", "/etc/igloo.toml");
            jail.set_env("IGLOO_GRAPH__API_VERSION", "v99.0");
            let config = Config::load(None).expect("IGLOO_CONFIG does not break loading");
            assert_eq!(config.graph.api_version, "v99.0");
            Ok(())
        });
    }

    #[test]
    fn no_file_means_dry_run_defaults_with_the_example_plugin() {
        let config = Config::embedded_defaults();
        assert_eq!(config.graph.mode, GraphMode::DryRun);
        assert_eq!(config.effective_app_secrets(), vec![DRY_RUN_APP_SECRET]);
        assert_eq!(config.plugins[0].id, "auto-reply");
        assert_eq!(
            config.plugins[0].source,
            PluginSource::Builtin("auto-reply".into())
        );
        config.validate().unwrap();
    }

    #[test]
    fn live_mode_refuses_missing_empty_and_short_secrets() {
        let mut config = Config::default();
        config.graph.mode = GraphMode::Live;
        assert_eq!(
            config.validate(),
            Err(ConfigError::Missing("webhook.app_secrets"))
        );
        assert!(config.effective_app_secrets().is_empty());
        for secret in ["", "   ", "abc123", "your-instagram-app-secret"] {
            config.webhook.app_secrets = vec![secret.into()];
            config.webhook.verify_token = Some("a-verify-token-of-some-length".into());
            let error = config.validate().unwrap_err();
            assert!(
                matches!(&error, ConfigError::WeakSecret { key, .. } if key == "webhook.app_secrets"),
                "{secret:?}: {error}"
            );
            assert!(!error.to_string().contains(secret.trim()) || secret.trim().is_empty());
        }
        config.webhook.app_secrets = vec!["0123456789abcdef0123456789abcdef".into()];
        config.webhook.verify_token = Some(String::new());
        assert!(config.validate().is_err(), "an empty verify token");
        config.webhook.verify_token = Some("a-verify-token-of-some-length".into());
        config.validate().unwrap();
    }

    #[test]
    fn the_admin_token_has_a_minimum_length() {
        let mut config = Config::embedded_defaults();
        config.server.admin_token = Some("short-token".into());
        assert!(matches!(
            config.validate(),
            Err(ConfigError::WeakSecret { key, .. }) if key == "server.admin_token"
        ));
        config.server.admin_token = Some("t".repeat(MIN_ADMIN_TOKEN_CHARS));
        config.validate().unwrap();
    }

    #[test]
    fn plugin_ids_are_unique_and_of_a_safe_alphabet() {
        let mut config = Config::embedded_defaults();
        config.plugins.push(config.plugins[0].clone());
        assert_eq!(
            config.validate(),
            Err(ConfigError::DuplicatePluginId("auto-reply".into()))
        );
        for bad in ["", "Auto", "-x", "a/b", "a b", "a\nb", &"a".repeat(65)] {
            config.plugins[1].id = bad.to_owned();
            assert!(
                matches!(config.validate(), Err(ConfigError::InvalidPluginId(_))),
                "{bad:?}"
            );
        }
        config.plugins[1].id = "auto-reply-2".into();
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("igloo.toml");
        std::fs::write(&path, "[server]\nlisten_on = \"127.0.0.1:1\"\n").unwrap();
        let error = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("listen_on"), "{error}");
    }

    #[test]
    fn a_messenger_profile_is_read_from_toml_and_held_to_metas_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("igloo.toml");
        let write = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path)).unwrap()
        };
        let config = write(
            r#"
[messenger_profile]
ice_breakers = [{ question = "Hours?", payload = "FAQ_HOURS" }]
persistent_menu = [
  { type = "postback", title = "Talk to a person", payload = "HUMAN" },
  { type = "web_url", title = "Shop", url = "https://shop.example.com/" },
]
[accounts."42".messenger_profile]
ice_breakers = [{ question = "Horário?", payload = "FAQ_HOURS" }]
"#,
        );
        config.validate().unwrap();
        assert_eq!(
            config
                .messenger_profile_for("7")
                .persistent_menu
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            config
                .messenger_profile_for("42")
                .ice_breakers
                .as_ref()
                .unwrap()[0]
                .question,
            "Horário?"
        );
        assert!(
            config.messenger_profile_for("42").persistent_menu.is_none(),
            "its own profile replaces the default whole"
        );
        let five = (0..5)
            .map(|n| format!(r#"{{ question = "Q{n}", payload = "P{n}" }}"#))
            .collect::<Vec<_>>()
            .join(", ");
        let error = write(&format!("[messenger_profile]\nice_breakers = [{five}]\n"))
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("1 to 4 ice breakers"), "{error}");
        let error = write(
            "[messenger_profile]\npersistent_menu = [{ type = \"web_url\", title = \"x\", url = \"javascript:alert(1)\" }]\n",
        )
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("http(s) url"), "{error}");
    }
}
