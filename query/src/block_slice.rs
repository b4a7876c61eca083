//! [`BlockSlice`]: the part of a block one query needs, read without
//! decoding the rest (see `store_gateway` in `ignis-actors`).

use std::collections::HashSet;
use std::sync::Arc;

use ignis_storage::block::{RollupPlan, WindowBest};
use ignis_storage::{Labels, Series, SymbolTable};

use crate::head_source::{merge_series_stacks, select_series, series_profile_totals};
use crate::selector::matches_all;
use crate::source::{MergedStacks, ProfileTotal, Seen, Selection, Source};
use crate::timeseries::{SeriesBuilder, SeriesPlan};

/// Some series of a block with their rows in a time range, over the block's
/// whole symbol table (shared, not copied). It answers the selections it was
/// read for exactly as the whole decoded block would: the same code runs
/// over the same rows, series order and stack ids.
///
/// A slice read from a block's rollups holds, within its
/// [`rollup_spans`](Source::rollup_spans), one pre-merged row per series and
/// window (profile id 0) instead of the profiles: it answers stack merges
/// over the ranges it was read for, not per-profile totals.
#[derive(Debug)]
pub struct BlockSlice {
    symbols: Arc<SymbolTable>,
    series: Vec<Series>,
    bounds: Option<(i64, i64)>,
    rollup_spans: Vec<(i64, i64)>,
    cells: Option<(RollupPlan, Arc<RollupCells>)>,
    windows: Vec<SliceWindow>,
}

/// A window of a block's totals table held by a slice: its series (index
/// into the slice's series), start, summed totals and profile count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceWindow {
    /// Index of the series in the slice.
    pub series: usize,
    /// Window start, ns.
    pub start_ns: i64,
    /// Sum of the window's profile totals.
    pub total: i64,
    /// Profiles in the window.
    pub profiles: u64,
    /// Its exemplar, when the block's totals name them and it was asked for.
    pub best: Option<WindowBest>,
}

/// The `(series, window)` cells of a block's rollup read that its rollup
/// rows do not answer, when other blocks hold replicas of its profiles
/// there: another block's rollups count them, or (`raw`) the block's own
/// profiles are read, each counted once across the blocks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollupCells {
    /// `(series fingerprint, window start)` of the cells whose rollup rows
    /// are left out.
    pub excluded: HashSet<(u64, i64)>,
    /// The excluded cells whose profiles are read one by one.
    pub raw: HashSet<(u64, i64)>,
    /// Starts of the windows where every cell is excluded: their rollup
    /// rows are not read at all.
    pub skipped_windows: HashSet<i64>,
}

impl BlockSlice {
    /// A slice of `series` (in the block's series order) over `symbols`;
    /// `bounds` are the whole block's oldest and newest profile timestamps.
    pub fn new(symbols: Arc<SymbolTable>, series: Vec<Series>, bounds: Option<(i64, i64)>) -> Self {
        Self {
            symbols,
            series,
            bounds,
            rollup_spans: Vec::new(),
            cells: None,
            windows: Vec::new(),
        }
    }

    /// The same slice answering time series from `windows` (a block's
    /// window totals) within its rollup spans, and from its rows elsewhere.
    pub fn with_windows(mut self, windows: Vec<SliceWindow>) -> Self {
        self.windows = windows;
        self
    }

    /// The same slice, read by `plan` without the rollup rows of `cells`.
    pub fn with_rollup_cells(mut self, plan: RollupPlan, cells: Arc<RollupCells>) -> Self {
        self.cells = Some((plan, cells));
        self
    }

    /// The same slice, whose rows within `spans` are rollup windows.
    pub fn with_rollup_spans(mut self, spans: Vec<(i64, i64)>) -> Self {
        self.rollup_spans = spans;
        self
    }

    /// The series read, with their rows.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// Profile rows held.
    pub fn profiles(&self) -> usize {
        self.series.iter().map(|s| s.profiles.len()).sum()
    }

    /// `(stack, value)` pairs held.
    pub fn samples(&self) -> usize {
        self.series
            .iter()
            .flat_map(|s| &s.profiles)
            .map(|r| r.stacks.len())
            .sum()
    }
}

impl Source for BlockSlice {
    fn series(&self, sel: &Selection) -> Vec<Labels> {
        select_series(&self.series, sel)
    }

