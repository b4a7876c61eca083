//! What a query reads from: the [`Source`] trait, the [`Selection`] it is asked
//! for, and [`MergedStacks`], the source-independent result of a stack merge.

use std::collections::{HashMap, HashSet};

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

/// Profiles already counted while reading several sources: a replica (same
/// series, timestamp and profile id) of a counted profile is skipped, so data
/// held by several ingesters, or by an ingester and a block, counts once.
#[derive(Debug, Default)]
pub struct Seen(HashSet<(u64, i64, u64)>);

impl Seen {
    /// True the first time a profile is seen; rows without an id (0) always count.
    pub fn first(&mut self, fingerprint: u64, timestamp_ns: i64, profile_id: u64) -> bool {
        profile_id == 0 || self.0.insert((fingerprint, timestamp_ns, profile_id))
    }
}

/// Something that holds profiles: an ingester head, or (later) a set of blocks.
pub trait Source: Send + Sync {
    /// Label sets of the matching series that have a profile in range.
    fn series(&self, sel: &Selection) -> Vec<Labels>;
    /// Adds the stacks of every matching profile in range not yet `seen` to `into`.
    fn merge_stacks(&self, sel: &Selection, seen: &mut Seen, into: &mut MergedStacks);
    /// Calls `f(labels, timestamp_ns, total)` for every matching profile in
    /// range not yet `seen`.
    fn profile_totals(
        &self,
        sel: &Selection,
        seen: &mut Seen,
        f: &mut dyn FnMut(&Labels, i64, i64),
    );
    /// The oldest and newest profile timestamps (ns), if it holds any profile.
    fn time_bounds(&self) -> Option<(i64, i64)>;
}
