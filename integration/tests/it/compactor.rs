//! The compactor as a process: killed with SIGKILL mid-job, it leaves its
//! sources intact, and the job redone on restart gives one copy that
//! answers exactly as the replicas did. Run alone with
//! `cargo test -p ignis-integration --test it compactor`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ignis_integration::client::Client;
use ignis_integration::fixtures::{fixtures_dir, read_json};
use ignis_integration::node::{ChildNode, ignis_binary};
use serde_json::{Value, json};

use crate::common::metric;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// The complete blocks in the node's bucket: `(ulid, compaction level,
/// newest profile ns)`.
fn blocks(data: &Path) -> Result<Vec<(String, u64, i64)>> {
    let root = data.join("bucket/anonymous/blocks");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&root).with_context(|| format!("listing {}", root.display()))? {
        let dir = e?.path();
        let Ok(meta) = std::fs::read(dir.join("meta.json")) else {
            continue; // an upload that never finished
        };
        let meta: Value = serde_json::from_slice(&meta)?;
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string());
        out.push((
            name.unwrap_or_default(),
            meta["compaction"]["level"].as_u64().unwrap_or(0),
            meta["max_time_ns"].as_i64().unwrap_or(0),
        ));
    }
    out.sort();
    Ok(out)
}

/// The flame graph and the hourly series of the whole history.
async fn answers(client: &Client, start_ms: i64, end_ms: i64) -> Result<(Value, Value)> {
    let selector = "{service_name=\"loadgen\"}";
    let fg = client
        .connect_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": selector,
                   "start": start_ms, "end": end_ms, "maxNodes": 0}),
        )
        .await?;
    let series = client
        .connect_json(
            "SelectSeries",
            json!({"profileTypeID": CPU, "labelSelector": selector, "start": start_ms,
                   "end": end_ms, "step": 3600.0, "groupBy": ["pod"]}),
        )
        .await?;
    Ok((fg, series))
}

