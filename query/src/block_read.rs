//! Reads the [`BlockSlice`] a [`Scope`] needs from a block in the bucket.
//!
//! [`BlockTables`] (the symbol tables and the series' labels) are read
//! whole: they are small next to the samples, and every read needs them,
//! so the store-gateway caches them per block. The rows come from pruned
//! DataFusion scans ([`block_scan`](crate::block_scan)): `samples` when
//! the scope merges stacks, else only `profiles` (series and totals), and
//! `spans` only when a selection has a span selector. Rows are grouped by
//! the same functions a whole decode uses, so the slice answers exactly as
//! the whole block would.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;
use ignis_storage::block::{
    BlockError, BlockMeta, BlockStore, SPANS_FILE, SYMBOL_FILES, TRACE_IDS_SINCE, attach_spans,
    decode_series, decode_symbols, group_profile_rows, group_sample_rows, span_samples,
};
use ignis_storage::{ProfileRow, Series, SymbolTable};

use crate::block_scan::{Exact, RowFilter, ScanStats, candidate_rows, scan};
use crate::block_slice::BlockSlice;
use crate::bucket::Bucket;
use crate::scope::Scope;

/// What every read of a block needs, read whole once: its symbol tables and
/// its series (labels and fingerprints, no rows), in `series_ref` order.
#[derive(Debug)]
pub struct BlockTables {
    /// The block's symbols.
    pub symbols: Arc<SymbolTable>,
    /// The block's series, without profiles.
    pub series: Vec<Series>,
}

impl BlockTables {
    /// Decodes a block's tables from its [`SYMBOL_FILES`] and
    /// `series.parquet` (keyed by file name).
    pub fn decode(files: &HashMap<String, Bytes>) -> Result<Self, BlockError> {
        let series = files
            .get("series.parquet")
            .ok_or_else(|| BlockError::Corrupt("missing series.parquet".into()))?;
        Ok(Self {
            series: decode_series(series)?,
            symbols: Arc::new(decode_symbols(files)?),
        })
    }

    /// The files [`BlockTables::decode`] reads.
    pub fn files() -> impl Iterator<Item = &'static str> {
        SYMBOL_FILES.iter().copied().chain(["series.parquet"])
    }

    /// Fetches and decodes a block's tables from `store`.
    pub async fn fetch(store: &BlockStore, meta: &BlockMeta) -> Result<Self, BlockError> {
        let mut files = HashMap::new();
        for name in Self::files() {
            files.insert(name.to_string(), store.fetch_file(meta, name).await?);
        }
        Self::decode_blocking(files).await
    }

    /// [`BlockTables::decode`] on the blocking pool.
    pub async fn decode_blocking(files: HashMap<String, Bytes>) -> Result<Self, BlockError> {
        tokio::task::spawn_blocking(move || Self::decode(&files))
            .await
            .map_err(|e| BlockError::Corrupt(format!("decoder task failed: {e}")))?
    }

    /// An estimate of the memory held, in bytes (for cache budgets).
    pub fn approx_bytes(&self) -> u64 {
        ignis_storage::head::approx_tables_bytes(&self.symbols, &self.series)
    }

    /// The `series_ref`s of the series some selection of `scope` wants, ascending.
    pub fn wanted(&self, scope: &Scope) -> Vec<u32> {
        self.series
            .iter()
            .enumerate()
            .filter(|(_, s)| scope.wants(&s.labels))
            .map(|(i, _)| i as u32)
            .collect()
    }
}

/// What one slice read did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadStats {
    /// The scans' numbers, summed over the files read.
    pub scan: ScanStats,
    /// Files scanned.
    pub files: u64,
}

/// Reads block slices through DataFusion over one [`Bucket`].
pub struct BlockReader {
    pub(crate) bucket: Arc<Bucket>,
    pub(crate) ctx: SessionContext,
}

impl std::fmt::Debug for BlockReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockReader")
            .field("bucket", &self.bucket)
            .finish()
    }
}

