//! Pruned scans of one block file through DataFusion.
//!
//! A scan reads one Parquet file of a block (`samples`, `profiles` or
//! `spans`) with a predicate on the columns the files are sorted and have
//! statistics by (`series_ref`, `timestamp_ns`, and `span_id` for spans).
//! DataFusion's Parquet source skips the row groups whose statistics cannot
//! match, then the pages the page index excludes, and decodes only the
//! projected columns of the rest; each batch is then cut to the caller's
//! exact rows ([`Exact`]) as it streams in. Footers come from the
//! [`Bucket`]'s shared cache.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Int64Array, UInt32Array, UInt64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::Expr;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::statistics::Statistics;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::prelude::{col, lit};
use futures::StreamExt;
use ignis_storage::block::{BlockError, BlockMeta, trace_id_at, trace_ids};

use crate::bucket::Bucket;
use crate::source::SpanSelector;

/// At most this many `series_ref` ranges in a predicate: more precise lists
/// are widened (the exact set is applied to the rows read).
pub const MAX_SERIES_RANGES: usize = 16;

/// Which rows of a block file a scan reads. Coarse: statistics prune with
/// it; callers keep exactly the rows they want from what it returns.
#[derive(Debug, Clone)]
pub struct RowFilter {
    /// Inclusive `series_ref` ranges, ascending.
    pub series: Vec<(u32, u32)>,
    /// Inclusive time range, nanoseconds.
    pub start_ns: i64,
    /// End of the time range.
    pub end_ns: i64,
    /// Span ids (the `spans` table only), or `None`.
    pub spans: Option<Vec<u64>>,
    /// The window length (the `rollups` table only), or `None`.
    pub resolution_ns: Option<i64>,
}

impl RowFilter {
    /// A filter for the series `refs` (sorted, unique) in `[start_ns, end_ns]`.
    pub fn new(refs: &[u32], start_ns: i64, end_ns: i64) -> Self {
        Self {
            series: series_ranges(refs, MAX_SERIES_RANGES),
            start_ns,
            end_ns,
            spans: None,
            resolution_ns: None,
        }
    }

    fn expr(&self) -> Option<Expr> {
        let series = self
            .series
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    col("series_ref").eq(lit(a))
                } else {
                    col("series_ref").between(lit(a), lit(b))
                }
            })
            .reduce(Expr::or)?;
        let mut expr =
            series.and(col("timestamp_ns").between(lit(self.start_ns), lit(self.end_ns)));
        if let Some(spans) = &self.spans {
            expr = expr.and(col("span_id").in_list(spans.iter().map(|&s| lit(s)).collect(), false));
        }
        if let Some(r) = self.resolution_ns {
            expr = col("resolution_ns").eq(lit(r)).and(expr);
        }
        Some(expr)
    }

    fn may_hold(&self, series: Option<(u32, u32)>, time: Option<(i64, i64)>) -> bool {
        let series_ok =
            series.is_none_or(|(lo, hi)| self.series.iter().any(|&(a, b)| a <= hi && b >= lo));
        let time_ok = time.is_none_or(|(lo, hi)| self.start_ns <= hi && self.end_ns >= lo);
        series_ok && time_ok
    }
}

/// `refs` as at most `max` inclusive ranges, ascending: consecutive refs
/// are joined, then the ranges with the smallest gaps between them merged.
pub fn series_ranges(refs: &[u32], max: usize) -> Vec<(u32, u32)> {
    let mut refs = refs.to_vec();
    refs.sort_unstable();
    refs.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for r in refs {
        match ranges.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(r) => *hi = r,
            _ => ranges.push((r, r)),
        }
    }
    while ranges.len() > max.max(1) {
        let Some(i) =
            (0..ranges.len() - 1).min_by_key(|&i| ranges[i + 1].0.saturating_sub(ranges[i].1))
        else {
            break;
        };
        ranges[i].1 = ranges[i + 1].1;
        ranges.remove(i + 1);
    }
    ranges
}

/// What DataFusion skipped and read in one scan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Row groups in the file.
    pub row_groups: u64,
    /// Row groups skipped by their statistics.
    pub row_groups_pruned: u64,
    /// Rows skipped by the page index.
    pub page_rows_pruned: u64,
    /// Rows decoded (before the exact cut).
    pub rows: u64,
    /// Bytes read from the file (footer excluded).
    pub bytes: u64,
}

impl ScanStats {
    /// Adds another scan's numbers.
    pub fn add(&mut self, o: &ScanStats) {
        self.row_groups += o.row_groups;
        self.row_groups_pruned += o.row_groups_pruned;
        self.page_rows_pruned += o.page_rows_pruned;
        self.rows += o.rows;
        self.bytes += o.bytes;
    }
}

fn read_err(meta: &BlockMeta, file: &str, e: impl std::fmt::Display) -> BlockError {
    BlockError::Read(format!("{file} of block {}: {e}", meta.ulid))
}

