//! The outbound side: every call igloo makes to Meta's Graph API goes
//! through [`GraphClient`], the one place where tokens are attached, rate
//! limits are applied, a dry run intercepts, and where a journal of effects
//! can sit. Requests and responses are typed ([`send`], [`UserProfile`]):
//! callers deal in typed calls, never in JSON.

mod conversations;
mod dry_run;
mod error;
mod ids;
mod media;
pub mod send;
mod setup;
mod throttle;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::accounts::{Accounts, Unusable};
use crate::config::{Config, GraphMode, LoginKind};

pub use conversations::FoundMessage;
pub use dry_run::{DryRun, RecordedCall};
pub use error::GraphError;
pub use ids::{GraphId, InvalidId, MAX_URL_BYTES, MessageId, Username, WebUrl};
pub use media::{Media, MediaComment};
pub use send::{MediaKind, SendRequest};
pub use setup::{IceBreaker, MenuItem};
pub use throttle::{SendClass, Throttle, throttled_for};
pub use tokens::{BusinessLogin, IssuedToken, ShortLivedToken, TokenOwner, Ungranted};

/// An HTTP request to the Graph API, before the token is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphRequest {
    /// `GET`, `POST` or `DELETE`.
    pub method: reqwest::Method,
    /// The full URL, query included, built by segments and pairs.
    pub url: reqwest::Url,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// Where requests go: Meta, or the dry run that records them.
enum Transport {
    Live(reqwest::Client),
    DryRun(Arc<DryRun>),
}

/// Whether repeating a request after a transient failure is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads, hides, deletes: the same request twice has one effect.
    Idempotent,
    /// Sends: a retry after an ambiguous failure could send twice.
    Once,
}

/// Longest a call waits for its account's rate budget before it is refused.
const MAX_BUDGET_WAIT: Duration = Duration::from_millis(500);
/// The same for Conversations API reads: at 2/s, a few looked up at once
/// (sends a crash cut short) wait their turn rather than fail.
const MAX_CONVERSATIONS_WAIT: Duration = Duration::from_secs(10);

/// Back-offs between attempts of an idempotent request.
const RETRY_BACKOFF: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// The Graph API client shared by every capability.
pub struct GraphClient {
    transport: Transport,
    throttle: Throttle,
    accounts: Arc<Accounts>,
    instagram_base_url: reqwest::Url,
    facebook_base_url: reqwest::Url,
    api_version: String,
}

/// Why the Graph API client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GraphSetupError {
    /// A configured base URL is not an absolute http(s) URL.
    #[error("graph.{key} is not an absolute http(s) URL: {reason}")]
    BaseUrl {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Meta's answer to a sent message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    /// The recipient's IGSID (absent or null for some private replies).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub recipient_id: String,
    /// The new message's id.
    pub message_id: String,
}

/// The fields the User Profile API is asked for.
const PROFILE_FIELDS: &str = "name,username,profile_pic,follower_count,is_user_follow_business,is_business_follow_user,is_verified_user";

/// The User Profile API's answer (`GET /{igsid}?fields=…`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserProfile {
    /// The person's IGSID (Meta may leave it out; empty then).
    #[serde(default, deserialize_with = "crate::events::meta::id_text")]
    pub id: String,
    /// Their name.
    pub name: Option<String>,
    /// Their username.
    pub username: Option<String>,
    /// Their profile picture's URL; expires.
    pub profile_pic: Option<String>,
    /// Their follower count.
    pub follower_count: Option<u64>,
    /// Whether they follow the business.
    pub is_user_follow_business: Option<bool>,
    /// Whether the business follows them.
    pub is_business_follow_user: Option<bool>,
    /// Whether their account is verified.
    pub is_verified_user: Option<bool>,
}

impl GraphClient {
    /// A client acting for `accounts`, live or a dry run as `config` says.
    pub fn new(config: &Config, accounts: Arc<Accounts>) -> Result<Self, GraphSetupError> {
        let transport = match config.graph.mode {
            GraphMode::Live => Transport::Live(
                reqwest::Client::builder()
                    .timeout(Duration::from_millis(config.graph.timeout_ms))
                    // Meta does not redirect API calls; a redirect would carry
                    // a token request's query (the token) elsewhere.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?,
            ),
            GraphMode::DryRun => Transport::DryRun(Arc::default()),
        };
        Ok(Self {
            transport,
            throttle: Throttle::default(),
            accounts,
            instagram_base_url: base_url("instagram_base_url", &config.graph.instagram_base_url)?,
            facebook_base_url: base_url("facebook_base_url", &config.graph.facebook_base_url)?,
            api_version: config.graph.api_version.clone(),
        })
    }

