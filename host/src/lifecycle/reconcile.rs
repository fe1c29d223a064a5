//! Missed comments: Meta drops a comment webhook now and then and cannot
//! be asked again, so every `reconcile.interval_secs` each account whose
//! plugins want comments has its newest media's newest comments read back.
//! Each comment goes through the inbox as its webhook would have (a
//! `comments` change, one entry per comment timed as the comment), so it
//! gets the same key: a comment is handled once, whether it came by
//! webhook, by the reconciler, or both. Reads go through the account's rate
//! budget, and a pass stops for an account Meta throttles.
//!
//! Only comments made since the reconciler started (less one interval) are
//! fed, and within `lookback_hours`: enabling a comment plugin, or adding
//! an account, does not answer a day of old comments at once. Live videos'
//! comments (`live_comments`, keyed apart) and stories are left alone.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::ReconcileConfig;
use crate::graph::{GraphClient, GraphError, GraphId, Media, MediaComment};
use crate::inbox::{Delivery, Inbox};
use crate::runtime::Runtime;

/// Keys of events fed remembered, so they are not taken for webhooks.
const REMEMBERED: usize = 10_000;

/// The keys of the events the reconciler fed, newest last: an account whose
/// comments arrive only this way has gone quiet, whatever its events say.
#[derive(Default)]
pub(crate) struct Fed(Mutex<(VecDeque<String>, HashSet<String>)>);

impl Fed {
    fn remember(&self, key: String) {
        let mut fed = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let (order, keys) = &mut *fed;
        if keys.insert(key.clone()) {
            order.push_back(key);
        }
        while order.len() > REMEMBERED {
            if let Some(oldest) = order.pop_front() {
                keys.remove(&oldest);
            }
        }
    }

    /// Whether the event with `key` was fed by the reconciler.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .1
            .contains(key)
    }
}

/// What reconciling needs of the host.
pub(crate) struct Reconciler {
    pub(crate) graph: Arc<GraphClient>,
    pub(crate) inbox: Arc<dyn Inbox>,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) config: ReconcileConfig,
    pub(crate) fed: Arc<Fed>,
}

impl Reconciler {
    /// A pass every `interval_secs`, forever.
    pub(crate) async fn run_forever(self) {
        let period = Duration::from_secs(self.config.interval_secs.max(1));
        let started_ms = crate::clock::now_ms();
        // Webhooks flow at start: the first look back is one period later.
        let mut pass = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            pass.tick().await;
            let now = crate::clock::now_ms();
            let since = now
                .saturating_sub(self.config.lookback_hours * 3600 * 1000)
                .max(started_ms.saturating_sub(period.as_millis() as u64));
            let fed = self.pass(since).await;
            if fed > 0 {
                tracing::warn!(
                    fed,
                    "comments missed by webhooks were read back and handed to the plugins"
                );
            }
        }
    }

    /// One pass over every account, feeding comments made since
    /// `since_ms`; how many were new to igloo.
    async fn pass(&self, since_ms: u64) -> usize {
        let mut fed = 0;
        for account in self.graph.accounts().list() {
            let wanted = self
                .runtime
                .webhook_fields(&account.id)
                .contains("comments");
            if !wanted || !self.graph.accounts().usable(&account.id) {
                continue;
            }
            match self.account(&account.id, since_ms).await {
                Ok(new) => fed += new,
                Err(error) => {
                    tracing::warn!(account = %account.id, %error, "reading comments back failed; trying again at the next pass");
                }
            }
        }
        fed
    }

    /// Read `account_id`'s recent comments and feed those since `since_ms`.
    async fn account(&self, account_id: &str, since_ms: u64) -> anyhow::Result<usize> {
        let mut entries = Vec::new();
        for media in self
            .graph
            .recent_media(account_id, self.config.media_per_pass)
            .await?
        {
            let unanswerable =
                matches!(media.media_product_type.as_deref(), Some("LIVE" | "STORY"));
            let Ok(media_id) = GraphId::parse("media id", &media.id) else {
                continue;
            };
            if unanswerable {
                continue;
            }
            let comments = match self
                .graph
                .media_comments(account_id, &media_id, self.config.comments_per_media)
                .await
            {
                Ok(comments) => comments,
                // Throttled, or the token refused: what was read so far is
                // fed, the rest waits for the next pass.
                Err(GraphError::RateLimited { .. } | GraphError::TokenInvalid(_)) => break,
                // This media only (deleted meanwhile, say): the others go on.
                Err(error) => {
                    tracing::debug!(account = %account_id, media = %media.id, %error, "reading a media's comments failed");
                    continue;
                }
            };
            entries.extend(
                comments
                    .iter()
                    .filter(|comment| comment.created_ms >= since_ms)
                    .map(|comment| entry(account_id, &media, comment)),
            );
        }
        if entries.is_empty() {
            return Ok(0);
        }
        let body =
            json!({"object": "instagram", "igloo_source": RECONCILER_SOURCE, "entry": entries});
        let delivery = Delivery::split(body.to_string().into(), &self.runtime.subscriptions())?;
        let keys: Vec<String> = delivery
            .events
            .iter()
            .map(|incoming| incoming.event.key.clone())
            .collect();
        let appended = self.inbox.append(delivery).await?;
        for (key, new) in keys.into_iter().zip(&appended.is_new) {
            if *new {
                self.fed.remember(key);
            }
        }
        Ok(appended.new_events())
    }
}

/// What the bodies the reconciler makes say of themselves
/// (`"igloo_source"`), so no one takes them for Meta's.
pub(crate) const RECONCILER_SOURCE: &str = "reconciler";

/// `comment` as the entry of its `comments` webhook.
fn entry(account_id: &str, media: &Media, comment: &MediaComment) -> Value {
    let mut from = json!({});
    if let Some(id) = &comment.from_id {
        from["id"] = json!(id);
    }
    if let Some(username) = &comment.from_username {
        from["username"] = json!(username);
    }
    json!({"id": account_id, "time": comment.created_ms / 1000, "changes": [{"field": "comments", "value": {
        "id": comment.id, "from": from, "text": comment.text,
        "media": {"id": media.id, "media_product_type": media.media_product_type}}}]})
}