    fn merge_stacks(&self, sel: &Selection, seen: &mut Seen, into: &mut MergedStacks) {
        merge_series_stacks(&self.symbols, &self.series, sel, seen, into);
    }

    fn profile_totals(
        &self,
        sel: &Selection,
        seen: &mut Seen,
        f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        series_profile_totals(&self.series, sel, seen, None, f);
    }

    /// Its rows' totals (the profiles at the buckets' edges) and its
    /// windows' (pre-summed, not counted through `seen`: the profiles they
    /// hold were claimed where another source overlaps them).
    fn series_totals(&self, plan: &SeriesPlan, seen: &mut Seen, into: &mut SeriesBuilder) {
        let mut add = |labels: &Labels, t: ProfileTotal| into.add(labels, t);
        if plan.call_site.is_empty() {
            self.profile_totals(&plan.sel, seen, &mut add);
        } else {
            self.profile_call_site_totals(&plan.sel, &plan.call_site, seen, &mut add);
        }
        let sel = &plan.sel;
        for w in &self.windows {
            let Some(s) = self.series.get(w.series) else {
                continue;
            };
            if (sel.start_ns..=sel.end_ns).contains(&w.start_ns)
                && matches_all(&sel.matchers, &s.labels)
            {
                into.add_window(&s.labels, w);
            }
        }
    }

    /// The whole block's bounds: a slice answers `GetProfileStats` as the block does.
    fn time_bounds(&self) -> Option<(i64, i64)> {
        self.bounds
    }

    fn rollup_spans(&self) -> &[(i64, i64)] {
        &self.rollup_spans
    }

    fn rolls_up(&self, fingerprint: u64, t: i64) -> bool {
        self.rollup_spans.iter().any(|&(a, b)| (a..=b).contains(&t))
            && self.cells.as_ref().is_none_or(|(plan, cells)| {
                plan.window_of(t)
                    .is_none_or(|(start, _)| !cells.excluded.contains(&(fingerprint, start)))
            })
    }

    fn rows(&self) -> Option<(&SymbolTable, &[Series])> {
        Some((&self.symbols, &self.series))
    }

    fn held_bytes(&self) -> u64 {
        ignis_storage::head::approx_rows_bytes(&self.symbols, &self.series)
            + (self.windows.len() * std::mem::size_of::<SliceWindow>()) as u64
    }
}

/// A source answering from rollups, with the profiles those rollups hold
/// (`(series fingerprint, timestamp_ns, profile_id)`): claimed before any
/// source merges, so another source holding one of them (a replica, or a
/// late copy in an ingester) does not count it again.
pub struct Claimed {
    inner: Arc<dyn Source>,
    keys: Vec<(u64, i64, u64)>,
}

impl Claimed {
    /// `inner` claiming `keys`.
    pub fn new(inner: Arc<dyn Source>, keys: Vec<(u64, i64, u64)>) -> Self {
        Self { inner, keys }
    }
}

impl Source for Claimed {
    fn series(&self, sel: &Selection) -> Vec<Labels> {
        self.inner.series(sel)
    }

    fn merge_stacks(&self, sel: &Selection, seen: &mut Seen, into: &mut MergedStacks) {
        self.inner.merge_stacks(sel, seen, into);
    }

    fn profile_totals(
        &self,
        sel: &Selection,
        seen: &mut Seen,
        f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        self.inner.profile_totals(sel, seen, f);
    }

    fn series_totals(&self, plan: &SeriesPlan, seen: &mut Seen, into: &mut SeriesBuilder) {
        self.inner.series_totals(plan, seen, into);
    }

    fn time_bounds(&self) -> Option<(i64, i64)> {
        self.inner.time_bounds()
    }

    fn rollup_spans(&self) -> &[(i64, i64)] {
        self.inner.rollup_spans()
    }

    fn rolls_up(&self, fingerprint: u64, t: i64) -> bool {
        self.inner.rolls_up(fingerprint, t)
    }

    fn claim(&self, seen: &mut Seen) {
        self.inner.claim(seen);
        for &(fingerprint, ts, id) in &self.keys {
            seen.first(fingerprint, ts, id);
        }
    }

    fn rows(&self) -> Option<(&SymbolTable, &[Series])> {
        self.inner.rows()
    }
}
