//! Long-lived Instagram Login tokens live 60 days, and Meta renews one at
//! least a day old: each is renewed once `tokens.refresh_after_hours` old,
//! the new token stored (sealed) before it is used. A refresh Meta refuses
//! with 190 puts the account in `token-invalid`; any other failure is shown
//! on the account and tried again at the next check.

use std::sync::Arc;
use std::time::Duration;

use crate::accounts::NewToken;
use crate::config::TokensConfig;
use crate::graph::{GraphClient, GraphError};

/// Look for tokens due for a refresh every `check_interval_secs`, forever.
pub(crate) async fn refresh_forever(graph: Arc<GraphClient>, config: TokensConfig) {
    let refresh_after = Duration::from_secs(config.refresh_after_hours * 3600);
    let mut check = tokio::time::interval(Duration::from_secs(config.check_interval_secs));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        check.tick().await;
        refresh_due(&graph, refresh_after).await;
    }
}

/// Refresh every token due now.
async fn refresh_due(graph: &GraphClient, refresh_after: Duration) {
    let accounts = graph.accounts();
    for (id, credentials) in accounts.due_for_refresh(crate::clock::now_ms(), refresh_after) {
        let outcome = match graph.refresh_token(&credentials.token).await {
            Ok(issued) => {
                let now = crate::clock::now_ms();
                let lives = crate::accounts::token_lifetime(issued.expires_in);
                let token = NewToken {
                    token: issued.access_token,
                    issued_at_ms: now,
                    expires_at_ms: Some(now.saturating_add(lives.as_millis() as u64)),
                };
                accounts
                    .token_refreshed(&id, credentials.generation, token)
                    .await
                    .map(|kept| {
                        if kept {
                            tracing::info!(account = %id, expires_in_days = lives.as_secs() / 86_400, "access token refreshed");
                        }
                    })
            }
            Err(GraphError::TokenInvalid(reason)) => accounts
                .token_refused(&id, credentials.generation, &reason, crate::clock::now_ms())
                .await
                .map(drop),
            Err(error) => {
                tracing::warn!(account = %id, %error, "refreshing the access token failed; trying again at the next check");
                accounts.refresh_failed(&id, &error.to_string()).await
            }
        };
        if let Err(error) = outcome {
            tracing::error!(account = %id, %error, "recording a token refresh failed");
        }
    }
}
