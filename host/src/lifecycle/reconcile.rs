//! Missed comments: Meta drops a comment webhook now and then and cannot
//! be asked again, so every `reconcile.interval_secs` each account whose
//! plugins want comments has its newest media's newest comments read back.
//! Each comment goes through the inbox as its webhook would have (a
//! `comments` change, one entry per comment timed as the comment), so it
//! gets the same key: a comment is handled once, whether it came by
//! webhook, by the reconciler, or both. Reads go through the account's rate
//! budget, and a pass stops for an account Meta throttles.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::ReconcileConfig;
use crate::events::Subscriptions;
use crate::graph::{GraphClient, GraphError, GraphId, Media, MediaComment};
use crate::inbox::{Delivery, Inbox};
use crate::runtime::Runtime;

/// What reconciling needs of the host.
pub(crate) struct Reconciler {
    pub(crate) graph: Arc<GraphClient>,
    pub(crate) inbox: Arc<dyn Inbox>,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) subscriptions: Subscriptions,
    pub(crate) config: ReconcileConfig,
}

impl Reconciler {
    /// A pass every `interval_secs`, forever.
    pub(crate) async fn run_forever(self) {
        let period = Duration::from_secs(self.config.interval_secs.max(1));
        // Webhooks flow at start: the first look back is one period later.
        let mut pass = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            pass.tick().await;
            let fed = self.pass(crate::clock::now_ms()).await;
            if fed > 0 {
                tracing::warn!(
                    fed,
                    "comments missed by webhooks were read back and handed to the plugins"
                );
            }
        }
    }

    /// One pass over every account; how many comments were new to igloo.
    pub(crate) async fn pass(&self, now_ms: u64) -> usize {
        let since_ms = now_ms.saturating_sub(self.config.lookback_hours * 3600 * 1000);
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
            let Ok(media_id) = GraphId::parse("media id", &media.id) else {
                continue;
            };
            let comments = match self
                .graph
                .media_comments(account_id, &media_id, self.config.comments_per_media)
                .await
            {
                Ok(comments) => comments,
                // Throttled: what was read so far is fed, the rest waits.
                Err(GraphError::RateLimited { .. }) => break,
                Err(error) => return Err(error.into()),
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
        let body = json!({"object": "instagram", "igloo_source": "reconciler", "entry": entries});
        let delivery = Delivery::split(body.to_string().into(), &self.subscriptions)?;
        Ok(self.inbox.append(delivery).await?.new_events())
    }
}

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
