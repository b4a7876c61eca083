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
    /// Instead of pushing to a node, write this many hours of history (ending
    /// now) straight into `--data-dir` as blocks, one per clock hour, for
    /// query benchmarks. The node must not be running on that directory.
    #[arg(long, default_value_t = 0.0)]
    pub backfill_hours: f64,
    /// Backfill: time between two profiles of a series (`10s`, `1m`, `500ms`; plain numbers are seconds).
    #[arg(long, default_value = "10s", value_parser = parse_every)]
    pub every: Duration,
    /// Backfill: the node's data dir (blocks go to its default bucket, `<data_dir>/bucket`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Backfill: write every profile this many times, as replicated
    /// ingesters do: replica `r` of `n` cuts its hourly blocks `r/n` of an
    /// hour past the clock hour, so replicas' blocks overlap (what the
    /// compactor merges).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Backfill: distinct programs in the fleet: pod `n` runs variant
    /// `n % variants` of the profile (its function names suffixed `#v`), so
    /// pods differ in their stacks as real fleets do; totals are unchanged.
    #[arg(long, default_value_t = 1)]
    pub variants: usize,
}

/// Variant `v` of a pprof (gzip or plain): the same samples, every function
/// renamed `<name>#v` (variant 0 is the profile unchanged).
fn profile_variant(raw: &[u8], v: usize) -> Result<Vec<u8>> {
    if v == 0 {
        return Ok(raw.to_vec());
    }
    let mut plain = Vec::new();
    if raw.starts_with(&[0x1f, 0x8b]) {
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(raw), &mut plain)
            .context("the profile is not gzip")?;
    } else {
        plain = raw.to_vec();
    }
    let mut p = pprof::Profile::decode(plain.as_slice()).context("the profile is not a pprof")?;
    let mut renamed = std::collections::HashMap::new();
    for f in &mut p.function {
        for id in [&mut f.name, &mut f.system_name] {
            let old = *id;
            *id = *renamed.entry(old).or_insert_with(|| {
                let name = p
                    .string_table
                    .get(old as usize)
                    .cloned()
                    .unwrap_or_default();
                p.string_table.push(format!("{name}#{v}"));
                p.string_table.len() as i64 - 1
            });
        }
    }
    Ok(p.encode_to_vec())
}

