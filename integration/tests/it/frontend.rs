//! The query-frontend's results cache: answers through it (flame graphs,
//! trees, pprof, diffs, series and listings) equal direct answers byte for byte (split and unsplit ranges, interval edges, a range
//! over blocks and the ingesters' head), a repeated query is answered from
//! the cache, the cache survives a restart, and an entry is not served once
//! compaction replaced the blocks under it.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use ignis_integration::client::Client;
use ignis_integration::node::TestNode;
use serde_json::json;

use crate::common::replicated_history;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const HOUR_MS: i64 = 3_600_000;
/// Queries [`answers`] asks per range.
const PER_RANGE: usize = 10;

async fn metric(client: &Client, name: &str) -> Result<f64> {
    let text = client.get("/metrics").await?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0))
}

/// The raw protobuf answers of the queries the test asks, in order.
async fn answers(client: &Client, ranges: &[(i64, i64)]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for &(start, end) in ranges {
        for (method, body) in [
            (
                "SelectMergeStacktraces",
                json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"loadgen\"}", "start": start, "end": end, "maxNodes": 200}),
            ),
            (
                "SelectMergeStacktraces",
                json!({"profileTypeID": CPU, "labelSelector": "{pod=~\"pod-000[0-4]\"}", "start": start, "end": end, "format": "PROFILE_FORMAT_TREE"}),
            ),
            (
                "SelectMergeProfile",
                json!({"profileTypeID": CPU, "labelSelector": "{}", "start": start, "end": end}),
            ),
            (
                "Diff",
                json!({
                    "left": {"profileTypeID": CPU, "labelSelector": "{pod=\"pod-0001\"}", "start": start, "end": end},
                    "right": {"profileTypeID": CPU, "labelSelector": "{pod=\"pod-0002\"}", "start": start, "end": end},
                }),
            ),
            (
                "SelectSeries",
                json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"loadgen\"}", "start": start, "end": end,
                       "step": 300.0, "groupBy": ["pod"]}),
            ),
            // A step that does not divide the hour: buckets straddle the
            // cached intervals' edges.
            (
                "SelectSeries",
                json!({"profileTypeID": CPU, "labelSelector": "{pod=~\"pod-000[0-4]\"}", "start": start, "end": end,
                       "step": 420.0, "aggregation": "TIME_SERIES_AGGREGATION_TYPE_AVERAGE",
                       "exemplarType": "EXEMPLAR_TYPE_INDIVIDUAL"}),
            ),
            // Listings: the union of their parts' label sets (each with a
            // selection of its own: listings of one selection share entries).
            (
                "LabelValues",
                json!({"name": "pod", "matchers": ["{pod=~\"pod-00[01].*\"}"], "start": start, "end": end}),
            ),
            (
                "LabelNames",
                json!({"matchers": ["{pod=~\"pod-000.*\"}"], "start": start, "end": end}),
            ),
            (
                "Series",
                json!({"matchers": ["{service_name=\"loadgen\"}"], "labelNames": ["pod", "__profile_type__"],
                       "start": start, "end": end}),
            ),
            ("ProfileTypes", json!({"start": start, "end": end})),
        ] {
            let r = client
                .post(
                    &format!("/querier.v1.QuerierService/{method}"),
                    &[("content-type", "application/json")],
                    serde_json::to_vec(&body)?,
                )
                .await?;
            ensure!(r.status().is_success(), "{method}: {}", r.status());
            out.push(r.bytes().await?.to_vec());
        }
    }
    Ok(out)
}

