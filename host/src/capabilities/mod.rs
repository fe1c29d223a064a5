//! What plugins may do. Each capability is one module with everything that
//! is its own: its service (the clients, stores and limits it acts
//! through), its config section, its host functions and their linking, the
//! interface it answers and the capability importing that needs, its
//! policy and its tests.
//!
//! A capability must be declared in the plugin's manifest and granted by
//! the operator; a plugin that imports an interface it was not granted does
//! not load. Host functions see only the run they serve and their own
//! service ([`HostView`]); what a plugin is and may do comes from
//! [`crate::plugin_api`], never from the runtime that runs it.

/// Link interface `$interface` of every API version the host serves into
/// `$linker`, each answered by `$service`'s host functions (see
/// [`crate::plugin_api::v0_1_0`] for how an older version is served).
macro_rules! link_every_version {
    ($linker:expr, $interface:ident, $service:ty, $get:expr) => {{
        fn view<T: $crate::capabilities::ServesHostCalls>(
            host: &mut T,
        ) -> $crate::plugin_api::HostView<'_, $service> {
            host.view($get)
        }
        use $crate::plugin_api::{ViewOf, v0_1_0};
        $crate::plugin_api::$interface::add_to_linker::<T, ViewOf<$service>>($linker, view::<T>)?;
        v0_1_0::$interface::add_to_linker::<T, ViewOf<$service>>($linker, view::<T>)
    }};
}
use link_every_version;

mod comments;
pub mod conversations;
mod kv;
mod log;
mod messaging;
mod profiles;
mod public_profiles;
mod run;
mod scheduler;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;

use crate::events::{Event, Subscription};
use crate::graph::{GraphClient, GraphError};
use crate::plugin_api::{Capability, HostError, HostFailure, HostView, RunContext};
use crate::state::{HostState, StateError};

pub use comments::Comments;
pub use conversations::Conversations;
pub use kv::{Kv, KvConfig};
pub use messaging::opt_out::{OptOutConfig, OptOutRules};
pub use messaging::{Messaging, policy as messaging_policy};
pub use profiles::{Profiles, ProfilesConfig};
pub use public_profiles::{PublicProfiles, PublicProfilesConfig};
pub use scheduler::{Scheduler, TimersConfig};

/// A host interface, and the capabilities of which a plugin importing it
/// must hold one.
type Import = (&'static str, &'static [Capability]);

/// Every interface that needs a capability. `log`, `config` and `run` need
/// none.
const IMPORTS: &[Import] = &[
    messaging::IMPORT,
    comments::IMPORT,
    profiles::IMPORT,
    public_profiles::IMPORT,
    kv::IMPORT,
    scheduler::IMPORT,
    conversations::IMPORT,
];

/// What importing a host interface requires: any one of these capabilities.
/// `None` for interfaces every plugin may import.
pub fn required_for_import(import: &str) -> Option<&'static [Capability]> {
    let interface = import.split('@').next().unwrap_or(import);
    IMPORTS
        .iter()
        .find(|(name, _)| *name == interface)
        .map(|(_, needs)| *needs)
}

/// The services host functions act through, one per capability.
pub struct HostServices {
    /// Meta's Graph API (or the dry run standing in for it), shared by the
    /// capabilities that call Meta.
    pub(crate) graph: Arc<GraphClient>,
    /// What the host remembers: windows, comments, plugins' state.
    state: Arc<dyn HostState>,
    /// Direct messages.
    pub messaging: Messaging,
    /// Comment replies and moderation.
    pub comments: Comments,
    /// The User Profile API.
    pub profiles: Profiles,
    /// The third-party profile provider.
    pub public_profiles: PublicProfiles,
    /// Plugins' state.
    pub kv: Kv,
    /// Plugins' timers.
    pub scheduler: Scheduler,
    /// Pauses of conversations for automation.
    pub conversations: Conversations,
    /// The capabilities' config sections, to build a sandbox's services.
    configs: OwnedConfigs,
}

/// [`CapabilityConfigs`], kept.
struct OwnedConfigs {
    opt_out: OptOutRules,
    profiles: ProfilesConfig,
    public_profiles: PublicProfilesConfig,
    kv: KvConfig,
    timers: TimersConfig,
    app_id: Option<String>,
}

