//! Dispatch in process, on one core: the auto-reply plugin in a fresh
//! instance per event, against the same logic as a native Rust function
//! calling the same host services. The difference is the sandbox tax.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use igloo::config::{Config, PluginConfig, PluginSource};
use igloo::events::{Event, EventKind, Message};
use igloo::graph::{GraphClient, GraphId, SendRequest};
use igloo::runtime::{RunOutcome, Runtime};

use crate::payload::account;

/// What the dispatch benchmark measured.
pub(crate) struct DispatchResult {
    /// Sandboxed events per second, one core.
    pub sandboxed_rate: f64,
    /// Native events per second, one core.
    pub native_rate: f64,
    /// Instantiation time percentiles, microseconds.
    pub instantiate_p50_us: u64,
    /// 99th percentile.
    pub instantiate_p99_us: u64,
    /// Process CPU time per sandboxed event, microseconds.
    pub cpu_us_per_event: f64,
}

fn event(n: usize) -> Arc<Event> {
    Arc::new(Event {
        key: format!("message:{}:bench-{n}", account(n)),
        account_id: account(n),
        timestamp_ms: igloo::clock::now_ms(),
        is_echo: false,
        is_self: false,
        is_standby: false,
        kind: EventKind::Message(Message {
            mid: format!("bench-{n}"),
            sender_id: format!("{}", 6_700_000_000_000_000u64 + n as u64),
            recipient_id: account(n),
            text: Some("Do you ship to Lisbon?".into()),
            ..Message::default()
        }),
    })
}

/// CPU time this process has used (user + system).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of those, in clock ticks (100 per second on Linux).
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// The same work as the auto-reply plugin, natively.
async fn native_reply(graph: &GraphClient, reply: &str, event: &Event) {
    let EventKind::Message(message) = &event.kind else {
        return;
    };
    let Some(text) = message.text.as_deref().filter(|text| !text.is_empty()) else {
        return;
    };
    let reply = reply.replace("{text}", text);
    let recipient = GraphId::parse("IGSID", &message.sender_id).expect("a numeric IGSID");
    graph
        .send_message(
            &event.account_id,
            &SendRequest::text(recipient.as_str(), &reply),
        )
        .await
        .expect("dry-run send");
}

/// Run `events` events each way.
pub(crate) async fn run(events: usize) -> anyhow::Result<DispatchResult> {
    let data_dir = tempfile::tempdir()?;
    let mut config = Config {
        plugins: vec![PluginConfig {
            settings: [("reply".to_owned(), "Thanks! You said: {text}".to_owned())].into(),
            ..PluginConfig::new(
                "auto-reply",
                PluginSource::Builtin("auto-reply".into()),
                &["messages:reply"],
            )
        }],
        ..Config::default()
    };
    config.storage.data_dir = data_dir.path().to_owned();
    let runtime = Runtime::new(&config)?;
    let services = Arc::clone(runtime.services());
    let plugin = runtime
        .plugins()
        .first()
        .ok_or_else(|| anyhow::anyhow!("auto-reply did not load"))?;

    let warmup = (events / 10).max(50);
    // Open every person's window first, as the dispatcher would; untimed.
    for n in 0..warmup + events {
        services.observe(&event(n), igloo::clock::now_ms()).await?;
    }
    for n in 0..warmup {
        runtime.run(plugin, event(n), igloo::clock::now_ms()).await;
    }
    let mut instantiate = Histogram::<u64>::new(3).unwrap();
    let cpu_before = cpu_time();
    let started = Instant::now();
    for n in 0..events {
        let receipt = runtime
            .run(plugin, event(warmup + n), igloo::clock::now_ms())
            .await;
        anyhow::ensure!(
            receipt.outcome == RunOutcome::Ok,
            "run failed: {:?}",
            receipt.outcome
        );
        instantiate
            .record(receipt.instantiate.as_micros() as u64)
            .unwrap();
    }
    let sandboxed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);

    // The native baseline gets its own client, configured as the host's.
    let graph = GraphClient::new(&config)?;
    let reply = "Thanks! You said: {text}";
    for n in 0..warmup {
        native_reply(&graph, reply, &event(n)).await;
    }
    let started = Instant::now();
    for n in 0..events {
        native_reply(&graph, reply, &event(n)).await;
    }
    let native = started.elapsed();

    Ok(DispatchResult {
        sandboxed_rate: events as f64 / sandboxed.as_secs_f64(),
        native_rate: events as f64 / native.as_secs_f64(),
        instantiate_p50_us: instantiate.value_at_quantile(0.5),
        instantiate_p99_us: instantiate.value_at_quantile(0.99),
        cpu_us_per_event: cpu.as_secs_f64() * 1e6 / events as f64,
    })
}
