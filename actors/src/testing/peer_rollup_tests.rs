//! A peer store-gateway answers a merge from the rollups of a block that
//! holds the only copy of its profiles (no other block overlaps it, no
//! ingester still holds it); blocks that overlap (replicas) are read by the
//! asking node itself, from their rollups: the answers equal a single
//! node's, byte for byte, while far fewer bytes cross the cluster.

use ignis_query::{Engine, QueryLimits, Source};
use ignis_storage::Head;
use ignis_storage::block::{encode_block, new_ulid};
use ignis_storage::proto::querier::v1 as q;
use prost::Message;

use super::fixtures::go_cpu_history;
use super::{Sandbox, metric};

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const TENANT: &str = "t";
/// An hour a few weeks ago (ms), older than any ingester holds.
const START_MS: i64 = 1_795_000_000_000;
const HOUR_MS: i64 = 3_600_000;
const ROLLUP_READS: &str = "ignis_store_gateway_rollup_reads_total";

fn flamegraph(e: &Engine<'_>) -> Vec<u8> {
    e.select_merge_stacktraces(&q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{}".into(),
        start: START_MS,
        end: START_MS + 2 * HOUR_MS,
        max_nodes: Some(4096),
        ..Default::default()
    })
    .map(|r| r.encode_to_vec())
    .expect("flame graph")
}

/// The flame graph one node holding `heads` answers.
fn direct(heads: &[&Head]) -> Vec<u8> {
    let sources: Vec<&dyn Source> = heads.iter().map(|h| *h as &dyn Source).collect();
    let limits = QueryLimits::default();
    flamegraph(&Engine::new(&sources, &limits))
}

/// An hour of four services, a profile each every 10 s.
fn hour(offset_ms: i64) -> Head {
    go_cpu_history(0..360, 4, START_MS + offset_ms, 10_000)
}

async fn upload(sb: &Sandbox, head: &Head) {
    let block = encode_block(TENANT, &new_ulid(), head).expect("encode");
    sb.bucket.upload(&block).await.expect("upload");
}

/// Queries through every node; returns the rollup reads the nodes made
/// for their peers (not for themselves) and the bytes moved.
async fn through_every_node(sb: &Sandbox, expected: &[u8]) -> (f64, u64) {
    let mut for_peers = 0.0;
    let mut moved = 0;
    for via in 0..sb.nodes.len() {
        let reads = |i: usize| metric(&sb.nodes[i].metrics, ROLLUP_READS);
        let before: Vec<f64> = (0..sb.nodes.len()).map(reads).collect();
        let bytes = sb.transport.bytes_moved();
        let answer = sb
            .query(via, TENANT, |e| Ok(flamegraph(e)))
            .await
            .expect("answer");
        assert_eq!(answer, expected, "through node {via}");
        moved += sb.transport.bytes_moved() - bytes;
        for_peers += (0..sb.nodes.len())
            .filter(|&i| i != via)
            .map(|i| reads(i) - before[i])
            .sum::<f64>();
    }
    (for_peers, moved)
}

#[actix::test]
async fn a_peer_answers_a_sole_block_from_its_rollups_and_replicas_are_read_where_asked() {
    let sb = Sandbox::start(3, 1).await.expect("sandbox");
    let first = hour(0);
    upload(&sb, &first).await;
    sb.flush_to_blocks().await.expect("index");
    let one = direct(&[&first]);
    let (for_peers, sole_bytes) = through_every_node(&sb, &one).await;
    // Two of the three nodes asked the block's owner, which read rollups.
    assert_eq!(for_peers, 2.0);

    // A replica of the same hour (as a second ingester uploads it): the
    // blocks overlap, so the asking node reads both itself, from their
    // rollups (one answers each window, the other skips it), whoever
    // serves them; the profiles count once and no rows cross the cluster.
    upload(&sb, &first).await;
    sb.flush_to_blocks().await.expect("index");
    let all_reads = || -> f64 {
        sb.nodes
            .iter()
            .map(|n| metric(&n.metrics, ROLLUP_READS))
            .sum()
    };
    let before = all_reads();
    let (for_peers, replica_bytes) = through_every_node(&sb, &one).await;
    assert_eq!(for_peers, 0.0);
    assert_eq!(
        all_reads() - before,
        6.0,
        "two blocks read by each asking node"
    );
    let skipped: f64 = sb
        .nodes
        .iter()
        .map(|n| {
            metric(
                &n.metrics,
                "ignis_store_gateway_replica_cells_total{how=\"skipped\"}",
            )
        })
        .sum();
    assert!(skipped > 0.0);
    eprintln!(
        "one hour of 4 services through 3 nodes: {sole_bytes} bytes moved from a sole block's \
         rollups, {replica_bytes} with a replica beside it"
    );
    assert!(
        replica_bytes <= sole_bytes,
        "{sole_bytes} vs {replica_bytes}"
    );

    // The next hour, alone again, beside the replicated one.
    let second = hour(HOUR_MS);
    upload(&sb, &second).await;
    sb.flush_to_blocks().await.expect("index");
    let (for_peers, _) = through_every_node(&sb, &direct(&[&first, &second])).await;
    assert_eq!(for_peers, 2.0);
}
