//! Compaction against the real Go CPU fixture: three replicas' blocks,
//! cut at different times, become one copy per hour that answers every
//! query exactly as before, from rollups; replaced blocks stop being served
//! at once and are deleted after the delay.

use std::sync::Arc;

use ignis_query::{Engine, QueryLimits, Scope, Source};
use ignis_storage::Head;
use ignis_storage::block::{BlockMeta, BlockStore, ObjectStoreConfig, encode_block, new_ulid};
use ignis_storage::proto::querier::v1 as q;
use prost::Message;

use super::{Compactor, Settings, plan};
use crate::cluster::ClusterContext;
use crate::metrics::Metrics;
use crate::store_gateway::StoreGateway;
use crate::testing::fixtures::{go_cpu_history, truth};
use crate::testing::metric;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const SERVICES: usize = 2;
const EVERY_MS: i64 = 30_000;
/// 3.5 hours, from 7 s past an hour minus 10 min, 20 hours ago (block
/// ids, which time the deletion delay, are taken from the real clock).
const PROFILES: i64 = 420;
const HOUR_MS: i64 = 3_600_000;

fn start_ms() -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        (now / HOUR_MS - 20) * HOUR_MS - 600_000 + 7_000
    })
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

fn history(profiles: std::ops::Range<i64>) -> Head {
    go_cpu_history(profiles, SERVICES, start_ms(), EVERY_MS)
}

struct Fixture {
    store: BlockStore,
    sg: Arc<StoreGateway>,
    compactor: Compactor,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

/// Hour windows only (the day a test's history falls in depends on the clock).
fn hourly() -> Settings {
    Settings {
        // Small chunks: several per output.
        chunk_rows: 20_000,
        day_window_ns: 0,
        ..Settings::default()
    }
}

async fn fixture(blocks: &[Head], settings: Settings) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlockStore::open(&ObjectStoreConfig::default(), dir.path()).expect("store");
    for head in blocks {
        let block = encode_block("t1", &new_ulid(), head).expect("encode");
        store.upload(&block).await.expect("upload");
    }
    let metrics = Metrics::new();
    let sg = Arc::new(crate::testing::store_gateway(
        store.clone(),
        dir.path(),
        &metrics,
    ));
    sg.refresh().await.expect("refresh");
    let cluster = Arc::new(ClusterContext::standalone(
        "n1",
        "127.0.0.1:1",
        &[ignis_cluster::roles::COMPACTOR],
        metrics.clone(),
    ));
    let compactor = Compactor::new(
        store.clone(),
        Arc::new(ignis_query::block_read::BlockReader::new(sg.bucket()).expect("reader")),
        cluster,
        settings,
        Some(sg.clone()),
        metrics.clone(),
    );
    Fixture {
        store,
        sg,
        compactor,
        metrics,
        _dir: dir,
    }
}

fn flamegraph(start: i64, end: i64, selector: &str) -> impl Fn(&Engine<'_>) -> Vec<u8> {
    let selector = selector.to_string();
    move |e| {
        e.select_merge_stacktraces(&q::SelectMergeStacktracesRequest {
            profile_type_id: CPU.into(),
            label_selector: selector.clone(),
            start,
            end,
            max_nodes: Some(0),
            ..Default::default()
        })
        .expect("query")
        .encode_to_vec()
    }
}

