//! Rollups: each series' stacks pre-merged per time window, at several
//! resolutions, so a flame graph over hours or days reads a few rows per
//! series and window instead of every profile (see `storage/FORMAT.md`).
//!
//! [`RollupWriter`] writes them with a block; [`RollupPlan`] splits a query's
//! range into the windows that lie wholly inside it (answered from the
//! rollups, coarsest first) and the edges that remain (read from `samples`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use super::BlockError;
use super::encode::{SAMPLES_ROW_GROUP, writer_props};
use crate::head::ProfileRow;

const MINUTE_NS: i64 = 60_000_000_000;

/// The window lengths (ns) a block's rollups are written at, finest first:
/// 1 minute, 10 minutes, 1 hour, 1 day. Each divides the next, so a range
/// splits into whole windows plus at most two sub-minute edges; SDKs push
/// every 10–15 s, so each level holds 4–24× fewer rows than the one below
/// (the day level pays off in the day blocks compaction writes).
pub const ROLLUP_RESOLUTIONS_NS: [i64; 4] = [
    MINUTE_NS,
    10 * MINUTE_NS,
    60 * MINUTE_NS,
    24 * 60 * MINUTE_NS,
];

/// Writes a block's rollup table as series are pushed, in bounded memory:
/// for each resolution, the rows of `(series, window, stack)` with the sum
/// of the stack's values over the series' profiles in the window. Each
/// resolution's rows are buffered apart and written as row groups of one
/// resolution only, so a read of one resolution skips the others' row
/// groups by their statistics; within a resolution, rows follow the order
/// series are pushed in (ascending `series_ref`), then window, then stack.
pub struct RollupWriter {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
    resolutions: Vec<i64>,
    pending: Vec<Pending>,
    sums: Vec<i64>,
    touched: Vec<u32>,
    rows: u64,
}

#[derive(Default)]
struct Pending {
    refs: Vec<u32>,
    starts: Vec<i64>,
    stacks: Vec<u32>,
    values: Vec<i64>,
}

/// A Parquet writer of a per-resolution table (rollups, window totals):
/// `(resolution_ns, series_ref, timestamp_ns)` then `rest`, one resolution
/// per row group.
pub(super) fn resolution_writer(
    rest: impl IntoIterator<Item = Field>,
) -> Result<(ArrowWriter<Vec<u8>>, SchemaRef), BlockError> {
    let mut fields = vec![
        Field::new("resolution_ns", DataType::Int64, false),
        Field::new("series_ref", DataType::UInt32, false),
        Field::new("timestamp_ns", DataType::Int64, false),
    ];
    fields.extend(rest);
    let schema = Arc::new(Schema::new(fields));
    let props = writer_props(&[], SAMPLES_ROW_GROUP)?;
    let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))?;
    Ok((writer, schema))
}

impl RollupWriter {
    /// A writer of rollups at `resolutions` (ns, finest first).
    pub fn new(resolutions: &[i64]) -> Result<Self, BlockError> {
        let (writer, schema) = resolution_writer([
            Field::new("stack_id", DataType::UInt32, false),
            Field::new("value", DataType::Int64, false),
        ])?;
        Ok(Self {
            writer,
            schema,
            resolutions: resolutions.to_vec(),
            pending: resolutions.iter().map(|_| Pending::default()).collect(),
            sums: Vec::new(),
            touched: Vec::new(),
            rows: 0,
        })
    }

    /// Adds the windows of one series, whose `profiles` are in time order
    /// and use stack ids below `stacks`; series must come in ascending
    /// `series_ref`.
    pub fn push_series(
        &mut self,
        series_ref: u32,
        profiles: &[ProfileRow],
        stacks: usize,
    ) -> Result<(), BlockError> {
        for i in 0..self.resolutions.len() {
            let r = self.resolutions[i];
            let mut rows = profiles.iter().peekable();
            while let Some(first) = rows.peek() {
                let window = first.timestamp_ns.div_euclid(r) * r;
                while let Some(row) = rows.next_if(|p| p.timestamp_ns.div_euclid(r) * r == window) {
                    for (&stack, &v) in row.stacks.iter().zip(row.values.iter()) {
                        let i = stack as usize;
                        if i >= stacks {
                            return Err(BlockError::Corrupt(format!(
                                "stack {stack} out of range ({stacks} stacks)"
                            )));
                        }
                        if i >= self.sums.len() {
                            self.sums.resize(stacks, 0);
                        }
                        if self.sums[i] == 0 {
                            self.touched.push(stack);
                        }
                        self.sums[i] = self.sums[i].saturating_add(v);
                    }
                }
                self.touched.sort_unstable();
                self.touched.dedup();
                let p = &mut self.pending[i];
                for &stack in &self.touched {
                    let slot = &mut self.sums[stack as usize];
                    // A stack whose values cancel out (or are all 0) adds nothing.
                    if *slot != 0 {
                        p.refs.push(series_ref);
                        p.starts.push(window);
                        p.stacks.push(stack);
                        p.values.push(*slot);
                    }
                    *slot = 0;
                }
                self.touched.clear();
            }
            if self.pending[i].refs.len() >= SAMPLES_ROW_GROUP {
                self.write(i)?;
            }
        }
        Ok(())
    }