    /// A client for the same accounts that records every call instead of
    /// sending it (a dry run of its own), for a sandboxed replay.
    pub fn sandboxed(&self) -> Self {
        Self {
            transport: Transport::DryRun(Arc::default()),
            throttle: Throttle::default(),
            accounts: Arc::clone(&self.accounts),
            instagram_base_url: self.instagram_base_url.clone(),
            facebook_base_url: self.facebook_base_url.clone(),
            api_version: self.api_version.clone(),
        }
    }

    /// The accounts this client acts for.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// Mark `account_id` `token-invalid`: Meta refused token `generation`.
    async fn token_refused(&self, account_id: &str, generation: u64, reason: &str) {
        let now = crate::clock::now_ms();
        if let Err(error) = self
            .accounts
            .token_refused(account_id, generation, reason, now)
            .await
        {
            // The next call is refused again, and tries again.
            tracing::error!(account = %account_id, %error, "recording a refused token failed");
        }
    }

    /// How long Meta still refuses `account_id` (its usage headers or a
    /// rate-limit error said so), if it does.
    pub fn backed_off_for(&self, account_id: &str) -> Option<Duration> {
        self.throttle.backed_off_for(account_id)
    }

    /// Forget rate-limit state of idle accounts.
    pub fn prune(&self) {
        self.throttle.prune();
    }

    /// The dry run's record of calls, when this is a dry run.
    pub fn dry_run(&self) -> Option<Arc<DryRun>> {
        match &self.transport {
            Transport::DryRun(dry_run) => Some(Arc::clone(dry_run)),
            Transport::Live(_) => None,
        }
    }

