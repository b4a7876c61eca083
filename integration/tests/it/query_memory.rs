//! Every query has a memory budget (`query.max_query_memory_bytes`): a
//! flame graph needing far more fails with `resource_exhausted` naming the
//! budget, a small query running beside it succeeds with exact totals, and
//! the node stays up within a bounded RSS.

use anyhow::{Result, ensure};
use ignis_integration::client::{Client, fg_total};
use ignis_integration::node::ChildNode;
use serde_json::{Value, json};

use crate::common::replicated_history;
use crate::tenants::go_cpu_total;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const BUDGET: u64 = 4 << 20;
/// Peak RSS the node (a debug build) may reach while refusing the query.
const MAX_PEAK_RSS: u64 = 384 << 20;

#[tokio::test]
async fn a_query_over_its_memory_budget_fails_and_a_small_one_beside_it_succeeds() -> Result<()> {
    let data = tempfile::tempdir()?;
    // Two hours of 30 pods every 30 s, stored twice (no rollup answers).
    let end_ns = 1_794_999_600_000_000_000i64;
    let history = replicated_history(data.path(), None, end_ns).await?;
    ensure!(history.profiles == 30 * 240, "{history:?}");
    let env = [(
        "IGNIS_QUERY__MAX_QUERY_MEMORY_BYTES".to_string(),
        BUDGET.to_string(),
    )];
    let node = ChildNode::start_with(data.path(), &[], &env).await?;
    let client = Client::new(&node.url);
    let idle = node.peak_rss_bytes()?;
    let start_ms = history.min_time_ns / 1_000_000;
    let end_ms = history.max_time_ns / 1_000_000 + 1;
    let query = |selector: &str, start: i64| json!({"profileTypeID": CPU, "labelSelector": selector, "start": start, "end": end_ms});
    let heavy = client.post(
        "/querier.v1.QuerierService/SelectMergeStacktraces",
        &[("content-type", "application/json")],
        serde_json::to_vec(&query("{service_name=\"loadgen\"}", start_ms))?,
    );
    // The last 10 minutes of one pod: 20 profiles, read pruned.
    let small = client.flamegraph(
        CPU,
        "{service_name=\"loadgen\", pod=\"pod-0007\"}",
        end_ms - 600_000,
        end_ms,
    );
    let (heavy, small) = tokio::join!(heavy, small);
    let heavy = heavy?;
    let status = heavy.status().as_u16();
    let body: Value = heavy.json().await?;
    ensure!(status == 429, "heavy query: {status} {body}");
    ensure!(body["code"] == "resource_exhausted", "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    ensure!(
        msg.contains("max_query_memory_bytes") && msg.contains("4 MiB"),
        "{msg}"
    );
    let small = small?;
    let total = fg_total(&small);
    ensure!(
        total == 20 * go_cpu_total()?,
        "one pod over 10 minutes: {total}, want 20 profiles"
    );
    ensure!(client.get("/ready").await?.status().is_success());
    let peak = node.peak_rss_bytes()?;
    eprintln!("peak RSS {} MiB (idle {} MiB)", peak >> 20, idle >> 20);
    ensure!(peak < MAX_PEAK_RSS, "peak RSS {} MiB", peak >> 20);
    Ok(())
}
