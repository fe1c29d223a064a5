//! A counting stand-in for the Graph API, for the end-to-end and memory
//! runs: answers the Send API, optionally after a delay, and counts
//! requests received and answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::json;
use tokio::net::TcpListener;

/// The running fake.
pub(crate) struct CountingGraph {
    /// Its base URL.
    pub base_url: String,
    arrived: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl CountingGraph {
    /// Start it; each answer waits `delay`.
    pub(crate) async fn start(delay: Duration) -> anyhow::Result<Self> {
        let arrived = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let (arrivals, answers) = (Arc::clone(&arrived), Arc::clone(&answered));
        let app = Router::new().route(
            "/{version}/{account}/messages",
            post(move || {
                let (arrivals, answers) = (Arc::clone(&arrivals), Arc::clone(&answers));
                async move {
                    arrivals.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    answers.fetch_add(1, Ordering::Relaxed);
                    axum::Json(json!({"recipient_id": "r", "message_id": "m"}))
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            base_url,
            arrived,
            answered,
        })
    }

    /// Requests received so far (answered or not).
    pub(crate) fn arrived(&self) -> usize {
        self.arrived.load(Ordering::Relaxed)
    }

    /// Requests answered so far.
    pub(crate) fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }
}
