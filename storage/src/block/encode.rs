//! Head → block: one Parquet file per table (see `storage/FORMAT.md`).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeBinaryArray, Int64Array, Int64Builder, ListBuilder,
    MapBuilder, StringArray, StringBuilder, UInt32Array, UInt32Builder, UInt64Array,
};
use arrow::buffer::Buffer;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::BlockError;
use super::meta::{
    BLOCK_FILES, BlockFile, BlockMeta, BlockStats, Compaction, FORMAT_VERSION, ROLLUPS_FILE,
    TOTALS_FILE,
};
use super::rollup::{ROLLUP_RESOLUTIONS_NS, RollupWriter};
use super::totals::TotalsWriter;
use crate::head::{Head, Series, TraceId};
use crate::labels::{Labels, names};
use crate::symbols::SymbolTable;

/// Rows per row group of the samples and profiles files: small enough that
/// time and series statistics prune, large enough to compress well.
pub const SAMPLES_ROW_GROUP: usize = 64 * 1024;

/// A block ready to upload: its meta and its files' bytes.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    /// The meta (written last).
    pub meta: BlockMeta,
    /// `(file name, Parquet bytes)`.
    pub files: Vec<(String, Vec<u8>)>,
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, BlockError> {
    Ok(RecordBatch::try_from_iter(
        columns.into_iter().map(|(n, a)| (n.to_string(), a)),
    )?)
}

/// The writer properties of every block file: zstd, page statistics, row
/// groups of at most `row_group` rows, `sorted_by` recorded in the footer.
pub(super) fn writer_props(
    sorted_by: &[usize],
    row_group: usize,
) -> Result<WriterProperties, BlockError> {
    let sorting: Vec<SortingColumn> = sorted_by
        .iter()
        .map(|&c| SortingColumn {
            column_idx: c as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group.max(1)))
        .set_sorting_columns((!sorting.is_empty()).then_some(sorting))
        .set_created_by(format!("ignis {}", env!("CARGO_PKG_VERSION")))
        .build())
}

fn parquet(
    batch: &RecordBatch,
    sorted_by: &[usize],
    row_group: usize,
) -> Result<Vec<u8>, BlockError> {
    let props = writer_props(sorted_by, row_group)?;
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(buf)
}

/// One table of a block: its file name, its rows and its sorting columns.
pub struct BlockTable {
    /// File name in the block, e.g. `samples.parquet`.
    pub file: &'static str,
    /// The rows.
    pub batch: RecordBatch,
    /// Indexes of the columns the rows are sorted by.
    pub sorted_by: Vec<usize>,
}

/// The tables of a block for `head`, as Arrow batches: what
/// [`encode_block`] writes as Parquet, and what SQL queries read for data
/// still in memory, so one plan covers both.
pub fn head_tables(head: &Head) -> Result<Vec<BlockTable>, BlockError> {
    let series = head.series();
    let labels: Vec<(&Labels, u64)> = series.iter().map(|s| (&s.labels, s.fingerprint)).collect();
    let mut tables = vec![series_table(&labels)?];
    let (profiles, samples, spans) = row_tables(series, 0)?;
    tables.extend([profiles, samples, spans_table(spans)?]);
    tables.extend(symbol_tables(head.symbols())?);
    Ok(tables)
}

/// A span sample as the `spans` table holds it: `(span, series_ref,
/// timestamp_ns, profile_id, stack, value, trace)`.
type SpanRow = (u64, u32, i64, u64, u32, i64, TraceId);

/// The `series` table of series `(labels, fingerprint)`, numbered from 0.
fn series_table(series: &[(&Labels, u64)]) -> Result<BlockTable, BlockError> {
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for (l, _) in series {
        for (k, v) in l.iter() {
            labels.keys().append_value(k);
            labels.values().append_value(v);
        }
        labels.append(true)?;
    }
    Ok(BlockTable {
        file: "series.parquet",
        batch: batch(vec![
            (
                "series_ref",
                Arc::new(UInt32Array::from_iter_values(0..series.len() as u32)),
            ),
            (
                "fingerprint",
                Arc::new(UInt64Array::from_iter_values(series.iter().map(|s| s.1))),
            ),
            (
                "profile_type",
                Arc::new(StringArray::from_iter_values(
                    series
                        .iter()
                        .map(|(l, _)| l.get(names::PROFILE_TYPE).unwrap_or("")),
                )),
            ),
            (
                "service_name",
                Arc::new(StringArray::from_iter_values(
                    series
                        .iter()
                        .map(|(l, _)| l.get(names::SERVICE_NAME).unwrap_or("")),
                )),
            ),
            ("labels", Arc::new(labels.finish())),
        ])?,
        sorted_by: vec![0],
    })
}