/// Exactly which rows a caller keeps of what a scan reads ([`RowFilter`]
/// only prunes row groups and pages): the wanted series (indexed by
/// `series_ref`) with a timestamp in `[start, end]`, and, for spans, a span
/// in `spans`; for rollups, of resolution `resolution`.
#[derive(Debug, Clone, Copy)]
pub struct Exact<'a> {
    /// Whether each `series_ref` is wanted.
    pub wanted: &'a [bool],
    /// Inclusive start, ns.
    pub start: i64,
    /// Inclusive end, ns.
    pub end: i64,
    /// Spans and traces kept (the `spans` table), or `None`.
    pub spans: Option<&'a SpanSelector>,
    /// The window length kept (the `rollups` table), or `None`.
    pub resolution: Option<i64>,
    /// When set, only rows whose timestamp lies in one of these sorted,
    /// disjoint inclusive spans are kept (within `[start, end]`).
    pub times: Option<&'a [(i64, i64)]>,
}

/// Whether sorted, disjoint inclusive `spans` hold `t` (binary search).
pub fn in_spans(spans: &[(i64, i64)], t: i64) -> bool {
    let i = spans.partition_point(|&(lo, _)| lo <= t);
    i > 0 && t <= spans[i - 1].1
}

impl<'a> Exact<'a> {
    /// The rows of the `wanted` series in `[start, end]`.
    pub fn new(wanted: &'a [bool], start: i64, end: i64) -> Self {
        Self {
            wanted,
            start,
            end,
            spans: None,
            resolution: None,
            times: None,
        }
    }

    /// The rows of `b` it keeps (`None`: none).
    pub fn keep(&self, b: RecordBatch) -> Result<Option<RecordBatch>, BlockError> {
        let series = b
            .column_by_name("series_ref")
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>());
        let ts = b
            .column_by_name("timestamp_ns")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
        let (Some(series), Some(ts)) = (series, ts) else {
            return Err(BlockError::Corrupt(
                "series_ref or timestamp_ns is missing or has the wrong type".into(),
            ));
        };
        let span = match self.spans {
            Some(sel) => Some((
                sel,
                b.column_by_name("span_id")
                    .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                    .ok_or_else(|| BlockError::Corrupt("spans: span_id is missing".into()))?,
                trace_ids(&b)?,
            )),
            None => None,
        };
        let res = match self.resolution {
            Some(r) => Some((
                r,
                b.column_by_name("resolution_ns")
                    .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                    .ok_or_else(|| {
                        BlockError::Corrupt("rollups: resolution_ns is missing".into())
                    })?,
            )),
            None => None,
        };
        let mask: BooleanArray = (0..b.num_rows())
            .map(|i| {
                let t = ts.value(i);
                Some(
                    self.wanted.get(series.value(i) as usize) == Some(&true)
                        && (self.start..=self.end).contains(&t)
                        && self.times.is_none_or(|spans| in_spans(spans, t))
                        && span.is_none_or(|(sel, spans, traces)| {
                            sel.keeps_ids(spans.value(i), &trace_id_at(traces, i))
                        })
                        && res.is_none_or(|(r, col)| col.value(i) == r),
                )
            })
            .collect();
        Ok(match mask.true_count() {
            0 => None,
            n if n == b.num_rows() => Some(b),
            _ => Some(filter_record_batch(&b, &mask)?),
        })
    }
}

/// The footer (and page index) of a block file, from the shared cache.
pub async fn footer(
    bucket: &Bucket,
    meta: &BlockMeta,
    file: &str,
) -> Result<Arc<ParquetMetaData>, BlockError> {
    let object = Bucket::object(meta, file)
        .ok_or_else(|| BlockError::Corrupt(format!("block {} lists no {file}", meta.ulid)))?;
    let store = bucket.store();
    DFParquetMetadata::new(store.as_ref(), &object)
        .with_file_metadata_cache(Some(bucket.footers()))
        .fetch_metadata()
        .await
        .map_err(|e| read_err(meta, file, e))
}

fn stats_range(s: Option<&Statistics>) -> Option<(i64, i64)> {
    match s? {
        Statistics::Int32(v) => Some((i64::from(*v.min_opt()?), i64::from(*v.max_opt()?))),
        Statistics::Int64(v) => Some((*v.min_opt()?, *v.max_opt()?)),
        _ => None,
    }
}

/// Rows of the row groups of `file` whose statistics may hold a row of
/// `filter`, and all its rows: how much a scan would read at most, known
/// from the (cached) footer alone.
pub async fn candidate_rows(
    bucket: &Bucket,
    meta: &BlockMeta,
    file: &str,
    filter: &RowFilter,
) -> Result<(u64, u64), BlockError> {
    let footer = footer(bucket, meta, file).await?;
    let schema = footer.file_metadata().schema_descr();
    let index = |name: &str| schema.columns().iter().position(|c| c.name() == name);
    let (series_col, time_col) = (index("series_ref"), index("timestamp_ns"));
    let (mut candidates, mut total) = (0u64, 0u64);
    for rg in footer.row_groups() {
        let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
        total += rows;
        // u32 refs are stored as INT32: read them back as u32 (an inverted
        // range after the cast means unknown).
        let series = series_col
            .and_then(|i| stats_range(rg.column(i).statistics()))
            .map(|(lo, hi)| (lo as u32, hi as u32))
            .filter(|(lo, hi)| lo <= hi);
        let time = time_col.and_then(|i| stats_range(rg.column(i).statistics()));
        if filter.may_hold(series, time) {
            candidates += rows;
        }
    }
    Ok((candidates, total))
}

