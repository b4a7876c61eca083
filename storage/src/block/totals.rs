//! Window totals: each series' profile totals summed per time window, with
//! the number of profiles, at the rollup resolutions, so a time series
//! (`SelectSeries`) over days reads one row per series and window instead
//! of every profile (see `storage/FORMAT.md`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, SchemaRef};
use parquet::arrow::ArrowWriter;

use super::BlockError;
use super::encode::SAMPLES_ROW_GROUP;
use super::rollup::resolution_writer;
use crate::ProfileId;
use crate::head::ProfileRow;

/// One row of the window totals table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowTotal {
    /// The series (`series_ref` of the block).
    pub series_ref: u32,
    /// Window length, ns.
    pub resolution_ns: i64,
    /// Window start, ns.
    pub start_ns: i64,
    /// Sum of the totals of the series' profiles in the window.
    pub total: i64,
    /// How many profiles.
    pub profiles: u64,
    /// The window's exemplar (format 8 on, when its columns were read).
    pub best: Option<WindowBest>,
}

/// The profile of a series' window with the highest total, then the
/// earliest, then the smallest id: the order a time series picks a
/// bucket's exemplar by, so a bucket's exemplar is the best of its
/// windows' (format 8 on; see `storage/FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowBest {
    /// The profile's timestamp, ns.
    pub timestamp_ns: i64,
    /// Its id.
    pub profile_id: ProfileId,
    /// Its total in the series.
    pub total: i64,
}

impl WindowBest {
    /// True when `self` is the better exemplar of the two.
    pub fn beats(&self, other: &WindowBest) -> bool {
        (other.total, self.timestamp_ns, self.profile_id)
            < (self.total, other.timestamp_ns, other.profile_id)
    }
}

/// The columns of the window exemplars (format 8 on).
pub const WINDOW_BEST_COLUMNS: [&str; 4] = [
    "best_total",
    "best_timestamp_ns",
    "best_profile_id",
    "best_profile_id_hi",
];

/// Writes a block's window totals as series are pushed, in bounded memory:
/// per resolution, one row per `(series, window)` holding a profile. Each
/// resolution's rows are written as row groups of that resolution only;
/// within one, rows follow `series_ref`, then window.
pub struct TotalsWriter {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
    resolutions: Vec<i64>,
    pending: Vec<Vec<WindowTotal>>,
    /// Reused: one series' profiles, each `(timestamp, id, total)`.
    profiles: Vec<WindowBest>,
    rows: u64,
}

impl TotalsWriter {
    /// A writer of window totals at `resolutions` (ns, finest first).
    pub fn new(resolutions: &[i64]) -> Result<Self, BlockError> {
        let (writer, schema) = resolution_writer([
            Field::new("total", DataType::Int64, false),
            Field::new("profiles", DataType::UInt64, false),
            Field::new(WINDOW_BEST_COLUMNS[0], DataType::Int64, false),
            Field::new(WINDOW_BEST_COLUMNS[1], DataType::Int64, false),
            Field::new(WINDOW_BEST_COLUMNS[2], DataType::UInt64, false),
            Field::new(WINDOW_BEST_COLUMNS[3], DataType::UInt64, false),
        ])?;
        Ok(Self {
            writer,
            schema,
            resolutions: resolutions.to_vec(),
            pending: resolutions.iter().map(|_| Vec::new()).collect(),
            profiles: Vec::new(),
            rows: 0,
        })
    }

    /// Adds the windows of one series, whose `profiles` are in time order;
    /// series must come in ascending `series_ref`. Consecutive rows of the
    /// same timestamp and id are one profile, as the `profiles` table reads
    /// them.
    pub fn push_series(
        &mut self,
        series_ref: u32,
        profiles: &[ProfileRow],
    ) -> Result<(), BlockError> {
        self.profiles.clear();
        for p in profiles {
            match self.profiles.last_mut() {
                Some(b) if (b.timestamp_ns, b.profile_id) == (p.timestamp_ns, p.profile_id) => {
                    b.total = b.total.saturating_add(p.total);
                }
                _ => self.profiles.push(WindowBest {
                    timestamp_ns: p.timestamp_ns,
                    profile_id: p.profile_id,
                    total: p.total,
                }),
            }
        }
        for i in 0..self.resolutions.len() {
            let r = self.resolutions[i];
            let rows = &mut self.pending[i];
            for p in &self.profiles {
                let start_ns = p.timestamp_ns.div_euclid(r) * r;
                match rows.last_mut() {
                    Some(w) if w.series_ref == series_ref && w.start_ns == start_ns => {
                        w.total = w.total.saturating_add(p.total);
                        w.profiles += 1;
                        if w.best.is_none_or(|b| p.beats(&b)) {
                            w.best = Some(*p);
                        }
                    }
                    _ => rows.push(WindowTotal {
                        series_ref,
                        resolution_ns: r,
                        start_ns,
                        total: p.total,
                        profiles: 1,
                        best: Some(*p),
                    }),
                }
            }
            if rows.len() >= SAMPLES_ROW_GROUP {
                self.write(i)?;
            }
        }
        Ok(())
    }

