//! A realistic hour at rest and queried: the Go CPU fixture time-shifted into
//! 100 services × 360 profiles (one every 10 s), as a head and as a block.
//!
//! Besides encoding and decoding the block, it times the flame graph of the
//! hour (all services) and of ONE service from the head, from a cold block
//! decoded whole, from a cold block read pruned (only that service's rows,
//! through DataFusion, footers and symbols not yet cached), from a warm
//! pruned read (footers and symbols cached, as the store-gateway keeps
//! them), and from the block cached whole. Blocks are read from an
//! in-memory bucket, so the times are decode and CPU, not network.
//!
//! `cargo bench -p ignis-actors --bench blocks`

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ignis_query::block_read::{BlockReader, BlockTables};
use ignis_query::bucket::Bucket;
use ignis_query::{BlockSlice, Engine, QueryLimits, Scope, Source};
use ignis_storage::block::{BlockMeta, BlockStore, decode_block, encode_block};
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::{Head, Labels, names};

const SERIES: usize = 100;
const PROFILES: i64 = 360;
const START_MS: i64 = 1_795_000_000_000;

fn hour() -> Head {
    let split = common::go_cpu_split();
    let mut head = Head::new();
    for s in 0..SERIES {
        for i in 0..PROFILES {
            for p in &split {
                let mut p = p.clone();
                p.timestamp_ns = (START_MS + i * 10_000) * 1_000_000;
                for series in &mut p.series {
                    let mut labels: Labels = series.labels.clone();
                    labels.insert(names::SERVICE_NAME, format!("svc-{s:03}"));
                    series.labels = labels;
                }
                head.insert(&p).expect("insert");
            }
        }
    }
    head
}

/// The service the one-service queries select.
const ONE: &str = "{service_name=\"svc-042\"}";

fn request(selector: &str) -> q::SelectMergeStacktracesRequest {
    q::SelectMergeStacktracesRequest {
        profile_type_id: "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
        label_selector: selector.into(),
        start: START_MS,
        end: START_MS + 3_600_000,
        ..Default::default()
    }
}

/// The flame graph of `selector` over the hour; its total.
fn flamegraph_of(source: &dyn Source, selector: &str) -> i64 {
    let sources: [&dyn Source; 1] = [source];
    let limits = QueryLimits::default();
    let resp = Engine::new(&sources, &limits)
        .select_merge_stacktraces(&request(selector))
        .expect("query");
    resp.flamegraph.map_or(0, |f| f.total)
}

fn flamegraph(head: &Head) -> i64 {
    flamegraph_of(head, "{}")
}

/// The selections of the one-service flame graph (what the store-gateway
/// records before reading blocks).
fn one_scope() -> Scope {
    Scope::record(&QueryLimits::default(), |e| {
        e.select_merge_stacktraces(&request(ONE))
    })
    .expect("scope")
}

/// A block's symbols and series, fetched and decoded (cached by the
/// store-gateway after the first read).
async fn tables(store: &BlockStore, meta: &BlockMeta) -> BlockTables {
    BlockTables::fetch(store, meta).await.expect("tables")
}

/// A pruned read of the one-service scope with nothing cached: a new
/// footer cache, the block's tables fetched and decoded.
async fn cold_pruned(store: &BlockStore, meta: &BlockMeta, scope: &Scope) -> BlockSlice {
    let reader = BlockReader::new(Arc::new(Bucket::new(store.operator().clone(), 64 << 20)))
        .expect("reader");
    let tables = tables(store, meta).await;
    let refs = tables.wanted(scope);
    reader
        .read_slice(meta, &tables, scope, &refs)
        .await
        .expect("pruned read")
        .0
}

fn blocks(c: &mut Criterion) {
    let head = hour();
    let stats = head.stats();
    let block = encode_block("bench", "01BENCH", &head).expect("encode");
    let bytes: usize = block.files.iter().map(|(_, b)| b.len()).sum();
    println!(
        "hour: {} series, {} profiles, {} samples (stack,value rows); block {} bytes = {:.3} bytes/sample, {:.1} bytes/profile",
        stats.series,
        stats.profiles,
        stats.samples,
        bytes,
        bytes as f64 / stats.samples as f64,
        bytes as f64 / stats.profiles as f64
    );
    for (name, b) in &block.files {
        println!("  {name}: {} bytes", b.len());
    }
    let files: HashMap<String, bytes::Bytes> = block
        .files
        .iter()
        .map(|(n, b)| (n.clone(), bytes::Bytes::from(b.clone())))
        .collect();
    let loaded = decode_block(&block.meta, &files).expect("decode");
    assert_eq!(flamegraph(&head), flamegraph(&loaded));

    // The block in a bucket, for the cold and pruned reads.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = BlockStore::memory().expect("store");
    rt.block_on(store.upload(&block)).expect("upload");
    let scope = one_scope();
    let want = flamegraph_of(&head, ONE);
    assert!(want > 0);
    assert_eq!(flamegraph_of(&loaded, ONE), want);
    let warm_reader = BlockReader::new(Arc::new(Bucket::new(store.operator().clone(), 64 << 20)))
        .expect("reader");
    let warm_tables = rt.block_on(tables(&store, &block.meta));
    let refs = warm_tables.wanted(&scope);
    let (slice, stats) = rt
        .block_on(warm_reader.read_slice(&block.meta, &warm_tables, &scope, &refs))
        .expect("pruned read");
    assert_eq!(flamegraph_of(&slice, ONE), want);
    println!(
        "one service, pruned: {} of {} samples read, {} of {} row groups skipped",
        stats.scan.rows,
        block.meta.stats.samples,
        stats.scan.row_groups_pruned,
        stats.scan.row_groups
    );

    let mut g = c.benchmark_group("realistic_hour");
    g.sample_size(10);
    g.bench_function("encode_block", |b| {
        b.iter(|| encode_block("bench", "01BENCH", &head).expect("encode"))
    });
    g.bench_function("decode_block", |b| {
        b.iter(|| decode_block(&block.meta, &files).expect("decode"))
    });
    g.bench_function("flamegraph_hour_from_head", |b| {
        b.iter(|| flamegraph(&head))
    });
    g.bench_function("flamegraph_hour_from_loaded_block", |b| {
        b.iter(|| flamegraph(&loaded))
    });
    g.bench_function("flamegraph_one_service_from_head", |b| {
        b.iter(|| flamegraph_of(&head, ONE))
    });
    g.bench_function("flamegraph_one_service_cold_block_whole_decode", |b| {
        b.iter(|| {
            let files = rt.block_on(store.fetch(&block.meta)).expect("fetch");
            let head = decode_block(&block.meta, &files).expect("decode");
            flamegraph_of(&head, ONE)
        })
    });
    g.bench_function("flamegraph_one_service_cold_block_pruned", |b| {
        b.iter(|| {
            let slice = rt.block_on(cold_pruned(&store, &block.meta, &scope));
            flamegraph_of(&slice, ONE)
        })
    });
    g.bench_function("flamegraph_one_service_warm_block_pruned", |b| {
        b.iter(|| {
            let refs = warm_tables.wanted(&scope);
            let (slice, _) = rt
                .block_on(warm_reader.read_slice(&block.meta, &warm_tables, &scope, &refs))
                .expect("pruned read");
            flamegraph_of(&slice, ONE)
        })
    });
    g.bench_function("flamegraph_one_service_from_cached_block", |b| {
        b.iter(|| flamegraph_of(&loaded, ONE))
    });
    g.finish();
}

criterion_group!(benches, blocks);
criterion_main!(benches);