    /// Writes resolution `i`'s buffered rows as one row group.
    fn write(&mut self, i: usize) -> Result<(), BlockError> {
        let p = std::mem::take(&mut self.pending[i]);
        if p.refs.is_empty() {
            return Ok(());
        }
        let n = p.refs.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![self.resolutions[i]; n])),
            Arc::new(UInt32Array::from(p.refs)),
            Arc::new(Int64Array::from(p.starts)),
            Arc::new(UInt32Array::from(p.stacks)),
            Arc::new(Int64Array::from(p.values)),
        ];
        self.writer
            .write(&RecordBatch::try_new(self.schema.clone(), columns)?)?;
        self.writer.flush()?;
        self.rows += n as u64;
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

/// Consecutive windows of one resolution: those starting at
/// `first_start_ns`, `first_start_ns + resolution_ns`, … `last_start_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRun {
    /// Window length, ns.
    pub resolution_ns: i64,
    /// Start of the first window.
    pub first_start_ns: i64,
    /// Start of the last window.
    pub last_start_ns: i64,
}

impl WindowRun {
    /// The inclusive time span the windows cover.
    pub fn span(&self) -> (i64, i64) {
        (
            self.first_start_ns,
            self.last_start_ns + (self.resolution_ns - 1),
        )
    }
}

/// How a range `[start, end]` (inclusive, ns) is answered from rollups:
/// whole windows, coarsest possible, and the edges left over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupPlan {
    /// Windows wholly inside the range, read from the rollup table.
    pub windows: Vec<WindowRun>,
    /// Inclusive ranges no window covers, read from `samples`.
    pub raw: Vec<(i64, i64)>,
}

impl RollupPlan {
    /// Splits `[start_ns, end_ns]` over `resolutions` (finest first).
    pub fn new(start_ns: i64, end_ns: i64, resolutions: &[i64]) -> Self {
        let mut plan = Self::default();
        plan.cover(start_ns, end_ns, resolutions);
        plan.windows.sort_by_key(|w| w.first_start_ns);
        plan.raw.sort_unstable();
        plan
    }

    /// The plans of `segments` (disjoint inclusive ranges) together.
    pub fn over(segments: &[(i64, i64)], resolutions: &[i64]) -> Self {
        let mut plan = Self::default();
        for &(lo, hi) in segments {
            plan.cover(lo, hi, resolutions);
        }
        plan.windows.sort_by_key(|w| w.first_start_ns);
        plan.raw.sort_unstable();
        plan
    }

    fn cover(&mut self, lo: i64, hi: i64, resolutions: &[i64]) {
        if lo > hi {
            return;
        }
        let Some((&r, finer)) = resolutions.split_last().filter(|(r, _)| **r > 0) else {
            self.raw.push((lo, hi));
            return;
        };
        // i128: ranges may reach the ends of i64.
        let (lo_w, hi_w, r_w) = (i128::from(lo), i128::from(hi), i128::from(r));
        let first = (lo_w + r_w - 1).div_euclid(r_w) * r_w;
        let end = (hi_w + 1).div_euclid(r_w) * r_w; // exclusive
        match (i64::try_from(first), i64::try_from(end - r_w)) {
            (Ok(first), Ok(last)) if first <= last => {
                self.windows.push(WindowRun {
                    resolution_ns: r,
                    first_start_ns: first,
                    last_start_ns: last,
                });
                if let Some(before) = first.checked_sub(1) {
                    self.cover(lo, before, finer);
                }
                if let Some(after) = last.checked_add(r) {
                    self.cover(after, hi, finer);
                }
            }
            _ => self.cover(lo, hi, finer),
        }
    }

    /// The window runs that meet `[lo, hi]`, found by binary search (runs
    /// are disjoint and in time order).
    pub fn windows_within(&self, lo: i64, hi: i64) -> &[WindowRun] {
        let a = self.windows.partition_point(|w| w.span().1 < lo);
        let b = self.windows.partition_point(|w| w.first_start_ns <= hi);
        &self.windows[a..b.max(a)]
    }

    /// True when no window is used (the whole range is raw).
    pub fn is_raw(&self) -> bool {
        self.windows.is_empty()
    }