/// Compaction as fast as it can go: windows settled at once, replaced
/// blocks deleted at once, a round a second.
fn compacting() -> Vec<(String, String)> {
    [
        ("IGNIS_COMPACTOR__SETTLE_SECS", "0"),
        ("IGNIS_COMPACTOR__DELETION_DELAY_SECS", "0"),
        ("IGNIS_COMPACTOR__INTERVAL_SECS", "1"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

#[tokio::test]
async fn a_compactor_killed_mid_job_leaves_its_sources_and_the_redone_job_answers_the_same()
-> Result<()> {
    let data = tempfile::tempdir()?;
    // Three replicas of 3 hours of 2 pods, cut at different moments (what
    // three ingesters upload), written straight into the node's bucket.
    let out = Command::new(ignis_binary()?)
        .args(["loadgen", "--backfill-hours", "3", "--series", "2"])
        .args(["--every", "10s", "--replicas", "3", "--json"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--profile")
        .arg(fixtures_dir().join("go/cpu.pb.gz"))
        .output()?;
    ensure!(
        out.status.success(),
        "loadgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    let backfill: Value = serde_json::from_str(stdout.lines().last().context("no summary")?)?;
    let start_ms = backfill["min_time_ns"].as_i64().context("min_time_ns")? / 1_000_000;
    let end_ms = backfill["max_time_ns"].as_i64().context("max_time_ns")? / 1_000_000 + 1;
    let sources = blocks(data.path())?;
    ensure!(sources.len() >= 9, "{} source blocks", sources.len());

    // The answers before any compaction (its first round is an hour away).
    let idle = vec![("IGNIS_COMPACTOR__INTERVAL_SECS".into(), "3600".into())];
    let mut node = ChildNode::start_with(data.path(), &[], &idle).await?;
    let client = Client::new(&node.url);
    let before = answers(&client, start_ms, end_ms).await?;
    let per = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .context("truth")?;
    // Each replicated profile counts once (`profiles` counts them once).
    let profiles = backfill["profiles"].as_i64().context("profiles")?;
    ensure!(profiles == 3 * 360 * 2, "{profiles} profiles");
    ensure!(
        ignis_integration::client::fg_total(&before.0) == profiles * per,
        "before compaction: {} != {profiles} × {per}",
        ignis_integration::client::fg_total(&before.0)
    );
    node.terminate()?;

    // Killed while its first job runs.
    let mut node = ChildNode::start_with(data.path(), &[], &compacting()).await?;
    let client = Client::new(&node.url);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if metric(&client, "ignis_compactor_jobs_running").await? >= 1.0 {
            break;
        }
        ensure!(Instant::now() < deadline, "no compaction job started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let written = metric(&client, "ignis_compactor_blocks_written_total").await?;
    node.kill()?;
    ensure!(written == 0.0, "a job finished before the kill");
    let after_kill = blocks(data.path())?;
    // Every source is intact (an output whose upload completed in the
    // instant before the kill may be there too: the redone job replaces it).
    ensure!(
        sources.iter().all(|b| after_kill.contains(b))
            && after_kill.iter().all(|b| sources.contains(b) || b.1 > 1),
        "the killed job touched its sources: {after_kill:?}"
    );

    // Restarted: the jobs are redone, the replicas replaced and deleted.
    let mut node = ChildNode::start_with(data.path(), &[], &compacting()).await?;
    let client = Client::new(&node.url);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // Replicas of the hour still under way stay until it ends.
        let hour_ns = 3_600_000_000_000;
        let this_hour = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as i64
            / hour_ns
            * hour_ns;
        let now = blocks(data.path())?;
        let left = now
            .iter()
            .filter(|b| sources.contains(b) && b.2 < this_hour)
            .count();
        if left == 0 && metric(&client, "ignis_compactor_jobs_running").await? == 0.0 {
            ensure!(
                now.iter().any(|b| b.1 > 1) && now.iter().all(|b| b.1 > 1 || b.2 >= this_hour),
                "{now:?}"
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("compaction did not finish: {left} source blocks left");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = answers(&client, start_ms, end_ms).await?;
    ensure!(after.0 == before.0, "the flame graph changed");
    ensure!(after.1 == before.1, "the series changed");
    node.terminate()?;
    Ok(())
}

/// The profiles in the complete blocks of every tenant under `bucket`.
fn stored_profiles(bucket: &Path) -> Result<u64> {
    let mut n = 0;
    for tenant in std::fs::read_dir(bucket)? {
        let blocks = tenant?.path().join("blocks");
        let Ok(dirs) = std::fs::read_dir(&blocks) else {
            continue;
        };
        for d in dirs {
            if let Ok(meta) = std::fs::read(d?.path().join("meta.json")) {
                let meta: Value = serde_json::from_slice(&meta)?;
                n += meta["stats"]["profiles"].as_u64().unwrap_or(0);
            }
        }
    }
    Ok(n)
}

/// The flame graph of each profile type of every expectation.
async fn fixture_answers(
    client: &Client,
    expected: &[ignis_integration::fixtures::ExpectedProfile],
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for exp in expected {
        let (start, end) = crate::common::window(exp.time_ns);
        for profile_type in exp.types.keys() {
            out.push(
                client
                    .flamegraph(profile_type, &exp.selector, start, end)
                    .await?,
            );
        }
    }
    Ok(out)
}

#[tokio::test]
async fn a_replicated_cluster_compacts_to_one_copy_that_answers_the_same() -> Result<()> {
    use ignis_integration::cluster::Cluster;
    use ignis_integration::fixtures::{expectations, load_captures, sdk_captures};
    let shared = tempfile::tempdir()?;
    let bucket = shared.path().to_string_lossy().to_string();
    let env = [
        ("IGNIS_STORAGE__BUCKET__PATH", bucket.as_str()),
        ("IGNIS_COMPACTOR__INTERVAL_SECS", "3600"),
    ];
    // Three nodes at replication factor 3 on one bucket ingest every SDK
    // capture, then stop: each uploads its copy.
    let mut cluster = Cluster::start_with_env(&["all", "all", "all"], &env).await?;
    let mut expected = Vec::new();
    let mut n = 0;
    for (dir, metrics) in sdk_captures() {
        for (i, c) in load_captures(dir)?.iter().enumerate() {
            let client = Client::new(&cluster.url(n % 3)?);
            n += 1;
            let r = client.replay(c).await?;
            ensure!(r.status().is_success(), "{}: {}", c.name, r.status());
            let metric = metrics.get(i).copied().unwrap_or("");
            expected.extend(expectations(c, metric).with_context(|| c.name.clone())?);
        }
    }
    let before = fixture_answers(&Client::new(&cluster.url(0)?), &expected).await?;
    for i in 0..3 {
        cluster.terminate(i)?;
    }
    let copies = stored_profiles(shared.path())?;
    ensure!(copies > 0 && copies % 3 == 0, "{copies} profiles stored");

    // One node compacts the bucket: one copy, the same answers.
    let data = tempfile::tempdir()?;
    let mut env = compacting();
    env.push(("IGNIS_STORAGE__BUCKET__PATH".into(), bucket.clone()));
    let mut node = ChildNode::start_with(data.path(), &[], &env).await?;
    let client = Client::new(&node.url);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut during = 0;
    while stored_profiles(shared.path())? != copies / 3
        || metric(&client, "ignis_compactor_jobs_running").await? != 0.0
    {
        // Queries while the jobs run count each profile once.
        ensure!(
            fixture_answers(&client, &expected).await? == before,
            "an answer during compaction differs"
        );
        during += 1;
        ensure!(
            Instant::now() < deadline,
            "{} profiles stored, want one copy: {}",
            stored_profiles(shared.path())?,
            copies / 3
        );
    }
    ensure!(metric(&client, "ignis_compactor_blocks_written_total").await? > 0.0);
    println!("{during} rounds of queries ran while the compactor worked");
    ensure!(
        fixture_answers(&client, &expected).await? == before,
        "answers changed"
    );
    for exp in &expected {
        crate::common::verify(&client, exp).await?;
    }
    node.terminate()?;
    Ok(())
}
