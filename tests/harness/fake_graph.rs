//! A fake of Meta's Graph API: a real HTTP server on port 0 that records
//! every request and answers like the Send API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `x-access-key` header (the profile provider's), if any.
    pub access_key: Option<String>,
    /// The body parsed as JSON (`Null` if empty).
    pub body: Value,
}

/// A message the fake's Send API accepted, as the Conversations API shows it.
#[derive(Debug, Clone)]
pub struct SentMessage {
    /// The message id the fake answered with.
    pub id: String,
    /// The sending account.
    pub account_id: String,
    /// The recipient's IGSID.
    pub recipient_id: String,
    /// The text, if it was one.
    pub text: Option<String>,
    /// When it was accepted, in seconds since the epoch.
    pub created_s: u64,
}

#[derive(Default)]
struct Recorded {
    requests: Mutex<Vec<RecordedRequest>>,
    /// What the Send API accepted: the conversations read back.
    sent: Mutex<Vec<SentMessage>>,
    /// Answers to give next, in order, before the default ones.
    scripted: Mutex<std::collections::VecDeque<Scripted>>,
    /// How long each answer takes, to play a slow Meta.
    delay: Mutex<Duration>,
    /// Each account's setup: its subscribed fields and messenger profile.
    setup: Mutex<std::collections::HashMap<String, AccountSetup>>,
    /// Access tokens answered with error 190, as Meta answers expired ones.
    refused_tokens: Mutex<std::collections::HashSet<String>>,
    /// Comments on the account's media, as the comments edge lists them:
    /// (media id, comment).
    media_comments: Mutex<Vec<(String, Value)>>,
}

/// What the fake remembers of an account's setup at Meta.
#[derive(Debug, Clone, Default)]
pub struct AccountSetup {
    /// The webhook fields it delivers.
    pub subscribed_fields: Vec<String>,
    /// Its messenger profile, as last set (`ice_breakers`, `persistent_menu`).
    pub profile: serde_json::Map<String, Value>,
}

/// A scripted answer: status, body and headers.
struct Scripted {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

/// The running fake. Stops when the test's runtime ends.
pub struct FakeGraph {
    base_url: String,
    recorded: Arc<Recorded>,
}

impl FakeGraph {
    /// Start the fake on a free port.
    pub async fn start() -> Self {
        Self::start_with_delay(Duration::ZERO).await
    }

