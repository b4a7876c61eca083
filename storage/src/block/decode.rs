//! Block → head: reads every Parquet file of a block back into memory.

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, BooleanArray, Int64Array, MapArray, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Int64Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::BlockError;
use super::meta::{BlockMeta, FORMAT_VERSION, SPANS_FILE, block_files};
use crate::head::{Head, ProfileRow, Series, SpanSample, merge_span_samples};
use crate::labels::Labels;
use crate::symbols::{Function, Line, Location, Mapping, SymbolTable};

fn read(files: &HashMap<String, Bytes>, name: &str) -> Result<Vec<RecordBatch>, BlockError> {
    let data = files
        .get(name)
        .ok_or_else(|| BlockError::Corrupt(format!("missing {name}")))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(data.clone())?
        .with_batch_size(64 * 1024)
        .build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

fn col<'a, T: 'static>(b: &'a RecordBatch, file: &str, name: &str) -> Result<&'a T, BlockError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            BlockError::Corrupt(format!(
                "{file}: column {name} is missing or has the wrong type"
            ))
        })
}

/// Rebuilds a head from a block's files (keyed by file name).
pub fn decode_block(meta: &BlockMeta, files: &HashMap<String, Bytes>) -> Result<Head, BlockError> {
    if !(1..=FORMAT_VERSION).contains(&meta.format_version) {
        return Err(BlockError::Corrupt(format!(
            "block {} has format version {}, this build reads {FORMAT_VERSION}",
            meta.ulid, meta.format_version
        )));
    }
    for f in block_files(meta.format_version) {
        if !files.contains_key(f) {
            return Err(BlockError::Corrupt(format!(
                "block {} lacks {f}",
                meta.ulid
            )));
        }
    }
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
            let (fv, lv) = (
                fv.as_primitive::<UInt32Type>(),
                lv.as_primitive::<Int64Type>(),
            );
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
            sym.stacks.intern(
                v.as_primitive::<UInt32Type>()
                    .values()
                    .to_vec()
                    .into_boxed_slice(),
            );
        }
    }

    let mut series = Vec::new();
    for b in read(files, "series.parquet")? {
        let labels = col::<MapArray>(&b, "series", "labels")?;
        for i in 0..b.num_rows() {
            let entries = labels.value(i);
            let keys = entries.column(0).as_string::<i32>();
            let values = entries.column(1).as_string::<i32>();
            let l = Labels::from_pairs((0..keys.len()).map(|j| (keys.value(j), values.value(j))));
            series.push(Series {
                fingerprint: l.fingerprint(),
                labels: l,
                profiles: Vec::new(),
            });
        }
    }
    type Pending = (u32, i64, u64, Vec<u32>, Vec<i64>);
    let mut current: Option<Pending> = None;
    let flush = |cur: Option<Pending>, series: &mut Vec<Series>| -> Result<(), BlockError> {
        if let Some((s, ts, id, stacks, values)) = cur {
            let target = series.get_mut(s as usize).ok_or_else(|| {
                BlockError::Corrupt(format!("samples reference unknown series {s}"))
            })?;
            target.profiles.push(ProfileRow {
                timestamp_ns: ts,
                profile_id: id,
                total: values.iter().fold(0i64, |a, &v| a.saturating_add(v)),
                stacks: stacks.into_boxed_slice(),
                values: values.into_boxed_slice(),
                spans: None,
            });
        }
        Ok(())
    };
    for b in read(files, "samples.parquet")? {
        let f = "samples";
        let (sref, ts, stack, value) = (
            col::<UInt32Array>(&b, f, "series_ref")?,
            col::<Int64Array>(&b, f, "timestamp_ns")?,
            col::<UInt32Array>(&b, f, "stack_id")?,
            col::<Int64Array>(&b, f, "value")?,
        );
        // Format 1 has no profile ids: every row is profile 0.
        let ids = if meta.format_version >= 2 {
            Some(col::<UInt64Array>(&b, f, "profile_id")?)
        } else {
            None
        };
        for i in 0..b.num_rows() {
            let (s, t) = (sref.value(i), ts.value(i));
            let id = ids.map_or(0, |a| a.value(i));
            match &mut current {
                Some((cs, ct, cid, stacks, values)) if *cs == s && *ct == t && *cid == id => {
                    stacks.push(stack.value(i));
                    values.push(value.value(i));
                }
                _ => {
                    flush(current.take(), &mut series)?;
                    current = Some((s, t, id, vec![stack.value(i)], vec![value.value(i)]));
                }
            }
        }
    }
    flush(current.take(), &mut series)?;
    if meta.format_version >= 3 {
        attach_spans(files, &mut series, sym.stacks.len())?;
    }
    Ok(Head::from_parts(sym, series))
}

/// Reads `spans.parquet` (format 3) into the rows it belongs to.
fn attach_spans(
    files: &HashMap<String, Bytes>,
    series: &mut [Series],
    stacks: usize,
) -> Result<(), BlockError> {
    let mut by_row: HashMap<(u32, i64, u64), Vec<SpanSample>> = HashMap::new();
    for b in read(files, SPANS_FILE)? {
        let f = "spans";
        let (sref, ts, pid, span, stack, value) = (
            col::<UInt32Array>(&b, f, "series_ref")?,
            col::<Int64Array>(&b, f, "timestamp_ns")?,
            col::<UInt64Array>(&b, f, "profile_id")?,
            col::<UInt64Array>(&b, f, "span_id")?,
            col::<UInt32Array>(&b, f, "stack_id")?,
            col::<Int64Array>(&b, f, "value")?,
        );
        for i in 0..b.num_rows() {
            if span.value(i) == 0 || stack.value(i) as usize >= stacks {
                return Err(BlockError::Corrupt(format!(
                    "spans row {i}: span id 0 or stack {} out of range",
                    stack.value(i)
                )));
            }
            by_row
                .entry((sref.value(i), ts.value(i), pid.value(i)))
                .or_default()
                .push(SpanSample {
                    span_id: span.value(i),
                    stack: stack.value(i),
                    value: value.value(i),
                });
        }
    }
    for ((s, ts, id), samples) in by_row {
        let row = series
            .get_mut(s as usize)
            .and_then(|se| {
                let lo = se.profiles.partition_point(|r| r.timestamp_ns < ts);
                se.profiles[lo..]
                    .iter_mut()
                    .take_while(|r| r.timestamp_ns == ts)
                    .find(|r| r.profile_id == id)
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
