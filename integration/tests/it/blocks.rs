//! Blocks: a stopped node ships its heads as Parquet blocks, a restarted one
//! answers from them exactly as it did from memory, and a stock Parquet
//! reader finds the same totals.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use ignis_integration::client::{Client, fg_total};
use ignis_integration::fixtures::{ExpectedProfile, expectations, load_captures, sdk_captures};
use ignis_integration::node::TestNode;
use serde_json::{Value, json};

use crate::common::{metric, total_of, verify, window};

async fn ingest_all(client: &Client) -> Result<Vec<ExpectedProfile>> {
    ingest_all_as(client, false).await
}

/// [`ingest_all`]; with `new_profiles`, as profiles never sent before (the
/// Push captures' client ids cleared: sent again with them, a profile is
/// the same one and counts once).
async fn ingest_all_as(client: &Client, new_profiles: bool) -> Result<Vec<ExpectedProfile>> {
    let mut expected = Vec::new();
    for (dir, metrics) in sdk_captures() {
        for (i, c) in load_captures(dir)?.iter().enumerate() {
            let r = if new_profiles {
                client.replay(&c.as_new_profiles()?).await?
            } else {
                client.replay(c).await?
            };
            ensure!(r.status().is_success(), "{}: {}", c.name, r.status());
            expected.extend(expectations(c, metrics.get(i).copied().unwrap_or(""))?);
        }
    }
    Ok(expected)
}

/// Flame graphs and series of every expected profile, as returned.
async fn answers(client: &Client, expected: &[ExpectedProfile]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for exp in expected {
        let (start, end) = window(exp.time_ns);
        for pt in exp.types.keys() {
            out.push(client.flamegraph(pt, &exp.selector, start, end).await?);
            out.push(
                client
                    .connect_json(
                        "SelectSeries",
                        json!({"profileTypeID": pt, "labelSelector": exp.selector, "start": start, "end": end, "step": 1.0}),
                    )
                    .await?,
            );
        }
    }
    Ok(out)
}

