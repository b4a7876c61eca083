//! The load generator drives a node and every profile it counts as
//! acknowledged is stored, exactly once.

use anyhow::{Result, ensure};
use ignis::loadgen::{LoadgenArgs, run};
use ignis_integration::client::Client;
use ignis_integration::fixtures::{fixtures_dir, read_json};
use ignis_integration::node::TestNode;
use serde_json::json;

#[tokio::test]
async fn loadgen_acknowledged_profiles_are_all_stored() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let args = LoadgenArgs {
        url: node.url.clone(),
        duration: 2,
        concurrency: 4,
        series: 10,
        rate: 0,
        profile: Some(fixtures_dir().join("go/cpu.pb.gz")),
        tenant: Some("load".into()),
        json: true,
        backfill_hours: 0.0,
        every: std::time::Duration::from_secs(10),
        data_dir: None,
        replicas: 1,
        variants: 1,
    };
    let summary = run(&args).await?;
    ensure!(
        summary.profiles > 0 && summary.errors.is_empty(),
        "{summary:?}"
    );
    ensure!(summary.latency_ms[0] > 0.0 && summary.latency_ms[3] >= summary.latency_ms[2]);
    // The node's own usage, from its /metrics (in-process here, so the
    // load generator's CPU is in it too).
    let usage = summary
        .node
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no node usage read: {summary:?}"))?;
    ensure!(
        usage.cpu_seconds > 0.0
            && usage.cpu_ms_per_profile > 0.0
            && usage.mb_per_sec_per_core > 0.0
            && usage.rss_end_bytes > 0
            && usage.rss_max_bytes >= usage.rss_end_bytes,
        "{usage:?}"
    );
    let per_profile = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_f64()
        .unwrap_or(-1.0);
    let client = Client::new(&node.url).with_tenant("load");
    let s = client
        .connect_json(
            "SelectSeries",
            json!({"profileTypeID": "process_cpu:cpu:nanoseconds:cpu:nanoseconds", "labelSelector": "{service_name=\"loadgen\"}",
                   "start": 1, "end": 4_000_000_000_000i64, "step": 4.0e9, "groupBy": ["pod"]}),
        )
        .await?;
    let series = s["series"].as_array().cloned().unwrap_or_default();
    ensure!(
        series.len() == 10.min(summary.profiles as usize),
        "{} pods",
        series.len()
    );
    let total: f64 = series
        .iter()
        .flat_map(|s| s["points"].as_array().cloned().unwrap_or_default())
        .map(|p| p["value"].as_f64().unwrap_or(0.0))
        .sum();
    ensure!(
        total == per_profile * summary.profiles as f64,
        "stored {total}, acknowledged {} profiles",
        summary.profiles
    );
    Ok(())
}