/// The `profiles` and `samples` tables of `series`, numbered from
/// `first_ref`, and their span samples (unsorted).
fn row_tables(
    series: &[Series],
    first_ref: u32,
) -> Result<(BlockTable, BlockTable, Vec<SpanRow>), BlockError> {
    // profiles and samples, sorted by (series_ref, timestamp_ns[, stack_id])
    let (mut p_series, mut p_ts, mut p_total, mut p_n) = (vec![], vec![], vec![], vec![]);
    let (mut s_series, mut s_ts, mut s_stack, mut s_value) = (vec![], vec![], vec![], vec![]);
    let (mut p_id, mut s_id) = (vec![], vec![]);
    let (mut p_id_hi, mut s_id_hi) = (vec![], vec![]);
    // spans: (span, series_ref, timestamp_ns, profile_id, stack, value)
    let mut spans: Vec<SpanRow> = Vec::new();
    for (s, i) in series.iter().zip(first_ref..) {
        for row in &s.profiles {
            for sp in row.spans.iter().flat_map(|s| s.iter()) {
                spans.push((
                    sp.span_id,
                    i,
                    row.timestamp_ns,
                    row.profile_id.key(),
                    sp.stack,
                    sp.value,
                    sp.trace_id,
                ));
            }
            p_series.push(i);
            p_ts.push(row.timestamp_ns);
            p_total.push(row.total);
            p_n.push(row.stacks.len() as u32);
            p_id.push(row.profile_id.key());
            p_id_hi.push(row.profile_id.hi);
            for (&stack, &v) in row.stacks.iter().zip(row.values.iter()) {
                s_id.push(row.profile_id.key());
                s_id_hi.push(row.profile_id.hi);
                s_series.push(i);
                s_ts.push(row.timestamp_ns);
                s_stack.push(stack);
                s_value.push(v);
            }
        }
    }
    let profiles = BlockTable {
        file: "profiles.parquet",
        batch: batch(vec![
            ("series_ref", Arc::new(UInt32Array::from(p_series))),
            ("timestamp_ns", Arc::new(Int64Array::from(p_ts))),
            ("total", Arc::new(Int64Array::from(p_total))),
            ("num_samples", Arc::new(UInt32Array::from(p_n))),
            ("profile_id", Arc::new(UInt64Array::from(p_id))),
            ("profile_id_hi", Arc::new(UInt64Array::from(p_id_hi))),
        ])?,
        sorted_by: vec![0, 1],
    };
    let samples = BlockTable {
        file: "samples.parquet",
        batch: batch(vec![
            ("series_ref", Arc::new(UInt32Array::from(s_series))),
            ("timestamp_ns", Arc::new(Int64Array::from(s_ts))),
            ("stack_id", Arc::new(UInt32Array::from(s_stack))),
            ("value", Arc::new(Int64Array::from(s_value))),
            ("profile_id", Arc::new(UInt64Array::from(s_id))),
            ("profile_id_hi", Arc::new(UInt64Array::from(s_id_hi))),
        ])?,
        // Stacks are sorted within a profile; two profiles of one series may
        // share a timestamp, so only these two columns are declared sorted.
        sorted_by: vec![0, 1],
    };
    Ok((profiles, samples, spans))
}

