//! Head → block: one Parquet file per table (see `storage/FORMAT.md`).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, Int64Builder, ListBuilder, MapBuilder, StringArray,
    StringBuilder, UInt32Array, UInt32Builder, UInt64Array,
};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::BlockError;
use super::meta::{BlockFile, BlockMeta, BlockStats, Compaction, FORMAT_VERSION};
use super::rollup::{ROLLUP_RESOLUTIONS_NS, rollup_table};
use crate::head::Head;
use crate::labels::names;

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

pub(super) fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, BlockError> {
    Ok(RecordBatch::try_from_iter(
        columns.into_iter().map(|(n, a)| (n.to_string(), a)),
    )?)
}

fn parquet(
    batch: &RecordBatch,
    sorted_by: &[usize],
    row_group: usize,
) -> Result<Vec<u8>, BlockError> {
    let sorting: Vec<SortingColumn> = sorted_by
        .iter()
        .map(|&c| SortingColumn {
            column_idx: c as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group.max(1)))
        .set_sorting_columns((!sorting.is_empty()).then_some(sorting))
        .set_created_by(format!("ignis {}", env!("CARGO_PKG_VERSION")))
        .build();
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
    let sym = head.symbols();
    let series = head.series();
    let mut tables = Vec::new();
    // series
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for s in series {
        for (k, v) in s.labels.iter() {
            labels.keys().append_value(k);
            labels.values().append_value(v);
        }
        labels.append(true)?;
    }
    tables.push(BlockTable {
        file: "series.parquet",
        batch: batch(vec![
            (
                "series_ref",
                Arc::new(UInt32Array::from_iter_values(0..series.len() as u32)),
            ),
            (
                "fingerprint",
                Arc::new(UInt64Array::from_iter_values(
                    series.iter().map(|s| s.fingerprint),
                )),
            ),
            (
                "profile_type",
                Arc::new(StringArray::from_iter_values(
                    series.iter().map(Head::profile_type_of),
                )),
            ),
            (
                "service_name",
                Arc::new(StringArray::from_iter_values(
                    series
                        .iter()
                        .map(|s| s.labels.get(names::SERVICE_NAME).unwrap_or("")),
                )),
            ),
            ("labels", Arc::new(labels.finish())),
        ])?,
        sorted_by: vec![0],
    });

    // profiles and samples, sorted by (series_ref, timestamp_ns[, stack_id])
    let (mut p_series, mut p_ts, mut p_total, mut p_n) = (vec![], vec![], vec![], vec![]);
    let (mut s_series, mut s_ts, mut s_stack, mut s_value) = (vec![], vec![], vec![], vec![]);
    let (mut p_id, mut s_id) = (vec![], vec![]);
    // spans: (span, series_ref, timestamp_ns, profile_id, stack, value)
    let mut spans: Vec<(u64, u32, i64, u64, u32, i64)> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        for row in &s.profiles {
            for sp in row.spans.iter().flat_map(|s| s.iter()) {
                spans.push((
                    sp.span_id,
                    i as u32,
                    row.timestamp_ns,
                    row.profile_id,
                    sp.stack,
                    sp.value,
                ));
            }
            p_series.push(i as u32);
            p_ts.push(row.timestamp_ns);
            p_total.push(row.total);
            p_n.push(row.stacks.len() as u32);
            p_id.push(row.profile_id);
            for (&stack, &v) in row.stacks.iter().zip(row.values.iter()) {
                s_id.push(row.profile_id);
                s_series.push(i as u32);
                s_ts.push(row.timestamp_ns);
                s_stack.push(stack);
                s_value.push(v);
            }
        }
    }
    tables.push(BlockTable {
        file: "profiles.parquet",
        batch: batch(vec![
            ("series_ref", Arc::new(UInt32Array::from(p_series))),
            ("timestamp_ns", Arc::new(Int64Array::from(p_ts))),
            ("total", Arc::new(Int64Array::from(p_total))),
            ("num_samples", Arc::new(UInt32Array::from(p_n))),
            ("profile_id", Arc::new(UInt64Array::from(p_id))),
        ])?,
        sorted_by: vec![0, 1],
    });
    tables.push(BlockTable {
        file: "samples.parquet",
        batch: batch(vec![
            ("series_ref", Arc::new(UInt32Array::from(s_series))),
            ("timestamp_ns", Arc::new(Int64Array::from(s_ts))),
            ("stack_id", Arc::new(UInt32Array::from(s_stack))),
            ("value", Arc::new(Int64Array::from(s_value))),
            ("profile_id", Arc::new(UInt64Array::from(s_id))),
        ])?,
        // Stacks are sorted within a profile; two profiles of one series may
        // share a timestamp, so only these two columns are declared sorted.
        sorted_by: vec![0, 1],
    });

    // spans, sorted by span id first: a span lookup reads one row group.
    spans.sort_unstable();
    tables.push(BlockTable {
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
        ])?,
        sorted_by: vec![3, 0, 1, 2, 4],
    });

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

/// Encodes a whole head as block `ulid` of `tenant`. Symbol ids are the head's.
pub fn encode_block(tenant: &str, ulid: &str, head: &Head) -> Result<EncodedBlock, BlockError> {
    let sym = head.symbols();
    let series = head.series();
    let stats = head.stats();
    let mut files = Vec::new();
    let (mut profiles, mut samples, mut span_samples, mut rollup_rows) = (0, 0, 0, 0);
    let mut tables = head_tables(head)?;
    tables.push(rollup_table(
        series,
        sym.stacks.len(),
        &ROLLUP_RESOLUTIONS_NS,
    )?);
    for t in tables {
        let rows = t.batch.num_rows() as u64;
        match t.file {
            "profiles.parquet" => profiles = rows,
            "samples.parquet" => samples = rows,
            "spans.parquet" => span_samples = rows,
            "rollups.parquet" => rollup_rows = rows,
            _ => {}
        }
        let bytes = parquet(&t.batch, &t.sorted_by, SAMPLES_ROW_GROUP)?;
        files.push((t.file.to_string(), bytes, rows));
    }
    let (min_t, max_t) = (
        stats.min_time_ns.unwrap_or(0),
        stats.max_time_ns.unwrap_or(0),
    );
    let (locs, funcs, maps, strings) = (
        sym.locations.items(),
        sym.functions.items(),
        sym.mappings.items(),
        sym.strings.items(),
    );

    let meta = BlockMeta {
        format_version: FORMAT_VERSION,
        ulid: ulid.to_string(),
        tenant: tenant.to_string(),
        min_time_ns: if profiles == 0 { 0 } else { min_t },
        max_time_ns: if profiles == 0 { 0 } else { max_t },
        stats: BlockStats {
            series: series.len() as u64,
            profiles,
            samples,
            span_samples,
            stacks: sym.stacks.len() as u64,
            locations: locs.len() as u64,
            functions: funcs.len() as u64,
            mappings: maps.len() as u64,
            strings: strings.len() as u64,
            rollup_rows,
        },
        rollup_resolutions_ns: ROLLUP_RESOLUTIONS_NS.to_vec(),
        compaction: Compaction {
            level: 1,
            sources: vec![ulid.to_string()],
        },
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
