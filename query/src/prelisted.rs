//! [`PreListed`]: the series a listing (label names or values, series,
//! profile types) finds, gathered in parts before the query runs (cached
//! intervals and the rest, read apart by the query-frontend) and handed to
//! the query as its only source.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ignis_storage::Labels;

use crate::premerged::same_selection;
use crate::selector::matches_all;
use crate::source::{MergedStacks, ProfileTotal, Seen, Selection, Source};

/// The label sets of the series one selection finds, taken once.
pub struct PreListed {
    planned: Mutex<Option<(Selection, Vec<Labels>)>>,
    /// Set when the query asked for anything not prepared.
    missed: AtomicBool,
}

impl PreListed {
    /// The series `sel` finds (the union of its parts' label sets).
    pub fn new(sel: Selection, mut labels: Vec<Labels>) -> Self {
        labels.sort();
        labels.dedup();
        Self {
            planned: Mutex::new(Some((sel, labels))),
            missed: AtomicBool::new(false),
        }
    }

    /// True when the query asked for the prepared selection and nothing
    /// else: its answer rests on it alone.
    pub fn complete(&self) -> bool {
        let planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        planned.is_none() && !self.missed.load(Ordering::Relaxed)
    }

    fn miss(&self) {
        self.missed.store(true, Ordering::Relaxed);
    }
}

impl Source for PreListed {
    fn series(&self, sel: &Selection) -> Vec<Labels> {
        let mut planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        match planned.take() {
            Some((p, labels)) if same_selection(&p, sel) => labels
                .into_iter()
                .filter(|l| matches_all(&sel.matchers, l))
                .collect(),
            other => {
                *planned = other;
                self.miss();
                Vec::new()
            }
        }
    }

    fn merge_stacks(&self, _sel: &Selection, _seen: &mut Seen, _into: &mut MergedStacks) {
        self.miss();
    }

    fn profile_totals(
        &self,
        _sel: &Selection,
        _seen: &mut Seen,
        _f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        self.miss();
    }

    fn time_bounds(&self) -> Option<(i64, i64)> {
        self.miss();
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::Matcher;

    #[test]
    fn answers_its_selection_once_and_notes_anything_else() {
        let sel = Selection::new(vec![Matcher::equal("pod", "a")], 1, 9);
        let labels = vec![
            Labels::from_pairs([("pod", "a")]),
            Labels::from_pairs([("pod", "a")]),
        ];
        let p = PreListed::new(sel.clone(), labels);
        assert!(!p.complete());
        assert_eq!(p.series(&sel), [Labels::from_pairs([("pod", "a")])]);
        assert!(p.complete());
        assert!(p.series(&sel).is_empty());
        assert!(!p.complete(), "asked twice");
        let other = PreListed::new(sel.clone(), Vec::new());
        assert!(other.series(&Selection::new(vec![], 1, 9)).is_empty());
        assert!(!other.complete());
    }
}