/// Each capability's config section.
pub struct CapabilityConfigs<'a> {
    /// `[opt_out]` and each account's own.
    pub opt_out: &'a OptOutRules,
    /// `[profiles]`.
    pub profiles: &'a ProfilesConfig,
    /// `[public_profiles]`.
    pub public_profiles: &'a PublicProfilesConfig,
    /// `[kv]`.
    pub kv: &'a KvConfig,
    /// `[timers]`.
    pub timers: &'a TimersConfig,
    /// `graph.app_id`.
    pub app_id: Option<&'a str>,
}

impl HostServices {
    /// Every capability's service, calling Meta through `graph` and
    /// remembering in `state`.
    pub fn new(
        graph: Arc<GraphClient>,
        state: Arc<dyn HostState>,
        configs: CapabilityConfigs<'_>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            messaging: Messaging::new(
                Arc::clone(&graph),
                Arc::clone(&state),
                configs.opt_out.clone(),
            ),
            comments: Comments::new(Arc::clone(&graph), Arc::clone(&state)),
            profiles: Profiles::new(Arc::clone(&graph), configs.profiles),
            public_profiles: PublicProfiles::new(configs.public_profiles)?,
            kv: Kv::new(Arc::clone(&state), configs.kv.clone()),
            scheduler: Scheduler::new(Arc::clone(&state), configs.timers.clone()),
            conversations: Conversations::new(
                Arc::clone(&state),
                Arc::clone(&graph),
                configs.app_id.map(str::to_owned),
            ),
            graph,
            state,
            configs: OwnedConfigs {
                opt_out: configs.opt_out.clone(),
                profiles: configs.profiles.clone(),
                public_profiles: configs.public_profiles.clone(),
                kv: configs.kv.clone(),
                timers: configs.timers.clone(),
                app_id: configs.app_id.map(str::to_owned),
            },
        })
    }

    /// Services for a sandboxed run: every call to Meta recorded, not sent
    /// (see `HostServices::graph`'s `dry_run`), and the host's state a
    /// copy taken now in `scratch`, so the plugin reads what it would read
    /// live and its writes go nowhere.
    pub async fn sandboxed(&self, scratch: &std::path::Path) -> anyhow::Result<Self> {
        let state = self.state.copy_to(scratch).await?;
        // The provider answers for real and is paid per request: a
        // sandboxed lookup is refused, not sent.
        let public_profiles = PublicProfilesConfig {
            access_key: None,
            ..self.configs.public_profiles.clone()
        };
        let configs = CapabilityConfigs {
            opt_out: &self.configs.opt_out,
            profiles: &self.configs.profiles,
            public_profiles: &public_profiles,
            kv: &self.configs.kv,
            timers: &self.configs.timers,
            app_id: self.configs.app_id.as_deref(),
        };
        Ok(Self::new(Arc::new(self.graph.sandboxed()), state, configs)?)
    }

    /// Forget what the removed installation `plugin` kept (kv, timers).
    pub async fn forget_plugin(&self, plugin: &str) -> Result<u64, StateError> {
        self.state.forget_plugin(plugin).await
    }

    /// The accounts the services act for.
    pub fn accounts(&self) -> &Arc<crate::accounts::Accounts> {
        self.graph.accounts()
    }

    /// The calls recorded instead of sent, if these services are a dry run.
    pub fn recorded_calls(&self) -> Option<Vec<crate::graph::RecordedCall>> {
        self.graph.dry_run().map(|dry_run| dry_run.calls())
    }

    /// The events the host itself must see (see [`Self::observe`]).
    pub fn observed_events() -> Subscription {
        let mut observed = messaging::window::observed_events();
        // Handovers pause and resume conversations.
        observed.kinds.insert("handover".to_owned());
        // What a person says may opt them out (or back in).
        observed.kinds.extend(
            messaging::opt_out::OBSERVED_KINDS
                .iter()
                .map(|kind| (*kind).to_owned()),
        );
        observed
    }

    /// Note what an event means for later host calls, before any plugin
    /// runs on it: a person writing opens their messaging window; a
    /// comment becomes answerable by one private reply; a stop keyword
    /// opts its sender out; a handover pauses or resumes automation.
    pub async fn observe(&self, event: &Event, received_at_ms: u64) -> Result<(), StateError> {
        // When the person acted: Meta's timestamp, or when igloo received
        // the event if that is earlier (a clock running ahead cannot
        // stretch a window, nor date a handover late).
        let acted_at_ms = event.timestamp_ms.min(received_at_ms);
        self.conversations.observe(event, acted_at_ms).await?;
        self.messaging.observe(event, acted_at_ms).await
    }

    /// Forget what no rule can read any more, so the host's tables and
    /// maps grow with recent activity, not with every person ever seen.
    pub async fn prune(&self, now_ms: u64) -> Result<u64, StateError> {
        self.graph.prune();
        self.state
            .prune(now_ms, now_ms.saturating_sub(REMEMBER_MS))
            .await
    }
}