    /// `POST /{account}/messages`: a message or a sender action, drawing on
    /// the budget of its class. Never retried.
    pub async fn send_message(
        &self,
        account_id: &str,
        send: &SendRequest,
    ) -> Result<SentMessage, GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::POST,
            &[account_id, "messages"],
            &[],
            Some(json_body(send)),
        );
        let response = self
            .call(account_id, request, send.class(), Repeat::Once)
            .await?;
        parse(response, "Send API")
    }

    /// `POST /{account}/message_attachments`: upload reusable media; returns
    /// its attachment id.
    pub async fn upload_attachment(
        &self,
        account_id: &str,
        kind: MediaKind,
        url: &WebUrl,
    ) -> Result<String, GraphError> {
        #[derive(Deserialize)]
        struct Uploaded {
            #[serde(deserialize_with = "crate::events::meta::id_text")]
            attachment_id: String,
        }
        let body = send::UploadRequest::new(kind, url.as_str());
        let request = self.request(
            account_id,
            reqwest::Method::POST,
            &[account_id, "message_attachments"],
            &[],
            Some(json_body(&body)),
        );
        let response = self
            .call(account_id, request, SendClass::Media, Repeat::Once)
            .await?;
        parse::<Uploaded>(response, "Attachment Upload API").map(|uploaded| uploaded.attachment_id)
    }

    /// `POST /{comment-id}/replies` with `{"message": text}`; returns the
    /// reply's id.
    pub async fn reply_to_comment(
        &self,
        account_id: &str,
        comment_id: &GraphId,
        text: &str,
    ) -> Result<String, GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::POST,
            &[comment_id.as_str(), "replies"],
            &[],
            Some(json_body(&CommentReply { message: text })),
        );
        let response = self
            .call(account_id, request, SendClass::Other, Repeat::Once)
            .await?;
        parse::<Created>(response, "comment reply").map(|created| created.id)
    }

    /// `POST /{comment-id}?hide=true|false`.
    pub async fn set_comment_hidden(
        &self,
        account_id: &str,
        comment_id: &GraphId,
        hidden: bool,
    ) -> Result<(), GraphError> {
        let hide = if hidden { "true" } else { "false" };
        let request = self.request(
            account_id,
            reqwest::Method::POST,
            &[comment_id.as_str()],
            &[("hide", hide)],
            None,
        );
        self.call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await
            .map(drop)
    }

    /// `DELETE /{comment-id}`.
    pub async fn delete_comment(
        &self,
        account_id: &str,
        comment_id: &GraphId,
    ) -> Result<(), GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::DELETE,
            &[comment_id.as_str()],
            &[],
            None,
        );
        self.call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await
            .map(drop)
    }

    /// `POST /{account}/{pass|take|release|request}_thread_control`: Meta's
    /// handover protocol, for the thread with `recipient` (passing it to
    /// `target_app_id`). Accounts connected with Facebook Login only (the
    /// protocol is the Page's); for others it is `Invalid`, and nothing is
    /// sent.
    pub async fn thread_control(
        &self,
        account_id: &str,
        control: ThreadControl<'_>,
    ) -> Result<(), GraphError> {
        if self.accounts.login(account_id) != LoginKind::Facebook {
            return Err(GraphError::Invalid(
                "thread control needs an account connected with Facebook Login".into(),
            ));
        }
        let request = self.request(
            account_id,
            reqwest::Method::POST,
            &[account_id, control.action.endpoint()],
            &[],
            Some(json_body(&control.body())),
        );
        self.call(account_id, request, SendClass::Other, Repeat::Once)
            .await
            .map(drop)
    }

    /// `GET /{igsid}?fields=…`: the User Profile API.
    pub async fn profile(
        &self,
        account_id: &str,
        igsid: &GraphId,
    ) -> Result<UserProfile, GraphError> {
        let request = self.request(
            account_id,
            reqwest::Method::GET,
            &[igsid.as_str()],
            &[("fields", PROFILE_FIELDS)],
            None,
        );
        let response = self
            .call(account_id, request, SendClass::Other, Repeat::Idempotent)
            .await?;
        parse(response, "User Profile API")
    }

    /// A request to `base/version/segments…?query`. Each segment is
    /// percent-encoded as one path segment and each pair as query, so no
    /// value can add a segment, a parameter or a fragment.
    fn request(
        &self,
        account_id: &str,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> GraphRequest {
        let mut url = match self.accounts.login(account_id) {
            LoginKind::Instagram => self.instagram_base_url.clone(),
            LoginKind::Facebook => self.facebook_base_url.clone(),
        };
        url.path_segments_mut()
            .expect("base URLs are checked to be http(s) at start-up")
            .pop_if_empty()
            .push(&self.api_version)
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        GraphRequest { method, url, body }
    }

    /// Send `request` on behalf of `account_id` within its budgets,
    /// attaching its token; retry transient failures of idempotent calls.
    async fn call(
        &self,
        account_id: &str,
        request: GraphRequest,
        class: SendClass,
        repeat: Repeat,
    ) -> Result<Value, GraphError> {
        let client = match &self.transport {
            Transport::DryRun(dry_run) => {
                self.wait_for_budget(account_id, class).await?;
                return Ok(dry_run.record(account_id, request));
            }
            Transport::Live(client) => client,
        };
        // A refused token fails here, at once, without waiting or reaching
        // Meta.
        let credentials =
            self.accounts
                .credentials(account_id)
                .map_err(|unusable| match unusable {
                    Unusable::NoToken => GraphError::NoToken(account_id.to_owned()),
                    Unusable::TokenInvalid(reason) => GraphError::TokenInvalid(format!(
                        "refused earlier ({reason}); waiting for a new token"
                    )),
                })?;
        self.wait_for_budget(account_id, class).await?;
        let mut attempt = 0;
        loop {
            let result = self
                .attempt(client, &credentials.token, account_id, &request)
                .await;
            if let Err(GraphError::TokenInvalid(reason)) = &result {
                self.token_refused(account_id, credentials.generation, reason)
                    .await;
            }
            match (&result, repeat) {
                (Err(GraphError::Transient(_) | GraphError::Unanswered(_)), Repeat::Idempotent)
                    if attempt < RETRY_BACKOFF.len() =>
                {
                    tokio::time::sleep(RETRY_BACKOFF[attempt]).await;
                    attempt += 1;
                }
                _ => return result,
            }
        }
    }

    /// Take a call from the account's budget, waiting briefly for it so a
    /// burst is smoothed rather than refused; past [`MAX_BUDGET_WAIT`] (or
    /// [`MAX_CONVERSATIONS_WAIT`]) the caller is told how long to wait
    /// instead.
    async fn wait_for_budget(&self, account_id: &str, class: SendClass) -> Result<(), GraphError> {
        let started = tokio::time::Instant::now();
        let max_wait = match class {
            SendClass::Conversations => MAX_CONVERSATIONS_WAIT,
            _ => MAX_BUDGET_WAIT,
        };
        let deadline = started + max_wait;
        // Callers wait their turn in arrival order, so none starves.
        let queue = self.throttle.queue(account_id, class);
        let _turn = tokio::time::timeout_at(deadline, queue.lock())
            .await
            .map_err(|_| GraphError::RateLimited {
                retry_after_ms: max_wait.as_millis() as u64,
            })?;
        loop {
            match self.throttle.acquire(account_id, class) {
                Ok(()) => return Ok(()),
                Err(wait) if tokio::time::Instant::now() + wait <= deadline => {
                    tokio::time::sleep(wait).await
                }
                Err(wait) => {
                    return Err(GraphError::RateLimited {
                        retry_after_ms: wait.as_millis().max(1) as u64,
                    });
                }
            }
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        token: &str,
        account_id: &str,
        request: &GraphRequest,
    ) -> Result<Value, GraphError> {
        let mut builder = client
            .request(request.method.clone(), request.url.clone())
            .bearer_auth(token);
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(|error| {
            // Only a connection never made surely left Meta untouched.
            if error.is_connect() {
                GraphError::Transient(format!("request failed: {error}"))
            } else {
                GraphError::Unanswered(format!("request failed: {error}"))
            }
        })?;
        let status = response.status();
        let backed_off = self.throttle.observe_usage(account_id, response.headers());
        let body = response.bytes().await.map_err(|error| {
            GraphError::Unanswered(format!("reading the response failed: {error}"))
        })?;
        if !status.is_success() {
            let error = GraphError::classify(status.as_u16(), &body);
            return Err(match (error, backed_off) {
                (GraphError::RateLimited { .. }, Some(wait)) => GraphError::RateLimited {
                    retry_after_ms: wait.as_millis() as u64,
                },
                (GraphError::RateLimited { retry_after_ms }, None) => {
                    self.throttle
                        .back_off(account_id, Duration::from_millis(retry_after_ms));
                    GraphError::RateLimited { retry_after_ms }
                }
                (other, _) => other,
            });
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body)
            .map_err(|error| GraphError::Invalid(format!("response is not JSON: {error}")))
    }
}

/// A configured base URL, which must be able to take path segments.
fn base_url(key: &'static str, text: &str) -> Result<reqwest::Url, GraphSetupError> {
    let url = reqwest::Url::parse(text).map_err(|error| GraphSetupError::BaseUrl {
        key,
        reason: error.to_string(),
    })?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(GraphSetupError::BaseUrl {
            key,
            reason: format!("scheme `{}`", url.scheme()),
        });
    }
    Ok(url)
}