    /// Writes resolution `i`'s buffered rows as one row group.
    fn write(&mut self, i: usize) -> Result<(), BlockError> {
        let rows = std::mem::take(&mut self.pending[i]);
        if rows.is_empty() {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|w| w.resolution_ns),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|w| w.series_ref),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|w| w.start_ns),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|w| w.total))),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|w| w.profiles),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|w| w.best.map_or(0, |b| b.total)),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|w| w.best.map_or(0, |b| b.timestamp_ns)),
            )),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|w| w.best.map_or(0, |b| b.profile_id.lo)),
            )),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|w| w.best.map_or(0, |b| b.profile_id.hi)),
            )),
        ];
        self.writer
            .write(&RecordBatch::try_new(self.schema.clone(), columns)?)?;
        self.writer.flush()?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Writes what is buffered and closes the file: its bytes and rows.
    pub fn finish(mut self) -> Result<(Vec<u8>, u64), BlockError> {
        for i in 0..self.resolutions.len() {
            self.write(i)?;
        }
        let bytes = self.writer.into_inner()?;
        Ok((bytes, self.rows))
    }
}

/// Column `name` of a totals batch as an `A`.
fn typed<'a, A: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a A, BlockError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<A>())
        .ok_or_else(|| BlockError::Corrupt(format!("totals: {name} is missing or mistyped")))
}

/// Calls `f` for every row of `batches` of the window totals table (with
/// its exemplar when the batches hold [`WINDOW_BEST_COLUMNS`]).
pub fn group_window_totals(
    batches: &[RecordBatch],
    f: &mut dyn FnMut(WindowTotal) -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    for b in batches {
        let resolution = typed::<Int64Array>(b, "resolution_ns")?;
        let series = typed::<UInt32Array>(b, "series_ref")?;
        let start = typed::<Int64Array>(b, "timestamp_ns")?;
        let total = typed::<Int64Array>(b, "total")?;
        let profiles = typed::<UInt64Array>(b, "profiles")?;
        let best = match b.column_by_name(WINDOW_BEST_COLUMNS[0]) {
            Some(_) => Some((
                typed::<Int64Array>(b, WINDOW_BEST_COLUMNS[0])?,
                typed::<Int64Array>(b, WINDOW_BEST_COLUMNS[1])?,
                typed::<UInt64Array>(b, WINDOW_BEST_COLUMNS[2])?,
                typed::<UInt64Array>(b, WINDOW_BEST_COLUMNS[3])?,
            )),
            None => None,
        };
        for i in 0..b.num_rows() {
            f(WindowTotal {
                series_ref: series.value(i),
                resolution_ns: resolution.value(i),
                start_ns: start.value(i),
                total: total.value(i),
                profiles: profiles.value(i),
                best: best.map(|(total, t, lo, hi)| WindowBest {
                    timestamp_ns: t.value(i),
                    profile_id: ProfileId {
                        hi: hi.value(i),
                        lo: lo.value(i),
                    },
                    total: total.value(i),
                }),
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::read_parquet;

    fn row(t: i64, id: u64, total: i64) -> ProfileRow {
        ProfileRow {
            timestamp_ns: t,
            profile_id: ProfileId::from_key(id),
            total,
            stacks: Box::default(),
            values: Box::default(),
            spans: None,
        }
    }

    #[test]
    fn windows_sum_totals_count_profiles_and_keep_their_exemplar_per_resolution() {
        let mut w = TotalsWriter::new(&[10, 100]).unwrap();
        // Series 0: profiles at 1, 5 (two rows of one profile), 12, 150.
        w.push_series(
            0,
            &[
                row(1, 1, 3),
                row(5, 2, 4),
                row(5, 2, 1),
                row(12, 3, 7),
                row(150, 4, 2),
            ],
        )
        .unwrap();
        // Series 1: two profiles of one total; the earlier is the exemplar.
        w.push_series(1, &[row(95, 6, 10), row(99, 5, 10)]).unwrap();
        let (bytes, rows) = w.finish().unwrap();
        let batches = read_parquet(&bytes::Bytes::from(bytes)).unwrap();
        let mut got = Vec::new();
        group_window_totals(&batches, &mut |t| {
            let best = t.best.expect("exemplar columns");
            got.push((
                t.resolution_ns,
                t.series_ref,
                t.start_ns,
                t.total,
                t.profiles,
                (best.timestamp_ns, best.profile_id.key(), best.total),
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            vec![
                (10, 0, 0, 8, 2, (5, 2, 5)),
                (10, 0, 10, 7, 1, (12, 3, 7)),
                (10, 0, 150, 2, 1, (150, 4, 2)),
                (10, 1, 90, 20, 2, (95, 6, 10)),
                (100, 0, 0, 15, 3, (12, 3, 7)),
                (100, 0, 100, 2, 1, (150, 4, 2)),
                (100, 1, 0, 20, 2, (95, 6, 10)),
            ]
        );
        // Read without the exemplar columns: no exemplars.
        let plain: Vec<RecordBatch> = batches
            .iter()
            .map(|b| {
                let keep: Vec<usize> = (0..b.num_columns())
                    .filter(|&i| !b.schema().field(i).name().starts_with("best_"))
                    .collect();
                b.project(&keep).unwrap()
            })
            .collect();
        group_window_totals(&plain, &mut |t| {
            assert_eq!(t.best, None);
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, 7);
    }
}
