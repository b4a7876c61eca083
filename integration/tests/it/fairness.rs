//! Query slots and CPU are shared fairly: while one tenant floods a node
//! with heavy long-range queries, another tenant's small queries find a
//! slot at once (they never wait behind a heavy query) and the CPU first
//! (the flood's queries, the one already running included, run on the
//! bulk lane's low-priority threads). The read-path issue's goal, the light
//! tenant's p99 under the flood within 2× of its p99 on an idle node, is
//! asserted when `IGNIS_TIMING_ASSERTS` is set: a latency ratio means
//! something only with the test alone on the machine, so CI runs it alone
//! after the suite (`IGNIS_TIMING_ASSERTS=1 cargo test -p ignis-integration
//! --test it fairness::a_flooding -- --test-threads=1`); in the parallel
//! suite the ratio is printed.
//!
//! The idle and the flooded latencies are measured in alternating rounds
//! (idle, flood, idle, flood, …) and pooled, so whatever else drifts on
//! the machine over the test's minute weighs on both alike; and the
//! flood's client runs on a thread of its own, as a client elsewhere
//! would, so reading the heavy answers never delays the light client.
//! Each p99 is the 8th-slowest of 750 queries: with 6 rounds (5th of 450)
//! the ratio was 1.25–1.83× over 13 runs alone on 2 cores (dev build),
//! and 2× was once exceeded on a CI machine; a p99 from a few hundred
//! samples moves with a handful of scheduler hiccups, so the gate measures
//! longer rather than judging on fewer. Every round's own ratio is printed
//! too, so a failure shows whether one round or all of them were slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ignis_integration::client::Client;
use ignis_integration::node::TestNode;
use serde_json::json;

use crate::common::replicated_history;
use crate::tenants::push_go_cpu;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// Rounds of (idle, flooded) measurements.
const ROUNDS: usize = 10;

/// Light queries per phase of a round: 10 × 75 = 750 idle and 750
/// flooded, so each p99 is the 8th-slowest of 750, not a single outlier.
const LIGHT_PER_PHASE: usize = 75;

/// Heavy queries the flood keeps in flight.
const FLOOD_CONNECTIONS: usize = 6;

/// Latencies of `n` small queries of tenant "light", one after another.
async fn light_latencies(client: &Client, n: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client
            .flamegraph(CPU, "{service_name=\"light.app\"}", 1, 4_000_000_000_000)
            .await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// Tenant "heavy"'s flood: [`FLOOD_CONNECTIONS`] clients asking `req`
/// again and again, on a thread and runtime of their own, until stopped.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Vec<Duration>>>,
}

impl Flood {
    fn start(url: &str, req: serde_json::Value) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (url, flag) = (url.to_string(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("heavy-flood".into())
            .spawn(move || runtime.block_on(flood(url, req, flag)))?;
        Ok(Self { stop, thread })
    }

    /// Stops asking, waits for the queries in flight, and returns the
    /// latencies of every heavy query that ran.
    fn stop(self) -> Result<Vec<Duration>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the flood's thread panicked"))?
    }
}

