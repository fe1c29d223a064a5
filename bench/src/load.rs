//! The load generator: keep-alive HTTP/1.1 over loopback, closed-loop for
//! the maximum rate and open-loop at a fixed rate for latency (measured from
//! each request's scheduled time, so a stall is not hidden).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::payload::Signed;

/// What one load run measured.
pub(crate) struct LoadResult {
    /// Completed requests per second.
    pub rate: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Responses that were not 200.
    pub errors: usize,
}

fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .http1_only()
        .build()
        .expect("a client")
}

/// Post one signed body; whether it was accepted.
pub(crate) async fn post(client: &reqwest::Client, url: &str, signed: &Signed) -> bool {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", &signed.signature)
        .body(signed.body.clone())
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

/// As many requests as `connections` concurrent senders manage in
/// `duration`, each body sent once.
pub(crate) async fn closed_loop(
    url: &str,
    bodies: Arc<Vec<Signed>>,
    connections: usize,
    duration: Duration,
) -> LoadResult {
    let client = client(connections);
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, bodies, next, errors) = (
                client.clone(),
                url.to_owned(),
                Arc::clone(&bodies),
                Arc::clone(&next),
                Arc::clone(&errors),
            );
            tokio::spawn(async move {
                let mut latencies = Histogram::<u64>::new(3).unwrap();
                while started.elapsed() < duration {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(signed) = bodies.get(n) else { break };
                    let sent = Instant::now();
                    if !post(&client, &url, signed).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    latencies.record(sent.elapsed().as_micros() as u64).unwrap();
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Histogram::<u64>::new(3).unwrap();
    for worker in workers {
        latencies.add(worker.await.unwrap()).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    LoadResult {
        rate: latencies.len() as f64 / elapsed,
        p50_us: latencies.value_at_quantile(0.5),
        p99_us: latencies.value_at_quantile(0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Send at `rate` requests per second for `duration`, whatever the
/// server's pace; latency counts from when each request was due.
pub(crate) async fn open_loop(
    url: &str,
    bodies: Arc<Vec<Signed>>,
    rate: f64,
    duration: Duration,
) -> LoadResult {
    let client = client(256);
    let total = ((rate * duration.as_secs_f64()) as usize).min(bodies.len());
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let due = started + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, url, bodies) = (client.clone(), url.to_owned(), Arc::clone(&bodies));
        tasks.push(tokio::spawn(async move {
            let ok = post(&client, &url, &bodies[n]).await;
            (ok, due.elapsed())
        }));
    }
    let mut latencies = Histogram::<u64>::new(3).unwrap();
    let mut errors = 0;
    for task in tasks {
        let (ok, latency) = task.await.unwrap();
        errors += usize::from(!ok);
        latencies.record(latency.as_micros() as u64).unwrap();
    }
    LoadResult {
        rate: total as f64 / started.elapsed().as_secs_f64(),
        p50_us: latencies.value_at_quantile(0.5),
        p99_us: latencies.value_at_quantile(0.99),
        errors,
    }
}
