//! Reads from rollups against the real Go CPU fixture: every range answers
//! byte-identically to the whole decoded block, with far fewer rows read,
//! and profiles another source also holds count once.

use std::sync::Arc;

use ignis_query::{Engine, QueryLimits, Scope, Source};
use ignis_storage::Head;
use ignis_storage::block::{BlockMeta, BlockStore, ObjectStoreConfig, decode_block, encode_block};
use ignis_storage::proto::querier::v1 as q;
use prost::Message;

use super::StoreGateway;
use crate::metrics::Metrics;
use crate::testing::fixtures::{go_cpu_history, truth};
use crate::testing::metric;

pub(super) const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
pub(super) const SERVICES: usize = 3;
/// A profile every 20 s for 2.5 hours, from 7 s past an hour minus 10 min.
pub(super) const EVERY_MS: i64 = 20_000;
pub(super) const PROFILES: i64 = 450;
pub(super) const HOUR_MS: i64 = 3_600_000;
pub(super) const START_MS: i64 = 498_611 * HOUR_MS - 600_000 + 7_000;

pub(super) fn head_of(profiles: std::ops::Range<i64>) -> Head {
    go_cpu_history(profiles, SERVICES, START_MS, EVERY_MS)
}

pub(super) struct Fixture {
    pub(super) whole: Head,
    pub(super) sg: StoreGateway,
    pub(super) metas: Vec<BlockMeta>,
    pub(super) metrics: Metrics,
    _dir: tempfile::TempDir,
}

/// One block per head, on a filesystem bucket, served by a store-gateway.
pub(super) async fn fixture(heads: &[&Head]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlockStore::open(&ObjectStoreConfig::default(), dir.path()).expect("store");
    let mut metas = Vec::new();
    let mut whole = Vec::new();
    for head in heads {
        let block = encode_block("t1", &ignis_storage::block::new_ulid(), head).expect("encode");
        store.upload(&block).await.expect("upload");
        let files = store.fetch(&block.meta).await.expect("fetch");
        whole.push(decode_block(&block.meta, &files).expect("decode"));
        metas.push(block.meta);
    }
    let metrics = Metrics::new();
    let sg = crate::testing::store_gateway(store, dir.path(), &metrics);
    for m in &metas {
        sg.add_uploaded(m).expect("index");
    }
    Fixture {
        whole: Head::merged(whole.iter()),
        sg,
        metas,
        metrics,
        _dir: dir,
    }
}