/// The `spans` table of `spans`, sorted by span id first: a span lookup
/// reads one row group.
fn spans_table(mut spans: Vec<SpanRow>) -> Result<BlockTable, BlockError> {
    spans.sort_unstable();
    Ok(BlockTable {
        file: "spans.parquet",
        batch: batch(vec![
            (
                "series_ref",
                Arc::new(UInt32Array::from_iter_values(spans.iter().map(|s| s.1))),
            ),
            (
                "timestamp_ns",
                Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| s.2))),
            ),
            (
                "profile_id",
                Arc::new(UInt64Array::from_iter_values(spans.iter().map(|s| s.3))),
            ),
            (
                "span_id",
                Arc::new(UInt64Array::from_iter_values(spans.iter().map(|s| s.0))),
            ),
            (
                "stack_id",
                Arc::new(UInt32Array::from_iter_values(spans.iter().map(|s| s.4))),
            ),
            (
                "value",
                Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| s.5))),
            ),
            (
                "trace_id",
                Arc::new(FixedSizeBinaryArray::new(
                    16,
                    Buffer::from_vec(spans.iter().flat_map(|s| s.6).collect::<Vec<u8>>()),
                    None,
                )),
            ),
        ])?,
        sorted_by: vec![3, 0, 1, 2, 4],
    })
}

/// The symbol tables (`stacks`, `locations`, `functions`, `mappings`,
/// `strings`) of `sym`.
fn symbol_tables(sym: &SymbolTable) -> Result<Vec<BlockTable>, BlockError> {
    let mut tables = Vec::new();
    // stacks
    let mut stack_locs = ListBuilder::new(UInt32Builder::new());
    for stack in sym.stacks.items() {
        stack_locs.values().append_slice(stack);
        stack_locs.append(true);
    }
    tables.push(BlockTable {
        file: "stacks.parquet",
        batch: batch(vec![
            (
                "stack_id",
                Arc::new(UInt32Array::from_iter_values(0..sym.stacks.len() as u32)),
            ),
            ("location_ids", Arc::new(stack_locs.finish())),
        ])?,
        sorted_by: vec![0],
    });

    // locations
    let locs = sym.locations.items();
    let mut line_functions = ListBuilder::new(UInt32Builder::new());
    let mut line_numbers = ListBuilder::new(Int64Builder::new());
    for l in locs {
        for line in l.lines.iter() {
            line_functions.values().append_value(line.function);
            line_numbers.values().append_value(line.line);
        }
        line_functions.append(true);
        line_numbers.append(true);
    }
    tables.push(BlockTable {
        file: "locations.parquet",
        batch: batch(vec![
            (
                "location_id",
                Arc::new(UInt32Array::from_iter_values(0..locs.len() as u32)),
            ),
            (
                "mapping_id",
                Arc::new(UInt32Array::from_iter_values(
                    locs.iter().map(|l| l.mapping),
                )),
            ),
            (
                "address",
                Arc::new(UInt64Array::from_iter_values(
                    locs.iter().map(|l| l.address),
                )),
            ),
            ("line_function_ids", Arc::new(line_functions.finish())),
            ("line_numbers", Arc::new(line_numbers.finish())),
        ])?,
        sorted_by: vec![0],
    });

    // functions
    let funcs = sym.functions.items();
    tables.push(BlockTable {
        file: "functions.parquet",
        batch: batch(vec![
            (
                "function_id",
                Arc::new(UInt32Array::from_iter_values(0..funcs.len() as u32)),
            ),
            (
                "name",
                Arc::new(UInt32Array::from_iter_values(funcs.iter().map(|f| f.name))),
            ),
            (
                "system_name",
                Arc::new(UInt32Array::from_iter_values(
                    funcs.iter().map(|f| f.system_name),
                )),
            ),
            (
                "filename",
                Arc::new(UInt32Array::from_iter_values(
                    funcs.iter().map(|f| f.filename),
                )),
            ),
            (
                "start_line",
                Arc::new(Int64Array::from_iter_values(
                    funcs.iter().map(|f| f.start_line),
                )),
            ),
        ])?,
        sorted_by: vec![0],
    });

    // mappings (ids start at 1: 0 means "no mapping" in locations)
    let maps = sym.mappings.items();
    let flag = |bit: u8| -> ArrayRef {
        Arc::new(BooleanArray::from(
            maps.iter().map(|m| m.flags & bit != 0).collect::<Vec<_>>(),
        ))
    };
    tables.push(BlockTable {
        file: "mappings.parquet",
        batch: batch(vec![
            (
                "mapping_id",
                Arc::new(UInt32Array::from_iter_values(1..=maps.len() as u32)),
            ),
            (
                "memory_start",
                Arc::new(UInt64Array::from_iter_values(
                    maps.iter().map(|m| m.memory_start),
                )),
            ),
            (
                "memory_limit",
                Arc::new(UInt64Array::from_iter_values(
                    maps.iter().map(|m| m.memory_limit),
                )),
            ),
            (
                "file_offset",
                Arc::new(UInt64Array::from_iter_values(
                    maps.iter().map(|m| m.file_offset),
                )),
            ),
            (
                "filename",
                Arc::new(UInt32Array::from_iter_values(
                    maps.iter().map(|m| m.filename),
                )),
            ),
            (
                "build_id",
                Arc::new(UInt32Array::from_iter_values(
                    maps.iter().map(|m| m.build_id),
                )),
            ),
            ("has_functions", flag(1)),
            ("has_filenames", flag(2)),
            ("has_line_numbers", flag(4)),
            ("has_inline_frames", flag(8)),
        ])?,
        sorted_by: vec![0],
    });

    // strings
    let strings = sym.strings.items();
    tables.push(BlockTable {
        file: "strings.parquet",
        batch: batch(vec![
            (
                "string_id",
                Arc::new(UInt32Array::from_iter_values(0..strings.len() as u32)),
            ),
            (
                "value",
                Arc::new(StringArray::from_iter_values(strings.iter())),
            ),
        ])?,
        sorted_by: vec![0],
    });

    Ok(tables)
}

