//! Block → head: reads every Parquet file of a block back into memory.
//!
//! The pieces are public so a reader that fetches only part of a block
//! (the store-gateway's pruned reads) rebuilds rows exactly as a whole decode
//! does: [`decode_symbols`], [`decode_series`], [`group_sample_rows`],
//! [`group_profile_rows`], [`span_samples`] and [`attach_spans`].

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, BooleanArray, FixedSizeBinaryArray, Int64Array, MapArray, StringArray,
    UInt32Array, UInt64Array,
};
use arrow::datatypes::{Int64Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use super::BlockError;
use super::meta::{BlockMeta, FORMAT_VERSION, SPANS_FILE, row_files};
use crate::head::{Head, ProfileRow, Series, SpanSample, TraceId, merge_span_samples};
use crate::labels::Labels;
use crate::profile_id::ProfileId;
use crate::symbols::{Function, Line, Location, Mapping, SymbolTable};

/// The symbol files of a block (all read whole by [`decode_symbols`]).
pub const SYMBOL_FILES: [&str; 5] = [
    "strings.parquet",
    "functions.parquet",
    "mappings.parquet",
    "locations.parquet",
    "stacks.parquet",
];

/// The key of one profile row: `(series_ref, timestamp_ns, profile_id)`.
pub type RowKey = (u32, i64, u64);

/// Reads one Parquet file (its bytes) into batches. The Arrow schema
/// embedded in the file is not read: the columns' types come from the
/// Parquet schema (the same for the files Ignis writes), and a damaged
/// embedded schema would panic Arrow's IPC decoder. The Parquet reader
/// itself panics on some damaged pages (a dictionary-encoded page without
/// its dictionary): that is caught and reported as a corrupt file.
pub fn read_parquet(data: &Bytes) -> Result<Vec<RecordBatch>, BlockError> {
    let read = || -> Result<Vec<RecordBatch>, BlockError> {
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(data.clone(), options)?
            .with_batch_size(64 * 1024)
            .build()?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Err(BlockError::Corrupt(
            "a Parquet file is damaged (its reader panicked)".into(),
        ))
    })
}

fn read(files: &HashMap<String, Bytes>, name: &str) -> Result<Vec<RecordBatch>, BlockError> {
    let data = files
        .get(name)
        .ok_or_else(|| BlockError::Corrupt(format!("missing {name}")))?;
    read_parquet(data)
}

fn wrong_type(file: &str, name: &str) -> BlockError {
    BlockError::Corrupt(format!(
        "{file}: column {name} is missing or has the wrong type"
    ))
}

fn col<'a, T: 'static>(b: &'a RecordBatch, file: &str, name: &str) -> Result<&'a T, BlockError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| wrong_type(file, name))
}

/// The high half of each row's profile id (`profile_id_hi`, format 5),
/// when the batch has it: rows of older blocks, or read without it, have 0.
fn id_his<'a>(b: &'a RecordBatch, file: &str) -> Result<Option<&'a UInt64Array>, BlockError> {
    match b.column_by_name("profile_id_hi") {
        None => Ok(None),
        Some(c) => c
            .as_any()
            .downcast_ref::<UInt64Array>()
            .map(Some)
            .ok_or_else(|| wrong_type(file, "profile_id_hi")),
    }
}

/// The `(series_ref, timestamp_ns, profile_id)` key of each row of a
/// `samples` or `profiles` batch; format 1 has no profile ids, so every row
/// is profile 0 there.
pub fn row_keys<'a>(
    b: &'a RecordBatch,
    file: &str,
    with_ids: bool,
) -> Result<impl Fn(usize) -> RowKey + 'a, BlockError> {
    let sref = col::<UInt32Array>(b, file, "series_ref")?;
    let ts = col::<Int64Array>(b, file, "timestamp_ns")?;
    let ids = if with_ids {
        Some(col::<UInt64Array>(b, file, "profile_id")?)
    } else {
        None
    };
    Ok(move |i: usize| (sref.value(i), ts.value(i), ids.map_or(0, |a| a.value(i))))
}