fn collect_stats(plan: &dyn ExecutionPlan, row_groups: u64) -> ScanStats {
    let mut stats = ScanStats {
        row_groups,
        ..ScanStats::default()
    };
    for m in plan.metrics().iter().flat_map(|m| m.iter()) {
        match m.value() {
            MetricValue::PruningMetrics {
                name,
                pruning_metrics,
            } => match name.as_ref() {
                "row_groups_pruned_statistics" => {
                    stats.row_groups_pruned += pruning_metrics.pruned() as u64
                }
                "page_index_rows_pruned" => {
                    stats.page_rows_pruned += pruning_metrics.pruned() as u64
                }
                _ => {}
            },
            MetricValue::Count { name, count } if name.as_ref() == "bytes_scanned" => {
                stats.bytes += count.value() as u64
            }
            MetricValue::OutputRows(count) => stats.rows += count.value() as u64,
            _ => {}
        }
    }
    stats
}

/// Reads `columns` of the rows of `file` that `exact` keeps, in file
/// order, with what was skipped: `filter` prunes row groups and pages, and
/// each batch decoded is cut to `exact` as it comes (so a scan holds what
/// it keeps, not every row of the pages it decodes). `ctx` must run over
/// `bucket`'s runtime ([`Bucket::runtime`]).
pub async fn scan(
    ctx: &SessionContext,
    bucket: &Bucket,
    meta: &BlockMeta,
    file: &str,
    columns: &[&str],
    filter: &RowFilter,
    exact: &Exact<'_>,
) -> Result<(Vec<RecordBatch>, ScanStats), BlockError> {
    let object = Bucket::object(meta, file)
        .ok_or_else(|| BlockError::Corrupt(format!("block {} lists no {file}", meta.ulid)))?;
    let footer = footer(bucket, meta, file).await?;
    let Some(expr) = filter.expr() else {
        return Ok((Vec::new(), ScanStats::default()));
    };
    let err = |e: datafusion::error::DataFusionError| read_err(meta, file, e);
    let schema: SchemaRef = Arc::new(
        datafusion::parquet::arrow::parquet_to_arrow_schema(
            footer.file_metadata().schema_descr(),
            footer.file_metadata().key_value_metadata(),
        )
        .map_err(|e| read_err(meta, file, e))?,
    );
    let projection = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(meta, file, e))?;
    let df_schema = DFSchema::try_from(schema.clone()).map_err(err)?;
    let predicate = ctx.create_physical_expr(expr, &df_schema).map_err(err)?;
    // Blocks have no bloom filters; the predicate prunes row groups and
    // pages, and the caller keeps exactly the rows it wants (`RowFilter` is
    // coarse), so rows are not filtered a second time while decoding.
    let source = ParquetSource::new(schema)
        .with_pushdown_filters(false)
        .with_bloom_filter_on_read(false)
        .with_enable_page_index(true)
        .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
            bucket.store(),
            bucket.footers(),
        )))
        .with_predicate(predicate);
    let config = FileScanConfigBuilder::new(bucket.url()?, Arc::new(source))
        .with_file(PartitionedFile::from(object))
        .with_projection_indices(Some(projection))
        .map_err(err)?
        .build();
    let plan = DataSourceExec::from_data_source(config);
    let mut stream =
        datafusion::physical_plan::execute_stream(plan.clone(), ctx.task_ctx()).map_err(err)?;
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        if let Some(b) = exact.keep(b.map_err(err)?)? {
            batches.push(b);
        }
    }
    drop(stream);
    let stats = collect_stats(plan.as_ref(), footer.num_row_groups() as u64);
    Ok((batches, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_become_few_ranges() {
        assert_eq!(series_ranges(&[], 4), vec![]);
        assert_eq!(
            series_ranges(&[1, 2, 3, 7, 9, 10], 4),
            vec![(1, 3), (7, 7), (9, 10)]
        );
        // Over the limit, the closest ranges merge first.
        assert_eq!(
            series_ranges(&[1, 2, 3, 7, 9, 10], 2),
            vec![(1, 3), (7, 10)]
        );
        assert_eq!(series_ranges(&[0, 100, u32::MAX], 1), vec![(0, u32::MAX)]);
        assert_eq!(series_ranges(&[9, 1, 2, 1], 4), vec![(1, 2), (9, 9)]);
    }
}
