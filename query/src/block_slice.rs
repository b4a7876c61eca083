//! [`BlockSlice`]: the part of a block one query needs, read without
//! decoding the rest (see `store_gateway` in `ignis-actors`).

use std::sync::Arc;

use ignis_storage::{Labels, Series, SymbolTable};

use crate::head_source::{merge_series_stacks, select_series, series_profile_totals};
use crate::source::{MergedStacks, Seen, Selection, Source};

/// Some series of a block with their rows in a time range, over the block's
/// whole symbol table (shared, not copied). It answers the selections it was
/// read for exactly as the whole decoded block would: the same code runs
/// over the same rows, series order and stack ids.
#[derive(Debug)]
pub struct BlockSlice {
    symbols: Arc<SymbolTable>,
    series: Vec<Series>,
    bounds: Option<(i64, i64)>,
}

impl BlockSlice {
    /// A slice of `series` (in the block's series order) over `symbols`;
    /// `bounds` are the whole block's oldest and newest profile timestamps.
    pub fn new(symbols: Arc<SymbolTable>, series: Vec<Series>, bounds: Option<(i64, i64)>) -> Self {
        Self {
            symbols,
            series,
            bounds,
        }
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
        f: &mut dyn FnMut(&Labels, i64, i64),
    ) {
        series_profile_totals(&self.series, sel, seen, None, f);
    }

    /// The whole block's bounds: a slice answers `GetProfileStats` as the block does.
    fn time_bounds(&self) -> Option<(i64, i64)> {
        self.bounds
    }

    fn rows(&self) -> Option<(&SymbolTable, &[Series])> {
        Some((&self.symbols, &self.series))
    }
}
