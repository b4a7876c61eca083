//! Pruned block reads against the real fixtures: answers byte-identical to
//! the whole decoded block and to the head, with less read.

use std::collections::HashMap;
use std::sync::Arc;

use ignis_query::{Engine, QueryLimits, Scope, Source};
use ignis_storage::block::{BlockStore, ObjectStoreConfig, decode_block, encode_block, new_ulid};
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::proto::types::v1 as types;
use ignis_storage::{Head, SplitProfile};
use prost::Message;

use super::StoreGateway;
use super::reads::BlockRead;
use crate::metrics::Metrics;
use crate::testing::fixtures::{split, truth};
use crate::testing::metric;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const SERVICES: usize = 12;
const PROFILES: i64 = 60;
/// Profiles are 10 s apart from here (ms).
const START_MS: i64 = 1_795_000_000_000;
const FIXTURES: [&str; 4] = ["go/cpu", "go/allocs", "go/mutex", "go/goroutine"];

/// Every fixture under `SERVICES` services, `PROFILES` times 10 s apart.
fn head() -> Head {
    let mut splits: HashMap<&str, Vec<SplitProfile>> = HashMap::new();
    for f in FIXTURES {
        splits.insert(f, split(f, "svc", START_MS));
    }
    let mut head = Head::new();
    for i in 0..PROFILES {
        for s in 0..SERVICES {
            for f in FIXTURES {
                for p in &splits[f] {
                    let mut p = p.clone();
                    p.profile_id = ignis_storage::ProfileId::generate();
                    p.timestamp_ns = (START_MS + i * 10_000) * 1_000_000;
                    for series in &mut p.series {
                        series
                            .labels
                            .insert(ignis_storage::names::SERVICE_NAME, format!("svc-{s:02}"));
                    }
                    head.insert(&p).expect("insert");
                }
            }
        }
    }
    head
}

