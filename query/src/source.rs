//! What a query reads from: the [`Source`] trait, the [`Selection`] it is asked
//! for, and [`MergedStacks`], the source-independent result of a stack merge.

use std::collections::HashMap;

use ignis_storage::{Labels, SymbolTable};

use crate::selector::Matcher;

/// Which series and time range a query covers.
#[derive(Debug, Clone)]
pub struct Selection {
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// Inclusive start, nanoseconds.
    pub start_ns: i64,
    /// Inclusive end, nanoseconds.
    pub end_ns: i64,
}

/// Stack values merged from any number of sources, with their own symbols.
#[derive(Debug, Default)]
pub struct MergedStacks {
    /// Symbols of the merged stacks.
    pub symbols: SymbolTable,
    /// Value per stack id of `symbols`.
    pub values: HashMap<u32, i64>,
}

impl MergedStacks {
    /// Sum of all values.
    pub fn total(&self) -> i64 {
        self.values.values().fold(0i64, |a, &v| a.saturating_add(v))
    }
}

/// Something that holds profiles: an ingester head, or (later) a set of blocks.
pub trait Source: Send + Sync {
    /// Label sets of the matching series that have a profile in range.
    fn series(&self, sel: &Selection) -> Vec<Labels>;
    /// Adds the stacks of every matching profile in range to `into`.
    fn merge_stacks(&self, sel: &Selection, into: &mut MergedStacks);
    /// Calls `f(labels, timestamp_ns, total)` for every matching profile in range.
    fn profile_totals(&self, sel: &Selection, f: &mut dyn FnMut(&Labels, i64, i64));
    /// The oldest and newest profile timestamps (ns), if it holds any profile.
    fn time_bounds(&self) -> Option<(i64, i64)>;
}