/// How often the host's memory (windows, comments, expired state, rate
/// budgets of idle accounts) is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Windows and comments are kept this long: the longest rule that reads
/// them (the `HUMAN_AGENT` tag and private replies) spans 7 days.
const REMEMBER_MS: u64 = messaging_policy::SEVEN_DAYS_MS + 24 * 3600 * 1000;

/// Prune now and every ten minutes, for as long as the task runs.
pub async fn prune_forever(services: Arc<HostServices>) {
    let mut ticks = tokio::time::interval(PRUNE_EVERY);
    loop {
        ticks.tick().await;
        match services.prune(crate::clock::now_ms()).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "forgot expired windows, comments and state"),
            Err(error) => tracing::warn!(%error, "pruning the host's state failed; will retry"),
        }
    }
}

/// A store's data that can serve host calls: the run's context and the
/// services. The runtime implements it for its instances' data.
pub trait ServesHostCalls: Send + 'static {
    /// The run being served.
    fn run(&self) -> &RunContext;
    /// The services host functions act through.
    fn services(&self) -> &HostServices;
    /// One of igloo's host functions was called (the runtime counts it
    /// against the run's budget).
    fn host_call_made(&mut self);

    /// The view one capability's host functions get: asked for once per
    /// host call.
    fn view<S>(&mut self, service: fn(&HostServices) -> &S) -> HostView<'_, S> {
        self.host_call_made();
        let data: &Self = self;
        HostView {
            run: data.run(),
            service: service(data.services()),
        }
    }
}

/// Link every host interface into `linker`.
pub fn add_to_linker<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    messaging::link(linker)?;
    comments::link(linker)?;
    profiles::link(linker)?;
    public_profiles::link(linker)?;
    kv::link(linker)?;
    scheduler::link(linker)?;
    conversations::link(linker)?;
    settings::link(linker)?;
    run::link(linker)?;
    log::link(linker)
}

/// The error a plugin sees for a failed Graph call. A call Meta may have
/// acted on is marked so, for the journal.
impl From<GraphError> for HostFailure {
    fn from(error: GraphError) -> Self {
        match error {
            GraphError::Unanswered(message) => {
                return HostFailure::Unanswered(HostError::Transient(message));
            }
            // The run stops; it runs again once the account has a new token,
            // and the plugin learns nothing about the token.
            GraphError::TokenInvalid(_) => {
                return HostFailure::Trap(wasmtime::Error::new(crate::accounts::WaitForToken));
            }
            _ => {}
        }
        HostFailure::Refused(match error {
            GraphError::RateLimited { retry_after_ms } => HostError::RateLimited(retry_after_ms),
            GraphError::WindowClosed(_) => HostError::WindowClosed,
            GraphError::ConsentRequired(_) => HostError::ConsentRequired,
            GraphError::NotFound(_) => HostError::NotFound,
            GraphError::Transient(message) | GraphError::Unanswered(message) => {
                HostError::Transient(message)
            }
            GraphError::Invalid(message) => HostError::Invalid(message),
            GraphError::RecipientUnavailable(message) | GraphError::PermissionDenied(message) => {
                HostError::Rejected(message)
            }
            // Token trouble is the operator's to fix; the plugin learns only
            // that the call was refused, never anything about the token.
            GraphError::TokenInvalid(_) | GraphError::NoToken(_) => {
                HostError::Rejected("the account has no access token".into())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(required_for_import("igloo:plugin/config@0.1.0"), None);
    }
}