/// Rebuilds a head from a block's files (keyed by file name).
pub fn decode_block(meta: &BlockMeta, files: &HashMap<String, Bytes>) -> Result<Head, BlockError> {
    if !(1..=FORMAT_VERSION).contains(&meta.format_version) {
        return Err(BlockError::Corrupt(format!(
            "block {} has format version {}, this build reads {FORMAT_VERSION}",
            meta.ulid, meta.format_version
        )));
    }
    for f in row_files(meta.format_version) {
        if !files.contains_key(f) {
            return Err(BlockError::Corrupt(format!(
                "block {} lacks {f}",
                meta.ulid
            )));
        }
    }
    let sym = decode_symbols(files)?;
    let series_file = files
        .get("series.parquet")
        .ok_or_else(|| BlockError::Corrupt("missing series.parquet".into()))?;
    let mut series = decode_series(series_file)?;
    group_sample_rows(
        &read(files, "samples.parquet")?,
        meta.format_version >= 2,
        &mut |s, row| {
            series
                .get_mut(s as usize)
                .ok_or_else(|| {
                    BlockError::Corrupt(format!("samples reference unknown series {s}"))
                })?
                .profiles
                .push(row);
            Ok(())
        },
    )?;
    if meta.format_version >= 3 {
        let spans = span_samples(&read(files, SPANS_FILE)?, sym.stacks.len())?;
        attach_spans(spans, &mut series, &|s| Some(s as usize))?;
    }
    Ok(Head::from_parts(sym, series))
}

/// The symbol tables of a block, from its [`SYMBOL_FILES`] (keyed by file name).
pub fn decode_symbols(files: &HashMap<String, Bytes>) -> Result<SymbolTable, BlockError> {
    let mut sym = SymbolTable::empty();
    for b in read(files, "strings.parquet")? {
        for v in col::<StringArray>(&b, "strings", "value")?.iter() {
            sym.strings.intern(v.unwrap_or("").to_string());
        }
    }
    for b in read(files, "functions.parquet")? {
        let f = "functions";
        let (name, sys, file, start) = (
            col::<UInt32Array>(&b, f, "name")?,
            col::<UInt32Array>(&b, f, "system_name")?,
            col::<UInt32Array>(&b, f, "filename")?,
            col::<Int64Array>(&b, f, "start_line")?,
        );
        for i in 0..b.num_rows() {
            sym.functions.intern(Function {
                name: name.value(i),
                system_name: sys.value(i),
                filename: file.value(i),
                start_line: start.value(i),
            });
        }
    }
    for b in read(files, "mappings.parquet")? {
        let f = "mappings";
        let bit = |n: &str, v: u8| -> Result<Vec<u8>, BlockError> {
            let a = col::<BooleanArray>(&b, f, n)?;
            Ok((0..b.num_rows())
                .map(|i| if a.value(i) { v } else { 0 })
                .collect())
        };
        let flags: Vec<u8> = bit("has_functions", 1)?
            .iter()
            .zip(bit("has_filenames", 2)?)
            .zip(bit("has_line_numbers", 4)?)
            .zip(bit("has_inline_frames", 8)?)
            .map(|(((a, b), c), d)| a | b | c | d)
            .collect();
        let (start, limit, offset, file, build) = (
            col::<UInt64Array>(&b, f, "memory_start")?,
            col::<UInt64Array>(&b, f, "memory_limit")?,
            col::<UInt64Array>(&b, f, "file_offset")?,
            col::<UInt32Array>(&b, f, "filename")?,
            col::<UInt32Array>(&b, f, "build_id")?,
        );
        for (i, flags) in flags.into_iter().enumerate() {
            sym.mappings.intern(Mapping {
                memory_start: start.value(i),
                memory_limit: limit.value(i),
                file_offset: offset.value(i),
                filename: file.value(i),
                build_id: build.value(i),
                flags,
            });
        }
    }
    for b in read(files, "locations.parquet")? {
        let f = "locations";
        let (mapping, address) = (
            col::<UInt32Array>(&b, f, "mapping_id")?,
            col::<UInt64Array>(&b, f, "address")?,
        );
        let (funcs, lines) = (
            col::<arrow::array::ListArray>(&b, f, "line_function_ids")?,
            col::<arrow::array::ListArray>(&b, f, "line_numbers")?,
        );
        for i in 0..b.num_rows() {
            let fv = funcs.value(i);
            let lv = lines.value(i);
            let (Some(fv), Some(lv)) = (
                fv.as_primitive_opt::<UInt32Type>(),
                lv.as_primitive_opt::<Int64Type>(),
            ) else {
                return Err(wrong_type("locations", "line_function_ids or line_numbers"));
            };
            let lines = fv
                .values()
                .iter()
                .zip(lv.values().iter())
                .map(|(&function, &line)| Line { function, line })
                .collect();
            sym.locations.intern(Location {
                mapping: mapping.value(i),
                address: address.value(i),
                lines,
            });
        }
    }
    for b in read(files, "stacks.parquet")? {
        let locs = col::<arrow::array::ListArray>(&b, "stacks", "location_ids")?;
        for i in 0..b.num_rows() {
            let v = locs.value(i);
            let ids = v
                .as_primitive_opt::<UInt32Type>()
                .ok_or_else(|| wrong_type("stacks", "location_ids"))?;
            sym.stacks.intern(ids.values().to_vec().into_boxed_slice());
        }
    }
    Ok(sym)
}