    /// Start a fake that takes `delay` to answer each request.
    pub async fn start_with_delay(delay: Duration) -> Self {
        let recorded = Arc::new(Recorded {
            delay: Mutex::new(delay),
            ..Recorded::default()
        });
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&recorded));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base_url, recorded }
    }

    /// Its base URL, for `graph.instagram_base_url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Take `delay` to answer each request from now on.
    pub fn set_delay(&self, delay: Duration) {
        *self.recorded.delay.lock().unwrap() = delay;
    }

    /// Answer the next request with `status` and `body` (then the defaults).
    pub fn script(&self, status: u16, body: Value) {
        self.script_with_headers(status, body, Vec::new());
    }

    /// [`FakeGraph::script`] with response headers.
    pub fn script_with_headers(
        &self,
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    ) {
        self.recorded.scripted.lock().unwrap().push_back(Scripted {
            status,
            body,
            headers,
        });
    }

    /// Put a message in a conversation as if the Send API had accepted it
    /// (from an igloo that crashed before it heard the answer).
    pub fn add_sent_message(&self, account_id: &str, recipient_id: &str, text: &str) -> String {
        let mut sent = self.recorded.sent.lock().unwrap();
        let id = format!("earlier-mid-{}", sent.len() + 1);
        sent.push(SentMessage {
            id: id.clone(),
            account_id: account_id.into(),
            recipient_id: recipient_id.into(),
            text: Some(text.into()),
            created_s: now_s(),
        });
        id
    }

    /// Answer every request carrying `token` with error 190 from now on, as
    /// Meta answers an expired or revoked token.
    pub fn refuse_token(&self, token: &str) {
        self.recorded
            .refused_tokens
            .lock()
            .unwrap()
            .insert(format!("Bearer {token}"));
    }

    /// A comment on `media_id` made at `created_ms`, listed by
    /// `GET /{media}/comments` (and its media by `GET /{account}/media`).
    pub fn add_media_comment(
        &self,
        media_id: &str,
        comment_id: &str,
        author: &str,
        text: &str,
        created_ms: u64,
    ) {
        let created = chrono::DateTime::from_timestamp_millis(created_ms as i64).unwrap();
        self.recorded.media_comments.lock().unwrap().push((
            media_id.to_owned(),
            json!({"id": comment_id, "text": text, "timestamp": created.format("%Y-%m-%dT%H:%M:%S%z").to_string(),
                "from": {"id": author, "username": "someone"}}),
        ));
    }

    /// Set `account_id`'s setup at Meta, as if done before.
    pub fn set_account_setup(&self, account_id: &str, setup: AccountSetup) {
        self.recorded
            .setup
            .lock()
            .unwrap()
            .insert(account_id.to_owned(), setup);
    }

    /// `account_id`'s setup at Meta now.
    pub fn account_setup(&self, account_id: &str) -> AccountSetup {
        self.recorded
            .setup
            .lock()
            .unwrap()
            .get(account_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The messages the Send API accepted (and any added), in order.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.recorded.sent.lock().unwrap().clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorded.requests.lock().unwrap().clone()
    }

    /// Wait until at least `count` requests arrived; return them all.
    pub async fn wait_for(&self, count: usize) -> Vec<RecordedRequest> {
        crate::eventually(
            &format!("{count} request(s) at the fake Graph API"),
            || async {
                let requests = self.requests();
                (requests.len() >= count).then_some(requests)
            },
        )
        .await
    }
}

/// The HikerAPI sample user (seed 003), with an `fbid_v2` above 2^53.
fn provider_user() -> Value {
    serde_json::from_str(
        r#"{"user": {"pk": 17841400573960012, "id": "17841400573960012", "username": "natgeo",
            "full_name": "National Geographic", "biography": "Step into wonder", "profile_pic_url": "https://scontent/pic.jpg",
            "is_private": false, "is_verified": true, "is_business": true, "follower_count": 274988955,
            "following_count": 193, "media_count": 31529, "fbid_v2": 17841400573960012}, "status": "ok"}"#,
    )
    .unwrap()
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The Conversations API over what the Send API accepted: a person's
/// conversation is `conversation-{account}-{person}`, its messages those
/// sent to them, newest first. `None` if `path` is not that API.
fn conversations(sent: &[SentMessage], path: &str, query: Option<&str>) -> Option<Value> {
    let query = query.unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    if last == "conversations" {
        let account = path.rsplit('/').nth(1).unwrap_or_default();
        let person = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("user_id="))
            .unwrap_or_default();
        let any = sent
            .iter()
            .any(|message| message.account_id == account && message.recipient_id == person);
        let data = if any {
            vec![json!({"id": format!("conversation-{account}-{person}")})]
        } else {
            Vec::new()
        };
        return Some(json!({ "data": data }));
    }
    let (account, person) = last.strip_prefix("conversation-")?.split_once('-')?;
    let messages: Vec<Value> = sent
        .iter()
        .rev()
        .filter(|message| message.account_id == account && message.recipient_id == person)
        .map(|message| {
            let created = chrono::DateTime::from_timestamp(message.created_s as i64, 0).unwrap();
            json!({
                "id": message.id,
                "created_time": created.format("%Y-%m-%dT%H:%M:%S%z").to_string(),
                "from": {"id": message.account_id, "username": "the_business"},
                "to": {"data": [{"id": message.recipient_id, "username": "a_person"}]},
                "message": message.text,
            })
        })
        .collect();
    Some(json!({"id": last, "messages": {"data": messages}}))
}