fn block_dirs(data: &Path) -> Result<Vec<PathBuf>> {
    let root = data.join("bucket/anonymous/blocks");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .with_context(|| format!("listing {}", root.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("meta.json").exists())
        .collect();
    dirs.sort();
    Ok(dirs)
}

#[tokio::test]
async fn restart_answers_identically_from_blocks() -> Result<()> {
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    let expected = ingest_all(&client).await?;
    let before = answers(&client, &expected).await?;
    node.stop()?;

    let dirs = block_dirs(data.path())?;
    ensure!(!dirs.is_empty(), "no block was written at shutdown");
    for d in &dirs {
        for f in ignis_storage::block::BLOCK_FILES {
            ensure!(d.join(f).exists(), "{} lacks {f}", d.display());
        }
    }

    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    ensure!(
        metric(&client, "ignis_wal_replayed_records_total").await? == 0.0,
        "the WAL was not truncated"
    );
    ensure!(
        metric(&client, "ignis_blocks_loaded_total").await? >= 1.0,
        "no block loaded"
    );
    let after = answers(&client, &expected).await?;
    ensure!(before == after, "answers differ between head and blocks");
    for exp in &expected {
        verify(&client, exp).await?;
    }
    Ok(())
}

#[tokio::test]
async fn heads_are_cut_while_running_and_nothing_is_counted_twice() -> Result<()> {
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), |c| {
        c.storage.max_head_samples = 1;
        c.storage.block_check_interval_secs = 1;
    })?;
    let client = Client::new(&node.url);
    let expected = ingest_all(&client).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while metric(&client, "ignis_blocks_uploaded_total").await? < 1.0 {
        ensure!(
            std::time::Instant::now() < deadline,
            "no block uploaded while running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // More data after the cut lands in a new head; queries see both.
    let more = ingest_all_as(&client, true).await?;
    for exp in &expected {
        let (start, end) = window(exp.time_ns);
        for (pt, (sum, _)) in &exp.types {
            let fg = client.flamegraph(pt, &exp.selector, start, end).await?;
            ensure!(
                fg_total(&fg) == 2 * sum,
                "{} {pt}: {} != 2 × {sum}",
                exp.source,
                fg_total(&fg)
            );
        }
    }
    node.stop()?;
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    for exp in &more {
        let (start, end) = window(exp.time_ns);
        for (pt, (sum, _)) in &exp.types {
            let fg = client.flamegraph(pt, &exp.selector, start, end).await?;
            ensure!(
                fg_total(&fg) == 2 * sum,
                "after restart {} {pt}: {} != 2 × {sum}",
                exp.source,
                fg_total(&fg)
            );
        }
    }
    Ok(())
}

fn ensure_pyarrow() -> Result<()> {
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if ok(Command::new("python3").args(["-c", "import pyarrow"])) {
        return Ok(());
    }
    ensure!(
        ok(Command::new("python3").args(["-m", "pip", "install", "--quiet", "pyarrow"])),
        "pyarrow is needed to read blocks with a stock Parquet reader: python3 -m pip install pyarrow"
    );
    Ok(())
}

#[tokio::test]
async fn a_stock_parquet_reader_finds_the_same_totals() -> Result<()> {
    ensure_pyarrow()?;
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    ingest_all(&client).await?;
    let types = client
        .connect_json(
            "ProfileTypes",
            json!({"start": 1, "end": 4_000_000_000_000i64}),
        )
        .await?;
    let mut want = std::collections::BTreeMap::new();
    for t in types["profileTypes"].as_array().into_iter().flatten() {
        let id = t["ID"].as_str().unwrap_or("");
        let fg = client.flamegraph(id, "{}", 1, 4_000_000_000_000).await?;
        want.insert(id.to_string(), fg_total(&fg));
    }
    node.stop()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read_block.py");
    let out = Command::new("python3")
        .arg(script)
        .args(block_dirs(data.path())?)
        .output()?;
    ensure!(
        out.status.success(),
        "read_block.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout)?;
    let got: std::collections::BTreeMap<String, i64> = got["totals"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(-1)))
        .collect();
    ensure!(
        !want.is_empty() && got == want,
        "pyarrow totals {got:?} != API totals {want:?}"
    );
    Ok(())
}

#[tokio::test]
async fn head_fs_blocks_and_s3_blocks_answer_byte_identically() -> Result<()> {
    // Head and filesystem blocks.
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    let expected = ingest_all(&client).await?;
    let from_head = answers(&client, &expected).await?;
    node.stop()?;
    let node = TestNode::start_in(data.path(), |_| {})?;
    let from_fs = answers(&Client::new(&node.url), &expected).await?;
    node.stop()?;

    // The same data through a real S3 server.
    let s3 = ignis_integration::s3::S3Server::start().await?;
    s3.create_bucket("ignis-test").await?;
    let s3_config = |c: &mut ignis::Config| {
        c.storage.bucket.backend = "s3".into();
        c.storage.bucket.bucket = "ignis-test".into();
        c.storage.bucket.prefix = "blocks-under-test".into();
        c.storage.bucket.endpoint = s3.endpoint.clone();
        c.storage.bucket.region = "us-east-1".into();
        c.storage.bucket.access_key_id = "testing".into();
        c.storage.bucket.secret_access_key = "testing".into();
    };
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), s3_config)?;
    let client = Client::new(&node.url);
    ingest_all(&client).await?;
    node.stop()?;
    ensure!(
        !data.path().join("bucket").exists(),
        "blocks went to the local disk, not S3"
    );
    // A fresh data directory: everything must come from S3.
    let fresh = tempfile::tempdir()?;
    let node = TestNode::start_in(fresh.path(), s3_config)?;
    let client = Client::new(&node.url);
    ensure!(
        metric(&client, "ignis_blocks_loaded_total").await? >= 1.0,
        "no block loaded from S3"
    );
    let from_s3 = answers(&client, &expected).await?;
    ensure!(
        from_head == from_fs,
        "filesystem blocks answer differently from the head"
    );
    ensure!(
        from_head == from_s3,
        "S3 blocks answer differently from the head"
    );
    for exp in &expected {
        verify(&client, exp).await?;
    }
    Ok(())
}

