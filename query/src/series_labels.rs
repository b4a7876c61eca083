//! A block's answer to a query that asks only which series have profiles in
//! range (label names and values, series lists, profile types), from its
//! series table alone when the block lies wholly inside the query's range.
//!
//! Every series of a block's table holds at least one of its profiles (a
//! block is written from series that have rows), so when the block's whole
//! time range lies inside a selection's, the series its matchers accept are
//! exactly the answer: no profile needs to be read. A month of label values
//! then reads a few hundred series labels per block instead of every
//! profile's timestamp.

use ignis_storage::Labels;

use crate::scope::Scope;
use crate::selector::matches_all;
use crate::source::{MergedStacks, ProfileTotal, Seen, Selection, Source};

/// The series of one block that a labels-only scope may ask about, and the
/// block's time bounds.
#[derive(Debug)]
pub struct SeriesLabels {
    labels: Vec<Labels>,
    bounds: (i64, i64),
}

impl SeriesLabels {
    /// True when a block whose profiles lie in `bounds` (inclusive, ns)
    /// answers `scope` from its series table alone: the scope only lists
    /// series ([`Scope::labels_only`]) and each selection's range holds the
    /// block wholly or not at all. Otherwise its profiles must be read.
    pub fn answers(scope: &Scope, bounds: (i64, i64)) -> bool {
        scope.labels_only()
            && scope
                .selections
                .iter()
                .all(|s| holds(s, bounds) || misses(s, bounds))
    }

    /// The answer of a block whose profiles lie in `bounds` and whose
    /// series table holds `labels` (the series a scope wants), for a scope
    /// it [`SeriesLabels::answers`].
    pub fn new(labels: Vec<Labels>, bounds: (i64, i64)) -> Self {
        Self { labels, bounds }
    }
}

fn holds(sel: &Selection, (lo, hi): (i64, i64)) -> bool {
    sel.start_ns <= lo && hi <= sel.end_ns
}

fn misses(sel: &Selection, (lo, hi): (i64, i64)) -> bool {
    hi < sel.start_ns || sel.end_ns < lo
}

impl Source for SeriesLabels {
    /// The series `sel` matches, when `sel` holds the block (built only
    /// for scopes whose selections hold it or miss it).
    fn series(&self, sel: &Selection) -> Vec<Labels> {
        if !holds(sel, self.bounds) {
            debug_assert!(misses(sel, self.bounds), "a selection cutting the block");
            return Vec::new();
        }
        self.labels
            .iter()
            .filter(|l| matches_all(&sel.matchers, l))
            .cloned()
            .collect()
    }

    /// Never asked: a labels-only scope merges no stacks.
    fn merge_stacks(&self, _sel: &Selection, _seen: &mut Seen, _into: &mut MergedStacks) {
        debug_assert!(false, "a labels-only source asked for stacks");
    }

    /// Never asked: a labels-only scope reads no profile totals.
    fn profile_totals(
        &self,
        _sel: &Selection,
        _seen: &mut Seen,
        _f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        debug_assert!(false, "a labels-only source asked for profile totals");
    }

    fn time_bounds(&self) -> Option<(i64, i64)> {
        Some(self.bounds)
    }

    fn held_bytes(&self) -> u64 {
        self.labels
            .iter()
            .map(|l| 64 + l.iter().map(|(k, v)| 48 + k.len() + v.len()).sum::<usize>() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::Matcher;

    fn scope(sels: &[(i64, i64)], stacks: bool) -> Scope {
        Scope {
            selections: sels
                .iter()
                .map(|&(a, b)| Selection::new(vec![Matcher::equal("pod", "a")], a, b))
                .collect(),
            stacks,
            ..Scope::default()
        }
    }

    #[test]
    fn answers_only_for_blocks_each_selection_holds_or_misses() {
        let labels = vec![
            Labels::from_pairs([("pod", "a")]),
            Labels::from_pairs([("pod", "b")]),
        ];
        let block = (100, 200);
        assert!(!SeriesLabels::answers(&scope(&[(50, 250)], true), block));
        for cutting in [(150, 250), (50, 150), (120, 180)] {
            assert!(
                !SeriesLabels::answers(&scope(&[cutting], false), block),
                "{cutting:?}"
            );
        }
        assert!(SeriesLabels::answers(
            &scope(&[(100, 200), (300, 400)], false),
            block
        ));
        let s = SeriesLabels::new(labels, block);
        let sels = scope(&[(100, 200), (300, 400)], false).selections;
        assert_eq!(s.series(&sels[0]), [Labels::from_pairs([("pod", "a")])]);
        assert!(s.series(&sels[1]).is_empty());
    }
}