/// The part of a scope's range a block covers, if any.
fn block_range(meta: &BlockMeta, scope: &Scope) -> Option<(i64, i64)> {
    let (start, end) = scope.time_range()?;
    let (start, end) = (start.max(meta.min_time_ns), end.min(meta.max_time_ns));
    (start <= end && meta.stats.profiles > 0).then_some((start, end))
}

/// The id columns of `profiles` or `samples` a row read takes: the key
/// (format 2 on) and, with `whole`, the high half (format 5 on), which
/// answers that show ids (exemplars) and copies of rows need.
pub(crate) fn id_columns(meta: &BlockMeta, whole: bool) -> Vec<&'static str> {
    let mut columns = Vec::with_capacity(2);
    if meta.format_version >= 2 {
        columns.push("profile_id");
    }
    if whole && meta.format_version >= 5 {
        columns.push("profile_id_hi");
    }
    columns
}

/// Empty series for the sorted `refs` of `tables`: which refs are wanted,
/// each ref's position in the returned series, and the series.
#[allow(clippy::type_complexity)]
pub(crate) fn slice_series(
    meta: &BlockMeta,
    tables: &BlockTables,
    refs: &[u32],
) -> Result<(Vec<bool>, Vec<Option<usize>>, Vec<Series>), BlockError> {
    let mut wanted = vec![false; tables.series.len()];
    let mut position = vec![None; tables.series.len()];
    let mut series = Vec::with_capacity(refs.len());
    for &r in refs {
        let Some(s) = tables.series.get(r as usize) else {
            return Err(BlockError::Corrupt(format!(
                "block {}: series {r} out of range",
                meta.ulid
            )));
        };
        wanted[r as usize] = true;
        position[r as usize] = Some(series.len());
        series.push(Series {
            labels: s.labels.clone(),
            fingerprint: s.fingerprint,
            profiles: Vec::new(),
        });
    }
    Ok((wanted, position, series))
}

/// Appends a row to the series at `position[series_ref]`.
pub(crate) fn pusher<'a>(
    position: &'a [Option<usize>],
    series: &'a mut [Series],
) -> impl FnMut(u32, ProfileRow) -> Result<(), BlockError> + 'a {
    move |s: u32, row: ProfileRow| {
        let slot = position
            .get(s as usize)
            .copied()
            .flatten()
            .and_then(|i| series.get_mut(i))
            .ok_or_else(|| BlockError::Corrupt(format!("rows reference unknown series {s}")))?;
        slot.profiles.push(row);
        Ok(())
    }
}

impl BlockReader {
    /// A reader over `bucket` (its runtime shares the bucket's footer cache).
    pub fn new(bucket: Arc<Bucket>) -> Result<Self, BlockError> {
        let runtime = bucket.runtime(None)?;
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        Ok(Self { bucket, ctx })
    }

    /// The bucket read.
    pub fn bucket(&self) -> &Arc<Bucket> {
        &self.bucket
    }

    /// [`scan`]s `columns` of `file` over this reader's runtime, adding
    /// what it read to `stats`.
    pub(crate) async fn scan_counted(
        &self,
        meta: &BlockMeta,
        file: &str,
        columns: &[&str],
        filter: &RowFilter,
        exact: &Exact<'_>,
        stats: &mut ReadStats,
    ) -> Result<Vec<RecordBatch>, BlockError> {
        let (batches, scanned) =
            scan(&self.ctx, &self.bucket, meta, file, columns, filter, exact).await?;
        stats.scan.add(&scanned);
        stats.files += 1;
        Ok(batches)
    }

    /// Rows of `samples` in the row groups a pruned read of `refs` in the
    /// scope's range would scan, and the block's sample rows (from the cached
    /// footer; `(0, n)` when the block has nothing in range).
    pub async fn candidate_samples(
        &self,
        meta: &BlockMeta,
        scope: &Scope,
        refs: &[u32],
    ) -> Result<(u64, u64), BlockError> {
        let total = meta.stats.samples;
        match block_range(meta, scope) {
            Some((start, end)) if !refs.is_empty() => {
                let filter = RowFilter::new(refs, start, end);
                candidate_rows(&self.bucket, meta, "samples.parquet", &filter).await
            }
            _ => Ok((0, total)),
        }
    }

