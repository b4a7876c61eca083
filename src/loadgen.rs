//! `ignis loadgen`: replays a real fixture against a node as fast as it
//! goes (or at a target rate), spread over many series, and reports
//! throughput and acknowledgement latency.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
use ignis_storage::proto::types::v1::LabelPair;
use prost::Message;
use tokio::sync::Mutex;

/// Load generator options.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// Base URL of the node.
    #[arg(long, default_value = "http://127.0.0.1:4040")]
    pub url: String,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Distinct series (label `pod`) the profiles are spread over.
    #[arg(long, default_value_t = 100)]
    pub series: usize,
    /// Target profiles per second over all connections (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// The pprof (gzip) to replay; default: the Go CPU fixture in ../shared/fixtures.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// `X-Scope-OrgID` to send.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Wall time, seconds.
    pub seconds: f64,
    /// Acknowledged profiles.
    pub profiles: u64,
    /// Failed requests, by HTTP status (0: transport error).
    pub errors: std::collections::BTreeMap<u16, u64>,
    /// Acknowledged profiles per second.
    pub profiles_per_sec: f64,
    /// Acknowledged gzipped pprof MB/s.
    pub mb_per_sec: f64,
    /// Acknowledged pprof samples per second.
    pub samples_per_sec: f64,
    /// Acknowledgement latency percentiles, ms: p50, p90, p99, max.
    pub latency_ms: [f64; 4],
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)?;
    Ok(e.finish()?)
}

/// Runs the load and returns its summary.
pub async fn run(args: &LoadgenArgs) -> Result<Summary> {
    let path = args
        .profile
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/fixtures/go/cpu.pb.gz"));
    let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(raw.as_slice()),
        &mut plain,
    )
    .context("the profile is not gzip")?;
    let profile = pprof::Profile::decode(plain.as_slice()).context("the profile is not a pprof")?;
    let samples_per_profile = profile.sample.len() as u64;
    // One hour of timestamps ending now, one every 10 s: each body is the
    // profile re-stamped and gzipped once, up front.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as i64;
    let mut variants = Vec::new();
    for i in 0..360i64 {
        let mut p = profile.clone();
        p.time_nanos = now - (360 - i) * 10_000_000_000;
        variants.push(gzip(&p.encode_to_vec())?);
    }
    let variants = Arc::new(variants);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let errors = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, variants, next, acked, bytes, latencies, errors) = (
            client.clone(),
            variants.clone(),
            next.clone(),
            acked.clone(),
            bytes.clone(),
            latencies.clone(),
            errors.clone(),
        );
        let (url, tenant, series, rate) = (
            format!("{}/push.v1.PusherService/Push", args.url),
            args.tenant.clone(),
            args.series.max(1) as u64,
            args.rate,
        );
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if rate > 0 {
                    let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
                    if due > deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = &variants[((n / series) % variants.len() as u64) as usize];
                let label = |k: &str, v: String| LabelPair {
                    name: k.into(),
                    value: v,
                };
                let req = PushRequest {
                    series: vec![RawProfileSeries {
                        labels: vec![
                            label("__name__", "process_cpu".into()),
                            label("service_name", "loadgen".into()),
                            label("pod", format!("pod-{:04}", n % series)),
                            label("region", format!("region-{}", n % series % 4)),
                        ],
                        samples: vec![RawSample {
                            raw_profile: body.clone(),
                            id: String::new(),
                        }],
                        annotations: vec![],
                    }],
                };
                let mut r = client
                    .post(&url)
                    .header("content-type", "application/proto")
                    .body(req.encode_to_vec());
                if let Some(t) = &tenant {
                    r = r.header("X-Scope-OrgID", t);
                }
                let t0 = Instant::now();
                let status = match r.send().await {
                    Ok(resp) => resp.status().as_u16(),
                    Err(_) => 0,
                };
                if status == 200 {
                    local.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    acked.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                } else {
                    *errors.lock().await.entry(status).or_default() += 1;
                }
            }
            latencies.lock().await.extend(local);
        }));
    }
    let progress = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = acked.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>5.0}s  {n} profiles acknowledged  ",
                    start.elapsed().as_secs_f64()
                );
            }
        })
    };
    for t in tasks {
        t.await?;
    }
    progress.abort();
    eprintln!();
    let seconds = start.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() - 1) as f64 * p).round() as usize;
        f64::from(lat[i]) / 1000.0
    };
    let profiles = acked.load(Ordering::Relaxed);
    let summary = Summary {
        seconds,
        profiles,
        errors: errors.lock().await.clone(),
        profiles_per_sec: profiles as f64 / seconds,
        mb_per_sec: bytes.load(Ordering::Relaxed) as f64 / seconds / 1e6,
        samples_per_sec: (profiles * samples_per_profile) as f64 / seconds,
        latency_ms: [pct(0.5), pct(0.9), pct(0.99), pct(1.0)],
    };
    if profiles == 0 {
        bail!("no profile was acknowledged: {:?}", summary.errors);
    }
    Ok(summary)
}

/// Prints a summary as a table.
pub fn print(s: &Summary) {
    println!("duration            {:.1} s", s.seconds);
    println!(
        "profiles            {} ({:.0}/s)",
        s.profiles, s.profiles_per_sec
    );
    println!("gzipped pprof       {:.2} MB/s", s.mb_per_sec);
    println!("samples             {:.0}/s", s.samples_per_sec);
    println!(
        "ack latency (ms)    p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        s.latency_ms[0], s.latency_ms[1], s.latency_ms[2], s.latency_ms[3]
    );
    println!("errors              {:?}", s.errors);
}
