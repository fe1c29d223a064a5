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
//! CI runs that. `cargo xtask bench` runs the full comparison in release;
//! `--only <part>` runs one part (repeat it for more).

mod crash;
mod disk;
mod dispatch;
mod fake_graph;
mod load;
mod payload;
mod servers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use tempfile::TempDir;

use crate::fake_graph::CountingGraph;
use crate::load::LoadResult;
use crate::payload::Signed;
use crate::servers::{IglooSetup, ServerProcess};

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
        /// Run only these parts (all when none is named).
        #[arg(long = "only", value_enum)]
        only: Vec<Part>,
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

/// A part of the benchmark, to run alone while working on it.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Ingress,
    Dispatch,
    EndToEnd,
    Memory,
    Crashes,
    Disk,
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
    let everything = Command::Run {
        smoke: false,
        only: Vec::new(),
    };
    match cli.command.unwrap_or(everything) {
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
        Command::Run { smoke, only } => {
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
            runtime.block_on(run(&scale, &only))
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

impl Scale {
    /// A failed check fails a smoke run, and is a warning in a full one.
    fn check(&self, ok: bool, what: &str) -> anyhow::Result<()> {
        if !ok {
            if self.smoke {
                anyhow::bail!("smoke check failed: {what}");
            }
            eprintln!("warning: {what}");
        }
        Ok(())
    }
}

async fn run(scale: &Scale, only: &[Part]) -> anyhow::Result<()> {
    let wanted = |part| only.is_empty() || only.contains(&part);
    print_header(scale);
    if wanted(Part::Ingress) {
        ingress(scale).await?;
    }
    if wanted(Part::Dispatch) {
        dispatch(scale)?;
    }
    if wanted(Part::EndToEnd) {
        end_to_end(scale).await?;
    }
    if wanted(Part::Memory) {
        memory(scale).await?;
    }
    if wanted(Part::Crashes) {
        crashes(scale).await?;
    }
    if wanted(Part::Disk) {
        disk(scale).await?;
    }
    print_goals();
    Ok(())
}

fn print_goals() {
    println!(
        "\nGoals: ingress ≥ 20,000/s per core and ≥ 3x Express, p99 < 5 ms at 70%; dispatch ≥ 25,000/s per core; tax ≤ 3x; instantiate ≤ 10 µs p50."
    );
}

fn print_header(scale: &Scale) {
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
}

// ---- Ingress -----------------------------------------------------------

/// Signed webhooks per second through igloo, the bare receiver (the
/// ceiling) and Express; igloo's latency at 70% of its maximum rate.
async fn ingress(scale: &Scale) -> anyhow::Result<()> {
    let capacity = if scale.smoke {
        5_000
    } else {
        (scale.load_time.as_secs_f64() as usize + 1) * 60_000
    };
    let bodies = Arc::new(payload::single_events(capacity, "max"));
    println!(
        "== Ingress: signed {:.1} KB webhooks (one event each), {CONNECTIONS} connections, {} s each",
        bodies[0].body.len() as f64 / 1024.0,
        scale.load_time.as_secs_f64()
    );
    let igloo = igloo_ingress(scale, &bodies).await?;
    let bare = bare_ingress(scale, &bodies, igloo.fixed_rate).await?;
    let express = express_ingress(scale, &bodies).await?;
    print_ingress(&igloo, &bare, express.as_ref());
    Ok(())
}

/// igloo's ingress figures.
struct IglooIngress {
    /// Single events, as fast as it answers.
    max: LoadResult,
    /// 70% of `max`'s rate.
    fixed_rate: f64,
    /// Single events at `fixed_rate`.
    fixed: LoadResult,
    /// Batches of 8 events, as fast as it answers.
    batched: LoadResult,
}

async fn igloo_ingress(scale: &Scale, bodies: &Arc<Vec<Signed>>) -> anyhow::Result<IglooIngress> {
    let data = tempfile::tempdir()?;
    let server = servers::start_igloo(IglooSetup {
        data_dir: data.path(),
        graph: None,
        auto_reply: false,
        concurrency: 32,
        port: servers::free_port(),
    })
    .await?;
    let max = saturate(scale, &server.url, Arc::clone(bodies)).await;
    scale.check(
        max.errors == 0 && max.rate > 0.0,
        "igloo ingress answered errors",
    )?;
    let fixed_rate = (max.rate * 0.7).max(10.0);
    let fixed = at_fixed_rate(scale, &server.url, fixed_rate, "latency").await;
    scale.check(fixed.errors == 0, "igloo answered errors at a fixed rate")?;
    let batches = payload::batches(if scale.smoke { 1_000 } else { 40_000 }, "batch");
    let batched = saturate(scale, &server.url, Arc::new(batches)).await;
    scale.check(batched.errors == 0, "igloo answered errors to batches")?;
    Ok(IglooIngress {
        max,
        fixed_rate,
        fixed,
        batched,
    })
}

/// The bare receiver's ingress figures.
struct BareIngress {
    /// As fast as it answers: the ceiling.
    max: LoadResult,
    /// At igloo's fixed rate: what the load generator and loopback alone
    /// add to the tail.
    fixed: LoadResult,
}

async fn bare_ingress(
    scale: &Scale,
    bodies: &Arc<Vec<Signed>>,
    fixed_rate: f64,
) -> anyhow::Result<BareIngress> {
    let server = servers::start_bare().await?;
    let max = saturate(scale, &server.url, Arc::clone(bodies)).await;
    scale.check(max.errors == 0, "the bare receiver answered errors")?;
    let fixed = at_fixed_rate(scale, &server.url, fixed_rate, "control").await;
    Ok(BareIngress { max, fixed })
}

/// Express's maximum rate, in a full run where node is at hand.
async fn express_ingress(
    scale: &Scale,
    bodies: &Arc<Vec<Signed>>,
) -> anyhow::Result<Option<LoadResult>> {
    if scale.smoke {
        return Ok(None);
    }
    let Some(server) = servers::start_express(&servers::target_dir()).await? else {
        return Ok(None);
    };
    Ok(Some(saturate(scale, &server.url, Arc::clone(bodies)).await))
}

/// `bodies` to `url` from [`CONNECTIONS`] connections, as fast as it answers.
async fn saturate(scale: &Scale, url: &str, bodies: Arc<Vec<Signed>>) -> LoadResult {
    load::closed_loop(url, bodies, CONNECTIONS, scale.load_time).await
}

/// Single events to `url` at `rate` per second (the run named `run`).
async fn at_fixed_rate(scale: &Scale, url: &str, rate: f64, run: &str) -> LoadResult {
    let count = (rate * scale.load_time.as_secs_f64()) as usize + 10;
    let bodies = Arc::new(payload::single_events(count, run));
    load::open_loop(url, bodies, rate, scale.load_time).await
}

fn print_ingress(igloo: &IglooIngress, bare: &BareIngress, express: Option<&LoadResult>) {
    let per_core =
        |rate: f64| rate / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let row = |name: &str, result: &LoadResult| {
        println!(
            "  {name:<44} {:>9.0} req/s  ({:>6.0}/core)  p50 {:>6} µs  p99 {:>6} µs",
            result.rate,
            per_core(result.rate),
            result.p50_us,
            result.p99_us
        );
    };
    row("igloo: verify + parse + durable commit", &igloo.max);
    row("bare axum: verify + parse (ceiling)", &bare.max);
    if let Some(express) = express {
        row("Express: verify + parse", express);
    }
    println!(
        "  igloo at a fixed {:.0} req/s (70% of its max): p50 {} µs, p99 {} µs",
        igloo.fixed_rate, igloo.fixed.p50_us, igloo.fixed.p99_us
    );
    println!(
        "  bare axum at the same rate (control):      p50 {} µs, p99 {} µs",
        bare.fixed.p50_us, bare.fixed.p99_us
    );
    println!(
        "  igloo with batches of 8 events per POST: {:.0} req/s = {:.0} events/s",
        igloo.batched.rate,
        igloo.batched.rate * 8.0
    );
    println!(
        "  ratio igloo / bare axum: {:.2}",
        igloo.max.rate / bare.max.rate
    );
    if let Some(express) = express {
        println!(
            "  ratio igloo / Express:   {:.2}",
            igloo.max.rate / express.rate
        );
    }
}

// ---- Dispatch and instantiation ------------------------------------------

/// auto-reply in a fresh instance per event against the same logic
/// natively (the sandbox tax), with instantiation times, on one core.
fn dispatch(scale: &Scale) -> anyhow::Result<()> {
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
        "  sandboxed: {:>9.0} events/s, instantiate p50 {} µs, p99 {} µs, CPU {:.1} µs/event \
         (journal in memory)",
        dispatch.sandboxed_rate,
        dispatch.instantiate_p50_us,
        dispatch.instantiate_p99_us,
        dispatch.cpu_us_per_event_unjournaled
    );
    println!(
        "  journaled: {:>9.0} events/s, CPU {:.1} µs/event \
         (every send's intent and outcome committed to the inbox: {:.2}x the CPU)",
        dispatch.journaled_rate,
        dispatch.cpu_us_per_event,
        dispatch.cpu_us_per_event / dispatch.cpu_us_per_event_unjournaled
    );
    println!("  native:    {:>9.0} events/s", dispatch.native_rate);
    println!(
        "  sandbox tax (native / sandboxed): {:.2}x",
        dispatch.native_rate / dispatch.sandboxed_rate
    );
    Ok(())
}

// ---- Crashes -------------------------------------------------------------

/// Webhooks in while igloo is killed with SIGKILL and restarted: lost,
/// duplicated and unknown replies, which must be none.
async fn crashes(scale: &Scale) -> anyhow::Result<()> {
    let (count, connections, kills) = if scale.smoke {
        (300, 16, 2)
    } else {
        (2_000, 32, 3)
    };
    let meta_delay = Duration::from_millis(50);
    println!(
        "\n== Crashes: {count} webhooks from {connections} connections, igloo killed -9 {kills} times and restarted, Meta answering in {} ms",
        meta_delay.as_millis()
    );
    let crash = crash::run(count, connections, kills, meta_delay).await?;
    println!(
        "  acknowledged {}, killed {} times: lost {}, duplicated {}, unknown {}; {} sends cut short were read back ({:.1} s, {:.0} events/s overall)",
        crash.acknowledged,
        crash.kills,
        crash.lost,
        crash.duplicated,
        crash.unknown,
        crash.read_back,
        crash.elapsed.as_secs_f64(),
        crash.acknowledged as f64 / crash.elapsed.as_secs_f64()
    );
    // Not a matter of speed: a loss or a duplicate fails every run.
    anyhow::ensure!(
        crash.lost == 0 && crash.duplicated == 0,
        "after kill -9: {} lost, {} duplicated",
        crash.lost,
        crash.duplicated
    );
    Ok(())
}

// ---- Disk ----------------------------------------------------------------

/// Bytes on disk per event, and whether disk use levels off once
/// retention prunes as fast as traffic arrives.
async fn disk(scale: &Scale) -> anyhow::Result<()> {
    let (rounds, per_round) = if scale.smoke { (5, 500) } else { (10, 10_000) };
    println!(
        "\n== Disk: {rounds} rounds of {per_round} webhooks stored, handled (run, journaled send) and pruned past a retention of two rounds"
    );
    let soak = disk::soak(rounds, per_round).await?;
    for (round, sample) in soak.rounds.iter().enumerate() {
        println!(
            "  round {:>2}: {:>6} live events, {:>6.1} MiB of pages ({:>5.0} bytes per live event); files: database {:>6.1} MiB, WAL {:>6.1} MiB",
            round + 1,
            sample.live_events,
            mib(sample.allocated),
            sample.allocated as f64 / sample.live_events.max(1) as f64,
            mib(sample.database),
            mib(sample.wal),
        );
    }
    let pages = |round: usize| soak.rounds.get(round).map_or(0, |sample| sample.allocated);
    let (settled, last) = (pages(2), pages(soak.rounds.len() - 1));
    let widest_wal = soak
        .rounds
        .iter()
        .map(|sample| sample.wal)
        .max()
        .unwrap_or(0);
    println!(
        "  pages after the first prune {:.1} MiB, at the end {:.1} MiB ({:.2}x); WAL at most {:.1} MiB under load (bound 64 MiB), {:.1} MiB once idle",
        mib(settled),
        mib(last),
        last as f64 / settled.max(1) as f64,
        mib(widest_wal),
        mib(soak.idle_wal)
    );
    scale.check(
        last <= settled + settled / 4,
        "the database kept growing under retention",
    )?;
    scale.check(
        widest_wal <= 72 * 1024 * 1024 && soak.idle_wal == 0,
        "the WAL outgrew its bound or was not emptied when idle",
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

// ---- End to end and memory ---------------------------------------------

/// igloo running auto-reply, whose replies go to a Graph API stand-in.
struct Replying {
    server: ServerProcess,
    graph: CountingGraph,
    _data: TempDir,
}

impl Replying {
    /// Start the stand-in, answering after `graph_delay`, and igloo with
    /// `concurrency` runs at a time.
    async fn start(graph_delay: Duration, concurrency: u32) -> anyhow::Result<Self> {
        let graph = CountingGraph::start(graph_delay).await?;
        let data = tempfile::tempdir()?;
        let server = servers::start_igloo(IglooSetup {
            data_dir: data.path(),
            graph: Some(&graph.base_url),
            auto_reply: true,
            concurrency,
            port: servers::free_port(),
        })
        .await?;
        Ok(Self {
            server,
            graph,
            _data: data,
        })
    }

    /// Post `count` single messages (the run named `run`) from 32
    /// connections; `what` failed if any was not accepted.
    async fn post_messages(
        &self,
        scale: &Scale,
        count: usize,
        run: &str,
        what: &str,
    ) -> anyhow::Result<()> {
        let singles = Arc::new(payload::single_messages(count, run));
        let posted =
            load::closed_loop(&self.server.url, singles, 32, Duration::from_secs(600)).await;
        scale.check(posted.errors == 0, what)
    }
}

/// Webhook in, reply received by the Graph API stand-in.
async fn end_to_end(scale: &Scale) -> anyhow::Result<()> {
    let count = scale.end_to_end_events;
    println!(
        "\n== End to end: {count} webhooks in, {count} replies received by a Graph API stand-in"
    );
    let igloo = Replying::start(Duration::ZERO, 64).await?;
    let started = Instant::now();
    igloo
        .post_messages(scale, count, "e2e", "end-to-end webhooks answered errors")
        .await?;
    let all_answered = wait_for(|| igloo.graph.answered() >= count, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    scale.check(
        all_answered,
        "not every reply reached the Graph API stand-in",
    )?;
    println!(
        "  {:.0} events/s from webhook to reply ({} replies in {:.2} s)",
        igloo.graph.answered() as f64 / elapsed.as_secs_f64(),
        igloo.graph.answered(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// igloo's resident memory with events in flight: the stand-in holds every
/// reply.
async fn memory(scale: &Scale) -> anyhow::Result<()> {
    let in_flight = scale.in_flight_events;
    println!(
        "\n== Memory: igloo with {in_flight} events in flight (the Graph API stand-in holds every reply)"
    );
    let igloo = Replying::start(Duration::from_secs(600), in_flight as u32).await?;
    let idle = igloo.server.rss_bytes();
    igloo
        .post_messages(
            scale,
            in_flight,
            "memory",
            "memory-run webhooks answered errors",
        )
        .await?;
    let all_in_flight = wait_for(
        || igloo.graph.arrived() >= in_flight,
        Duration::from_secs(60),
    )
    .await;
    scale.check(
        all_in_flight,
        "not every event reached the Graph API stand-in",
    )?;
    let loaded = igloo.server.rss_bytes();
    print_memory(idle, loaded, igloo.graph.arrived());
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
