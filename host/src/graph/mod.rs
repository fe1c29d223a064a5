//! The outbound side: every call igloo makes to Meta's Graph API goes
//! through [`GraphClient`], the one place where tokens are attached, where
//! the sandbox intercepts, and where a journal of effects can sit.

mod error;
mod sandbox;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{AccountConfig, Config, GraphMode, LoginKind};

pub use error::GraphError;
pub use sandbox::{RecordedCall, Sandbox};

/// An HTTP request to the Graph API, before the token is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphRequest {
    /// `GET`, `POST` or `DELETE`.
    pub method: reqwest::Method,
    /// The full URL.
    pub url: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// Where requests go: Meta, or the sandbox that records them.
enum Transport {
    Live(reqwest::Client),
    Sandbox(Sandbox),
}

/// The Graph API client shared by every capability.
pub struct GraphClient {
    transport: Transport,
    accounts: BTreeMap<String, AccountConfig>,
    instagram_base_url: String,
    facebook_base_url: String,
    api_version: String,
}

/// Meta's answer to a sent message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    /// The recipient's IGSID.
    pub recipient_id: String,
    /// The new message's id.
    pub message_id: String,
}

impl GraphClient {
    /// A client for `config`'s accounts, live or sandboxed as configured.
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        let transport = match config.graph.mode {
            GraphMode::Live => Transport::Live(
                reqwest::Client::builder()
                    .timeout(Duration::from_millis(config.graph.timeout_ms))
                    .build()?,
            ),
            GraphMode::Sandbox => Transport::Sandbox(Sandbox::default()),
        };
        Ok(Self {
            transport,
            accounts: config.accounts.clone(),
            instagram_base_url: config
                .graph
                .instagram_base_url
                .trim_end_matches('/')
                .to_owned(),
            facebook_base_url: config
                .graph
                .facebook_base_url
                .trim_end_matches('/')
                .to_owned(),
            api_version: config.graph.api_version.clone(),
        })
    }

    /// The sandbox's record of calls, when running sandboxed.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        match &self.transport {
            Transport::Sandbox(sandbox) => Some(sandbox),
            Transport::Live(_) => None,
        }
    }

    /// `POST /{account}/messages` with a text message (Send API).
    pub async fn send_text(
        &self,
        account_id: &str,
        recipient_id: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError> {
        let request = GraphRequest {
            method: reqwest::Method::POST,
            url: self.url(account_id, &format!("{account_id}/messages")),
            body: Some(json!({
                "recipient": { "id": recipient_id },
                "message": { "text": text },
            })),
        };
        let response = self.call(account_id, request).await?;
        serde_json::from_value(response)
            .map_err(|error| GraphError::Invalid(format!("unexpected Send API response: {error}")))
    }

    fn url(&self, account_id: &str, path: &str) -> String {
        let login = self
            .accounts
            .get(account_id)
            .map(|account| account.login)
            .unwrap_or_default();
        let base = match login {
            LoginKind::Instagram => &self.instagram_base_url,
            LoginKind::Facebook => &self.facebook_base_url,
        };
        format!("{base}/{}/{path}", self.api_version)
    }

    /// Send `request` on behalf of `account_id`, attaching its token.
    async fn call(&self, account_id: &str, request: GraphRequest) -> Result<Value, GraphError> {
        let client = match &self.transport {
            Transport::Sandbox(sandbox) => return Ok(sandbox.record(account_id, request)),
            Transport::Live(client) => client,
        };
        let token = self
            .accounts
            .get(account_id)
            .and_then(|account| account.access_token.as_deref())
            .ok_or_else(|| GraphError::NoToken(account_id.to_owned()))?;
        let mut builder = client
            .request(request.method, &request.url)
            .bearer_auth(token);
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|error| GraphError::Transient(format!("request failed: {error}")))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            GraphError::Transient(format!("reading the response failed: {error}"))
        })?;
        if !status.is_success() {
            return Err(GraphError::classify(status.as_u16(), &body));
        }
        serde_json::from_slice(&body)
            .map_err(|error| GraphError::Invalid(format!("response is not JSON: {error}")))
    }
}
