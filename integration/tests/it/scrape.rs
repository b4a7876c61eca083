//! Pull mode against a real Go program: `pprofdemo.go` built with Debian's
//! Go, scraped for a minute through a recording proxy, so the test knows
//! every profile the scraper was served and checks what Ignis stored.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use ignis_actors::scrape::{ProfileKind, ScrapeTargetConfig};
use ignis_integration::client::{Client, fg_total};
use ignis_integration::go::PprofDemo;
use ignis_integration::node::TestNode;
use ignis_integration::proxy::{Record, RecordingProxy};
use ignis_storage::proto::google::v1 as pprof;
use prost::Message;
use serde_json::Value;

const INTERVAL_SECS: u64 = 5;
const CPU_SECONDS: u64 = 4;
const SCRAPE_FOR: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Totals per sample type of a served (gzipped) pprof.
fn totals(r: &Record) -> Result<HashMap<String, i64>> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut raw)
        .with_context(|| format!("{} is not gzip", r.path))?;
    let p = pprof::Profile::decode(&raw[..])?;
    let mut out = HashMap::new();
    for (i, st) in p.sample_type.iter().enumerate() {
        let name = p.string_table[st.r#type as usize].clone();
        let sum: i64 = p.sample.iter().map(|s| s.value[i]).sum();
        out.insert(name, sum);
    }
    Ok(out)
}

fn total_of(records: &[Record], sample_type: &str) -> Result<Vec<i64>> {
    records
        .iter()
        .map(|r| {
            totals(r)?
                .get(sample_type)
                .copied()
                .with_context(|| format!("{}: no sample type {sample_type}", r.path))
        })
        .collect()
}

