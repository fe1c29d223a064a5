//! What plugins may do. Each capability is its own module: its host
//! functions, the policy they enforce and their tests. A capability must be
//! declared in the plugin's manifest and granted by the operator; a plugin
//! that imports an interface it was not granted does not load.

mod comments;
mod config;
mod kv;
mod log;
mod messaging;
mod profiles;
mod public_profiles;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub(crate) use crate::clock::now_ms;
use crate::config::KvConfig;
use crate::events::{Event, EventKind};
use crate::graph::{GraphClient, GraphError, InvalidId};
use crate::runtime::HostError;
use crate::state::HostState;

pub use messaging::policy as messaging_policy;
pub use profiles::ProfileCache;
pub use public_profiles::PublicProfiles;

/// A permission the operator grants a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Capability {
    /// Message the person whose event is being handled, or privately
    /// answer the comment being handled.
    MessagesReply,
    /// Message anyone whose window is open; privately answer any comment.
    MessagesSend,
    /// Send with the `HUMAN_AGENT` tag (7-day window).
    MessagesHumanAgent,
    /// Reply publicly to the comment being handled.
    CommentsReply,
    /// Hide, unhide and delete comments.
    CommentsModerate,
    /// Read consenting people's profiles (User Profile API).
    ProfilesRead,
    /// Look profiles up through the third-party provider.
    ProfilesPublicLookup,
    /// Keep state in the host.
    Kv,
}

impl Capability {
    /// Every capability, for error messages.
    pub const ALL: &[Capability] = &[
        Capability::MessagesReply,
        Capability::MessagesSend,
        Capability::MessagesHumanAgent,
        Capability::CommentsReply,
        Capability::CommentsModerate,
        Capability::ProfilesRead,
        Capability::ProfilesPublicLookup,
        Capability::Kv,
    ];

    /// The name used in manifests and config.
    pub fn name(self) -> &'static str {
        match self {
            Capability::MessagesReply => "messages:reply",
            Capability::MessagesSend => "messages:send",
            Capability::MessagesHumanAgent => "messages:human-agent",
            Capability::CommentsReply => "comments:reply",
            Capability::CommentsModerate => "comments:moderate",
            Capability::ProfilesRead => "profiles:read",
            Capability::ProfilesPublicLookup => "profiles:public-lookup",
            Capability::Kv => "kv",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Capability {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .iter()
            .copied()
            .find(|capability| capability.name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Capability::ALL.iter().map(|c| c.name()).collect();
                format!("unknown capability `{name}` (known: {})", known.join(", "))
            })
    }
}

impl TryFrom<String> for Capability {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<Capability> for String {
    fn from(capability: Capability) -> Self {
        capability.name().to_owned()
    }
}

/// What importing a host interface requires: any one of these capabilities.
/// `None` for interfaces every plugin may import.
pub fn required_for_import(import: &str) -> Option<&'static [Capability]> {
    let interface = import.split('@').next().unwrap_or(import);
    match interface {
        "igloo:plugin/messaging" => Some(&[Capability::MessagesReply, Capability::MessagesSend]),
        "igloo:plugin/comments" => Some(&[Capability::CommentsReply, Capability::CommentsModerate]),
        "igloo:plugin/profiles" => Some(&[Capability::ProfilesRead]),
        "igloo:plugin/public-profiles" => Some(&[Capability::ProfilesPublicLookup]),
        "igloo:plugin/kv" => Some(&[Capability::Kv]),
        _ => None,
    }
}

/// The services host functions act through; one struct lists them all.
pub struct HostServices {
    /// Meta's Graph API (or the sandbox).
    pub graph: GraphClient,
    /// What the host remembers: windows, private replies, plugins' state.
    pub state: Arc<dyn HostState>,
    /// Recently fetched profiles.
    pub profiles: ProfileCache,
    /// The third-party profile provider.
    pub public_profiles: PublicProfiles,
    /// Quotas of plugins' state.
    pub kv_limits: KvConfig,
}

