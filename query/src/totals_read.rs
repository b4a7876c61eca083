//! Reads of a block's window totals: the [`BlockSlice`] a time series
//! (`SelectSeries`) needs, one row per series and window wholly inside a
//! bucket from the totals table, and the profiles of the buckets' edges
//! from `profiles`.

use ignis_storage::block::{
    BlockError, BlockMeta, RollupPlan, TOTALS_FILE, WINDOW_BEST_COLUMNS, WindowRun,
    group_profile_rows, group_window_totals,
};

use crate::block_read::{BlockReader, BlockTables, ReadStats, id_columns, pusher, slice_series};
use crate::block_scan::{Exact, RowFilter};
use crate::block_slice::{BlockSlice, SliceWindow};

/// Raw spans read one scan each up to this many; more are read in one scan
/// over their hull, the rows between them dropped as batches stream in.
const RAW_SCANS: usize = 4;

/// Whether a window of `resolution` starting at `t` is one of `runs`'
/// (disjoint, sorted by start).
fn starts_window(runs: &[WindowRun], resolution: i64, t: i64) -> bool {
    let i = runs.partition_point(|w| w.first_start_ns <= t);
    i > 0 && {
        let w = &runs[i - 1];
        w.resolution_ns == resolution
            && t <= w.last_start_ns
            && (t - w.first_start_ns) % w.resolution_ns == 0
    }
}

impl BlockReader {
    /// Reads the profile totals of the series `refs` as `plan` splits a
    /// time series' buckets ([`crate::Scope::totals_segments`]): the
    /// plan's windows from the totals table (one row per series and
    /// window), its raw spans' profiles from `profiles`. The slice answers
    /// the time series it was read for exactly as the whole block would;
    /// the block must have window totals ([`BlockMeta::has_totals`]),
    /// and with `exemplars` (read each window's exemplar) window
    /// exemplars ([`BlockMeta::has_window_exemplars`]).
    pub async fn read_totals_slice(
        &self,
        meta: &BlockMeta,
        tables: &BlockTables,
        plan: &RollupPlan,
        (refs, exemplars): (&[u32], bool),
    ) -> Result<(BlockSlice, ReadStats), BlockError> {
        if exemplars && !meta.has_window_exemplars() {
            return Err(BlockError::Read(format!(
                "block {} (format {}) has no window exemplars",
                meta.ulid, meta.format_version
            )));
        }
        let bounds = (meta.stats.profiles > 0).then_some((meta.min_time_ns, meta.max_time_ns));
        let mut stats = ReadStats::default();
        let Some((min_t, max_t)) = bounds.filter(|_| !refs.is_empty()) else {
            let empty = BlockSlice::new(tables.symbols.clone(), Vec::new(), bounds);
            return Ok((empty, stats));
        };
        let (wanted, position, mut series) = slice_series(meta, tables, refs)?;
        let runs = plan.windows_within(min_t, max_t);
        let mut windows = Vec::new();
        let spans: Vec<(i64, i64)> = runs.iter().map(WindowRun::span).collect();
        if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
            // One scan of every resolution: the rows of windows the plan
            // does not use are dropped as they are grouped.
            let coarsest = runs.iter().map(|w| w.resolution_ns).max().unwrap_or(1);
            let from = first
                .first_start_ns
                .max(min_t.div_euclid(coarsest) * coarsest);
            let to = last.last_start_ns.min(max_t);
            let mut columns = vec![
                "resolution_ns",
                "series_ref",
                "timestamp_ns",
                "total",
                "profiles",
            ];
            if exemplars {
                columns.extend(WINDOW_BEST_COLUMNS);
            }
            let batches = self
                .scan_counted(
                    meta,
                    TOTALS_FILE,
                    &columns,
                    &RowFilter::new(refs, from, to),
                    &Exact::new(&wanted, from, to),
                    &mut stats,
                )
                .await?;
            group_window_totals(&batches, &mut |w| {
                if starts_window(runs, w.resolution_ns, w.start_ns) {
                    let s = position
                        .get(w.series_ref as usize)
                        .copied()
                        .flatten()
                        .ok_or_else(|| {
                            BlockError::Corrupt(format!(
                                "totals reference unknown series {}",
                                w.series_ref
                            ))
                        })?;
                    windows.push(SliceWindow {
                        series: s,
                        start_ns: w.start_ns,
                        total: w.total,
                        profiles: w.profiles,
                        best: w.best,
                    });
                }
                Ok(())
            })?;
        }
        let a = plan.raw.partition_point(|&(_, hi)| hi < min_t);
        let b = plan.raw.partition_point(|&(lo, _)| lo <= max_t);
        let raw: Vec<(i64, i64)> = plan.raw[a..b.max(a)]
            .iter()
            .map(|&(lo, hi)| (lo.max(min_t), hi.min(max_t)))
            .filter(|(lo, hi)| lo <= hi)
            .collect();
        let scans: Vec<(i64, i64)> = match (raw.first(), raw.last()) {
            _ if raw.len() <= RAW_SCANS => raw.clone(),
            (Some(a), Some(b)) => vec![(a.0, b.1)],
            _ => Vec::new(),
        };
        let with_ids = meta.format_version >= 2;
        // Whole ids where exemplars show them.
        let columns = [
            &["series_ref", "timestamp_ns", "total"][..],
            &id_columns(meta, exemplars),
        ]
        .concat();
        for (lo, hi) in scans {
            let filter = RowFilter::new(refs, lo, hi);
            let batches = self
                .scan_counted(
                    meta,
                    "profiles.parquet",
                    &columns,
                    &filter,
                    &Exact {
                        times: Some(&raw),
                        ..Exact::new(&wanted, lo, hi)
                    },
                    &mut stats,
                )
                .await?;
            group_profile_rows(&batches, with_ids, &mut pusher(&position, &mut series))?;
        }
        let slice = BlockSlice::new(tables.symbols.clone(), series, bounds)
            .with_rollup_spans(spans)
            .with_windows(windows);
        Ok((slice, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_scan::in_spans;

    #[test]
    fn spans_and_window_starts_are_found_by_search() {
        let spans = [(0, 9), (20, 29), (40, 40)];
        let hits: Vec<i64> = (-1..45).filter(|&t| in_spans(&spans, t)).collect();
        let want: Vec<i64> = (0..10).chain(20..30).chain([40]).collect();
        assert_eq!(hits, want);
        let runs = [
            WindowRun {
                resolution_ns: 10,
                first_start_ns: 100,
                last_start_ns: 130,
            },
            WindowRun {
                resolution_ns: 10,
                first_start_ns: 200,
                last_start_ns: 200,
            },
        ];
        let starts: Vec<i64> = (90..220).filter(|&t| starts_window(&runs, 10, t)).collect();
        assert_eq!(starts, vec![100, 110, 120, 130, 200]);
        assert!(!starts_window(&runs, 100, 100), "another resolution");
    }
}