#[tokio::test]
async fn results_cache_answers_equal_direct_ones_and_compaction_invalidates_them() -> Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    // Two hours of 30 pods (two replicas' overlapping blocks), ended three
    // hours ago: settled. A copy for a node without the cache.
    let end_ms = now_ms - 3 * HOUR_MS;
    let dir = tempfile::tempdir()?;
    replicated_history(dir.path(), None, end_ms * 1_000_000).await?;
    let plain = tempfile::tempdir()?;
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir.path().display()))
        .arg(plain.path())
        .status()?;
    ensure!(copied.success(), "copying the history");
    let no_compaction = |c: &mut ignis::Config| c.compactor.settle_secs = 10 * 24 * 3600;
    let cached = TestNode::start_in(dir.path(), no_compaction)?;
    let direct = TestNode::start_in(plain.path(), |c| {
        no_compaction(c);
        c.query.results_cache_bytes = 0;
    })?;
    let (cc, dc) = (Client::new(&cached.url), Client::new(&direct.url));
    // The same fresh profile in both heads, so one range spans the
    // ingesters' data and the blocks.
    for client in [&cc, &dc] {
        let r = client
            .post(
                "/push.v1.PusherService/Push",
                &[("content-type", "application/proto")],
                crate::tenants::push_go_cpu("loadgen")?,
            )
            .await?;
        ensure!(r.status().is_success());
    }
    let start_ms = end_ms - 2 * HOUR_MS;
    let aligned = (start_ms / HOUR_MS + 1) * HOUR_MS;
    let ranges = [
        // Unaligned edges, over the blocks and the head.
        (start_ms - 600_000, now_ms + 60_000),
        // Exactly one aligned hour.
        (aligned, aligned + HOUR_MS - 1),
        // Inside one hour: no whole interval.
        (aligned + 60_000, aligned + 1_800_000),
        // The history alone, unaligned.
        (start_ms + 12_345, end_ms - 54_321),
    ];
    let want = answers(&dc, &ranges).await?;
    let first = answers(&cc, &ranges).await?;
    let misses = metric(&cc, "ignis_results_cache_misses_total").await?;
    ensure!(misses > 0.0, "no settled interval was cached");
    let second = answers(&cc, &ranges).await?;
    let hits = metric(&cc, "ignis_results_cache_hits_total").await?;
    ensure!(
        hits >= misses,
        "repeats answered from the cache: {hits} hits, {misses} misses"
    );
    ensure!(
        metric(&cc, "ignis_results_cache_misses_total").await? == misses,
        "no new misses"
    );
    for (i, ((w, a), b)) in want.iter().zip(&first).zip(&second).enumerate() {
        ensure!(
            a == w,
            "answer {i} through the frontend (first) differs from the direct one"
        );
        ensure!(
            b == w,
            "answer {i} from the cache differs from the direct one"
        );
    }
    ensure!(metric(&cc, "ignis_results_cache_bytes").await? > 0.0);

    // Restarted with the compactor due: the cache survives the restart, but
    // once the blocks under an entry are replaced it is not served.
    cached.stop()?;
    let cached = TestNode::start_in(dir.path(), |c| {
        c.compactor.settle_secs = 0;
        c.compactor.deletion_delay_secs = 0;
        c.compactor.interval_secs = 1;
        c.storage.block_sync_interval_secs = 1;
    })?;
    let cc = Client::new(&cached.url);
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(&cc, "ignis_compactor_blocks_deleted_total").await? == 0.0 {
        if Instant::now() > deadline {
            bail!("the compactor replaced no block");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let rounds settle and every store-gateway sync see the outputs.
    let mut last = -1.0;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let written = metric(&cc, "ignis_compactor_blocks_written_total").await?;
        if written == last {
            break;
        }
        if Instant::now() > deadline {
            bail!("compaction did not settle");
        }
        last = written;
    }
    let hits = metric(&cc, "ignis_results_cache_hits_total").await?;
    let after = answers(&cc, &ranges[1..2]).await?;
    ensure!(
        metric(&cc, "ignis_results_cache_hits_total").await? == hits,
        "an entry of the replaced blocks was served"
    );
    ensure!(metric(&cc, "ignis_results_cache_misses_total").await? > 0.0);
    ensure!(
        after == want[PER_RANGE..2 * PER_RANGE],
        "answers after compaction differ"
    );
    // And the new entries serve the repeat.
    let again = answers(&cc, &ranges[1..2]).await?;
    ensure!(metric(&cc, "ignis_results_cache_hits_total").await? > hits);
    ensure!(again == want[PER_RANGE..2 * PER_RANGE]);
    Ok(())
}