impl HostServices {
    /// Build every service `config` describes, keeping state under its data
    /// directory.
    pub fn open(config: &crate::config::Config) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let state_path = config.storage.data_dir.join("state.sqlite3");
        Ok(Self {
            graph: GraphClient::new(config).context("building the Graph API client")?,
            state: Arc::new(
                crate::state::SqliteState::open(&state_path).context("opening the state store")?,
            ),
            profiles: ProfileCache::new(std::time::Duration::from_secs(
                config.profiles.cache_ttl_secs,
            )),
            public_profiles: PublicProfiles::new(&config.public_profiles)
                .context("building the public-profiles client")?,
            kv_limits: config.kv.clone(),
        })
    }

    /// Note what an event means for later host calls, before any plugin
    /// runs on it: a person writing opens their messaging window; a
    /// comment becomes answerable by one private reply.
    ///
    /// Windows count from when the person acted: Meta's timestamp, or the
    /// time igloo received the event if that is earlier (a clock running
    /// ahead cannot stretch a window). Never from when igloo got round to
    /// the event, so a delivery hours late or a backlog handled after
    /// downtime does not reopen a window Meta has closed.
    pub async fn observe(
        &self,
        event: &Event,
        received_at_ms: u64,
    ) -> Result<(), crate::state::StateError> {
        let account = &event.account_id;
        let acted_at = event.timestamp_ms.min(received_at_ms);
        match &event.kind {
            EventKind::Message(_)
            | EventKind::Postback(_)
            | EventKind::Referral(_)
            | EventKind::Optin(_)
                if !event.is_echo =>
            {
                if let Some(person) = event.counterpart_id() {
                    self.state.record_inbound(account, person, acted_at).await?;
                }
            }
            EventKind::Comment(comment) | EventKind::LiveComment(comment) if !event.is_echo => {
                self.state
                    .record_comment(account, &comment.id, comment.from_id.as_deref(), acted_at)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// How often the host's memory (windows, comments, expired state, rate
/// budgets of idle accounts) is pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Windows and comments are kept this long: the longest rule that reads
/// them (the `HUMAN_AGENT` tag and private replies) spans 7 days.
const REMEMBER_MS: u64 = messaging_policy::SEVEN_DAYS_MS + 24 * 3600 * 1000;

impl HostServices {
    /// Forget what no rule can read any more, so the host's tables and
    /// maps grow with recent activity, not with every person ever seen.
    pub async fn prune(&self, now_ms: u64) -> Result<u64, crate::state::StateError> {
        self.graph.prune();
        self.state
            .prune(now_ms, now_ms.saturating_sub(REMEMBER_MS))
            .await
    }
}

/// Prune now and every ten minutes, for as long as the task runs.
pub async fn prune_forever(services: Arc<HostServices>) {
    let mut ticks = tokio::time::interval(PRUNE_EVERY);
    loop {
        ticks.tick().await;
        match services.prune(now_ms()).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "forgot expired windows, comments and state"),
            Err(error) => tracing::warn!(%error, "pruning the host's state failed; will retry"),
        }
    }
}

/// Whether [`HostServices::observe`] learns anything from `event`, so the
/// dispatcher must see it even when no plugin subscribes to its kind.
pub fn is_observed(event: &Event) -> bool {
    !event.is_echo
        && matches!(
            event.kind,
            EventKind::Message(_)
                | EventKind::Postback(_)
                | EventKind::Referral(_)
                | EventKind::Optin(_)
                | EventKind::Comment(_)
                | EventKind::LiveComment(_)
        )
}

/// A plugin handed the host something that is not a valid id or URL.
impl From<InvalidId> for HostError {
    fn from(error: InvalidId) -> Self {
        HostError::Invalid(error.to_string())
    }
}

/// The error a plugin sees for a failed Graph call.
pub(crate) fn guest_error(error: GraphError) -> HostError {
    match error {
        GraphError::RateLimited { retry_after_ms } => HostError::RateLimited(retry_after_ms),
        GraphError::WindowClosed(_) => HostError::WindowClosed,
        GraphError::ConsentRequired(_) => HostError::ConsentRequired,
        GraphError::NotFound(_) => HostError::NotFound,
        GraphError::Transient(message) => HostError::Transient(message),
        GraphError::Invalid(message) => HostError::Invalid(message),
        GraphError::RecipientUnavailable(message) | GraphError::PermissionDenied(message) => {
            HostError::Rejected(message)
        }
        // Token trouble is the operator's to fix; the plugin learns only
        // that the call was refused, never anything about the token.
        GraphError::TokenInvalid(_) | GraphError::NoToken(_) => {
            HostError::Rejected("the account's access token is missing or invalid".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for capability in Capability::ALL {
            assert_eq!(capability.name().parse::<Capability>(), Ok(*capability));
        }
        assert!(
            "kv:everything"
                .parse::<Capability>()
                .unwrap_err()
                .contains("kv:everything")
        );
    }

    #[test]
    fn each_interface_needs_its_capability_and_log_needs_none() {
        assert_eq!(
            required_for_import("igloo:plugin/messaging@0.1.0"),
            Some(&[Capability::MessagesReply, Capability::MessagesSend][..])
        );
        assert_eq!(
            required_for_import("igloo:plugin/kv@0.1.0"),
            Some(&[Capability::Kv][..])
        );
        assert_eq!(required_for_import("igloo:plugin/log@0.1.0"), None);
    }
}