fn parse_every(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs >= 0.001) {
        return Err(format!("the interval must be at least 1ms: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The labels of the `n`th profile: spread over `series` pods and 4 regions.
fn series_labels(n: u64, series: u64) -> Vec<LabelPair> {
    let label = |k: &str, v: String| LabelPair {
        name: k.into(),
        value: v,
    };
    vec![
        label("__name__", "process_cpu".into()),
        label("service_name", "loadgen".into()),
        label("pod", format!("pod-{:04}", n % series)),
        label("region", format!("region-{}", n % series % 4)),
    ]
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
    /// What the node's `/metrics` said of its process over the run (when
    /// it could be read: same node, no auth in the way).
    pub node: Option<NodeUsage>,
}

/// The node's own CPU and memory over a load run, from its
/// `process_cpu_seconds_total` and `process_resident_memory_bytes`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeUsage {
    /// CPU seconds the node spent during the run.
    pub cpu_seconds: f64,
    /// Node CPU per acknowledged profile, ms.
    pub cpu_ms_per_profile: f64,
    /// Cores the node kept busy on average.
    pub cores_busy: f64,
    /// Acknowledged gzipped pprof MB/s per busy node core.
    pub mb_per_sec_per_core: f64,
    /// Resident memory at the start, bytes.
    pub rss_start_bytes: u64,
    /// Highest resident memory seen (sampled every second), bytes.
    pub rss_max_bytes: u64,
    /// Resident memory at the end, bytes.
    pub rss_end_bytes: u64,
}

/// The node's `process_cpu_seconds_total` and `process_resident_memory_bytes`.
async fn node_process(client: &reqwest::Client, url: &str) -> Option<(f64, u64)> {
    let text = client
        .get(format!("{url}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    Some((
        value("process_cpu_seconds_total")?,
        value("process_resident_memory_bytes")? as u64,
    ))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)?;
    Ok(e.finish()?)
}

fn profile_path(args: &LoadgenArgs) -> PathBuf {
    args.profile
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/fixtures/go/cpu.pb.gz"))
}

/// Runs the load and returns its summary.
pub async fn run(args: &LoadgenArgs) -> Result<Summary> {
    let path = profile_path(args);
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
    let node_start = node_process(&client, &args.url).await;
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
                let req = PushRequest {
                    series: vec![RawProfileSeries {
                        labels: series_labels(n, series),
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
    let rss_max = Arc::new(AtomicU64::new(node_start.map_or(0, |(_, rss)| rss)));
    let progress = {
        let (acked, rss_max, client, url) = (
            acked.clone(),
            rss_max.clone(),
            client.clone(),
            args.url.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = acked.load(Ordering::Relaxed);
                let rss = match node_start {
                    Some(_) => node_process(&client, &url).await.map(|(_, rss)| rss),
                    None => None,
                };
                if let Some(rss) = rss {
                    rss_max.fetch_max(rss, Ordering::Relaxed);
                }
                let rss = rss.map_or(String::new(), |r| format!(", node RSS {} MiB", r >> 20));
                eprint!(
                    "\r{:>5.0}s  {n} profiles acknowledged{rss}  ",
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
    let mb_per_sec = bytes.load(Ordering::Relaxed) as f64 / seconds / 1e6;
    let node = match (node_start, node_process(&client, &args.url).await) {
        (Some((cpu0, rss0)), Some((cpu1, rss1))) => {
            let cpu_seconds = cpu1 - cpu0;
            let cores_busy = cpu_seconds / seconds;
            Some(NodeUsage {
                cpu_seconds,
                cpu_ms_per_profile: cpu_seconds * 1e3 / profiles.max(1) as f64,
                cores_busy,
                mb_per_sec_per_core: if cores_busy > 0.0 {
                    mb_per_sec / cores_busy
                } else {
                    0.0
                },
                rss_start_bytes: rss0,
                rss_max_bytes: rss_max.load(Ordering::Relaxed).max(rss1),
                rss_end_bytes: rss1,
            })
        }
        _ => None,
    };
    let summary = Summary {
        seconds,
        profiles,
        errors: errors.lock().await.clone(),
        profiles_per_sec: profiles as f64 / seconds,
        mb_per_sec,
        samples_per_sec: (profiles * samples_per_profile) as f64 / seconds,
        latency_ms: [pct(0.5), pct(0.9), pct(0.99), pct(1.0)],
        node,
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
    match &s.node {
        Some(n) => {
            println!(
                "node CPU            {:.1} s ({:.2} cores busy), {:.3} ms per acknowledged profile",
                n.cpu_seconds, n.cores_busy, n.cpu_ms_per_profile
            );
            println!(
                "per node core       {:.2} MB/s gzipped pprof",
                n.mb_per_sec_per_core
            );
            println!(
                "node RSS (MiB)      start {}  max {}  end {}",
                n.rss_start_bytes >> 20,
                n.rss_max_bytes >> 20,
                n.rss_end_bytes >> 20
            );
        }
        None => println!("node CPU            unknown (its /metrics could not be read)"),
    }
    println!("errors              {:?}", s.errors);
}

/// What a backfill wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackfillSummary {
    /// Wall time, seconds.
    pub seconds: f64,
    /// Blocks written.
    pub blocks: usize,
    /// pprof profiles written (each is one row per sample type's series).
    pub profiles: u64,
    /// `(stack, value)` sample rows in the blocks.
    pub samples: u64,
    /// Bytes of all block files.
    pub bytes: u64,
    /// First and last profile timestamp, ns.
    pub min_time_ns: i64,
    /// Last profile timestamp, ns.
    pub max_time_ns: i64,
}

/// Writes `--backfill-hours` of synthetic history ending at `end_ns` into
/// `--data-dir`: the profile of `--profile` every `--every` for each of
/// `--series` pods, labelled as the live load is, one block per clock hour
/// (per replica with `--replicas`).
pub async fn backfill(args: &LoadgenArgs, end_ns: i64) -> Result<BackfillSummary> {
    use ignis_storage::block::{BlockStore, ObjectStoreConfig, encode_block, new_ulid};

    let data_dir = args
        .data_dir
        .as_ref()
        .context("--backfill-hours needs --data-dir")?;
    let raw = std::fs::read(profile_path(args)).context("reading the profile")?;
    let tenant = args.tenant.clone().unwrap_or_else(|| "anonymous".into());
    ignis_actors::validate_tenant_id(&tenant).map_err(|e| anyhow::anyhow!("{e}"))?;
    let limits = ignis_ingest::Limits::default();
    let series = args.series.max(1) as u64;
    let variants: Vec<Vec<u8>> = (0..args.variants.max(1))
        .map(|v| profile_variant(&raw, v))
        .collect::<Result<_>>()?;
    // One decoded template per pod; only its timestamp and id change.
    let mut templates = Vec::new();
    for n in 0..series {
        let req = PushRequest {
            series: vec![RawProfileSeries {
                labels: series_labels(n, series),
                samples: vec![RawSample {
                    raw_profile: variants[n as usize % variants.len()].clone(),
                    id: String::new(),
                }],
                annotations: vec![],
            }],
        };
        templates.push(
            // Every profile is re-stamped: the template's own time must not
            // be refused as ahead of `end_ns` (a clock far ahead accepts it).
            ignis_ingest::decode_push(req, &limits, i64::MAX / 2)
                .map_err(|e| anyhow::anyhow!("the profile does not decode: {}", e.message))?,
        );
    }
    let every = i64::try_from(args.every.as_nanos()).context("--every")?;
    let span = (args.backfill_hours * 3600e9) as i64;
    if span <= 0 {
        bail!("--backfill-hours must be positive");
    }
    const HOUR: i64 = 3_600_000_000_000;
    let end = end_ns - end_ns.rem_euclid(every);
    let first = end - span + every;
    let store = BlockStore::open(&ObjectStoreConfig::default(), data_dir)?;
    let start = Instant::now();
    let mut summary = BackfillSummary {
        seconds: 0.0,
        blocks: 0,
        profiles: 0,
        samples: 0,
        bytes: 0,
        min_time_ns: first,
        max_time_ns: end,
    };
    let replicas = args.replicas.max(1) as i64;
    // Per replica: its head and the end of the hour it is filling.
    let mut heads: Vec<(ignis_storage::Head, i64)> = (0..replicas)
        .map(|_| (ignis_storage::Head::new(), i64::MIN))
        .collect();
    let upload = |head: &ignis_storage::Head, summary: &mut BackfillSummary| {
        let block = encode_block(&tenant, &new_ulid(), head)?;
        summary.samples += block.meta.stats.samples;
        summary.bytes += block.files.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        summary.blocks += 1;
        Ok::<_, anyhow::Error>(block)
    };
    let mut t = first;
    let mut printed = 0;
    while t <= end {
        for (r, (head, window_end)) in heads.iter_mut().enumerate() {
            let offset = r as i64 * HOUR / replicas;
            if t >= *window_end {
                if !head.is_empty() {
                    let block = upload(head, &mut summary)?;
                    store.upload(&block).await?;
                    *head = ignis_storage::Head::new();
                }
                *window_end = ((t - offset).div_euclid(HOUR) + 1) * HOUR + offset;
            }
        }
        for template in &mut templates {
            for p in template.iter_mut() {
                p.timestamp_ns = t;
                p.profile_id = ignis_storage::ProfileId::generate();
                for (head, _) in heads.iter_mut() {
                    head.insert(p)?;
                }
            }
            summary.profiles += 1;
        }
        t += every;
        if summary.blocks != printed {
            printed = summary.blocks;
            eprint!(
                "\r{} blocks, {} profiles written  ",
                summary.blocks, summary.profiles
            );
        }
    }
    for (head, _) in &heads {
        if !head.is_empty() {
            let block = upload(head, &mut summary)?;
            store.upload(&block).await?;
        }
    }
    eprintln!();
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Prints a backfill summary.
pub fn print_backfill(s: &BackfillSummary) {
    println!("duration            {:.1} s", s.seconds);
    println!("blocks              {}", s.blocks);
    println!("profiles            {}", s.profiles);
    println!("sample rows         {}", s.samples);
    println!(
        "bytes on disk       {} ({:.3} per sample row)",
        s.bytes,
        s.bytes as f64 / s.samples.max(1) as f64
    );
    println!("time range (ns)     {} .. {}", s.min_time_ns, s.max_time_ns);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignis_query::{Engine, QueryLimits, Source};
    use ignis_storage::block::{BlockStore, ObjectStoreConfig, decode_block};
    use ignis_storage::proto::querier::v1 as q;

    fn fixture() -> PathBuf {
        std::env::var("IGNIS_FIXTURES")
            .map_or_else(
                |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
                PathBuf::from,
            )
            .join("go/cpu.pb.gz")
    }

    #[test]
    fn every_parses_units() {
        assert_eq!(parse_every("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_every("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_every("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_every("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_every("0s").is_err());
        assert!(parse_every("10d").is_err());
    }

    /// 90 minutes, 3 pods, one profile a minute: two blocks (clock hours)
    /// holding every profile once, with the fixture's CPU total each.
    /// A backfill of 1.5 hours, a profile a minute, of tenant `bf` into `dir`.
    fn backfill_args(dir: &std::path::Path, series: usize, replicas: usize) -> LoadgenArgs {
        backfill_variants(dir, series, replicas, 1)
    }

    /// [`backfill_args`] with pods spread over `variants` programs.
    fn backfill_variants(
        dir: &std::path::Path,
        series: usize,
        replicas: usize,
        variants: usize,
    ) -> LoadgenArgs {
        LoadgenArgs {
            url: String::new(),
            duration: 0,
            concurrency: 1,
            series,
            rate: 0,
            profile: Some(fixture()),
            tenant: Some("bf".into()),
            json: false,
            backfill_hours: 1.5,
            every: Duration::from_secs(60),
            data_dir: Some(dir.to_path_buf()),
            replicas,
            variants,
        }
    }

    #[tokio::test]
    async fn backfill_writes_blocks_that_hold_every_profile() {
        let dir = std::env::temp_dir().join(format!("ignis-backfill-{}", std::process::id()));
        let args = backfill_args(&dir, 3, 1);
        let end_ns = 1_794_999_600_000_000_000 + 1_800_000_000_000; // 30 min past an hour
        let s = backfill(&args, end_ns).await.expect("backfill");
        assert_eq!(s.profiles, 3 * 90);
        assert_eq!(s.max_time_ns, end_ns);
        assert_eq!(s.min_time_ns, end_ns - 89 * 60_000_000_000);

        let store = BlockStore::open(&ObjectStoreConfig::default(), &dir).expect("store");
        let metas = store.blocks("bf").await.expect("list");
        assert_eq!(metas.len(), 2, "one block per clock hour touched");
        let mut total = 0;
        let mut profiles = 0;
        for meta in &metas {
            assert!(meta.max_time_ns - meta.min_time_ns < 3_600_000_000_000);
            profiles += meta.stats.profiles;
            let head =
                decode_block(meta, &store.fetch(meta).await.expect("fetch")).expect("decode");
            let sources: [&dyn Source; 1] = [&head];
            let limits = QueryLimits::default();
            let req = q::SelectMergeStacktracesRequest {
                profile_type_id: "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
                label_selector: r#"{service_name="loadgen",pod="pod-0001"}"#.into(),
                start: s.min_time_ns / 1_000_000,
                end: s.max_time_ns / 1_000_000 + 1,
                ..Default::default()
            };
            let resp = Engine::new(&sources, &limits)
                .select_merge_stacktraces(&req)
                .expect("query");
            total += resp.flamegraph.map_or(0, |f| f.total);
        }
        // Two sample types: two series rows per pprof profile.
        assert_eq!(profiles, 2 * 3 * 90);
        // go/cpu.expected.json: cpu/nanoseconds sums to 8 710 000 000 per profile.
        assert_eq!(total, 90 * 8_710_000_000, "pod-0001's 90 profiles");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn variants_differ_in_stacks_and_keep_the_totals() {
        let dir = std::env::temp_dir().join(format!("ignis-backfill-v-{}", std::process::id()));
        let s = backfill(&backfill_variants(&dir, 4, 1, 2), 1_794_999_600_000_000_000)
            .await
            .expect("backfill");
        let store = BlockStore::open(&ObjectStoreConfig::default(), &dir).expect("store");
        let limits = QueryLimits::default();
        let mut per_pod = Vec::new();
        let mut names = Vec::new();
        for pod in ["pod-0000", "pod-0001", "pod-0002"] {
            let (mut total, mut fns) = (0, std::collections::BTreeSet::new());
            for meta in store.blocks("bf").await.expect("list") {
                let head =
                    decode_block(&meta, &store.fetch(&meta).await.expect("fetch")).expect("decode");
                let sources: [&dyn Source; 1] = [&head];
                let fg = Engine::new(&sources, &limits)
                    .select_merge_stacktraces(&q::SelectMergeStacktracesRequest {
                        profile_type_id: "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
                        label_selector: format!("{{pod=\"{pod}\"}}"),
                        start: s.min_time_ns / 1_000_000,
                        end: s.max_time_ns / 1_000_000 + 1,
                        ..Default::default()
                    })
                    .expect("query")
                    .flamegraph
                    .expect("flame graph");
                total += fg.total;
                fns.extend(fg.names);
            }
            per_pod.push(total);
            names.push(fns);
        }
        // Every pod's total is the fixture's; pods 0 and 2 run one program, pod 1 another.
        assert!(
            per_pod.iter().all(|&t| t == 90 * 8_710_000_000),
            "{per_pod:?}"
        );
        assert_eq!(names[0], names[2]);
        assert!(names[1].iter().any(|n| n.ends_with("#1")));
        assert!(
            names[0].is_disjoint(&names[1].iter().filter(|n| *n != "total").cloned().collect())
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn replicas_write_every_profile_in_blocks_cut_at_their_own_minute() {
        let dir = std::env::temp_dir().join(format!("ignis-backfill-r-{}", std::process::id()));
        let args = backfill_args(&dir, 2, 3);
        let end_ns = 1_794_999_600_000_000_000 + 1_800_000_000_000;
        let s = backfill(&args, end_ns).await.expect("backfill");
        let store = BlockStore::open(&ObjectStoreConfig::default(), &dir).expect("store");
        let metas = store.blocks("bf").await.expect("list");
        assert_eq!(metas.len() as usize, s.blocks);
        // Every profile three times (two series rows per pprof profile).
        let rows: u64 = metas.iter().map(|m| m.stats.profiles).sum();
        assert_eq!(rows, 3 * 2 * 2 * 90);
        // Each block starts at or after its replica's cut minute (0, 20, 40).
        let minutes: std::collections::BTreeSet<i64> = metas
            .iter()
            .map(|m| (m.min_time_ns / 60_000_000_000).rem_euclid(60))
            .collect();
        assert!(
            minutes.contains(&20) && minutes.contains(&40),
            "{minutes:?}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