#[tokio::test]
async fn failed_uploads_keep_data_and_are_retried() -> Result<()> {
    let s3 = ignis_integration::s3::S3Server::start().await?;
    s3.create_bucket("ignis-retry").await?;
    let (endpoint, port) = (s3.endpoint.clone(), s3.port());
    let config = move |c: &mut ignis::Config| {
        c.storage.max_head_samples = 1;
        c.storage.block_check_interval_secs = 1;
        c.storage.bucket.backend = "s3".into();
        c.storage.bucket.bucket = "ignis-retry".into();
        c.storage.bucket.endpoint = endpoint.clone();
        c.storage.bucket.access_key_id = "testing".into();
        c.storage.bucket.secret_access_key = "testing".into();
        c.storage.bucket.max_retries = 1;
        c.storage.bucket.timeout_secs = 2;
    };
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), config.clone())?;
    let client = Client::new(&node.url);
    s3.stop(); // object storage goes away
    let expected = ingest_all(&client).await?;
    let wait_for = |name: &'static str| {
        let client = client.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while metric(&client, name).await? < 1.0 {
                ensure!(std::time::Instant::now() < deadline, "{name} stayed at 0");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Ok::<_, anyhow::Error>(())
        }
    };
    wait_for("ignis_block_upload_failures_total").await?;
    for exp in &expected {
        verify(&client, exp).await?;
    }
    // Storage comes back: the pending block is uploaded on a later round.
    let s3 = ignis_integration::s3::S3Server::start_on(port).await?;
    s3.create_bucket("ignis-retry").await?;
    wait_for("ignis_blocks_uploaded_total").await?;
    node.stop()?;
    let node = TestNode::start_in(data.path(), config)?;
    let client = Client::new(&node.url);
    for exp in &expected {
        verify(&client, exp).await?;
    }
    drop(s3);
    Ok(())
}

