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
    /// The body parsed as JSON (`Null` if empty).
    pub body: Value,
}

#[derive(Default)]
struct Recorded {
    requests: Mutex<Vec<RecordedRequest>>,
    /// How long each answer takes, to play a slow Meta.
    delay: Duration,
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

async fn record(State(recorded): State<Arc<Recorded>>, request: Request) -> impl IntoResponse {
    tokio::time::sleep(recorded.delay).await;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let mut requests = recorded.requests.lock().unwrap();
    let number = requests.len() + 1;
    let response = json!({
        "recipient_id": body.pointer("/recipient/id").cloned().unwrap_or(Value::Null),
        "message_id": format!("fake-mid-{number}"),
    });
    requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        authorization: parts
            .headers
            .get("authorization")
            .map(|value| value.to_str().unwrap().to_owned()),
        body,
    });
    (StatusCode::OK, axum::Json(response))
}