/// `query` over what the store-gateway serves now.
async fn served(sg: &StoreGateway, query: &impl Fn(&Engine<'_>) -> Vec<u8>) -> Vec<u8> {
    let limits = QueryLimits::default();
    let scope = Scope::record(&limits, |e| {
        query(e);
        Ok(())
    })
    .expect("scope");
    let metas = sg.metas("t1", i64::MIN, i64::MAX);
    let sources = sg.sources(metas, &scope).await.expect("read");
    let refs: Vec<&dyn Source> = sources.iter().map(|s| s.as_ref()).collect();
    query(&Engine::new(&refs, &limits))
}

fn direct(head: &Head, query: &impl Fn(&Engine<'_>) -> Vec<u8>) -> Vec<u8> {
    let limits = QueryLimits::default();
    query(&Engine::new(&[head as &dyn Source], &limits))
}

fn ranges() -> Vec<(i64, i64)> {
    let last = start_ms() + (PROFILES - 1) * EVERY_MS;
    let hour = (start_ms() / HOUR_MS + 1) * HOUR_MS;
    vec![
        (start_ms(), last),
        (hour - 1, hour + 2 * HOUR_MS),
        (hour + 17 * 60_000 + 3_000, hour + 95 * 60_000 + 41_000),
        (start_ms() + 5_000, start_ms() + 65_000),
    ]
}

fn bucket_bytes(metas: &[BlockMeta]) -> u64 {
    metas
        .iter()
        .flat_map(|m| &m.files)
        .map(|f| f.size_bytes)
        .sum()
}

#[tokio::test]
async fn three_replicas_become_one_copy_that_answers_the_same() {
    let all = history(0..PROFILES);
    // Three ingesters held the same profiles and cut at different times.
    let f = fixture(
        &[
            history(0..140),
            history(140..280),
            history(280..PROFILES),
            history(0..100),
            history(100..PROFILES),
            history(0..PROFILES),
        ],
        hourly(),
    )
    .await;
    let queries: Vec<_> = ranges()
        .into_iter()
        .flat_map(|(a, b)| {
            [
                flamegraph(a, b, "{}"),
                flamegraph(a, b, "{service_name=\"svc-1\"}"),
            ]
        })
        .collect();
    let mut before = Vec::new();
    for q in &queries {
        let answer = served(&f.sg, q).await;
        assert_eq!(answer, direct(&all, q));
        before.push(answer);
    }
    let metas_before = f.sg.metas("t1", i64::MIN, i64::MAX);
    let stored_before = bucket_bytes(&metas_before);
    let samples_before: u64 = metas_before.iter().map(|m| m.stats.samples).sum();

    // Just after the last profile, only the windows that ended two hours
    // before are compacted (the first 10 minutes and the first hour).
    let last_ns = (start_ms() + PROFILES * EVERY_MS) * 1_000_000;
    let early = f.compactor.run_once(last_ns).await.expect("round");
    assert_eq!((early.compacted, early.failed), (2, 0));
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(&served(&f.sg, q).await, want, "half compacted");
    }

    // Later: the five windows the history touches, one output each.
    let later = last_ns + 10 * HOUR_MS * 1_000_000;
    let round = f.compactor.run_once(later).await.expect("round");
    assert_eq!((round.compacted, round.failed, round.deleted), (3, 0, 0));
    let served_metas = f.sg.metas("t1", i64::MIN, i64::MAX);
    assert_eq!(served_metas.len(), 5, "only the outputs are served");
    for m in &served_metas {
        let (a, b) = m.compaction.window.expect("window");
        assert!(a <= m.min_time_ns && m.max_time_ns <= b);
        assert_eq!(m.compaction.level, 2);
    }
    let profiles: u64 = served_metas.iter().map(|m| m.stats.profiles).sum();
    assert_eq!(
        profiles,
        (PROFILES as u64) * SERVICES as u64 * 2,
        "each profile once"
    );
    let rollups_before = metric(&f.metrics, "ignis_store_gateway_rollup_reads_total");
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(&served(&f.sg, q).await, want);
    }
    assert!(
        metric(&f.metrics, "ignis_store_gateway_rollup_reads_total") > rollups_before,
        "outputs do not overlap: they answer from rollups"
    );
    // Ground truth over the whole history.
    let per = truth("go/cpu")["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .expect("truth");
    let (a, b) = ranges()[0];
    let fg = q::SelectMergeStacktracesResponse::decode(
        served(&f.sg, &flamegraph(a, b, "{}")).await.as_slice(),
    )
    .expect("response")
    .flamegraph
    .expect("flame graph");
    assert_eq!(fg.total, PROFILES * SERVICES as i64 * per);

    // Nothing more to do; after the delay the replaced blocks go.
    let again = f.compactor.run_once(later).await.expect("round");
    assert_eq!((again.compacted, again.deleted), (0, 0));
    let much_later = now_ns() + 3_600_000_000_000;
    let gone = f.compactor.run_once(much_later).await.expect("round");
    assert_eq!((gone.compacted, gone.deleted), (0, 6));
    let mut left = Vec::new();
    for ulid in f.store.block_ids("t1").await.expect("list") {
        // (A filesystem bucket may keep a deleted block's empty directory.)
        left.extend(f.store.meta("t1", &ulid).await.expect("meta"));
    }
    assert_eq!(left.len(), 5);
    // One copy of every sample row (three before); bytes fall less, as
    // each block keeps its own symbol tables, large next to this history.
    let samples = |metas: &[BlockMeta]| metas.iter().map(|m| m.stats.samples).sum::<u64>();
    let one_copy = all.stats().samples;
    assert_eq!(samples(&left), one_copy);
    assert_eq!(samples_before, 3 * one_copy);
    let stored_after = bucket_bytes(&left);
    assert!(
        stored_after < stored_before,
        "{stored_after} B after, {stored_before} B before"
    );
    f.sg.refresh().await.expect("refresh");
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(&served(&f.sg, q).await, want);
    }
}