/// The series of a block from `series.parquet`, in `series_ref` order, with
/// their labels and fingerprints and no profiles yet.
pub fn decode_series(data: &Bytes) -> Result<Vec<Series>, BlockError> {
    let mut series = Vec::new();
    for b in read_parquet(data)? {
        let labels = col::<MapArray>(&b, "series", "labels")?;
        for i in 0..b.num_rows() {
            let entries = labels.value(i);
            let (Some(keys), Some(values)) = (
                entries.column(0).as_string_opt::<i32>(),
                entries.column(1).as_string_opt::<i32>(),
            ) else {
                return Err(wrong_type("series", "labels"));
            };
            let l = Labels::from_pairs((0..keys.len()).map(|j| (keys.value(j), values.value(j))));
            series.push(Series {
                fingerprint: l.fingerprint(),
                labels: l,
                profiles: Vec::new(),
            });
        }
    }
    Ok(series)
}

/// Groups rows of `samples` (columns `series_ref`, `timestamp_ns`,
/// `stack_id`, `value`, `profile_id` when `with_ids`, `profile_id_hi` when
/// read; in file order) into profile rows: consecutive rows with the same
/// key are one profile. `push(series_ref, row)` receives each row in order.
pub fn group_sample_rows(
    batches: &[RecordBatch],
    with_ids: bool,
    push: &mut dyn FnMut(u32, ProfileRow) -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    type Pending = (RowKey, u64, Vec<u32>, Vec<i64>);
    let mut current: Option<Pending> = None;
    let mut flush = |cur: Option<Pending>| -> Result<(), BlockError> {
        match cur {
            Some(((s, ts, id), hi, stacks, values)) => push(
                s,
                ProfileRow {
                    timestamp_ns: ts,
                    profile_id: ProfileId { hi, lo: id },
                    total: values.iter().fold(0i64, |a, &v| a.saturating_add(v)),
                    stacks: stacks.into_boxed_slice(),
                    values: values.into_boxed_slice(),
                    spans: None,
                },
            ),
            None => Ok(()),
        }
    };
    for b in batches {
        let f = "samples";
        let key_of = row_keys(b, f, with_ids)?;
        let his = id_his(b, f)?;
        let (stack, value) = (
            col::<UInt32Array>(b, f, "stack_id")?,
            col::<Int64Array>(b, f, "value")?,
        );
        for i in 0..b.num_rows() {
            let key = key_of(i);
            match &mut current {
                Some((k, _, stacks, values)) if *k == key => {
                    stacks.push(stack.value(i));
                    values.push(value.value(i));
                }
                _ => {
                    flush(current.take())?;
                    let hi = his.map_or(0, |h| h.value(i));
                    current = Some((key, hi, vec![stack.value(i)], vec![value.value(i)]));
                }
            }
        }
    }
    flush(current.take())
}