/// `/{account}/subscribed_apps` and `/{account}/messenger_profile`, read
/// and written; `None` for other paths.
fn account_setup(
    setups: &mut std::collections::HashMap<String, AccountSetup>,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &Value,
) -> Option<Value> {
    let mut segments = path.rsplit('/');
    let (endpoint, account) = (segments.next()?, segments.next()?);
    if !matches!(endpoint, "subscribed_apps" | "messenger_profile") {
        return None;
    }
    let setup = setups.entry(account.to_owned()).or_default();
    let query = query.unwrap_or_default();
    Some(match (method, endpoint) {
        ("GET", "subscribed_apps") => {
            json!({"data": [{"subscribed_fields": setup.subscribed_fields}]})
        }
        ("POST", "subscribed_apps") => {
            let fields = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("subscribed_fields="))
                .unwrap_or_default()
                .replace("%2C", ",");
            setup.subscribed_fields = fields
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect();
            json!({"success": true})
        }
        ("GET", _) => {
            let field = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("fields="))
                .unwrap_or_default();
            let value = setup.profile.get(field).cloned().unwrap_or(json!([]));
            json!({"data": [{ field: value }]})
        }
        _ => {
            for field in ["ice_breakers", "persistent_menu"] {
                if let Some(value) = body.get(field) {
                    setup.profile.insert(field.to_owned(), value.clone());
                }
            }
            json!({"result": "success"})
        }
    })
}

/// `GET /{account}/media` and `GET /{media}/comments` over the comments
/// added; `None` for other requests.
fn media(comments: &[(String, Value)], method: &str, path: &str) -> Option<Value> {
    if method != "GET" {
        return None;
    }
    let mut segments = path.rsplit('/');
    let (edge, owner) = (segments.next()?, segments.next()?);
    match edge {
        "media" => {
            let mut ids: Vec<&str> = comments.iter().map(|(media, _)| media.as_str()).collect();
            ids.dedup();
            let data: Vec<Value> = ids
                .into_iter()
                .map(|id| json!({"id": id, "media_product_type": "FEED"}))
                .collect();
            Some(json!({ "data": data }))
        }
        "comments" => {
            let data: Vec<Value> = comments
                .iter()
                .filter(|(media, _)| media == owner)
                .map(|(_, comment)| comment.clone())
                .collect();
            Some(json!({ "data": data }))
        }
        // `GET /{comment}`: a comment it lists, by id.
        id => comments
            .iter()
            .find(|(_, comment)| comment["id"] == id)
            .map(|(_, comment)| comment.clone()),
    }
}

/// The account Business Login connects in tests.
pub const CONNECTED_ACCOUNT_ID: &str = "17841400000000077";

/// Business Login's endpoints: the code exchange (a short-lived token), the
/// long-lived token, and `/me`; `None` for other requests.
fn business_login(method: &str, path: &str, query: Option<&str>) -> Option<Value> {
    let query = query.unwrap_or_default();
    if method == "POST" && path.ends_with("/oauth/access_token") {
        // The id as a number above 2^53, as Meta sends it.
        let answer = format!(
            r#"{{"access_token": "short-lived-token", "user_id": {CONNECTED_ACCOUNT_ID}, "permissions": "instagram_business_basic,instagram_business_manage_messages,instagram_business_manage_comments"}}"#
        );
        return serde_json::from_str(&answer).ok();
    }
    if method == "GET" && path == "/access_token" && query.contains("grant_type=ig_exchange_token")
    {
        return Some(
            json!({"access_token": "long-lived-token", "token_type": "bearer", "expires_in": 5_184_000}),
        );
    }
    if method == "GET" && path.ends_with("/me") && query.contains("user_id") {
        return Some(
            json!({"user_id": CONNECTED_ACCOUNT_ID, "username": "new_shop", "id": "9999"}),
        );
    }
    None
}