#[tokio::test]
async fn an_interrupted_compaction_leaves_the_sources_and_is_redone() {
    let f = fixture(&[history(0..200), history(100..300)], hourly()).await;
    let q = flamegraph(ranges()[0].0, ranges()[0].1, "{}");
    let want = direct(&history(0..300), &q);
    // A compactor that died mid-upload left files without meta.json.
    let partial = encode_block("t1", &new_ulid(), &history(0..10)).expect("encode");
    for (name, bytes) in &partial.files {
        f.store
            .operator()
            .write(
                &format!("t1/blocks/{}/{name}", partial.meta.ulid),
                bytes.clone(),
            )
            .await
            .expect("write");
    }
    f.sg.refresh().await.expect("refresh");
    assert_eq!(served(&f.sg, &q).await, want);
    let later = (start_ms() + 300 * EVERY_MS + 10 * HOUR_MS) * 1_000_000;
    let round = f.compactor.run_once(later).await.expect("round");
    assert!(round.compacted > 0 && round.failed == 0);
    assert_eq!(served(&f.sg, &q).await, want);
}

#[tokio::test]
async fn blocks_past_retention_stop_being_served_at_once_and_are_deleted_after_the_delay() {
    let newer = history(200..PROFILES);
    let f = fixture(&[history(0..200), history(200..PROFILES)], hourly()).await;
    let (start, end) = ranges()[0];
    let q = flamegraph(start, end, "{}");
    let first_of_newer = (start_ms() + 200 * EVERY_MS) * 1_000_000;
    // Keep what is newer than 15 s before the newer block's first profile.
    let keep = now_ns() - (first_of_newer - 15_000_000_000);
    let retention = crate::retention::Retention {
        default: std::time::Duration::from_nanos(keep as u64),
        per_tenant: Default::default(),
    };
    f.sg.set_retention(retention.clone());
    assert_eq!(served(&f.sg, &q).await, direct(&newer, &q));
    let compactor = f.compactor.with_retention(retention);
    let blocks = || async { f.store.block_ids("t1").await.expect("list").len() };
    // Deleted only a deletion delay after it expired.
    let round = compactor.run_once(now_ns()).await.expect("round");
    assert_eq!((round.expired, round.failed), (0, 0), "{round:?}");
    assert_eq!(
        blocks().await,
        2,
        "{round:?} {:?}",
        f.store.block_ids("t1").await
    );
    let later = now_ns() + Settings::default().deletion_delay_ns + 60_000_000_000;
    let round = compactor.run_once(later).await.expect("round");
    assert_eq!((round.expired, round.failed), (1, 0));
    assert_eq!(blocks().await, 1);
    assert_eq!(
        metric(&f.metrics, "ignis_compactor_blocks_expired_total"),
        1.0
    );
    assert_eq!(served(&f.sg, &q).await, direct(&newer, &q));
    // A tenant kept forever loses nothing.
    let forever = crate::retention::Retention {
        per_tenant: [("t1".to_string(), std::time::Duration::ZERO)].into(),
        ..crate::retention::Retention::default()
    };
    let compactor = compactor.with_retention(forever);
    let round = compactor.run_once(later * 2).await.expect("round");
    assert_eq!(round.expired, 0);
    assert_eq!(blocks().await, 1);
}

