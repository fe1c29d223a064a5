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
        let (url, request) = self.request(reqwest::Method::PUT, path);
        let (_, answer) = self.answer(&url, request.body(bytes), false).await?;
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
        let (url, mut request) = self.request(method, path);
        request = request.query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        // A replay's 409 (handled already) and 404 are answers, not errors.
        self.answer(&url, request, path.ends_with("/replay")).await
    }

    /// A request to `path` with the operator's token, and its URL.
    fn request(&self, method: reqwest::Method, path: &str) -> (String, reqwest::RequestBuilder) {
        let url = format!("{}{path}", self.args.url.trim_end_matches('/'));
        let request = self
            .client
            .request(method, &url)
            .bearer_auth(&self.args.admin_token);
        (url, request)
    }

    /// Send `request`; its status and JSON. Refusals are errors naming
    /// igloo's reason, but 404 and 409 where they are `answers`.
    async fn answer(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
        answers: bool,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching igloo at {}", self.args.url))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .with_context(|| format!("reading {url}'s answer"))?;
        if status.is_success() || answers && matches!(status.as_u16(), 404 | 409) {
            return Ok((status, answer));
        }
        bail!(
            "{url} answered {status}: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        )
    }
}