async fn flood(
    url: String,
    req: serde_json::Value,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Duration>> {
    let heavy = Client::new(&url).with_tenant("heavy");
    let body = serde_json::to_vec(&req)?;
    let clients: Vec<_> = (0..FLOOD_CONNECTIONS)
        .map(|_| {
            let (heavy, body, stop) = (heavy.clone(), body.clone(), stop.clone());
            tokio::spawn(async move {
                let mut took = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = heavy
                        .post(
                            "/querier.v1.QuerierService/SelectMergeStacktraces",
                            &[("content-type", "application/json")],
                            body.clone(),
                        )
                        .await?;
                    let status = r.status();
                    let answer = r.bytes().await?;
                    ensure!(
                        status.is_success() && !answer.is_empty(),
                        "heavy query failed: {status} {}",
                        String::from_utf8_lossy(&answer[..answer.len().min(200)])
                    );
                    took.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(took)
            })
        })
        .collect();
    let mut took = Vec::new();
    for c in clients {
        took.extend(c.await.context("a flood client's task")??);
    }
    Ok(took)
}

/// The 99th percentile of `v` (sorted here).
fn p99(v: &mut [Duration]) -> Duration {
    v.sort();
    v[(v.len() * 99).div_ceil(100) - 1]
}

#[tokio::test]
async fn a_flooding_tenant_does_not_slow_another_tenants_queries() -> Result<()> {
    let data = tempfile::tempdir()?;
    // Tenant "heavy": two hours of 30 pods, stored twice.
    let history = replicated_history(data.path(), Some("heavy"), 1_794_999_600_000_000_000).await?;
    // No results cache: every heavy query must be heavy (a cached answer
    // takes milliseconds and would stand for "the heavy query" below). No
    // compaction round during the test: it would merge the heavy tenant's
    // copies on ordinary threads in one of the phases only.
    let node = TestNode::start_in(data.path(), |c| {
        c.query.max_concurrent_queries = 2;
        c.query.results_cache_bytes = 0;
        c.compactor.interval_secs = 3_600;
    })?;
    let light = Client::new(&node.url).with_tenant("light");
    let r = light
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_go_cpu("light.app")?,
        )
        .await?;
    ensure!(r.status().is_success());
    light_latencies(&light, 10).await?; // warm up

    let req = json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"loadgen\"}",
                     "start": history.min_time_ns / 1_000_000, "end": history.max_time_ns / 1_000_000 + 1});
    let (mut idle, mut loaded, mut heavy_took) = (Vec::new(), Vec::new(), Vec::new());
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let mut quiet = light_latencies(&light, LIGHT_PER_PHASE).await?;
        let flood = Flood::start(&node.url, req.clone())?;
        // Let the flood fill the bulk lane before measuring under it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let measured = light_latencies(&light, LIGHT_PER_PHASE).await;
        let took = tokio::task::spawn_blocking(move || flood.stop()).await??;
        let mut measured = measured?;
        rounds.push(format!(
            "{:.2}",
            p99(&mut measured).as_secs_f64() / p99(&mut quiet).as_secs_f64()
        ));
        idle.extend(quiet);
        loaded.extend(measured);
        ensure!(!took.is_empty(), "the heavy tenant ran nothing in a round");
        heavy_took.extend(took);
    }
    heavy_took.sort();
    let fastest_heavy = heavy_took[0];
    let (idle_p99, loaded_p99) = (p99(&mut idle), p99(&mut loaded));
    let ratio = loaded_p99.as_secs_f64() / idle_p99.as_secs_f64();
    eprintln!(
        "light p50/p99 over {ROUNDS} rounds: idle {:?}/{idle_p99:?}, while heavy floods {:?}/{loaded_p99:?} ({ratio:.2}× idle); {} heavy queries, the fastest {fastest_heavy:?}, the median {:?}; each round's p99 ratio: {}",
        idle[idle.len() / 2],
        loaded[loaded.len() / 2],
        heavy_took.len(),
        heavy_took[heavy_took.len() / 2],
        rounds.join(" "),
    );
    // Never behind a heavy query: a light query waiting for a slot would
    // take at least as long as the heavy query it waited for.
    ensure!(
        loaded_p99 * 4 < fastest_heavy,
        "light p99 {loaded_p99:?} while heavy floods (idle {idle_p99:?}): it waited behind heavy queries of {fastest_heavy:?}"
    );
    if std::env::var_os("IGNIS_TIMING_ASSERTS").is_some() {
        ensure!(
            ratio <= 2.0,
            "light p99 {loaded_p99:?} while heavy floods is {ratio:.2}× its idle p99 {idle_p99:?} (goal: within 2×)"
        );
    }
    Ok(())
}

/// A tenant's queries beyond its first in flight run in the bulk lane, on
/// threads of their own: their answers equal the answer of one query alone.
#[tokio::test]
async fn concurrent_queries_of_a_tenant_answer_as_one_alone() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url).with_tenant("busy");
    let go_total = ignis_integration::fixtures::read_json("go/cpu.expected.json")?["value_sums"]
        ["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_go_cpu("busy.app")?,
        )
        .await?;
    ensure!(r.status().is_success());
    let ask = |client: Client| async move {
        client
            .flamegraph(CPU, "{service_name=\"busy.app\"}", 1, 4_000_000_000_000)
            .await
    };
    let alone = ask(client.clone()).await?;
    ensure!(alone["flamegraph"]["total"] == json!(go_total.to_string()));
    let together: Vec<_> = (0..8).map(|_| tokio::spawn(ask(client.clone()))).collect();
    for answer in together {
        let answer = answer.await??;
        ensure!(answer == alone, "a concurrent answer differs: {answer}");
    }
    let metrics = client.get("/metrics").await?.text().await?;
    let bulk = metrics
        .lines()
        .find(|l| l.starts_with("ignis_query_lanes_total{lane=\"bulk\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    ensure!(bulk > 0, "no query ran in the bulk lane:\n{metrics}");
    Ok(())
}