pub(super) type Query = Arc<dyn Fn(&Engine<'_>) -> Vec<u8> + Send + Sync>;

pub(super) fn answer(sources: &[&dyn Source], query: &Query) -> Vec<u8> {
    query(&Engine::new(sources, &QueryLimits::default()))
}

/// `query` over the fixture's blocks and `recent` (an ingester's data),
/// the blocks claiming the profiles they pre-merged where `recent`
/// overlaps them.
pub(super) async fn answer_beside(f: &Fixture, query: &Query, recent: &Head) -> Vec<u8> {
    let scope = scope_of(query);
    let blocks = f.sg.sources(f.metas.clone(), &scope).await.expect("read");
    let others: Vec<(i64, i64)> = recent.time_bounds().into_iter().collect();
    let claimed =
        f.sg.claim_overlaps(&f.metas, blocks, &scope, &others)
            .await
            .expect("claims");
    let mut got: Vec<&dyn Source> = vec![recent];
    got.extend(claimed.iter().map(|s| s.as_ref()));
    answer(&got, query)
}

/// `query` over the fixture's blocks and `recent` without claims: an
/// overlap counts twice.
pub(super) async fn answer_unclaimed(f: &Fixture, query: &Query, recent: &Head) -> Vec<u8> {
    let blocks =
        f.sg.sources(f.metas.clone(), &scope_of(query))
            .await
            .expect("read");
    let mut got: Vec<&dyn Source> = vec![recent];
    got.extend(blocks.iter().map(|s| s.as_ref()));
    answer(&got, query)
}

pub(super) fn scope_of(query: &Query) -> Scope {
    Scope::record(&QueryLimits::default(), |e| {
        query(e);
        Ok(())
    })
    .expect("scope")
}

fn flamegraph(selector: &'static str, start: i64, end: i64, format: q::ProfileFormat) -> Query {
    Arc::new(move |e| {
        e.select_merge_stacktraces(&q::SelectMergeStacktracesRequest {
            profile_type_id: CPU.into(),
            label_selector: selector.into(),
            start,
            end,
            format: format as i32,
            max_nodes: Some(0),
            ..Default::default()
        })
        .expect("query")
        .encode_to_vec()
    })
}

/// Ranges (ms) around the block: aligned and not, inside one minute, on
/// window edges to the millisecond, past either end.
pub(super) fn ranges() -> Vec<(i64, i64)> {
    let first = START_MS;
    let last = START_MS + (PROFILES - 1) * EVERY_MS;
    let hour = (START_MS / HOUR_MS + 1) * HOUR_MS; // the first whole hour
    vec![
        (first, last),
        (first - HOUR_MS, last + HOUR_MS),
        (hour, hour + HOUR_MS - 1),
        (hour - 1, hour + HOUR_MS),
        (hour + 1, hour + 2 * HOUR_MS - 2),
        (hour + 17 * 60_000 + 3_000, hour + 95 * 60_000 + 41_000),
        (hour + 60_000, hour + 119_999),
        (hour + 60_001, hour + 119_998),
        (first + 5_000, first + 25_000),
        (hour - 10 * 60_000, hour + 10 * 60_000 - 1),
    ]
}

#[tokio::test]
async fn every_range_answers_from_rollups_as_from_the_profiles() {
    let head = head_of(0..PROFILES);
    let f = fixture(&[&head]).await;
    assert!(f.metas[0].has_rollups(), "{:?}", f.metas[0]);
    let mut rows_read = Vec::new();
    for (start, end) in ranges() {
        for (selector, format) in [
            ("{}", q::ProfileFormat::Flamegraph),
            ("{service_name=\"svc-1\"}", q::ProfileFormat::Tree),
            ("{service_name!=\"svc-1\"}", q::ProfileFormat::Pprof),
        ] {
            let query = flamegraph(selector, start, end, format);
            let scope = scope_of(&query);
            assert!(scope.rollup_segments().is_some());
            let before = metric(&f.metrics, "ignis_store_gateway_pruned_rows_read_total");
            let sources = f.sg.sources(f.metas.clone(), &scope).await.expect("read");
            rows_read
                .push(metric(&f.metrics, "ignis_store_gateway_pruned_rows_read_total") - before);
            let got: Vec<&dyn Source> = sources.iter().map(|s| s.as_ref()).collect();
            assert_eq!(
                answer(&got, &query),
                answer(&[&f.whole], &query),
                "{selector} over {start}..{end}"
            );
        }
    }
    // All but two ranges hold a whole minute (20 s, and 1 min less 3 ms, do not).
    assert_eq!(
        metric(&f.metrics, "ignis_store_gateway_rollup_reads_total"),
        ((ranges().len() - 2) * 3) as f64
    );
    // The whole block: its 1 350 profiles' samples, or about 2.5 hour rows
    // and a few minute windows per series.
    let samples = f.metas[0].stats.samples as f64;
    assert!(
        rows_read[0] * 20.0 < samples,
        "rows read {} of {samples}",
        rows_read[0]
    );
    // Ground truth: every profile of the fixture, counted once.
    let per = truth("go/cpu")["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .expect("truth");
    let all = flamegraph(
        "{}",
        ranges()[1].0,
        ranges()[1].1,
        q::ProfileFormat::Flamegraph,
    );
    let sources =
        f.sg.sources(f.metas.clone(), &scope_of(&all))
            .await
            .expect("read");
    let got: Vec<&dyn Source> = sources.iter().map(|s| s.as_ref()).collect();
    let fg = q::SelectMergeStacktracesResponse::decode(answer(&got, &all).as_slice())
        .expect("response")
        .flamegraph
        .expect("flame graph");
    assert_eq!(fg.total, PROFILES * SERVICES as i64 * per);
}

#[tokio::test]
async fn profiles_another_source_also_holds_count_once() {
    let head = head_of(0..PROFILES);
    let f = fixture(&[&head]).await;
    // An ingester still holding the last 40 minutes (replicas of the block's).
    let recent = head_of(PROFILES - 120..PROFILES);
    for (start, end) in ranges() {
        let query = flamegraph("{}", start, end, q::ProfileFormat::Flamegraph);
        assert_eq!(
            answer_beside(&f, &query, &recent).await,
            answer(&[&f.whole], &query),
            "{start}..{end}"
        );
    }
    // Without the claims, the overlap would count twice.
    let (start, end) = ranges()[0];
    let query = flamegraph("{}", start, end, q::ProfileFormat::Flamegraph);
    assert_ne!(
        answer_unclaimed(&f, &query, &recent).await,
        answer(&[&f.whole], &query)
    );
}

/// Profiles `range` of the history without those in `missing` (writes a
/// replica missed).
fn replica_of(range: std::ops::Range<i64>, missing: &[i64]) -> Head {
    let mut cuts: Vec<i64> = missing
        .iter()
        .copied()
        .filter(|m| range.contains(m))
        .collect();
    cuts.sort_unstable();
    let (mut parts, mut from) = (Vec::new(), range.start);
    for m in cuts {
        parts.push(head_of(from..m));
        from = m + 1;
    }
    parts.push(head_of(from..range.end));
    Head::merged(parts.iter())
}

#[tokio::test]
async fn replicas_answer_from_rollups_each_profile_once() {
    // Three ingesters' blocks of the same profiles, cut at other moments
    // (the first of the second replica small enough to be decoded whole),
    // two of them missing a profile each that the others hold.
    let blocks = [
        replica_of(0..225, &[]),
        replica_of(225..PROFILES, &[]),
        replica_of(0..60, &[]),
        replica_of(60..285, &[100]),
        replica_of(285..PROFILES, &[]),
        replica_of(0..120, &[]),
        replica_of(120..345, &[]),
        replica_of(345..PROFILES, &[300, 400]),
    ];
    let f = fixture(&blocks.iter().collect::<Vec<_>>()).await;
    let whole = head_of(0..PROFILES);
    let cells = |how: &str| {
        metric(
            &f.metrics,
            &format!("ignis_store_gateway_replica_cells_total{{how=\"{how}\"}}"),
        )
    };
    let samples: u64 = f.metas.iter().map(|m| m.stats.samples).sum();
    for (start, end) in ranges() {
        for (selector, format) in [
            ("{}", q::ProfileFormat::Flamegraph),
            ("{service_name=\"svc-1\"}", q::ProfileFormat::Pprof),
        ] {
            let query = flamegraph(selector, start, end, format);
            let scope = scope_of(&query);
            let before = metric(&f.metrics, "ignis_store_gateway_pruned_rows_read_total");
            let sources = f.sg.sources(f.metas.clone(), &scope).await.expect("read");
            let read = metric(&f.metrics, "ignis_store_gateway_pruned_rows_read_total") - before;
            let got: Vec<&dyn Source> = sources.iter().map(|s| s.as_ref()).collect();
            assert_eq!(
                answer(&got, &query),
                answer(&[&whole], &query),
                "{selector} over {start}..{end}"
            );
            if (start, end) == ranges()[1] {
                // Keys and rollup rows, not every sample of three copies.
                assert!(read * 8.0 < samples as f64, "rows read {read} of {samples}");
            }
        }
    }
    assert!(cells("skipped") > 0.0 && cells("rollup") > 0.0);
    // The missing profiles make a few windows read their profiles.
    assert!(cells("raw") > 0.0 && cells("raw") < cells("skipped") / 4.0);

    // The fixture's ground truth over the whole history, and with an
    // ingester still holding the last 40 minutes beside the blocks.
    let per = truth("go/cpu")["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .expect("truth");
    let recent = head_of(PROFILES - 120..PROFILES);
    for (start, end) in [ranges()[1], ranges()[5], ranges()[9]] {
        let query = flamegraph("{}", start, end, q::ProfileFormat::Flamegraph);
        let bytes = answer_beside(&f, &query, &recent).await;
        assert_eq!(bytes, answer(&[&whole], &query), "{start}..{end}");
        if (start, end) == ranges()[1] {
            let fg = q::SelectMergeStacktracesResponse::decode(bytes.as_slice())
                .expect("response")
                .flamegraph
                .expect("flame graph");
            assert_eq!(fg.total, PROFILES * SERVICES as i64 * per);
        }
    }
}

#[tokio::test]
async fn per_profile_queries_read_the_profiles() {
    let a = head_of(0..270);
    let (start, end) = ranges()[0];
    // Time series need each profile: they read profiles.
    let f = fixture(&[&a]).await;
    let series: Query = Arc::new(move |e| {
        e.select_series(&q::SelectSeriesRequest {
            profile_type_id: CPU.into(),
            label_selector: "{}".into(),
            start,
            end,
            step: 60.0,
            ..Default::default()
        })
        .expect("query")
        .encode_to_vec()
    });
    let scope = scope_of(&series);
    assert_eq!(scope.rollup_segments(), None);
    let sources = f.sg.sources(f.metas.clone(), &scope).await.expect("read");
    let got: Vec<&dyn Source> = sources.iter().map(|s| s.as_ref()).collect();
    assert_eq!(answer(&got, &series), answer(&[&a], &series));
    assert_eq!(
        metric(&f.metrics, "ignis_store_gateway_rollup_reads_total"),
        0.0
    );
}

#[tokio::test]
async fn diffs_of_two_ranges_answer_from_rollups_cut_at_both_ranges_ends() {
    let a = head_of(0..PROFILES);
    let f = fixture(&[&a]).await;
    let (first, last) = ranges()[0];
    let diff = |left: (i64, i64), right: (i64, i64)| -> Query {
        Arc::new(move |e| {
            let side = |(from, to): (i64, i64)| q::SelectMergeStacktracesRequest {
                profile_type_id: CPU.into(),
                label_selector: "{}".into(),
                start: from,
                end: to,
                ..Default::default()
            };
            e.diff(&q::DiffRequest {
                left: Some(side(left)),
                right: Some(side(right)),
            })
            .expect("query")
            .encode_to_vec()
        })
    };
    let mid = first + 67 * 60_000 + 13_000;
    for (left, right) in [
        // Back to back, overlapping, one inside the other, apart.
        ((first, mid), (mid + 1, last)),
        ((first, mid + 30 * 60_000), (mid, last)),
        ((first, last), (mid, mid + 25 * 60_000 + 7)),
        ((first, first + 40 * 60_000), (last - 40 * 60_000, last)),
    ] {
        let query = diff(left, right);
        let scope = scope_of(&query);
        let segments = scope.rollup_segments().expect("a diff only merges stacks");
        assert!(segments.len() >= 2, "{segments:?}");
        let before = metric(&f.metrics, "ignis_store_gateway_rollup_reads_total");
        let sources = f.sg.sources(f.metas.clone(), &scope).await.expect("read");
        assert!(metric(&f.metrics, "ignis_store_gateway_rollup_reads_total") > before);
        let got: Vec<&dyn Source> = sources.iter().map(|s| s.as_ref()).collect();
        assert_eq!(
            answer(&got, &query),
            answer(&[&f.whole], &query),
            "{left:?} vs {right:?}"
        );
    }
}