/// Meta's time, `2026-12-05T07:00:00+0000`, as milliseconds since the epoch.
pub(crate) fn meta_time_ms(text: &str) -> Option<u64> {
    chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z")
        .ok()
        .and_then(|time| u64::try_from(time.timestamp_millis()).ok())
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// `POST /{comment-id}/replies`'s body.
#[derive(Serialize)]
struct CommentReply<'a> {
    message: &'a str,
}

/// A step of Meta's handover protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAction {
    /// Give the thread to another app.
    Pass,
    /// Take the thread from the app that has it.
    Take,
    /// Give the thread back to the app that had it.
    Release,
    /// Ask the app that has the thread for it.
    Request,
}

impl ThreadAction {
    fn endpoint(self) -> &'static str {
        match self {
            ThreadAction::Pass => "pass_thread_control",
            ThreadAction::Take => "take_thread_control",
            ThreadAction::Release => "release_thread_control",
            ThreadAction::Request => "request_thread_control",
        }
    }
}

/// One handover call: the step, the person's thread, where it goes, and
/// what the other app is told.
#[derive(Debug, Clone, Copy)]
pub struct ThreadControl<'a> {
    /// The step.
    pub action: ThreadAction,
    /// The person whose thread it is.
    pub recipient: &'a GraphId,
    /// The app given the thread (`Pass` only).
    pub target_app_id: Option<&'a GraphId>,
    /// Passed along to the other app.
    pub metadata: Option<&'a str>,
}

impl ThreadControl<'_> {
    fn body(&self) -> Value {
        let mut body = serde_json::json!({"recipient": {"id": self.recipient.as_str()}});
        if let Some(target) = self.target_app_id {
            body["target_app_id"] = target.as_str().into();
        }
        if let Some(metadata) = self.metadata {
            body["metadata"] = metadata.into();
        }
        body
    }
}

/// A typed body as the JSON sent (and recorded by a dry run).
fn json_body(body: &impl Serialize) -> Value {
    serde_json::to_value(body).expect("request bodies are plain data")
}

/// `{"id": …}`, Meta's answer to creating an object.
#[derive(Deserialize)]
struct Created {
    id: String,
}

fn parse<T: serde::de::DeserializeOwned>(response: Value, api: &str) -> Result<T, GraphError> {
    serde_json::from_value(response)
        .map_err(|error| GraphError::Invalid(format!("unexpected {api} response: {error}")))
}

#[cfg(test)]
mod tests {
    use super::meta_time_ms;

    #[test]
    fn metas_times_are_read_with_their_offset() {
        assert_eq!(meta_time_ms("1970-01-01T00:01:40+0000"), Some(100_000));
        assert_eq!(meta_time_ms("1970-01-01T01:01:40+0100"), Some(100_000));
        assert_eq!(meta_time_ms("yesterday"), None);
    }
}