async fn scrape_status(client: &Client) -> Result<Vec<Value>> {
    let v: Value = client.get("/scrape?format=json").await?.json().await?;
    Ok(v["targets"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn scrape_pprofdemo_cumulative_profiles_become_exact_deltas() -> Result<()> {
    let demo = PprofDemo::start(std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))).await?;
    let proxy = RecordingProxy::start(&demo.url).await?;
    let target = ScrapeTargetConfig {
        url: proxy.url.clone(),
        path_prefix: "/debug/pprof".into(),
        service_name: Some("pprofdemo".into()),
        labels: [("env".to_string(), "test".to_string())].into(),
        profiles: vec![
            ProfileKind::Cpu,
            ProfileKind::Allocs,
            ProfileKind::Goroutine,
            ProfileKind::Mutex,
            ProfileKind::Block,
        ],
        tenant: None,
    };
    let node = TestNode::start(|c| {
        c.scrape.interval_secs = INTERVAL_SECS;
        c.scrape.cpu_seconds = CPU_SECONDS;
        c.scrape.targets = vec![target];
    })?;
    let client = Client::new(&node.url);
    let start_ms = now_ms() - 60_000;

    tokio::time::sleep(SCRAPE_FOR).await;
    let status = scrape_status(&client).await?;
    ensure!(status.len() == 5, "five profiles in /scrape: {status:?}");
    for s in &status {
        ensure!(s["health"] == "up", "scrape not healthy: {s}");
    }
    let metrics = client.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("ignis_scrape_up{") && metrics.contains("ignis_scrape_duration_seconds"),
        "scrape metrics missing"
    );

    // Stop serving, then wait until every profile has had an attempt that
    // *started* after that (`last_scrape_ms` is when the last one ended: a
    // CPU scrape in flight at the close still completes and is stored):
    // attempts of a profile never overlap, so all served responses have
    // been stored by then.
    proxy.close();
    let closed_ms = now_ms() as u64;
    let deadline = Instant::now() + Duration::from_secs(3 * INTERVAL_SECS + 30);
    let started_ms = |s: &Value| {
        s["last_scrape_ms"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(s["last_duration_ms"].as_u64().unwrap_or(0))
    };
    loop {
        let st = scrape_status(&client).await?;
        if st.iter().all(|s| started_ms(s) > closed_ms) {
            ensure!(
                st.iter().all(|s| s["health"] == "down"),
                "scrapes after the proxy closed should fail: {st:?}"
            );
            break;
        }
        ensure!(Instant::now() < deadline, "scrapes did not settle: {st:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let end_ms = now_ms() + 60_000;
    let fg = |pt: &'static str| {
        let client = client.clone();
        async move {
            client
                .flamegraph(
                    pt,
                    "{service_name=\"pprofdemo\",env=\"test\"}",
                    start_ms,
                    end_ms,
                )
                .await
                .map(|v| fg_total(&v))
        }
    };

    // CPU: stored as served, each profile within its window.
    let cpu = proxy.records("/debug/pprof/profile");
    ensure!(cpu.len() >= 8, "only {} CPU scrapes in a minute", cpu.len());
    let cpu_ns = total_of(&cpu, "cpu")?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i64;
    let window_ns = CPU_SECONDS as i64 * 1_000_000_000;
    for t in &cpu_ns {
        ensure!(
            *t > 0 && *t <= window_ns * cores + window_ns / 10,
            "CPU total {t} ns outside a {CPU_SECONDS} s window on {cores} cores"
        );
    }
    let stored = fg("process_cpu:cpu:nanoseconds:cpu:nanoseconds").await?;
    ensure!(
        stored == cpu_ns.iter().sum::<i64>(),
        "stored CPU {stored} != served {}",
        cpu_ns.iter().sum::<i64>()
    );

    // Mutex and block: cumulative; the stored deltas sum to last − first.
    for (path, metric) in [
        ("/debug/pprof/mutex", "mutex"),
        ("/debug/pprof/block", "block"),
    ] {
        let served = proxy.records(path);
        ensure!(served.len() >= 8, "only {} {metric} scrapes", served.len());
        for (sample_type, pt) in [
            (
                "contentions",
                format!("{metric}:contentions:count:contentions:count"),
            ),
            (
                "delay",
                format!("{metric}:delay:nanoseconds:contentions:count"),
            ),
        ] {
            let t = total_of(&served, sample_type)?;
            let want = t[t.len() - 1] - t[0];
            ensure!(want > 0, "{metric} {sample_type} did not grow: {t:?}");
            let got = client
                .flamegraph(&pt, "{service_name=\"pprofdemo\"}", start_ms, end_ms)
                .await
                .map(|v| fg_total(&v))?;
            ensure!(
                got == want,
                "{pt}: stored deltas sum to {got}, cumulative difference is {want}"
            );
            eprintln!(
                "{pt}: {} scrapes, stored deltas sum to {got} = last - first",
                t.len()
            );
            let merged = client
                .merged_pprof(&pt, "{service_name=\"pprofdemo\"}", start_ms, end_ms)
                .await?;
            ensure!(
                merged
                    .sample
                    .iter()
                    .all(|s| s.value.iter().all(|v| *v >= 0)),
                "{pt}: a negative delta was stored"
            );
        }
    }

    // Allocations: deltas of cumulative counters, non-negative and growing;
    // in-use memory is a gauge and is stored as served.
    let allocs = proxy.records("/debug/pprof/allocs");
    ensure!(allocs.len() >= 8, "only {} allocs scrapes", allocs.len());
    let alloc_space = fg("memory:alloc_space:bytes:space:bytes").await?;
    ensure!(alloc_space > 0, "no allocation deltas stored");
    let served_alloc = total_of(&allocs, "alloc_space")?;
    ensure!(
        alloc_space <= served_alloc[served_alloc.len() - 1] - served_alloc[0],
        "allocation deltas {alloc_space} exceed the cumulative difference"
    );
    eprintln!(
        "alloc_space: stored {alloc_space}, cumulative difference {}; cpu: {} profiles, {} ns",
        served_alloc[served_alloc.len() - 1] - served_alloc[0],
        cpu_ns.len(),
        stored
    );
    let inuse = fg("memory:inuse_space:bytes:space:bytes").await?;
    ensure!(inuse > 0, "no in-use memory stored");

    // Goroutines: a gauge, stored as served; pprofdemo runs about 60.
    let goroutines = proxy.records("/debug/pprof/goroutine");
    let served_g = total_of(&goroutines, "goroutine")?;
    for g in &served_g {
        ensure!((58..500).contains(g), "implausible goroutine count {g}");
    }
    let stored_g = fg("goroutine:goroutine:count:goroutine:count").await?;
    ensure!(
        stored_g == served_g.iter().sum::<i64>(),
        "stored goroutines {stored_g} != served {}",
        served_g.iter().sum::<i64>()
    );

    // Series carry the target's labels.
    let labels = client
        .connect_json(
            "LabelValues",
            serde_json::json!({"name": "instance", "matchers": ["{service_name=\"pprofdemo\"}"], "start": start_ms, "end": end_ms}),
        )
        .await?;
    ensure!(
        labels["names"].as_array().is_some_and(|n| n
            .iter()
            .any(|v| v.as_str() == proxy.url.strip_prefix("http://"))),
        "instance label missing: {labels}"
    );
    drop(demo);
    node.stop()
}