struct Fixture {
    head: Head,
    whole: Head,
    sg: StoreGateway,
    meta: ignis_storage::block::BlockMeta,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

/// The head as a block on a filesystem bucket, served by a store-gateway.
async fn fixture() -> Fixture {
    let head = head();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlockStore::open(&ObjectStoreConfig::default(), dir.path()).expect("store");
    let block = encode_block("t1", &new_ulid(), &head).expect("encode");
    store.upload(&block).await.expect("upload");
    let files = store.fetch(&block.meta).await.expect("fetch");
    let whole = decode_block(&block.meta, &files).expect("decode");
    let metrics = Metrics::new();
    let sg = crate::testing::store_gateway(store, dir.path(), &metrics);
    sg.add_uploaded(&block.meta).expect("index");
    Fixture {
        head,
        whole,
        sg,
        meta: block.meta,
        metrics,
        _dir: dir,
    }
}

type Query = Arc<dyn Fn(&Engine<'_>) -> Vec<u8> + Send + Sync>;

fn answer(sources: &[&dyn Source], query: &Query) -> Vec<u8> {
    let limits = QueryLimits::default();
    query(&Engine::new(sources, &limits))
}

fn ms(profile: i64) -> i64 {
    START_MS + profile * 10_000
}

fn flamegraph(selector: &'static str, from: i64, to: i64) -> Query {
    Arc::new(move |e| {
        e.select_merge_stacktraces(&q::SelectMergeStacktracesRequest {
            profile_type_id: CPU.into(),
            label_selector: selector.into(),
            start: ms(from),
            end: ms(to),
            ..Default::default()
        })
        .expect("query")
        .encode_to_vec()
    })
}

#[tokio::test]
async fn one_service_over_a_sub_range_reads_only_its_rows_and_answers_identically() {
    let f = fixture().await;
    assert!(f.meta.stats.samples > 3 * 65_536, "{:?}", f.meta.stats);
    let queries: Vec<(&str, Query)> = vec![
        (
            "flame graph",
            flamegraph("{service_name=\"svc-03\"}", 10, 20),
        ),
        (
            "merged pprof",
            Arc::new(|e| {
                e.select_merge_profile(&q::SelectMergeProfileRequest {
                    profile_type_id: "memory:alloc_space:bytes:space:bytes".into(),
                    label_selector: "{service_name=\"svc-07\"}".into(),
                    start: ms(5),
                    end: ms(30),
                    ..Default::default()
                })
                .expect("query")
                .encode_to_vec()
            }),
        ),
        (
            "time series",
            Arc::new(|e| {
                e.select_series(&q::SelectSeriesRequest {
                    profile_type_id: CPU.into(),
                    label_selector: "{service_name=~\"svc-0[12]\"}".into(),
                    start: ms(0),
                    end: ms(25),
                    step: 60.0,
                    group_by: vec!["service_name".into()],
                    ..Default::default()
                })
                .expect("query")
                .encode_to_vec()
            }),
        ),
        (
            "series",
            Arc::new(|e| {
                e.series(&q::SeriesRequest {
                    matchers: vec!["{service_name=\"svc-11\"}".into()],
                    start: ms(3),
                    end: ms(4),
                    ..Default::default()
                })
                .expect("query")
                .encode_to_vec()
            }),
        ),
        (
            "label values",
            Arc::new(|e| {
                e.label_values(&types::LabelValuesRequest {
                    name: "__profile_type__".into(),
                    matchers: vec!["{service_name=\"svc-05\"}".into()],
                    start: ms(0),
                    end: ms(39),
                })
                .expect("query")
                .encode_to_vec()
            }),
        ),
        (
            "diff of two services",
            Arc::new(|e| {
                let side = |svc: &str, from, to| q::SelectMergeStacktracesRequest {
                    profile_type_id: CPU.into(),
                    label_selector: format!("{{service_name=\"{svc}\"}}"),
                    start: ms(from),
                    end: ms(to),
                    ..Default::default()
                };
                e.diff(&q::DiffRequest {
                    left: Some(side("svc-01", 0, 9)),
                    right: Some(side("svc-02", 30, 39)),
                })
                .expect("query")
                .encode_to_vec()
            }),
        ),
    ];
    let limits = QueryLimits::default();
    let row_groups = |m: &Metrics| {
        (
            metric(m, "ignis_store_gateway_row_groups_skipped_total"),
            metric(m, "ignis_store_gateway_row_groups_read_total"),
        )
    };
    for (name, query) in &queries {
        let scope = Scope::record(&limits, |e| {
            query(e);
            Ok(())
        })
        .expect("scope");
        let before = row_groups(&f.metrics);
        let (slice, how) = f.sg.source(f.meta.clone(), &scope).await.expect("read");
        assert_eq!(how, BlockRead::Pruned, "{name}");
        let after = row_groups(&f.metrics);
        let (skipped, read) = (after.0 - before.0, after.1 - before.1);
        if scope.stacks {
            // The samples of one or two services lie in one or two row
            // groups each: statistics skip the others.
            assert!(
                skipped > read,
                "{name}: row groups skipped {skipped}, read {read}"
            );
        } else {
            // Series and totals come from the small profiles table alone.
            assert_eq!(skipped + read, 1.0, "{name}");
        }
        let want = answer(&[&f.whole], query);
        assert_ne!(
            answer(&[], query),
            want,
            "{name}: the block holds data for it"
        );
        assert_eq!(
            answer(&[slice.as_ref()], query),
            want,
            "{name}: pruned vs whole"
        );
        assert_eq!(answer(&[&f.head], query), want, "{name}: head vs whole");
        // The same profiles in the head and in the block count once.
        assert_eq!(
            answer(&[&f.head, slice.as_ref()], query),
            want,
            "{name}: replicas"
        );
    }
    // Nothing was decoded whole.
    assert_eq!(metric(&f.metrics, "ignis_block_cache_misses_total"), 0.0);
    assert_eq!(
        metric(&f.metrics, "ignis_store_gateway_pruned_reads_total"),
        queries.len() as f64
    );
    // Symbols and series are read once and cached; footers too.
    assert!(f.sg.cached_bytes() > 0);
    assert!(metric(&f.metrics, "ignis_parquet_footers_cached") >= 2.0);
}

#[tokio::test]
async fn pruned_totals_match_the_ground_truth() {
    let f = fixture().await;
    let per = truth("go/cpu")["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .expect("truth");
    let limits = QueryLimits::default();
    let query = flamegraph("{service_name=\"svc-09\"}", 10, 20);
    let scope = Scope::record(&limits, |e| {
        query(e);
        Ok(())
    })
    .expect("scope");
    let (slice, how) = f.sg.source(f.meta.clone(), &scope).await.expect("read");
    assert_eq!(how, BlockRead::Pruned);
    let fg =
        q::SelectMergeStacktracesResponse::decode(answer(&[slice.as_ref()], &query).as_slice())
            .expect("response")
            .flamegraph
            .expect("flame graph");
    // Profiles 10 to 20 inclusive.
    assert_eq!(fg.total, 11 * per);
    let top = &truth("go/cpu")["top_self"]["cpu/nanoseconds"][0];
    assert!(fg.names.iter().any(|n| Some(n.as_str()) == top[0].as_str()));
}

#[tokio::test]
async fn a_selection_of_most_of_a_block_decodes_it_whole_once() {
    let f = fixture().await;
    let limits = QueryLimits::default();
    let all = flamegraph("{}", 0, 39);
    let scope = Scope::record(&limits, |e| {
        all(e);
        Ok(())
    })
    .expect("scope");
    let (source, how) = f.sg.source(f.meta.clone(), &scope).await.expect("read");
    assert_eq!(how, BlockRead::Whole);
    assert_eq!(answer(&[source.as_ref()], &all), answer(&[&f.whole], &all));
    assert_eq!(metric(&f.metrics, "ignis_block_cache_misses_total"), 1.0);
    // Cached: later queries, even narrow ones, answer from memory.
    let one = flamegraph("{service_name=\"svc-00\"}", 0, 1);
    let scope = Scope::record(&limits, |e| {
        one(e);
        Ok(())
    })
    .expect("scope");
    let (_, how) = f.sg.source(f.meta.clone(), &scope).await.expect("read");
    assert_eq!(how, BlockRead::Whole);
    assert_eq!(metric(&f.metrics, "ignis_block_cache_hits_total"), 1.0);
    assert_eq!(metric(&f.metrics, "ignis_block_cache_misses_total"), 1.0);
    // Profile stats need no data at all.
    let stats = Scope::record(&limits, |e| Ok(e.profile_stats())).expect("scope");
    assert!(stats.is_empty());
}

#[tokio::test]
async fn a_block_deleted_from_the_bucket_leaves_no_footers_behind() {
    let f = fixture().await;
    let limits = QueryLimits::default();
    let query = flamegraph("{service_name=\"svc-04\"}", 0, 39);
    let scope = Scope::record(&limits, |e| {
        query(e);
        Ok(())
    })
    .expect("scope");
    f.sg.source(f.meta.clone(), &scope).await.expect("read");
    assert!(f.sg.bucket().cached_footers() > 0);
    f.sg.delete_block("t1", &f.meta.ulid).await.expect("delete");
    assert_eq!(f.sg.bucket().cached_footers(), 0);
    assert_eq!(f.sg.cached_bytes(), 0);
}

/// Label names and values, series lists and profile types over a range
/// that holds the whole block come from its series table alone (no
/// profile read), answering exactly as the whole block; a range cutting
/// the block still reads its profiles.
#[tokio::test]
async fn series_listings_over_the_whole_block_read_only_its_series_table() {
    let f = fixture().await;
    let listings = |from: i64, to: i64| -> Vec<(&'static str, Query)> {
        let (start, end) = (ms(from), ms(to));
        vec![
            (
                "label names",
                Arc::new(move |e| {
                    e.label_names(&types::LabelNamesRequest {
                        matchers: vec!["{service_name=~\"svc-0[3-5]\"}".into()],
                        start,
                        end,
                    })
                    .expect("query")
                    .encode_to_vec()
                }),
            ),
            (
                "label values",
                Arc::new(move |e| {
                    e.label_values(&types::LabelValuesRequest {
                        name: "service_name".into(),
                        matchers: vec![format!("{{__profile_type__=\"{CPU}\"}}")],
                        start,
                        end,
                    })
                    .expect("query")
                    .encode_to_vec()
                }),
            ),
            (
                "series",
                Arc::new(move |e| {
                    e.series(&q::SeriesRequest {
                        matchers: vec!["{service_name=\"svc-11\"}".into()],
                        label_names: vec!["__profile_type__".into()],
                        start,
                        end,
                    })
                    .expect("query")
                    .encode_to_vec()
                }),
            ),
            (
                "profile types",
                Arc::new(move |e| {
                    e.profile_types(&q::ProfileTypesRequest { start, end }, end)
                        .expect("query")
                        .encode_to_vec()
                }),
            ),
        ]
    };
    let limits = QueryLimits::default();
    let rows_read = |m: &Metrics| metric(m, "ignis_store_gateway_rows_read_total");
    // The whole block and more, exactly its bounds, and a range cutting it.
    for (from, to, whole) in [
        (-100, 200, true),
        (0, 59, true),
        (0, 58, false),
        (1, 59, false),
    ] {
        for (name, query) in listings(from, to) {
            let scope = Scope::record(&limits, |e| {
                query(e);
                Ok(())
            })
            .expect("scope");
            assert!(scope.labels_only(), "{name}");
            let before = rows_read(&f.metrics);
            let (source, how) = f.sg.source(f.meta.clone(), &scope).await.expect("read");
            let want = answer(&[&f.whole], &query);
            assert_ne!(
                answer(&[], &query),
                want,
                "{name}: the block holds data for it"
            );
            assert_eq!(
                answer(&[source.as_ref()], &query),
                want,
                "{name} {from}..{to}"
            );
            assert_eq!(
                answer(&[&f.head, source.as_ref()], &query),
                want,
                "{name}: replicas"
            );
            if whole {
                assert_eq!(how, BlockRead::SeriesTable, "{name} {from}..{to}");
                assert_eq!(rows_read(&f.metrics), before, "{name}: no profile read");
            } else {
                assert_eq!(how, BlockRead::Pruned, "{name} {from}..{to}");
                assert!(rows_read(&f.metrics) > before, "{name}: profiles read");
            }
        }
    }
    assert_eq!(
        metric(&f.metrics, "ignis_store_gateway_series_table_reads_total"),
        8.0
    );
    // A query that reads profile totals is not answered from the table.
    let scope = Scope::record(&limits, |e| {
        flamegraph("{}", -100, 200)(e);
        Ok(())
    })
    .expect("scope");
    assert!(!scope.labels_only());
}