#[tokio::test]
async fn a_settled_day_becomes_one_block_that_long_ranges_read_from_its_day_rollups() {
    // One ingester: hourly blocks one after another over 30 hours, a
    // profile every 10 minutes, from 7 s past midnight three days ago.
    const DAY_MS: i64 = 24 * HOUR_MS;
    const EVERY: i64 = 600_000;
    let start = (now_ns() / 1_000_000 / DAY_MS - 3) * DAY_MS + 7_000;
    let hours: Vec<Head> = (0..30)
        .map(|h| go_cpu_history(h * 6..(h + 1) * 6, SERVICES, start, EVERY))
        .collect();
    let all = go_cpu_history(0..180, SERVICES, start, EVERY);
    let f = fixture(&hours, Settings::default()).await;
    let end = start + 30 * HOUR_MS;
    let queries = [
        flamegraph(start, end, "{}"),
        flamegraph(
            start - 7_000,
            start + DAY_MS - 7_001,
            "{service_name=\"svc-0\"}",
        ),
        flamegraph(start + 5 * HOUR_MS + 1_234, end - 3 * HOUR_MS, "{}"),
    ];
    for q in &queries {
        assert_eq!(served(&f.sg, q).await, direct(&all, q));
    }
    // No block overlaps another: only the two settled days are merged.
    let round = f.compactor.run_once(now_ns()).await.expect("round");
    assert_eq!((round.compacted, round.failed), (2, 0));
    let served_metas = f.sg.metas("t1", i64::MIN, i64::MAX);
    assert_eq!(served_metas.len(), 2, "one block per day");
    let rows_before = metric(&f.metrics, "ignis_store_gateway_pruned_rows_read_total");
    for q in &queries {
        assert_eq!(served(&f.sg, q).await, direct(&all, q));
    }
    // The first day whole: one row per stack and series from its day rollup.
    let rows = metric(&f.metrics, "ignis_store_gateway_pruned_rows_read_total") - rows_before;
    let day_samples = served_metas
        .iter()
        .map(|m| m.stats.samples)
        .max()
        .unwrap_or(0) as f64;
    assert!(
        rows * 20.0 < 3.0 * day_samples,
        "rows read {rows}, a day holds {day_samples}"
    );
    let later = now_ns() + 3_600_000_000_000;
    let gone = f.compactor.run_once(later).await.expect("round");
    assert_eq!((gone.compacted, gone.deleted), (0, 30));
}

#[test]
fn identical_outputs_replace_one_another_once_and_partial_cover_replaces_nothing() {
    let meta = |ulid: &str, sources: &[&str], window: Option<(i64, i64)>, (lo, hi): (i64, i64)| {
        BlockMeta {
            format_version: 4,
            ulid: ulid.into(),
            tenant: "t".into(),
            min_time_ns: lo,
            max_time_ns: hi,
            stats: ignis_storage::block::BlockStats {
                profiles: 1,
                ..Default::default()
            },
            rollup_resolutions_ns: vec![],
            compaction: ignis_storage::block::Compaction {
                level: if window.is_some() { 2 } else { 1 },
                sources: sources.iter().map(|s| s.to_string()).collect(),
                window,
            },
            files: vec![],
            wal: None,
        }
    };
    let a = meta("A", &["A"], None, (0, 150));
    let b = meta("B", &["B"], None, (50, 199));
    let o1 = meta("O1", &["A", "B"], Some((0, 99)), (0, 99));
    let replaced = plan::replaced(&[a.clone(), b.clone(), o1.clone()]);
    assert!(replaced.is_empty(), "A and B reach past the output");
    let o2 = meta("O2", &["A", "B"], Some((100, 199)), (100, 199));
    let replaced = plan::replaced(&[a.clone(), b.clone(), o1.clone(), o2.clone()]);
    let mut ids: Vec<&String> = replaced.keys().collect();
    ids.sort();
    assert_eq!(ids, ["A", "B"]);
    // A duplicate of O1 (a job run twice): the newer one stays.
    let o1b = meta("O1b", &["A", "B"], Some((0, 99)), (0, 99));
    let replaced = plan::replaced(&[a, b, o1, o1b, o2]);
    assert!(replaced.contains_key("O1") && !replaced.contains_key("O1b"));

    // Blocks one after another (one ingester): no overlap to merge by the
    // hour; the settled day they lie in becomes one block.
    let settings = Settings::default();
    let h = settings.window_ns;
    let seq = [
        meta("S1", &["S1"], None, (h / 2, h + h / 2 - 1)),
        meta("S2", &["S2"], None, (h + h / 2, 2 * h + h / 2 - 1)),
    ];
    assert!(plan::jobs("t", &seq, 100 * h, &hourly()).is_empty());
    let days = plan::jobs("t", &seq, 100 * h, &settings);
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].window, (0, settings.day_window_ns - 1));
    assert_eq!(days[0].sources.len(), 2);
    // Not before the day settled.
    assert!(plan::jobs("t", &seq, settings.day_window_ns, &settings).is_empty());
}