/// Meta's default answers: the Send API's, a profile for profile reads,
/// `{"id"}` for replies, `{"attachment_id"}` for uploads, a new token for
/// a refresh.
fn default_answer(
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &Value,
    number: usize,
) -> Value {
    if path.starts_with("/v2/user/by/") {
        return provider_user();
    }
    if method == "GET" && query.is_some_and(|q| q.starts_with("fields=")) {
        let id = path.rsplit('/').next().unwrap_or_default();
        return json!({"name": "Peter Chang", "username": "peter_chang_live", "profile_pic": "https://fbcdn/pic",
            "follower_count": 1234, "is_user_follow_business": false, "is_business_follow_user": true,
            "is_verified_user": false, "id": id});
    }
    if path.ends_with("/refresh_access_token") {
        return json!({"access_token": format!("refreshed-token-{number}"), "token_type": "bearer",
            "expires_in": 5_184_000});
    }
    if path.ends_with("/replies") {
        return json!({"id": format!("reply-{number}")});
    }
    if path.ends_with("/message_attachments") {
        return json!({"attachment_id": format!("attachment-{number}")});
    }
    if method != "POST" || !path.ends_with("/messages") {
        return json!({"success": true});
    }
    json!({
        "recipient_id": body.pointer("/recipient/id").cloned().unwrap_or(Value::Null),
        "message_id": format!("fake-mid-{number}"),
    })
}

async fn record(
    State(recorded): State<Arc<Recorded>>,
    request: Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        // A form (Business Login's code exchange) is kept as its text.
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    // Recorded, and acted on, before the (slow) answer; no lock is held
    // across the wait.
    let (scripted, answer) = {
        let mut requests = recorded.requests.lock().unwrap();
        let number = requests.len() + 1;
        let (method, path, query) = (
            parts.method.to_string(),
            parts.uri.path().to_owned(),
            parts.uri.query().map(str::to_owned),
        );
        let refused = header("authorization")
            .is_some_and(|token| recorded.refused_tokens.lock().unwrap().contains(&token));
        let scripted = if refused {
            Some(Scripted {
                status: 400,
                body: json!({"error": {"message": "Error validating access token: Session has expired",
                    "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "x"}}),
                headers: Vec::new(),
            })
        } else {
            recorded.scripted.lock().unwrap().pop_front()
        };
        let mut sent = recorded.sent.lock().unwrap();
        let mut setups = recorded.setup.lock().unwrap();
        let answer = match conversations(&sent, &path, query.as_deref()) {
            Some(answer) if method == "GET" => answer,
            _ => account_setup(&mut setups, &method, &path, query.as_deref(), &body)
                .or_else(|| media(&recorded.media_comments.lock().unwrap(), &method, &path))
                .or_else(|| business_login(&method, &path, query.as_deref()))
                .unwrap_or_else(|| default_answer(&method, &path, query.as_deref(), &body, number)),
        };
        drop(setups);
        if scripted.is_none()
            && method == "POST"
            && path.ends_with("/messages")
            && let Some(id) = answer["message_id"].as_str()
        {
            sent.push(SentMessage {
                id: id.to_owned(),
                account_id: path.rsplit('/').nth(1).unwrap_or_default().to_owned(),
                recipient_id: answer["recipient_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                text: body
                    .pointer("/message/text")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                created_s: now_s(),
            });
        }
        requests.push(RecordedRequest {
            method,
            path,
            query,
            authorization: header("authorization"),
            access_key: header("x-access-key"),
            body,
        });
        (scripted, answer)
    };
    // Meta acts at once; its answer is what is slow.
    let delay = *recorded.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    match scripted {
        Some(Scripted {
            status,
            body,
            headers,
        }) => {
            let mut response =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        None => (StatusCode::OK, axum::Json(answer)).into_response(),
    }
}
