//! Talking to a running igloo's admin API, for the operator's commands.

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

/// Where the running igloo is, and the operator's token.
#[derive(Debug, Args)]
pub(super) struct AdminArgs {
    /// The running igloo's base URL.
    #[arg(long, env = "IGLOO_URL", default_value = "http://127.0.0.1:8080")]
    pub(super) url: String,
    /// Its `server.admin_token`.
    #[arg(long, env = "IGLOO_ADMIN_TOKEN", hide_env_values = true)]
    pub(super) admin_token: String,
}

/// A client of the admin API.
pub(super) struct Admin {
    args: AdminArgs,
    client: reqwest::Client,
}

impl Admin {
    pub(super) fn new(args: AdminArgs) -> Self {
        Self {
            args,
            client: reqwest::Client::new(),
        }
    }

    /// Call `path`; the answer's status and JSON. Refusals other than a
    /// replay's 409 and 404 are errors.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        self.send_body(method, path, query, None).await
    }

    /// Upload `bytes` to `path` (a bundle); the answer's JSON.
    pub(super) async fn upload(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.args.url.trim_end_matches('/'));
        let response = self
            .client
            .put(&url)
            .bearer_auth(&self.args.admin_token)
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("reaching igloo at {}", self.args.url))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .with_context(|| format!("reading {url}'s answer"))?;
        if !status.is_success() {
            bail!(
                "{url} answered {status}: {}",
                answer["error"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(answer)
    }

    /// [`Admin::send`] with a JSON body.
    pub(super) async fn send_body(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let url = format!("{}{path}", self.args.url.trim_end_matches('/'));
        let mut request = self
            .client
            .request(method, &url)
            .bearer_auth(&self.args.admin_token)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching igloo at {}", self.args.url))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .with_context(|| format!("reading {url}'s answer"))?;
        if status.is_success() || matches!(status.as_u16(), 404 | 409) && path.ends_with("/replay")
        {
            return Ok((status, answer));
        }
        bail!(
            "{url} answered {status}: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        )
    }
}
