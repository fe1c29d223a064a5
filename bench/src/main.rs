//! igloo's benchmark harness. `igloo-bench run` measures, in one run on one
//! machine, and prints figures and ratios:
//!
//! - ingress: signed ~2 KB webhooks per second through igloo (verify,
//!   parse, durable commit), a bare axum handler (verify and parse only:
//!   the ceiling) and an Express receiver in the style of Meta's samples;
//!   igloo's p50 and p99 at 70% of its maximum rate;
//! - dispatch: events per second through the auto-reply plugin in a fresh
//!   instance per event, against the same logic natively (the sandbox
//!   tax); instantiation p50 and p99; CPU per event;
//! - end to end: webhook in, reply received by a Graph API stand-in;
//! - memory: igloo's resident memory with 1,000 events in flight.
//!
//! `--smoke` runs each part briefly and fails if any part does not work;
//! CI runs that. `cargo xtask bench` runs the full comparison in release.

mod dispatch;
mod fake_graph;
mod load;
mod payload;
mod servers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::fake_graph::CountingGraph;
use crate::servers::IglooSetup;

#[derive(Parser)]
#[command(about = "igloo's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every benchmark and print the report (the default).
    Run {
        /// A short run that only checks every part works.
        #[arg(long)]
        smoke: bool,
    },
    /// (internal) Serve igloo for the load generator.
    ServeIgloo {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        graph: Option<String>,
        #[arg(long)]
        auto_reply: bool,
        #[arg(long, default_value_t = 32)]
        concurrency: u32,
    },
    /// (internal) Serve the bare axum receiver.
    ServeBare {
        #[arg(long)]
        port: u16,
    },
}

/// How long and how much each part runs.
struct Scale {
    smoke: bool,
    load_time: Duration,
    dispatch_events: usize,
    end_to_end_events: usize,
    in_flight_events: usize,
}