/// Encodes a whole head as block `ulid` of `tenant`. Symbol ids are the
/// head's. Series are written a row group's worth at a time, so encoding
/// holds about one row group of columns beside the head, not a copy of it.
pub fn encode_block(tenant: &str, ulid: &str, head: &Head) -> Result<EncodedBlock, BlockError> {
    let mut w = BlockWriter::new(tenant, ulid)?;
    let (series, stacks) = (head.series(), head.symbols().stacks.len());
    let (mut first, mut rows) = (0, 0);
    for (i, s) in series.iter().enumerate() {
        rows += s.profiles.iter().map(|p| p.stacks.len()).sum::<usize>();
        if rows >= SAMPLES_ROW_GROUP {
            w.push_series(&series[first..=i], stacks)?;
            (first, rows) = (i + 1, 0);
        }
    }
    w.push_series(&series[first..], stacks)?;
    w.finish(
        head.symbols(),
        Compaction {
            level: 1,
            sources: vec![ulid.to_string()],
            window: None,
        },
    )
}

/// Writes a block series by series, in memory bounded by what one push
/// holds (plus the symbols and span samples, which are written last): the
/// `profiles`, `samples`, `rollups` and `totals` files are streamed as row groups
/// fill. Series must be pushed in the order they are numbered.
pub struct BlockWriter {
    tenant: String,
    ulid: String,
    profiles: ArrowWriter<Vec<u8>>,
    samples: ArrowWriter<Vec<u8>>,
    rollups: RollupWriter,
    totals: TotalsWriter,
    spans: Vec<SpanRow>,
    series: Vec<(Labels, u64)>,
    stats: BlockStats,
    time: Option<(i64, i64)>,
}

impl BlockWriter {
    /// A writer of block `ulid` of `tenant`.
    pub fn new(tenant: &str, ulid: &str) -> Result<Self, BlockError> {
        let (profiles, samples, _) = row_tables(&[], 0)?;
        let writer = |t: &BlockTable| {
            ArrowWriter::try_new(
                Vec::new(),
                t.batch.schema(),
                Some(writer_props(&t.sorted_by, SAMPLES_ROW_GROUP)?),
            )
            .map_err(BlockError::from)
        };
        Ok(Self {
            tenant: tenant.to_string(),
            ulid: ulid.to_string(),
            profiles: writer(&profiles)?,
            samples: writer(&samples)?,
            rollups: RollupWriter::new(&ROLLUP_RESOLUTIONS_NS)?,
            totals: TotalsWriter::new(&ROLLUP_RESOLUTIONS_NS)?,
            spans: Vec::new(),
            series: Vec::new(),
            stats: BlockStats::default(),
            time: None,
        })
    }