#[tokio::test]
async fn retention_deletes_expired_blocks_per_tenant() -> Result<()> {
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), |c| {
        c.storage.max_head_samples = 1;
        c.storage.block_check_interval_secs = 1;
        c.storage.retention_secs = 3600; // the fixtures are older than that
        c.storage.tenant_retention_secs.insert("keep".into(), 0); // 0: keep forever
        c.compactor.interval_secs = 1; // the compactor deletes expired blocks
    })?;
    let base = Client::new(&node.url);
    let keep = base.with_tenant("keep");
    let body = crate::tenants::push_go_cpu("ret.app")?;
    for c in [&base, &keep] {
        let r = c
            .post(
                "/push.v1.PusherService/Push",
                &[("content-type", "application/proto")],
                body.clone(),
            )
            .await?;
        ensure!(r.status().is_success());
    }
    let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    let want = crate::common::total_of(&keep, cpu, "ret.app").await?;
    ensure!(want > 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while crate::common::total_of(&base, cpu, "ret.app").await? != 0 {
        ensure!(
            std::time::Instant::now() < deadline,
            "expired data is still served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    ensure!(
        crate::common::total_of(&keep, cpu, "ret.app").await? == want,
        "the override did not keep the data"
    );
    // The compactor deletes them on its next round.
    while !block_dirs(data.path())?.is_empty() {
        ensure!(
            std::time::Instant::now() < deadline,
            "expired blocks are still in the bucket"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    node.stop()?;
    // Nothing comes back after a restart.
    let node = TestNode::start_in(data.path(), |_| {})?;
    let base = Client::new(&node.url);
    ensure!(
        crate::common::total_of(&base, cpu, "ret.app").await? == 0,
        "expired data came back"
    );
    ensure!(crate::common::total_of(&base.with_tenant("keep"), cpu, "ret.app").await? == want);
    Ok(())
}

/// A Push of the Go CPU fixture re-stamped at `time_ns`.
pub(crate) fn push_at(service: &str, time_ns: i64) -> Result<Vec<u8>> {
    use ignis_storage::proto::google::v1::Profile;
    use prost::Message;
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        ignis_integration::fixtures::read_fixture("go/cpu.pb.gz")?.as_slice(),
    )
    .read_to_end(&mut raw)?;
    let mut p = Profile::decode(raw.as_slice())?;
    p.time_nanos = time_ns;
    Ok(ignis_integration::fixtures::push_request(
        service,
        p.encode_to_vec(),
    ))
}

#[tokio::test]
async fn store_gateway_reads_blocks_lazily_within_its_budget() -> Result<()> {
    const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    let per = ignis_integration::fixtures::read_json("go/cpu.expected.json")?["value_sums"]
        ["cpu/nanoseconds"]
        .as_i64()
        .context("truth")?;
    let data = tempfile::tempdir()?;
    let (t1, t2) = (1_700_000_000_000_000_000i64, 1_700_000_600_000_000_000i64);
    {
        let node = TestNode::start_in(data.path(), |c| {
            c.storage.max_head_samples = 1; // every push becomes a block
            c.storage.block_check_interval_secs = 1;
        })?;
        let client = Client::new(&node.url);
        // One block per profile: wait for each to ship before the next push.
        for (n, t) in [t1, t2].into_iter().enumerate() {
            let r = client
                .post(
                    "/push.v1.PusherService/Push",
                    &[("content-type", "application/proto")],
                    push_at("lazy.app", t)?,
                )
                .await?;
            ensure!(r.status().is_success(), "{}", r.status());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while block_dirs(data.path()).map_or(0, |d| d.len()) < n + 1 {
                ensure!(
                    std::time::Instant::now() < deadline,
                    "block {n} not shipped"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        // Shipped blocks leave the ingester: the store-gateway answers.
        ensure!(total_of(&client, CPU, "lazy.app").await? == 2 * per);
        node.stop()?;
    }
    // Restart with a budget too small for even one block (and no results
    // cache, which would answer repeats without reading a block).
    let node = TestNode::start_in(data.path(), |c| {
        c.storage.block_cache_bytes = 1;
        c.query.results_cache_bytes = 0;
    })?;
    let client = Client::new(&node.url);
    ensure!(
        metric(&client, "ignis_block_cache_misses_total").await? == 0.0,
        "blocks were read before any query"
    );
    ensure!(metric(&client, "ignis_indexed_blocks").await? == 2.0);
    // A range that touches only the first block reads only it.
    let ms = t1 / 1_000_000;
    let fg = client
        .flamegraph(CPU, "{service_name=\"lazy.app\"}", ms, ms)
        .await?;
    ensure!(fg_total(&fg) == per, "first block: {}", fg_total(&fg));
    ensure!(metric(&client, "ignis_block_cache_misses_total").await? == 1.0);
    // Both blocks: the second is read and the first evicted (budget), answers exact.
    for round in 1..=2 {
        let total = total_of(&client, CPU, "lazy.app").await?;
        ensure!(total == 2 * per, "round {round}: {total}");
    }
    ensure!(metric(&client, "ignis_block_cache_evictions_total").await? >= 1.0);
    Ok(())
}

#[tokio::test]
async fn store_gateway_finds_blocks_other_nodes_upload() -> Result<()> {
    const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    let bucket = tempfile::tempdir()?;
    let path = bucket.path().display().to_string();
    let writer = TestNode::start(|c| {
        c.storage.bucket.path = path.clone();
        c.storage.max_head_samples = 1;
        c.storage.block_check_interval_secs = 1;
    })?;
    let reader = TestNode::start(|c| {
        c.storage.bucket.path = path.clone();
        c.storage.block_sync_interval_secs = 1;
    })?;
    let (w, r) = (Client::new(&writer.url), Client::new(&reader.url));
    let resp = w
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_at("shared.app", 1_700_000_000_000_000_000)?,
        )
        .await?;
    ensure!(resp.status().is_success());
    let want = total_of(&w, CPU, "shared.app").await?;
    ensure!(want > 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while total_of(&r, CPU, "shared.app").await? != want {
        ensure!(
            std::time::Instant::now() < deadline,
            "the reader never indexed the writer's block"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn blocks_of_a_remote_bucket_are_cached_on_local_disk() -> Result<()> {
    const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    let per = ignis_integration::fixtures::read_json("go/cpu.expected.json")?["value_sums"]
        ["cpu/nanoseconds"]
        .as_i64()
        .context("truth")?;
    let s3 = ignis_integration::s3::S3Server::start().await?;
    s3.create_bucket("ignis-cache").await?;
    let endpoint = s3.endpoint.clone();
    let s3_config = move |c: &mut ignis::Config| {
        // Repeats must read blocks, not the results cache.
        c.query.results_cache_bytes = 0;
        c.storage.bucket.backend = "s3".into();
        c.storage.bucket.bucket = "ignis-cache".into();
        c.storage.bucket.endpoint = endpoint.clone();
        c.storage.bucket.region = "us-east-1".into();
        c.storage.bucket.access_key_id = "testing".into();
        c.storage.bucket.secret_access_key = "testing".into();
    };
    let data = tempfile::tempdir()?;
    let (t1, t2) = (1_700_000_000_000_000_000i64, 1_700_000_600_000_000_000i64);
    {
        let cfg = s3_config.clone();
        let node = TestNode::start_in(data.path(), move |c| {
            cfg(c);
            c.storage.max_head_samples = 1;
            c.storage.block_check_interval_secs = 1;
        })?;
        let client = Client::new(&node.url);
        for (n, t) in [t1, t2].into_iter().enumerate() {
            let r = client
                .post(
                    "/push.v1.PusherService/Push",
                    &[("content-type", "application/proto")],
                    push_at("cached.app", t)?,
                )
                .await?;
            ensure!(r.status().is_success(), "{}", r.status());
            // Generous: a loaded machine makes the S3 server slow.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
            while metric(&client, "ignis_blocks_uploaded_total").await? < (n + 1) as f64 {
                ensure!(
                    std::time::Instant::now() < deadline,
                    "block {n} not uploaded; upload failures: {}",
                    metric(&client, "ignis_block_upload_failures_total").await?
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        node.stop()?;
    }
    // No room for decoded blocks: every query decodes again, from local disk.
    let cfg = s3_config.clone();
    let node = TestNode::start_in(data.path(), move |c| {
        cfg(c);
        c.storage.block_cache_bytes = 1;
    })?;
    let client = Client::new(&node.url);
    for round in 1..=3 {
        let total = total_of(&client, CPU, "cached.app").await?;
        ensure!(total == 2 * per, "round {round}: {total}");
    }
    let (hits, misses) = (
        metric(&client, "ignis_block_file_cache_hits_total").await?,
        metric(&client, "ignis_block_file_cache_misses_total").await?,
    );
    // 2 blocks × the files a whole decode reads (all but the rollups)
    // fetched once from S3, then read from disk.
    let format = ignis_storage::block::FORMAT_VERSION;
    let files = 2.0 * ignis_storage::block::row_files(format).count() as f64;
    ensure!(
        misses == files,
        "files fetched from S3: {misses}, want {files}"
    );
    ensure!(hits >= files, "files read from the disk cache: {hits}");
    ensure!(data.path().join("index/files/anonymous").is_dir());
    Ok(())
}

/// One Push of the Go CPU fixture for `service`, re-stamped at each of `times_ns`.
fn push_many(service: &str, times_ns: &[i64]) -> Result<Vec<u8>> {
    use ignis_storage::proto::google::v1::Profile;
    use ignis_storage::proto::push::v1::{PushRequest, RawSample};
    use prost::Message;
    let mut req = PushRequest::decode(push_at(service, times_ns[0])?.as_slice())?;
    let series = req.series.first_mut().context("push series")?;
    let first = series
        .samples
        .first()
        .context("push sample")?
        .raw_profile
        .clone();
    let p = Profile::decode(first.as_slice())?;
    series.samples = times_ns
        .iter()
        .map(|&t| RawSample {
            raw_profile: Profile {
                time_nanos: t,
                ..p.clone()
            }
            .encode_to_vec(),
            id: String::new(),
        })
        .collect();
    Ok(req.encode_to_vec())
}

/// Answers of one-service queries over sub-ranges of a history of
/// `services` × `times` Go CPU profiles.
async fn one_service_answers(client: &Client, times: &[i64]) -> Result<Vec<Value>> {
    const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    let ms = |i: usize| times[i] / 1_000_000;
    let mut out = vec![
        client
            .flamegraph(CPU, "{service_name=\"svc-03\"}", ms(10), ms(20))
            .await?,
        client
            .connect_json(
                "SelectSeries",
                json!({"profileTypeID": CPU, "labelSelector": "{service_name=~\"svc-0[45]\"}",
                       "start": ms(0), "end": ms(30), "step": 60.0, "groupBy": ["service_name"]}),
            )
            .await?,
        client
            .connect_json(
                "LabelValues",
                json!({"name": "__profile_type__", "matchers": ["{service_name=\"svc-07\"}"],
                       "start": ms(5), "end": ms(6)}),
            )
            .await?,
    ];
    let p = client
        .merged_pprof(CPU, "{service_name=\"svc-09\"}", ms(40), ms(59))
        .await?;
    out.push(serde_json::to_value(&p)?);
    // Legacy render: its flame graph (from rollups over blocks) and its
    // timeline (from each profile).
    let r = client
        .get(&format!(
            "/pyroscope/render?query={}&from={}&until={}",
            "process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds%7Bservice_name%3D%22svc-11%22%7D",
            ms(2),
            ms(57)
        ))
        .await?;
    ensure!(r.status().is_success(), "render: {}", r.status());
    out.push(r.json().await?);
    Ok(out)
}

#[tokio::test]
async fn pruned_block_reads_answer_like_the_head_on_disk_and_on_s3() -> Result<()> {
    const SERVICES: usize = 12;
    let per = ignis_integration::fixtures::read_json("go/cpu.expected.json")?["value_sums"]
        ["cpu/nanoseconds"]
        .as_i64()
        .context("truth")?;
    // 60 profiles 10 s apart per service: ~250 000 sample rows, 4 row groups.
    let times: Vec<i64> = (0..60)
        .map(|i| 1_700_000_000_000_000_000 + i * 10_000_000_000)
        .collect();
    let ingest = |client: Client| {
        let times = times.clone();
        async move {
            for s in 0..SERVICES {
                let r = client
                    .post(
                        "/push.v1.PusherService/Push",
                        &[("content-type", "application/proto")],
                        push_many(&format!("svc-{s:02}"), &times)?,
                    )
                    .await?;
                ensure!(r.status().is_success(), "{}", r.status());
            }
            Ok::<_, anyhow::Error>(())
        }
    };
    let pruned = |client: Client| async move {
        // Series, label values, render's timeline: pruned reads; the flame
        // graph, the pprof and render's flame graph over minutes: from the
        // block's rollups and the edges.
        let pruned = metric(&client, "ignis_store_gateway_pruned_reads_total").await?;
        let rollups = metric(&client, "ignis_store_gateway_rollup_reads_total").await?;
        ensure!(
            pruned >= 3.0 && rollups >= 3.0,
            "the block was not read pruned ({pruned}) and from rollups ({rollups})"
        );
        ensure!(
            metric(&client, "ignis_block_cache_misses_total").await? == 0.0,
            "the block was decoded whole"
        );
        ensure!(metric(&client, "ignis_store_gateway_row_groups_skipped_total").await? > 0.0);
        Ok::<_, anyhow::Error>(())
    };

    // From the head, then from the block the stopped node cut.
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    ingest(client.clone()).await?;
    let from_head = one_service_answers(&client, &times).await?;
    ensure!(fg_total(&from_head[0]) == 11 * per, "head total");
    node.stop()?;
    ensure!(block_dirs(data.path())?.len() == 1);
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    let from_fs = one_service_answers(&client, &times).await?;
    pruned(client).await?;
    node.stop()?;
    ensure!(
        from_fs == from_head,
        "filesystem block answers differ from the head"
    );

    // The same history through a real S3 server, read by a fresh node.
    let s3 = ignis_integration::s3::S3Server::start().await?;
    s3.create_bucket("ignis-pruned").await?;
    let s3_config = |c: &mut ignis::Config| {
        c.storage.bucket.backend = "s3".into();
        c.storage.bucket.bucket = "ignis-pruned".into();
        c.storage.bucket.endpoint = s3.endpoint.clone();
        c.storage.bucket.region = "us-east-1".into();
        c.storage.bucket.access_key_id = "testing".into();
        c.storage.bucket.secret_access_key = "testing".into();
    };
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), s3_config)?;
    ingest(Client::new(&node.url)).await?;
    node.stop()?;
    let fresh = tempfile::tempdir()?;
    let node = TestNode::start_in(fresh.path(), s3_config)?;
    let client = Client::new(&node.url);
    let from_s3 = one_service_answers(&client, &times).await?;
    // Twice: the second time every footer comes from the cache.
    ensure!(one_service_answers(&client, &times).await? == from_s3);
    pruned(client.clone()).await?;
    ensure!(metric(&client, "ignis_parquet_footers_cached").await? >= 2.0);
    ensure!(
        from_s3 == from_head,
        "S3 block answers differ from the head"
    );
    Ok(())
}