    /// Whether `t` lies in a window of the plan.
    pub fn covers(&self, t: i64) -> bool {
        self.window_of(t).is_some()
    }

    /// The window of the plan that holds `t`: its inclusive span. Windows
    /// of a plan never overlap, so a window's start names it.
    pub fn window_of(&self, t: i64) -> Option<(i64, i64)> {
        let run = self.windows.iter().find(|w| {
            let (lo, hi) = w.span();
            (lo..=hi).contains(&t)
        })?;
        let r = run.resolution_ns;
        let start = run.first_start_ns + (t - run.first_start_ns).div_euclid(r) * r;
        Some((start, start + (r - 1)))
    }

    /// The windows of the plan that meet `[lo, hi]`, in time order:
    /// inclusive spans.
    pub fn windows_meeting(&self, lo: i64, hi: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.windows.iter().flat_map(move |run| {
            let r = run.resolution_ns;
            let (first, last) = (run.first_start_ns, run.last_start_ns);
            // i128: windows may reach the ends of i64.
            let k = |t: i64| (i128::from(t) - i128::from(first)).div_euclid(i128::from(r));
            let n = k(last);
            let (from, to) = (k(lo).max(0), k(hi).min(n));
            (from..=to).map(move |k| {
                let start = first + (k as i64) * r;
                (start, start + (r - 1))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = MINUTE_NS;
    const H: i64 = 60 * M;

    #[test]
    fn a_range_splits_into_whole_windows_and_two_edges() {
        let start = 5 * H - 90 * 1_000_000_000; // 4:58:30
        let end = 8 * H + 25 * M + 7; // 8:25:00.000000007
        let plan = RollupPlan::new(start, end, &ROLLUP_RESOLUTIONS_NS);
        assert_eq!(
            plan.raw,
            vec![(start, 4 * H + 59 * M - 1), (8 * H + 25 * M, end)]
        );
        let runs: Vec<_> = plan
            .windows
            .iter()
            .map(|w| (w.resolution_ns, w.first_start_ns, w.last_start_ns))
            .collect();
        assert_eq!(
            runs,
            vec![
                (M, 4 * H + 59 * M, 4 * H + 59 * M),
                (H, 5 * H, 7 * H),
                (10 * M, 8 * H, 8 * H + 10 * M),
                (M, 8 * H + 20 * M, 8 * H + 24 * M),
            ]
        );
        // Every instant is in exactly one window or edge.
        for t in (start..=end).step_by((7 * M + 13) as usize) {
            let raw = plan
                .raw
                .iter()
                .filter(|(a, b)| (*a..=*b).contains(&t))
                .count();
            let win = plan
                .windows
                .iter()
                .filter(|w| (w.span().0..=w.span().1).contains(&t))
                .count();
            assert_eq!(raw + win, 1, "t = {t}");
            if win == 1 {
                let (lo, hi) = plan.window_of(t).expect("in a window");
                assert!(lo <= t && t <= hi && plan.windows_meeting(t, t).eq([(lo, hi)]));
            } else {
                assert_eq!(plan.window_of(t), None);
            }
        }
        // 1 + 3 hours + 2 ten-minute windows + 5 minutes.
        assert_eq!(plan.windows_meeting(i64::MIN, i64::MAX).count(), 11);
        let met: Vec<_> = plan.windows_meeting(6 * H + 1, 8 * H + 5 * M).collect();
        assert_eq!(
            met,
            vec![
                (6 * H, 7 * H - 1),
                (7 * H, 8 * H - 1),
                (8 * H, 8 * H + 10 * M - 1)
            ]
        );
        assert_eq!(plan.window_of(6 * H + 7), Some((6 * H, 7 * H - 1)));
    }

    #[test]
    fn short_or_extreme_ranges_stay_raw_where_no_window_fits() {
        let plan = RollupPlan::new(10, 20, &ROLLUP_RESOLUTIONS_NS);
        assert!(plan.is_raw());
        assert_eq!(plan.raw, vec![(10, 20)]);
        let all = RollupPlan::new(i64::MIN, i64::MAX, &ROLLUP_RESOLUTIONS_NS);
        assert!(!all.is_raw());
        assert!(all.covers(0) && all.covers(H));
        assert_eq!(
            RollupPlan::new(H, H - 1, &ROLLUP_RESOLUTIONS_NS),
            RollupPlan::default()
        );
        // Aligned ranges need no edge.
        let aligned = RollupPlan::new(2 * H, 4 * H - 1, &ROLLUP_RESOLUTIONS_NS);
        assert!(aligned.raw.is_empty());
        assert_eq!(aligned.windows.len(), 1);
    }
}