/// Groups rows of `profiles` (columns `series_ref`, `timestamp_ns`, `total`,
/// `profile_id` when `with_ids`, `profile_id_hi` when read; in file order)
/// into profile rows without
/// stacks, keyed as [`group_sample_rows`] keys them (consecutive rows with the
/// same key are one row, their totals summed): enough to list series and
/// profile totals without reading `samples`.
pub fn group_profile_rows(
    batches: &[RecordBatch],
    with_ids: bool,
    push: &mut dyn FnMut(u32, ProfileRow) -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    let mut current: Option<(RowKey, u64, i64)> = None;
    let mut flush = |cur: Option<(RowKey, u64, i64)>| -> Result<(), BlockError> {
        match cur {
            Some(((s, ts, id), hi, total)) => push(
                s,
                ProfileRow {
                    timestamp_ns: ts,
                    profile_id: ProfileId { hi, lo: id },
                    total,
                    stacks: Box::default(),
                    values: Box::default(),
                    spans: None,
                },
            ),
            None => Ok(()),
        }
    };
    for b in batches {
        let f = "profiles";
        let key_of = row_keys(b, f, with_ids)?;
        let his = id_his(b, f)?;
        let total = col::<Int64Array>(b, f, "total")?;
        for i in 0..b.num_rows() {
            let key = key_of(i);
            match &mut current {
                Some((k, _, sum)) if *k == key => *sum = sum.saturating_add(total.value(i)),
                _ => {
                    flush(current.take())?;
                    let hi = his.map_or(0, |h| h.value(i));
                    current = Some((key, hi, total.value(i)));
                }
            }
        }
    }
    flush(current.take())
}

/// The `trace_id` column of a `spans` batch (format 7), when it has one:
/// rows of older blocks, or read without it, name no trace ([`trace_id_at`]).
pub fn trace_ids(b: &RecordBatch) -> Result<Option<&FixedSizeBinaryArray>, BlockError> {
    match b.column_by_name("trace_id") {
        None => Ok(None),
        Some(c) => c
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .filter(|a| a.value_length() == 16)
            .map(Some)
            .ok_or_else(|| wrong_type("spans", "trace_id")),
    }
}

/// The trace id of row `i` of a [`trace_ids`] column (all zero without one).
pub fn trace_id_at(traces: Option<&FixedSizeBinaryArray>, i: usize) -> TraceId {
    traces
        .and_then(|t| TraceId::try_from(t.value(i)).ok())
        .unwrap_or_default()
}

/// The span samples of `spans` batches (format 3), by the row they belong
/// to; `stacks` is the number of stacks of the block (ids beyond it are refused).
pub fn span_samples(
    batches: &[RecordBatch],
    stacks: usize,
) -> Result<HashMap<RowKey, Vec<SpanSample>>, BlockError> {
    let mut by_row: HashMap<RowKey, Vec<SpanSample>> = HashMap::new();
    for b in batches {
        let f = "spans";
        let (sref, ts, pid, span, stack, value) = (
            col::<UInt32Array>(b, f, "series_ref")?,
            col::<Int64Array>(b, f, "timestamp_ns")?,
            col::<UInt64Array>(b, f, "profile_id")?,
            col::<UInt64Array>(b, f, "span_id")?,
            col::<UInt32Array>(b, f, "stack_id")?,
            col::<Int64Array>(b, f, "value")?,
        );
        let traces = trace_ids(b)?;
        for i in 0..b.num_rows() {
            let sample = SpanSample {
                span_id: span.value(i),
                stack: stack.value(i),
                value: value.value(i),
                trace_id: trace_id_at(traces, i),
            };
            if !sample.is_attributed() || sample.stack as usize >= stacks {
                return Err(BlockError::Corrupt(format!(
                    "spans row {i}: no span or trace id, or stack {} out of range",
                    sample.stack
                )));
            }
            by_row
                .entry((sref.value(i), ts.value(i), pid.value(i)))
                .or_default()
                .push(sample);
        }
    }
    Ok(by_row)
}

/// Attaches span samples to the rows they belong to; `index_of(series_ref)`
/// is the position of a series in `series`. A span sample whose row is
/// missing makes the block corrupt.
pub fn attach_spans(
    by_row: HashMap<RowKey, Vec<SpanSample>>,
    series: &mut [Series],
    index_of: &dyn Fn(u32) -> Option<usize>,
) -> Result<(), BlockError> {
    for ((s, ts, id), samples) in by_row {
        let row = index_of(s)
            .and_then(|i| series.get_mut(i))
            .and_then(|se| {
                let lo = se.profiles.partition_point(|r| r.timestamp_ns < ts);
                se.profiles[lo..]
                    .iter_mut()
                    .take_while(|r| r.timestamp_ns == ts)
                    .find(|r| r.profile_id.key() == id)
            })
            .ok_or_else(|| {
                BlockError::Corrupt(format!(
                    "spans reference a profile that samples lack (series {s}, timestamp {ts}, id {id})"
                ))
            })?;
        row.spans = merge_span_samples(samples);
    }
    Ok(())
}
