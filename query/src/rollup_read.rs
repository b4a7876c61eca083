//! Reads of a block's rollups: the [`BlockSlice`] a stack merge needs from
//! pre-merged windows and raw edges ([`RollupPlan`]), and the keys of the
//! profiles those windows hold ([`BlockReader::profile_keys`]: what replicas
//! compare and claim, so each profile counts once).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ignis_storage::ProfileRow;
use ignis_storage::block::{
    BlockError, BlockMeta, ROLLUPS_FILE, RollupPlan, group_sample_rows, row_keys,
};

use crate::block_read::{BlockReader, BlockTables, ReadStats, id_columns, pusher, slice_series};
use crate::block_scan::{Exact, RowFilter, scan};
use crate::block_slice::{BlockSlice, RollupCells};

/// A profile's key, as replicas share it: `(series fingerprint,
/// timestamp_ns, profile_id)`.
pub type ProfileKey = (u64, i64, u64);

/// The columns of `samples` a stack merge reads.
fn sample_columns(meta: &BlockMeta) -> Vec<&'static str> {
    [
        &["series_ref", "timestamp_ns", "stack_id", "value"][..],
        &id_columns(meta, false),
    ]
    .concat()
}

/// Joins overlapping or touching inclusive spans, in time order.
fn joined(spans: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut spans = spans.to_vec();
    spans.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
    for (lo, hi) in spans {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

impl BlockReader {
    /// Reads the stacks of the series `refs` as `plan` splits a scope's
    /// segments (see [`RollupPlan`]): one pre-merged row per series and
    /// window from the rollup table, and the profiles of the edges from
    /// `samples`. The slice answers stack merges over the scope's ranges
    /// exactly as the whole block would; the block must have rollups
    /// ([`BlockMeta::has_rollups`]).
    ///
    /// With `cells` (a block read beside replicas of its profiles), the
    /// excluded `(series, window)` cells' rollup rows are left out, and the
    /// profiles of its `raw` cells are read from `samples` instead.
    pub async fn read_rollup_slice(
        &self,
        meta: &BlockMeta,
        tables: &BlockTables,
        plan: &RollupPlan,
        refs: &[u32],
        cells: Option<Arc<RollupCells>>,
    ) -> Result<(BlockSlice, ReadStats), BlockError> {
        let bounds = (meta.stats.profiles > 0).then_some((meta.min_time_ns, meta.max_time_ns));
        let mut stats = ReadStats::default();
        if refs.is_empty() {
            let empty = BlockSlice::new(tables.symbols.clone(), Vec::new(), bounds);
            return Ok((empty, stats));
        }
        let (wanted, position, mut series) = slice_series(meta, tables, refs)?;
        let fingerprint = |s: u32| tables.series.get(s as usize).map(|s| s.fingerprint);
        let in_block = |(lo, hi): (i64, i64)| {
            bounds
                .map(|(a, b)| (lo.max(a), hi.min(b)))
                .filter(|(lo, hi)| lo <= hi)
        };
        let mut spans = Vec::new();
        for run in &plan.windows {
            let Some((lo, hi)) = in_block(run.span()) else {
                continue;
            };
            spans.push(run.span());
            // Windows that start before the block's first profile hold it
            // too; those left to replicas are not read.
            let r = run.resolution_ns;
            let first = lo.div_euclid(r) * r;
            let (mut from, mut to) = (first.max(run.first_start_ns), hi);
            if let Some(cells) = &cells {
                let kept: Vec<(i64, i64)> = plan
                    .windows_meeting(from, to)
                    .filter(|(start, _)| !cells.skipped_windows.contains(start))
                    .collect();
                let (Some(a), Some(b)) = (kept.first(), kept.last()) else {
                    continue;
                };
                (from, to) = (a.0.max(from), b.1.min(to));
            }
            let filter = RowFilter {
                resolution_ns: Some(r),
                ..RowFilter::new(refs, from, to)
            };
            let columns = [
                "resolution_ns",
                "series_ref",
                "timestamp_ns",
                "stack_id",
                "value",
            ];
            let exact = Exact {
                resolution: Some(r),
                ..Exact::new(&wanted, from, to)
            };
            let batches = self
                .scan_counted(meta, ROLLUPS_FILE, &columns, &filter, &exact, &mut stats)
                .await?;
            let mut push = pusher(&position, &mut series);
            group_sample_rows(&batches, false, &mut |s, row: ProfileRow| {
                let cell = (fingerprint(s).unwrap_or_default(), row.timestamp_ns);
                if cells.as_ref().is_some_and(|c| c.excluded.contains(&cell)) {
                    return Ok(());
                }
                push(s, row)
            })?;
        }
        let columns = sample_columns(meta);
        let with_ids = meta.format_version >= 2;
        // Spans of `samples` to read, and of which series (`None`: all).
        type RawRead = ((i64, i64), Option<Vec<u32>>);
        let mut raw_reads: Vec<RawRead> = plan.raw.iter().map(|&edge| (edge, None)).collect();
        if let Some(cells) = &cells {
            // The raw cells' profiles, read window by window.
            let by_fingerprint: HashMap<u64, u32> = refs
                .iter()
                .filter_map(|&r| Some((fingerprint(r)?, r)))
                .collect();
            let mut windows: BTreeMap<(i64, i64), Vec<u32>> = BTreeMap::new();
            for &(f, start) in &cells.raw {
                if let (Some(&r), Some(window)) = (by_fingerprint.get(&f), plan.window_of(start)) {
                    windows.entry(window).or_default().push(r);
                }
            }
            for (window, mut refs) in windows {
                refs.sort_unstable();
                raw_reads.push((window, Some(refs)));
            }
        }
        for (span, only) in raw_reads {
            let Some((lo, hi)) = in_block(span) else {
                continue;
            };
            let (these, mask) = match &only {
                Some(only) => {
                    let mut mask = vec![false; wanted.len()];
                    for &r in only {
                        mask[r as usize] = true;
                    }
                    (only.as_slice(), mask)
                }
                None => (refs, wanted.clone()),
            };
            let filter = RowFilter::new(these, lo, hi);
            let batches = self
                .scan_counted(
                    meta,
                    "samples.parquet",
                    &columns,
                    &filter,
                    &Exact::new(&mask, lo, hi),
                    &mut stats,
                )
                .await?;
            group_sample_rows(&batches, with_ids, &mut pusher(&position, &mut series))?;
        }
        // Windows and edges were read in turn: put each series' rows back in time order.
        for s in &mut series {
            s.profiles.sort_by_key(|p| p.timestamp_ns);
        }
        let mut slice =
            BlockSlice::new(tables.symbols.clone(), series, bounds).with_rollup_spans(spans);
        if let Some(cells) = cells {
            slice = slice.with_rollup_cells(plan.clone(), cells);
        }
        Ok((slice, stats))
    }

    /// The keys of the profiles of the series `refs` in `spans` (inclusive
    /// time ranges), from `profiles.parquet`, sorted (so by series, then
    /// time).
    pub async fn profile_keys(
        &self,
        meta: &BlockMeta,
        tables: &BlockTables,
        spans: &[(i64, i64)],
        refs: &[u32],
    ) -> Result<Vec<ProfileKey>, BlockError> {
        let (wanted, _, _) = slice_series(meta, tables, refs)?;
        let mut keys = Vec::new();
        for (lo, hi) in joined(spans) {
            let filter = RowFilter::new(refs, lo, hi);
            let columns = ["series_ref", "timestamp_ns", "profile_id"];
            let (batches, _) = scan(
                &self.ctx,
                &self.bucket,
                meta,
                "profiles.parquet",
                &columns,
                &filter,
                &Exact::new(&wanted, lo, hi),
            )
            .await?;
            for b in batches {
                let key_of = row_keys(&b, "profiles", true)?;
                for i in 0..b.num_rows() {
                    let (series, t, id) = key_of(i);
                    let fingerprint = tables
                        .series
                        .get(series as usize)
                        .map(|s| s.fingerprint)
                        .ok_or_else(|| BlockError::Corrupt("profiles: unknown series".into()))?;
                    keys.push((fingerprint, t, id));
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::joined;

    #[test]
    fn spans_join_where_they_overlap_or_touch() {
        assert_eq!(
            joined(&[(10, 20), (0, 5), (21, 30), (40, 50), (45, 46)]),
            vec![(0, 5), (10, 30), (40, 50)]
        );
        assert!(joined(&[]).is_empty());
    }
}
