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

#[derive(Default)]
struct Recorded {
    requests: Mutex<Vec<RecordedRequest>>,
    /// Answers to give next, in order, before the default ones.
    scripted: Mutex<std::collections::VecDeque<Scripted>>,
    /// How long each answer takes, to play a slow Meta.
    delay: Duration,
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
            delay,
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

/// Meta's default answers: the Send API's, a profile for profile reads,
/// `{"id"}` for replies, `{"attachment_id"}` for uploads.
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
    tokio::time::sleep(recorded.delay).await;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let mut requests = recorded.requests.lock().unwrap();
    let number = requests.len() + 1;
    let (method, path, query) = (
        parts.method.to_string(),
        parts.uri.path().to_owned(),
        parts.uri.query().map(str::to_owned),
    );
    let scripted = recorded.scripted.lock().unwrap().pop_front();
    let answer = default_answer(&method, &path, query.as_deref(), &body, number);
    requests.push(RecordedRequest {
        method,
        path,
        query,
        authorization: header("authorization"),
        access_key: header("x-access-key"),
        body,
    });
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
