//! Query path cost over 1 000 stored CPU profiles: the Go CPU fixture
//! time-shifted 1 000 times (one every 10 s) into one head, then merged into
//! a flame graph (`SelectMergeStacktraces`) and into one pprof
//! (`SelectMergeProfile`), the two answers `bench/compare.sh` holds against
//! `go tool pprof -proto` merging the same 1 000 files.
//!
//! `cargo bench -p ignis-actors --bench query`

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ignis_query::flamegraph::FlameTree;
use ignis_query::render::{RenderRequest, render};
use ignis_query::{Engine, QueryLimits, Source};
use ignis_storage::Head;
use ignis_storage::proto::querier::v1 as q;
use prost::Message;

const PROFILES: i64 = 1_000;
const START_MS: i64 = 1_795_000_000_000;
const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
/// `value_sums["cpu/nanoseconds"]` of `go/cpu.expected.json`.
const FIXTURE_CPU_NS: i64 = 8_710_000_000;

fn thousand() -> Head {
    let split = common::go_cpu_split();
    let mut head = Head::new();
    for i in 0..PROFILES {
        for p in &split {
            let mut p = p.clone();
            p.timestamp_ns = (START_MS + i * 10_000) * 1_000_000;
            head.insert(&p).expect("insert");
        }
    }
    head
}

fn range() -> (i64, i64) {
    (START_MS, START_MS + PROFILES * 10_000)
}

fn flamegraph(engine: &Engine<'_>) -> q::FlameGraph {
    let (start, end) = range();
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{}".into(),
        start,
        end,
        ..Default::default()
    };
    engine
        .select_merge_stacktraces(&req)
        .expect("query")
        .flamegraph
        .expect("a flame graph")
}

/// The merged pprof as the HTTP handler answers it: protobuf bytes.
fn merged_pprof(engine: &Engine<'_>) -> Vec<u8> {
    let (start, end) = range();
    let req = q::SelectMergeProfileRequest {
        profile_type_id: CPU.into(),
        label_selector: "{}".into(),
        start,
        end,
        ..Default::default()
    };
    engine
        .select_merge_profile(&req)
        .expect("query")
        .encode_to_vec()
}

fn query(c: &mut Criterion) {
    let head = thousand();
    let sources: [&dyn Source; 1] = [&head];
    let limits = QueryLimits::default();
    let engine = Engine::new(&sources, &limits);

    // The answers must be the 1 000 profiles' totals, or the timings mean nothing.
    let fg = flamegraph(&engine);
    assert_eq!(fg.total, PROFILES * FIXTURE_CPU_NS, "flame graph total");
    let pprof = ignis_storage::proto::google::v1::Profile::decode(merged_pprof(&engine).as_slice())
        .expect("merged pprof decodes");
    let cpu: i64 = pprof.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(cpu, PROFILES * FIXTURE_CPU_NS, "merged pprof total");
    println!(
        "1 000 Go CPU profiles: {} flame graph names, merged pprof {} samples, {} locations, {} bytes",
        fg.names.len(),
        pprof.sample.len(),
        pprof.location.len(),
        merged_pprof(&engine).len()
    );

    let mut g = c.benchmark_group("go_cpu_x1000");
    g.throughput(Throughput::Elements(PROFILES as u64));
    g.sample_size(20);
    g.bench_function("merge_stacks", |b| {
        let (start, end) = range();
        b.iter(|| {
            let (_, sel) = engine
                .typed_selection(CPU, "{}", start, end)
                .expect("selection");
            engine.merge(&sel)
        })
    });
    g.bench_function("select_merge_stacktraces", |b| {
        b.iter(|| flamegraph(&engine))
    });
    g.bench_function("select_merge_profile_encoded", |b| {
        b.iter(|| merged_pprof(&engine))
    });
    g.finish();

    // The tree step alone, on stacks merged once: tree → FlameGraph (the
    // querier API's shape) and tree → flamebearer levels (the legacy /render).
    let (start, end) = range();
    let (_, sel) = engine
        .typed_selection(CPU, "{}", start, end)
        .expect("selection");
    let merged = engine.merge(&sel);
    let mut g = c.benchmark_group("go_cpu_x1000_tree");
    g.bench_function("tree_to_flamegraph", |b| {
        b.iter(|| FlameTree::build(&merged).flamegraph(8192))
    });
    g.bench_function("tree_to_flamebearer_levels", |b| {
        b.iter(|| FlameTree::build(&merged).levels(8192))
    });
    // The whole legacy /render answer (flame graph + timeline) as JSON text.
    let req = RenderRequest {
        query: format!("{CPU}{{}}"),
        from_ms: start,
        until_ms: end,
        max_nodes: None,
        group_by: vec![],
    };
    g.bench_function("render_flamebearer_json", |b| {
        b.iter(|| render(&engine, &req).expect("render").to_string().len())
    });
    g.finish();
}

criterion_group!(benches, query);
criterion_main!(benches);