    /// Appends `series` (their profiles in time order, stack ids below
    /// `stacks`), numbered after those already pushed.
    pub fn push_series(&mut self, series: &[Series], stacks: usize) -> Result<(), BlockError> {
        let first = u32::try_from(self.series.len())
            .map_err(|_| BlockError::Corrupt("too many series for one block".into()))?;
        let (profiles, samples, spans) = row_tables(series, first)?;
        self.profiles.write(&profiles.batch)?;
        self.samples.write(&samples.batch)?;
        self.stats.profiles += profiles.batch.num_rows() as u64;
        self.stats.samples += samples.batch.num_rows() as u64;
        self.spans.extend(spans);
        for (s, r) in series.iter().zip(first..) {
            self.rollups.push_series(r, &s.profiles, stacks)?;
            self.totals.push_series(r, &s.profiles)?;
            self.series.push((s.labels.clone(), s.fingerprint));
            if let (Some(a), Some(b)) = (s.profiles.first(), s.profiles.last()) {
                let (lo, hi) = (a.timestamp_ns, b.timestamp_ns);
                self.time = Some(self.time.map_or((lo, hi), |(x, y)| (x.min(lo), y.max(hi))));
            }
        }
        Ok(())
    }

    /// Writes the series, spans and symbol tables (`symbols`: what the
    /// pushed stack ids refer to) and closes the block, with `compaction`
    /// as its lineage.
    pub fn finish(
        self,
        symbols: &SymbolTable,
        compaction: Compaction,
    ) -> Result<EncodedBlock, BlockError> {
        let mut files: Vec<(String, Vec<u8>, u64)> = Vec::new();
        let labels: Vec<(&Labels, u64)> = self.series.iter().map(|(l, f)| (l, *f)).collect();
        let mut tables = vec![series_table(&labels)?];
        let span_table = spans_table(self.spans)?;
        let mut stats = self.stats;
        stats.series = self.series.len() as u64;
        stats.span_samples = span_table.batch.num_rows() as u64;
        tables.push(span_table);
        tables.extend(symbol_tables(symbols)?);
        for t in tables {
            let rows = t.batch.num_rows() as u64;
            files.push((
                t.file.to_string(),
                parquet(&t.batch, &t.sorted_by, SAMPLES_ROW_GROUP)?,
                rows,
            ));
        }
        files.push((
            "profiles.parquet".into(),
            self.profiles.into_inner()?,
            stats.profiles,
        ));
        files.push((
            "samples.parquet".into(),
            self.samples.into_inner()?,
            stats.samples,
        ));
        let (bytes, rows) = self.rollups.finish()?;
        stats.rollup_rows = rows;
        files.push((ROLLUPS_FILE.to_string(), bytes, rows));
        let (bytes, rows) = self.totals.finish()?;
        stats.total_rows = rows;
        files.push((TOTALS_FILE.to_string(), bytes, rows));
        files.sort_by_key(|(name, _, _)| {
            BLOCK_FILES
                .iter()
                .position(|f| f == name)
                .unwrap_or(usize::MAX)
        });
        stats.stacks = symbols.stacks.len() as u64;
        stats.locations = symbols.locations.items().len() as u64;
        stats.functions = symbols.functions.items().len() as u64;
        stats.mappings = symbols.mappings.items().len() as u64;
        stats.strings = symbols.strings.items().len() as u64;
        let (min_time_ns, max_time_ns) = self.time.unwrap_or((0, 0));
        let meta = BlockMeta {
            format_version: FORMAT_VERSION,
            ulid: self.ulid,
            tenant: self.tenant,
            min_time_ns,
            max_time_ns,
            stats,
            rollup_resolutions_ns: ROLLUP_RESOLUTIONS_NS.to_vec(),
            compaction,
            files: files
                .iter()
                .map(|(name, bytes, rows)| BlockFile {
                    name: name.clone(),
                    size_bytes: bytes.len() as u64,
                    rows: *rows,
                })
                .collect(),
            wal: None,
        };
        Ok(EncodedBlock {
            meta,
            files: files.into_iter().map(|(n, b, _)| (n, b)).collect(),
        })
    }
}
