//! A realistic hour at rest and queried: the Go CPU fixture time-shifted into
//! 100 series × 360 profiles (one every 10 s), as a head and as a block.
//!
//! `cargo bench -p ignis-actors --bench blocks`

mod common;

use std::collections::HashMap;

use criterion::{Criterion, criterion_group, criterion_main};
use ignis_query::{Engine, QueryLimits, Source};
use ignis_storage::block::{decode_block, encode_block};
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

fn flamegraph(head: &Head) -> i64 {
    let sources: [&dyn Source; 1] = [head];
    let limits = QueryLimits::default();
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
        label_selector: "{}".into(),
        start: START_MS,
        end: START_MS + 3_600_000,
        ..Default::default()
    };
    let resp = Engine::new(&sources, &limits)
        .select_merge_stacktraces(&req)
        .expect("query");
    resp.flamegraph.map_or(0, |f| f.total)
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
    g.finish();
}

criterion_group!(benches, blocks);
criterion_main!(benches);
