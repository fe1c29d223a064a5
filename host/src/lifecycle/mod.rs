//! Keeping accounts working while igloo runs, beside the flow of events:
//! tokens refreshed before they expire ([`refresh`]), webhook subscriptions
//! and profiles in step with the plugins ([`sync`]), accounts that went
//! quiet flagged ([`silence`]), and comments webhooks missed read back
//! ([`reconcile`]).

pub(crate) mod reconcile;
pub(crate) mod refresh;
pub(crate) mod silence;
pub(crate) mod sync;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::accounts::AccountView;
use crate::config::{Config, MessengerProfileConfig};
use crate::graph::GraphClient;
use crate::inbox::{EventFilter, Inbox, InboxError};
use crate::runtime::Runtime;
use silence::Rhythm;
use sync::AccountSync;

/// Webhooks looked at to learn an account's rhythm.
const RHYTHM_SAMPLE: u32 = 100;

/// One account's health, for `igloo accounts status` and the dashboard.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccountStatus {
    /// The account and its token.
    #[serde(flatten)]
    pub account: AccountView,
    /// Its webhooks' rhythm.
    pub webhooks: Rhythm,
    /// Its setup at Meta against what igloo wants.
    pub setup: AccountSync,
}

/// What account upkeep needs of the host.
pub(crate) struct Lifecycle {
    graph: Arc<GraphClient>,
    /// Events the reconciler fed: not webhooks.
    fed: Arc<reconcile::Fed>,
    inbox: Arc<dyn Inbox>,
    profiles: BTreeMap<String, MessengerProfileConfig>,
    default_profile: MessengerProfileConfig,
    silence_floor_ms: u64,
    /// Accounts found quiet at the last look.
    silent: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// One sync at a time: two (a double click, the start-up's and an
    /// operator's) would read and set the same things twice.
    syncing: tokio::sync::Mutex<()>,
}

impl Lifecycle {
    pub(crate) fn new(config: &Config, graph: Arc<GraphClient>, inbox: Arc<dyn Inbox>) -> Self {
        Self {
            graph,
            fed: Arc::default(),
            inbox,
            profiles: config
                .accounts
                .keys()
                .map(|id| (id.clone(), config.messenger_profile_for(id).clone()))
                .collect(),
            default_profile: config.messenger_profile.clone(),
            silence_floor_ms: config.sync.silence_floor_secs.saturating_mul(1000),
            silent: Default::default(),
            syncing: tokio::sync::Mutex::new(()),
        }
    }

    /// Sync every account (see [`sync`]); with `apply`, set what differs.
    pub(crate) async fn sync_all(&self, runtime: &Runtime, apply: bool) -> Vec<AccountSync> {
        let _one_at_a_time = if apply {
            Some(self.syncing.lock().await)
        } else {
            None
        };
        let mut reports = Vec::new();
        for account in self.graph.accounts().list() {
            reports.push(self.sync(runtime, &account.id, apply).await);
        }
        reports
    }

    async fn sync(&self, runtime: &Runtime, account_id: &str, apply: bool) -> AccountSync {
        let needed = runtime
            .webhook_fields(account_id)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let profile = self
            .profiles
            .get(account_id)
            .unwrap_or(&self.default_profile);
        let wanted = sync::Wanted {
            fields: needed,
            keep_subscribed: !runtime.failed().is_empty(),
            profile,
        };
        sync::sync_account(&self.graph, account_id, wanted, apply).await
    }

    /// Every account's health: its token, its setup at Meta (read, not
    /// changed), and whether it went quiet.
    pub(crate) async fn status(&self, runtime: &Runtime) -> Result<Vec<AccountStatus>, InboxError> {
        let now = crate::clock::now_ms();
        let mut statuses = Vec::new();
        for account in self.graph.accounts().list() {
            let setup = self.sync(runtime, &account.id, false).await;
            let webhooks = self.webhooks(&account.id, now).await?;
            statuses.push(AccountStatus {
                account,
                webhooks,
                setup,
            });
        }
        Ok(statuses)
    }

    /// Look at every account's rhythm now and then (a quarter of the
    /// silence floor, between one and fifteen minutes), and say once when
    /// one goes quiet, and once when it hears again.
    pub(crate) async fn watch_silence_forever(self: Arc<Self>) {
        let every =
            std::time::Duration::from_millis((self.silence_floor_ms / 4).clamp(60_000, 900_000));
        let mut look = tokio::time::interval(every);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            look.tick().await;
            let now = crate::clock::now_ms();
            let mut silent = std::collections::BTreeSet::new();
            for account in self.graph.accounts().list() {
                match self.webhooks(&account.id, now).await {
                    Ok(rhythm) if rhythm.silent => {
                        silent.insert(account.id);
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "reading an account's webhooks failed"),
                }
            }
            let mut known = self
                .silent
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            for id in silent.difference(&known) {
                tracing::warn!(account = %id, "no webhook for longer than this account's usual rhythm: check its token and subscription (`igloo accounts status`)");
            }
            for id in known.difference(&silent) {
                tracing::info!(account = %id, "webhooks arrive again");
            }
            *known = silent;
        }
    }

    /// How many accounts were quiet at the last look.
    pub(crate) fn silent_accounts(&self) -> usize {
        self.silent
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    /// Where the reconciler notes what it fed.
    pub(crate) fn fed(&self) -> Arc<reconcile::Fed> {
        Arc::clone(&self.fed)
    }

    /// `account_id`'s rhythm of webhooks, from its recent events.
    pub(crate) async fn webhooks(
        &self,
        account_id: &str,
        now_ms: u64,
    ) -> Result<Rhythm, InboxError> {
        let filter = EventFilter {
            account_id: Some(account_id.to_owned()),
            limit: RHYTHM_SAMPLE,
            ..EventFilter::default()
        };
        let events = self.inbox.list_events(&filter).await?;
        let sampled = events.len();
        let received: Vec<u64> = events
            .into_iter()
            // Timers and comments read back are igloo's own, not Meta's
            // deliveries.
            .filter(|event| event.kind != "timer" && !self.fed.contains(&event.key))
            .map(|event| event.received_at_ms)
            .collect();
        if sampled > 0 && received.is_empty() {
            // Only igloo's own events of late (timers, comments read back):
            // no webhook in all of them.
            return Ok(silence::Rhythm {
                last_webhook_at_ms: None,
                usual_gap_ms: None,
                silent: true,
            });
        }
        Ok(silence::rhythm(&received, now_ms, self.silence_floor_ms))
    }
}