const CONNECTIONS: usize = 64;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command.unwrap_or(Command::Run { smoke: false }) {
        Command::ServeIgloo {
            port,
            data_dir,
            graph,
            auto_reply,
            concurrency,
        } => runtime.block_on(servers::serve_igloo(
            port,
            data_dir,
            graph,
            auto_reply,
            concurrency,
        )),
        Command::ServeBare { port } => runtime.block_on(servers::serve_bare(port)),
        Command::Run { smoke } => {
            let scale = if smoke {
                Scale {
                    smoke,
                    load_time: Duration::from_millis(500),
                    dispatch_events: 200,
                    end_to_end_events: 100,
                    in_flight_events: 100,
                }
            } else {
                Scale {
                    smoke,
                    load_time: Duration::from_secs(5),
                    dispatch_events: 20_000,
                    end_to_end_events: 5_000,
                    in_flight_events: 1_000,
                }
            };
            runtime.block_on(run(&scale))
        }
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

fn check(smoke: bool, ok: bool, what: &str) -> anyhow::Result<()> {
    if !ok {
        if smoke {
            anyhow::bail!("smoke check failed: {what}");
        }
        eprintln!("warning: {what}");
    }
    Ok(())
}

async fn run(scale: &Scale) -> anyhow::Result<()> {
    println!(
        "igloo benchmarks ({}) on {}",
        if scale.smoke { "smoke" } else { "full" },
        machine()
    );
    println!(
        "profile: {}\n",
        if cfg!(debug_assertions) {
            "debug (figures not representative)"
        } else {
            "release"
        }
    );

    // ---- Ingress -------------------------------------------------------
    let secs = scale.load_time.as_secs_f64();
    let capacity = if scale.smoke {
        5_000
    } else {
        (secs as usize + 1) * 60_000
    };
    let bodies = Arc::new(payload::single_events(capacity, "max"));
    let size = bodies[0].body.len();
    println!(
        "== Ingress: signed {:.1} KB webhooks (one event each), {CONNECTIONS} connections, {secs} s each",
        size as f64 / 1024.0
    );
    let data = tempfile::tempdir()?;
    let igloo_server = servers::start_igloo(IglooSetup {
        data_dir: data.path(),
        graph: None,
        auto_reply: false,
        concurrency: 32,
    })
    .await?;
    let igloo_max = load::closed_loop(
        &igloo_server.url,
        Arc::clone(&bodies),
        CONNECTIONS,
        scale.load_time,
    )
    .await;
    check(
        scale.smoke,
        igloo_max.errors == 0 && igloo_max.rate > 0.0,
        "igloo ingress answered errors",
    )?;
    let fixed_rate = (igloo_max.rate * 0.7).max(10.0);
    let latency_bodies = Arc::new(payload::single_events(
        (fixed_rate * secs) as usize + 10,
        "latency",
    ));
    let igloo_fixed = load::open_loop(
        &igloo_server.url,
        latency_bodies,
        fixed_rate,
        scale.load_time,
    )
    .await;
    check(
        scale.smoke,
        igloo_fixed.errors == 0,
        "igloo answered errors at a fixed rate",
    )?;
    let batches = Arc::new(payload::batches(
        if scale.smoke { 1_000 } else { 40_000 },
        "batch",
    ));
    let igloo_batched =
        load::closed_loop(&igloo_server.url, batches, CONNECTIONS, scale.load_time).await;
    check(
        scale.smoke,
        igloo_batched.errors == 0,
        "igloo answered errors to batches",
    )?;
    drop(igloo_server);

    let bare_server = servers::start_bare().await?;
    let bare = load::closed_loop(
        &bare_server.url,
        Arc::clone(&bodies),
        CONNECTIONS,
        scale.load_time,
    )
    .await;
    check(
        scale.smoke,
        bare.errors == 0,
        "the bare receiver answered errors",
    )?;
    // The same fixed rate against the ceiling: what the load generator and
    // loopback alone add to the tail.
    let control_bodies = Arc::new(payload::single_events(
        (fixed_rate * secs) as usize + 10,
        "control",
    ));
    let bare_fixed = load::open_loop(
        &bare_server.url,
        control_bodies,
        fixed_rate,
        scale.load_time,
    )
    .await;
    drop(bare_server);

    let express = if scale.smoke {
        None
    } else {
        match servers::start_express(&servers::target_dir()).await? {
            Some(server) => Some(
                load::closed_loop(
                    &server.url,
                    Arc::clone(&bodies),
                    CONNECTIONS,
                    scale.load_time,
                )
                .await,
            ),
            None => None,
        }
    };

    let per_core =
        |rate: f64| rate / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let row = |name: &str, result: &load::LoadResult| {
        println!(
            "  {name:<44} {:>9.0} req/s  ({:>6.0}/core)  p50 {:>6} µs  p99 {:>6} µs",
            result.rate,
            per_core(result.rate),
            result.p50_us,
            result.p99_us
        );
    };
    row("igloo: verify + parse + durable commit", &igloo_max);
    row("bare axum: verify + parse (ceiling)", &bare);
    if let Some(express) = &express {
        row("Express: verify + parse", express);
    }
    println!(
        "  igloo at a fixed {:.0} req/s (70% of its max): p50 {} µs, p99 {} µs",
        fixed_rate, igloo_fixed.p50_us, igloo_fixed.p99_us
    );
    println!(
        "  bare axum at the same rate (control):      p50 {} µs, p99 {} µs",
        bare_fixed.p50_us, bare_fixed.p99_us
    );
    println!(
        "  igloo with batches of 8 events per POST: {:.0} req/s = {:.0} events/s",
        igloo_batched.rate,
        igloo_batched.rate * 8.0
    );
    println!(
        "  ratio igloo / bare axum: {:.2}",
        igloo_max.rate / bare.rate
    );
    if let Some(express) = &express {
        println!(
            "  ratio igloo / Express:   {:.2}",
            igloo_max.rate / express.rate
        );
    }

    // ---- Dispatch ------------------------------------------------------
    let events = scale.dispatch_events;
    println!("\n== Dispatch: auto-reply on {events} events, fresh instance per event, one core");
    let dispatch = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(dispatch::run(events))
    })
    .join()
    .expect("the dispatch thread")?;
    println!(
        "  sandboxed: {:>9.0} events/s, instantiate p50 {} µs, p99 {} µs, CPU {:.1} µs/event",
        dispatch.sandboxed_rate,
        dispatch.instantiate_p50_us,
        dispatch.instantiate_p99_us,
        dispatch.cpu_us_per_event
    );
    println!("  native:    {:>9.0} events/s", dispatch.native_rate);
    println!(
        "  sandbox tax (native / sandboxed): {:.2}x",
        dispatch.native_rate / dispatch.sandboxed_rate
    );

    // ---- End to end ----------------------------------------------------
    let count = scale.end_to_end_events;
    println!(
        "\n== End to end: {count} webhooks in, {count} replies received by a Graph API stand-in"
    );
    let graph = CountingGraph::start(Duration::ZERO).await?;
    let data = tempfile::tempdir()?;
    let server = servers::start_igloo(IglooSetup {
        data_dir: data.path(),
        graph: Some(&graph.base_url),
        auto_reply: true,
        concurrency: 64,
    })
    .await?;
    let started = Instant::now();
    let singles = Arc::new(payload::single_messages(count, "e2e"));
    let posted = load::closed_loop(&server.url, singles, 32, Duration::from_secs(600)).await;
    check(
        scale.smoke,
        posted.errors == 0,
        "end-to-end webhooks answered errors",
    )?;
    let all_answered = wait_for(|| graph.answered() >= count, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    check(
        scale.smoke,
        all_answered,
        "not every reply reached the Graph API stand-in",
    )?;
    println!(
        "  {:.0} events/s from webhook to reply ({} replies in {:.2} s)",
        graph.answered() as f64 / elapsed.as_secs_f64(),
        graph.answered(),
        elapsed.as_secs_f64()
    );
    drop(server);

    // ---- Memory --------------------------------------------------------
    let in_flight = scale.in_flight_events;
    println!(
        "\n== Memory: igloo with {in_flight} events in flight (the Graph API stand-in holds every reply)"
    );
    let graph = CountingGraph::start(Duration::from_secs(600)).await?;
    let data = tempfile::tempdir()?;
    let server = servers::start_igloo(IglooSetup {
        data_dir: data.path(),
        graph: Some(&graph.base_url),
        auto_reply: true,
        concurrency: in_flight as u32,
    })
    .await?;
    let idle = server.rss_bytes();
    let singles = Arc::new(payload::single_messages(in_flight, "memory"));
    let posted = load::closed_loop(&server.url, singles, 32, Duration::from_secs(600)).await;
    check(
        scale.smoke,
        posted.errors == 0,
        "memory-run webhooks answered errors",
    )?;
    let all_in_flight = wait_for(|| graph.arrived() >= in_flight, Duration::from_secs(60)).await;
    check(
        scale.smoke,
        all_in_flight,
        "not every event reached the Graph API stand-in",
    )?;
    let loaded = server.rss_bytes();
    print_memory(idle, loaded, graph.arrived());

    println!(
        "\nGoals: ingress ≥ 20,000/s per core and ≥ 3x Express, p99 < 5 ms at 70%; dispatch ≥ 25,000/s per core; tax ≤ 3x; instantiate ≤ 10 µs p50."
    );
    Ok(())
}

fn print_memory(idle: u64, loaded: u64, in_flight: usize) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "  RSS idle {:.1} MiB; with {in_flight} in flight {:.1} MiB ({:.1} KiB per event)",
        mib(idle),
        mib(loaded),
        (loaded.saturating_sub(idle)) as f64 / 1024.0 / in_flight.max(1) as f64
    );
}

async fn wait_for(mut done: impl FnMut() -> bool, limit: Duration) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}