    /// Reads the rows of the series `refs` (sorted `series_ref`s of
    /// `tables`) in the scope's range: a slice that answers `scope`'s
    /// selections exactly as the whole block would.
    pub async fn read_slice(
        &self,
        meta: &BlockMeta,
        tables: &BlockTables,
        scope: &Scope,
        refs: &[u32],
    ) -> Result<(BlockSlice, ReadStats), BlockError> {
        let bounds = (meta.stats.profiles > 0).then_some((meta.min_time_ns, meta.max_time_ns));
        let mut stats = ReadStats::default();
        let Some((start, end)) = block_range(meta, scope).filter(|_| !refs.is_empty()) else {
            return Ok((
                BlockSlice::new(tables.symbols.clone(), Vec::new(), bounds),
                stats,
            ));
        };
        let (wanted, position, mut series) = slice_series(meta, tables, refs)?;
        let filter = RowFilter::new(refs, start, end);
        let with_ids = meta.format_version >= 2;
        // Whole ids where an answer shows them (time series' exemplars,
        // from `profiles`) or a copy keeps them (a compaction's read of
        // `samples`).
        let ids = id_columns(meta, !scope.stacks || scope.all_spans);
        let (file, columns): (&str, Vec<&str>) = if scope.stacks {
            (
                "samples.parquet",
                [
                    &["series_ref", "timestamp_ns", "stack_id", "value"],
                    &ids[..],
                ]
                .concat(),
            )
        } else {
            (
                "profiles.parquet",
                [&["series_ref", "timestamp_ns", "total"], &ids[..]].concat(),
            )
        };
        let exact = Exact::new(&wanted, start, end);
        let batches = self
            .scan_counted(meta, file, &columns, &filter, &exact, &mut stats)
            .await?;
        {
            let mut push = pusher(&position, &mut series);
            if scope.stacks {
                group_sample_rows(&batches, with_ids, &mut push)?;
            } else {
                group_profile_rows(&batches, with_ids, &mut push)?;
            }
        }
        // `Some(None)`: every span sample; `Some(Some(sel))`: those of its
        // spans and traces.
        let wanted_spans = if scope.all_spans {
            Some(None)
        } else {
            scope.span_selector().filter(|s| !s.is_empty()).map(Some)
        };
        if let Some(sel) = wanted_spans
            && meta.format_version >= 3
        {
            // Pruned by span id when only span ids are selected (the table
            // is sorted by span); a trace's samples may be of any span.
            let filter = RowFilter {
                spans: sel
                    .as_ref()
                    .filter(|s| s.by_span_ids_only())
                    .map(|s| s.ids().collect()),
                ..filter
            };
            let mut columns = vec![
                "series_ref",
                "timestamp_ns",
                "profile_id",
                "span_id",
                "stack_id",
                "value",
            ];
            if meta.format_version >= TRACE_IDS_SINCE {
                columns.push("trace_id");
            }
            let exact = Exact {
                spans: sel.as_ref(),
                ..Exact::new(&wanted, start, end)
            };
            let batches = self
                .scan_counted(meta, SPANS_FILE, &columns, &filter, &exact, &mut stats)
                .await?;
            let by_row = span_samples(&batches, tables.symbols.stacks.len())?;
            attach_spans(by_row, &mut series, &|s| {
                position.get(s as usize).copied().flatten()
            })?;
        }
        Ok((
            BlockSlice::new(tables.symbols.clone(), series, bounds),
            stats,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ignis_storage::block::{
        BlockStore, decode_block, decode_series, decode_symbols, encode_block, new_ulid,
    };
    use ignis_storage::proto::google::v1 as pprof;
    use ignis_storage::proto::querier::v1 as q;
    use ignis_storage::{Head, Labels, SeriesSplit, SplitProfile, names};
    use prost::Message;

    use super::*;
    use crate::engine::{Engine, QueryLimits};
    use crate::source::Source;

    const PT: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    const START_MS: i64 = 1_700_000_000_000;
    const SERVICES: usize = 16;
    const PROFILES: i64 = 50;
    const STACKS: u64 = 200;

    /// Trace ids of the fixture's samples.
    const TRACES: [&str; 2] = [
        "0af7651916cd43dd8448eb211c80319c",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    ];

    /// A profile of `STACKS` distinct three-frame stacks, with span ids on
    /// every tenth sample and one of two trace ids on every seventh.
    fn profile(seed: u64) -> pprof::Profile {
        let mut p = pprof::Profile {
            string_table: [
                "",
                "span_id",
                "0100000000000000",
                "trace_id",
                TRACES[0],
                TRACES[1],
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        };
        for f in 1..=40u64 {
            p.string_table.push(format!("fn{f}"));
            p.function.push(pprof::Function {
                id: f,
                name: p.string_table.len() as i64 - 1,
                ..Default::default()
            });
            p.location.push(pprof::Location {
                id: f,
                line: vec![pprof::Line {
                    function_id: f,
                    line: f as i64,
                }],
                ..Default::default()
            });
        }
        let label = |key, str| pprof::Label {
            key,
            str,
            ..Default::default()
        };
        for i in 0..STACKS {
            let mut span = Vec::new();
            if i % 10 == 0 {
                span.push(label(1, 2));
            }
            if i % 7 == 0 {
                span.push(label(3, 4 + (i / 7 % 2) as i64));
            }
            p.sample.push(pprof::Sample {
                location_id: vec![1 + i % 40, 1 + (i / 40) % 40, 1 + (i + seed) % 40],
                value: vec![(i + seed) as i64 % 97 + 1],
                label: span,
            });
        }
        p
    }

    /// `SERVICES` services × `PROFILES` profiles, 10 s apart.
    fn head() -> Head {
        let mut head = Head::new();
        for i in 0..PROFILES {
            for s in 0..SERVICES {
                let service = format!("svc-{s:02}");
                let labels = Labels::from_pairs([
                    (names::SERVICE_NAME, service.as_str()),
                    (names::PROFILE_TYPE, PT),
                ]);
                head.insert(&SplitProfile {
                    profile_id: ignis_storage::ProfileId::from_key(
                        1 + (i as u64) * 1000 + s as u64,
                    ),
                    profile: ignis_storage::FlatProfile::from_proto(&profile(i as u64 + s as u64))
                        .unwrap(),
                    timestamp_ns: (START_MS + i * 10_000) * 1_000_000,
                    series: vec![SeriesSplit {
                        labels,
                        value_index: 0,
                        samples: (0..STACKS as u32).collect(),
                    }],
                })
                .unwrap();
            }
        }
        head
    }

    struct Fixture {
        head: Head,
        whole: Head,
        meta: BlockMeta,
        tables: BlockTables,
        reader: BlockReader,
    }

    async fn fixture() -> Fixture {
        let head = head();
        let block = encode_block("t1", &new_ulid(), &head).unwrap();
        let store = BlockStore::memory().unwrap();
        store.upload(&block).await.unwrap();
        let files = store.fetch(&block.meta).await.unwrap();
        let whole = decode_block(&block.meta, &files).unwrap();
        let tables = BlockTables {
            symbols: Arc::new(decode_symbols(&files).unwrap()),
            series: decode_series(&files["series.parquet"]).unwrap(),
        };
        let bucket = Arc::new(Bucket::new(store.operator().clone(), 1 << 20));
        Fixture {
            head,
            whole,
            meta: block.meta,
            tables,
            reader: BlockReader::new(bucket).unwrap(),
        }
    }

    fn stacktraces(
        selector: &str,
        from: i64,
        to: i64,
        spans: &[&str],
    ) -> q::SelectMergeStacktracesRequest {
        q::SelectMergeStacktracesRequest {
            profile_type_id: PT.into(),
            label_selector: selector.into(),
            start: START_MS + from * 10_000,
            end: START_MS + to * 10_000,
            span_selector: spans.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// The encoded answer of `query` over `source`.
    type Query = Box<dyn Fn(&Engine<'_>) -> Vec<u8>>;

    fn answer(source: &dyn Source, query: &Query) -> Vec<u8> {
        let limits = QueryLimits::default();
        let sources = [source];
        query(&Engine::new(&sources, &limits))
    }

    #[tokio::test]
    async fn slices_answer_byte_identically_and_read_less() {
        let f = fixture().await;
        let limits = QueryLimits::default();
        let queries: Vec<(&str, Query)> = vec![
            (
                "flame graph of one service over a sub-range",
                Box::new(|e| {
                    e.select_merge_stacktraces(&stacktraces(
                        "{service_name=\"svc-03\"}",
                        10,
                        20,
                        &[],
                    ))
                    .unwrap()
                    .encode_to_vec()
                }),
            ),
            (
                "pprof of one service",
                Box::new(|e| {
                    e.select_merge_profile(&q::SelectMergeProfileRequest {
                        profile_type_id: PT.into(),
                        label_selector: "{service_name=\"svc-07\"}".into(),
                        start: START_MS,
                        end: START_MS + 3_600_000,
                        ..Default::default()
                    })
                    .unwrap()
                    .encode_to_vec()
                }),
            ),
            (
                "series of two services",
                Box::new(|e| {
                    e.select_series(&q::SelectSeriesRequest {
                        profile_type_id: PT.into(),
                        label_selector: "{service_name=~\"svc-0[12]\"}".into(),
                        start: START_MS,
                        end: START_MS + 200_000,
                        step: 30.0,
                        group_by: vec!["service_name".into()],
                        ..Default::default()
                    })
                    .unwrap()
                    .encode_to_vec()
                }),
            ),
            (
                "span flame graph",
                Box::new(|e| {
                    e.select_merge_stacktraces(&stacktraces(
                        "{service_name=\"svc-05\"}",
                        0,
                        49,
                        &["0100000000000000"],
                    ))
                    .unwrap()
                    .encode_to_vec()
                }),
            ),
            (
                "trace flame graph",
                Box::new(|e| {
                    e.select_merge_stacktraces(&q::SelectMergeStacktracesRequest {
                        trace_id_selector: vec![TRACES[1].into()],
                        ..stacktraces("{service_name=\"svc-05\"}", 0, 49, &[])
                    })
                    .unwrap()
                    .encode_to_vec()
                }),
            ),
            (
                "pprof of a trace",
                Box::new(|e| {
                    e.select_merge_profile(&q::SelectMergeProfileRequest {
                        profile_type_id: PT.into(),
                        label_selector: "{service_name=\"svc-09\"}".into(),
                        start: START_MS,
                        end: START_MS + 3_600_000,
                        trace_id_selector: vec![TRACES[0].into()],
                        ..Default::default()
                    })
                    .unwrap()
                    .encode_to_vec()
                }),
            ),
        ];
        for (name, query) in &queries {
            let scope = Scope::record(&limits, |e| {
                query(e);
                Ok(())
            })
            .unwrap();
            let refs = f.tables.wanted(&scope);
            let (slice, stats) = f
                .reader
                .read_slice(&f.meta, &f.tables, &scope, &refs)
                .await
                .unwrap();
            let want = answer(&f.whole, query);
            assert_eq!(answer(&slice, query), want, "{name}: slice vs whole block");
            assert_eq!(answer(&f.head, query), want, "{name}: head vs whole block");
            assert!(stats.scan.rows > 0, "{name}: {stats:?}");
            assert!(
                (slice.samples() as u64) < f.meta.stats.samples / 8,
                "{name}: {} of {} samples",
                slice.samples(),
                f.meta.stats.samples
            );
        }
    }

    #[tokio::test]
    async fn a_trace_selects_exactly_its_samples_from_a_block() {
        let f = fixture().await;
        let limits = QueryLimits::default();
        // svc-05's profile i has seed i + 5; trace 1 is on samples 7, 21, 35, ...
        let want: i64 = (0..PROFILES as u64)
            .flat_map(|i| {
                (0..STACKS)
                    .filter(|n| n % 7 == 0 && n / 7 % 2 == 1)
                    .map(move |n| (n + i + 5) as i64 % 97 + 1)
            })
            .sum();
        let req = q::SelectMergeStacktracesRequest {
            trace_id_selector: vec![TRACES[1].to_uppercase(), "f".repeat(32)],
            ..stacktraces("{service_name=\"svc-05\"}", 0, 49, &[])
        };
        let scope =
            Scope::record(&limits, |e| e.select_merge_stacktraces(&req).map(|_| ())).unwrap();
        let (slice, _) = f
            .reader
            .read_slice(&f.meta, &f.tables, &scope, &f.tables.wanted(&scope))
            .await
            .unwrap();
        let sources: [&dyn Source; 1] = [&slice];
        let got = Engine::new(&sources, &limits)
            .select_merge_stacktraces(&req)
            .unwrap()
            .flamegraph
            .unwrap()
            .total;
        assert_eq!(got, want);
        assert!(want > 0);
    }

    #[tokio::test]
    async fn statistics_skip_row_groups_and_pages() {
        let f = fixture().await;
        assert!(f.meta.stats.samples > 2 * 65_536, "{:?}", f.meta.stats);
        let limits = QueryLimits::default();
        let req = stacktraces("{service_name=\"svc-03\"}", 10, 20, &[]);
        let scope = Scope::record(&limits, |e| e.select_merge_stacktraces(&req)).unwrap();
        let refs = f.tables.wanted(&scope);
        assert_eq!(refs.len(), 1);
        let (candidates, total) = f
            .reader
            .candidate_samples(&f.meta, &scope, &refs)
            .await
            .unwrap();
        assert_eq!(total, f.meta.stats.samples);
        assert!(candidates < total / 2, "{candidates} of {total}");
        let (slice, stats) = f
            .reader
            .read_slice(&f.meta, &f.tables, &scope, &refs)
            .await
            .unwrap();
        let s = stats.scan;
        assert!(s.row_groups >= 3, "{s:?}");
        assert!(s.row_groups_pruned >= s.row_groups - 1, "{s:?}");
        // Within the row group left, pages outside the series and range are
        // skipped too (the rows of the pages decoded are then cut exactly):
        // 11 profiles of 200 stacks are kept.
        assert!(s.page_rows_pruned > 0, "{s:?}");
        assert!(s.rows >= 11 * STACKS && s.rows < 65_536, "{s:?}");
        assert_eq!(slice.profiles(), 11);
        assert_eq!(slice.samples() as u64, 11 * STACKS);
        // Nothing selected: nothing read.
        let none = Scope::record(&limits, |e| {
            e.select_merge_stacktraces(&stacktraces("{service_name=\"nope\"}", 0, 49, &[]))
        })
        .unwrap();
        let (slice, stats) = f
            .reader
            .read_slice(&f.meta, &f.tables, &none, &f.tables.wanted(&none))
            .await
            .unwrap();
        assert_eq!((slice.profiles(), stats.files), (0, 0));
    }

    #[tokio::test]
    async fn footers_are_read_once_across_queries() {
        let f = fixture().await;
        let limits = QueryLimits::default();
        let req = stacktraces("{service_name=\"svc-09\"}", 0, 49, &[]);
        let scope = Scope::record(&limits, |e| e.select_merge_stacktraces(&req)).unwrap();
        let refs = f.tables.wanted(&scope);
        let bucket = f.reader.bucket().clone();
        let reads = || {
            bucket
                .counters()
                .reads
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(bucket.cached_footers(), 0);
        let before = reads();
        f.reader
            .read_slice(&f.meta, &f.tables, &scope, &refs)
            .await
            .unwrap();
        let first = reads() - before;
        assert_eq!(bucket.cached_footers(), 1);
        let before = reads();
        f.reader
            .read_slice(&f.meta, &f.tables, &scope, &refs)
            .await
            .unwrap();
        let second = reads() - before;
        // The second query reads the same data pages and no footer.
        assert!(
            second > 0 && second < first,
            "first {first}, second {second}"
        );
        assert_eq!(bucket.cached_footers(), 1);
        bucket.forget_block(&f.meta);
        assert_eq!(bucket.cached_footers(), 0);
    }

    #[tokio::test]
    async fn sql_and_pruned_reads_share_one_footer_cache() {
        use crate::sql::{SqlInput, SqlLimits, run_sql};
        let f = fixture().await;
        let bucket = f.reader.bucket().clone();
        let reads = || {
            bucket
                .counters()
                .reads
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let sql = || {
            run_sql(
                SqlInput {
                    bucket: Some(bucket.clone()),
                    blocks: vec![f.meta.clone()],
                    heads: Vec::new(),
                },
                "SELECT count(*) AS n, sum(value) AS v FROM samples WHERE service_name = 'svc-02'",
                SqlLimits {
                    max_rows: 10,
                    max_memory: 256 << 20,
                },
            )
        };
        let before = reads();
        let first = sql().await.unwrap();
        let first_reads = reads() - before;
        let want = f.whole.series()[2]
            .profiles
            .iter()
            .map(|r| r.values.iter().sum::<i64>())
            .sum::<i64>();
        assert_eq!(first.rows[0]["v"], want);
        assert_eq!(
            first.rows[0]["n"],
            (PROFILES as u64 * STACKS) as i64,
            "{:?}",
            first.rows
        );
        // Every table of the block has its footer cached.
        let cached = bucket.cached_footers();
        assert!(cached >= 7, "{cached}");
        // The same query again reads only data, no footer.
        let before = reads();
        let second = sql().await.unwrap();
        assert_eq!(second.rows, first.rows);
        let second_reads = reads() - before;
        assert!(
            second_reads < first_reads,
            "{first_reads} then {second_reads}"
        );
        assert_eq!(bucket.cached_footers(), cached);
        // A pruned read finds the samples footer SQL cached.
        let scope = Scope::record(&QueryLimits::default(), |e| {
            e.select_merge_stacktraces(&stacktraces("{service_name=\"svc-02\"}", 0, 49, &[]))
        })
        .unwrap();
        f.reader
            .read_slice(&f.meta, &f.tables, &scope, &f.tables.wanted(&scope))
            .await
            .unwrap();
        assert_eq!(bucket.cached_footers(), cached);
    }

    #[tokio::test]
    async fn a_corrupt_block_file_is_an_error() {
        let head = head();
        let block = encode_block("t1", &new_ulid(), &head).unwrap();
        let store = BlockStore::memory().unwrap();
        store.upload(&block).await.unwrap();
        let files: HashMap<String, bytes::Bytes> = store.fetch(&block.meta).await.unwrap();
        let tables = BlockTables {
            symbols: Arc::new(decode_symbols(&files).unwrap()),
            series: decode_series(&files["series.parquet"]).unwrap(),
        };
        // The samples file replaced by garbage of the same size.
        let size = files["samples.parquet"].len();
        store
            .operator()
            .write(
                &format!("t1/blocks/{}/samples.parquet", block.meta.ulid),
                vec![7u8; size],
            )
            .await
            .unwrap();
        let reader =
            BlockReader::new(Arc::new(Bucket::new(store.operator().clone(), 1 << 20))).unwrap();
        let scope = Scope::record(&QueryLimits::default(), |e| {
            e.select_merge_stacktraces(&stacktraces("{}", 0, 49, &[]))
        })
        .unwrap();
        let err = reader
            .read_slice(&block.meta, &tables, &scope, &tables.wanted(&scope))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("samples.parquet"), "{err}");
    }
}
