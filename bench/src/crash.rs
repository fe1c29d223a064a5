//! Nothing lost, nothing sent twice: distinct signed webhooks from many
//! connections into igloo running auto-reply against a slow Graph API,
//! while igloo is killed with SIGKILL several times and restarted on the
//! same data. Senders redeliver what did not get a 200, as Meta does. At
//! the end the fake Graph API (which implements the Conversations API over
//! what it accepted, so igloo can read a send back) counts the replies
//! each person got: every acknowledged event must have exactly one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use igloo_tests::FakeGraph;

use crate::payload::{self, Signed};
use crate::servers::{self, IglooSetup};

/// What the crash run counted.
pub(crate) struct CrashResult {
    /// Webhooks igloo acknowledged with 200.
    pub acknowledged: usize,
    /// Times igloo was killed.
    pub kills: usize,
    /// Acknowledged events whose person got no reply.
    pub lost: usize,
    /// Acknowledged events whose person got more than one.
    pub duplicated: usize,
    /// Calls left `unknown` in the journal (may have acted; unresolved).
    pub unknown: usize,
    /// Sends cut short by a kill that igloo looked for in the conversation.
    pub read_back: usize,
    /// From the first post to the last reply.
    pub elapsed: Duration,
}

/// Post `count` messages from `connections` connections, killing igloo
/// `kills` times along the way; Meta answers each send after `meta_delay`.
pub(crate) async fn run(
    count: usize,
    connections: usize,
    kills: usize,
    meta_delay: Duration,
) -> anyhow::Result<CrashResult> {
    let graph = FakeGraph::start_with_delay(meta_delay).await;
    let data = tempfile::tempdir()?;
    let port = servers::free_port();
    let start = || {
        servers::start_igloo(IglooSetup {
            data_dir: data.path(),
            graph: Some(graph.base_url()),
            auto_reply: true,
            concurrency: 64,
            port,
        })
    };
    let mut igloo = start().await?;
    let bodies = Arc::new(payload::single_messages(count, "crash"));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let posting = tokio::spawn(post_until_acknowledged(
        igloo.url.clone(),
        Arc::clone(&bodies),
        connections,
        Arc::clone(&acknowledged),
    ));

    // Kill at even steps through the acknowledgements, while replies are
    // in flight at the slow Graph API.
    for kill in 1..=kills {
        let at = count * kill / (kills + 1);
        while acknowledged.load(Ordering::Relaxed) < at && !posting.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        igloo.kill();
        igloo = start().await?;
    }
    posting.await?;
    let everyone_answered = crate::wait_for(
        || graph.sent_messages().len() >= count,
        Duration::from_secs(300),
    )
    .await;
    // Let anything still in flight land, then count.
    tokio::time::sleep(meta_delay * 2 + Duration::from_millis(500)).await;
    let elapsed = started.elapsed();
    drop(igloo);

    let mut replies: HashMap<String, usize> = HashMap::new();
    for sent in graph.sent_messages() {
        *replies.entry(sent.recipient_id).or_default() += 1;
    }
    let people = (0..count).map(payload::single_message_sender);
    let (mut lost, mut duplicated) = (0, 0);
    for person in people {
        match replies.get(&person).copied().unwrap_or(0) {
            0 => lost += 1,
            1 => {}
            _ => duplicated += 1,
        }
    }
    if !everyone_answered && lost == 0 {
        anyhow::bail!("replies were still missing after 300 s but none counted lost");
    }
    Ok(CrashResult {
        acknowledged: acknowledged.load(Ordering::Relaxed),
        kills,
        lost,
        duplicated,
        unknown: unknown_calls(data.path())?,
        read_back: graph
            .requests()
            .iter()
            .filter(|request| request.method == "GET" && request.path.ends_with("/conversations"))
            .count(),
        elapsed,
    })
}

/// Post every body until igloo answers 200, `connections` at a time; a
/// refused or failed post is sent again, as Meta redelivers.
async fn post_until_acknowledged(
    url: String,
    bodies: Arc<Vec<Signed>>,
    connections: usize,
    acknowledged: Arc<AtomicUsize>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, bodies, next, acknowledged) = (
                client.clone(),
                url.clone(),
                Arc::clone(&bodies),
                Arc::clone(&next),
                Arc::clone(&acknowledged),
            );
            tokio::spawn(async move {
                while let Some(signed) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                    while !crate::load::post(&client, &url, signed).await {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

/// Journal entries left `unknown` in the data directory's inbox.
fn unknown_calls(data_dir: &Path) -> anyhow::Result<usize> {
    let connection = rusqlite::Connection::open(data_dir.join("inbox.sqlite3"))?;
    let unknown: i64 = connection.query_row(
        "SELECT count(*) FROM journal WHERE status IN ('unknown', 'started')",
        [],
        |row| row.get(0),
    )?;
    Ok(usize::try_from(unknown).unwrap_or(0))
}
