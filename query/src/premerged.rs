//! [`Premerged`]: merges computed before a query runs (by the
//! query-frontend, from its results cache and per-interval merges), handed
//! to [`Engine::merge`](crate::Engine::merge) instead of merging sources.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ignis_storage::Head;
use ignis_storage::head::{ProfileRow, Series};

use crate::source::{MergedStacks, Selection};

/// Merged stacks by selection, taken in the order a query asks for them.
#[derive(Default)]
pub struct Premerged {
    queue: Mutex<VecDeque<(Selection, MergedStacks)>>,
    /// Set when a merge was asked for that was not prepared.
    missed: AtomicBool,
}

impl Premerged {
    /// Merges of `selections`, in the order the query makes them.
    pub fn new(merges: Vec<(Selection, MergedStacks)>) -> Self {
        Self {
            queue: Mutex::new(merges.into()),
            missed: AtomicBool::new(false),
        }
    }

    /// The merge of `sel`, when it is the next one prepared (otherwise the
    /// miss is remembered: see [`Premerged::complete`]).
    pub fn take(&self, sel: &Selection) -> Option<MergedStacks> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.front().is_some_and(|(s, _)| same_selection(s, sel)) {
            q.pop_front().map(|(_, m)| m)
        } else {
            self.missed.store(true, Ordering::Relaxed);
            None
        }
    }

    /// True when the query took every prepared merge and asked for no other:
    /// its answer rests on them alone.
    pub fn complete(&self) -> bool {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.is_empty() && !self.missed.load(Ordering::Relaxed)
    }
}

/// True when `a` and `b` select the same (matchers, range, neither
/// narrowed to spans or profiles).
pub fn same_selection(a: &Selection, b: &Selection) -> bool {
    a.start_ns == b.start_ns
        && a.end_ns == b.end_ns
        && !a.narrowed()
        && !b.narrowed()
        && a.matchers.len() == b.matchers.len()
        && a.matchers
            .iter()
            .zip(&b.matchers)
            .all(|(x, y)| x.name == y.name && x.op == y.op && x.value == y.value)
}

impl MergedStacks {
    /// Adds `other`'s stacks and values to these.
    pub fn absorb(&mut self, other: &MergedStacks) {
        let mut memo = ignis_storage::symbols::ImportMemo::default();
        for (&stack, &value) in &other.values {
            let id = self.symbols.import_stack(&other.symbols, stack, &mut memo);
            let v = self.values.entry(id).or_insert(0);
            *v = v.saturating_add(value);
        }
    }

    /// These merged stacks as bytes (the wire encoding of a head holding
    /// them as one row), for a cache.
    pub fn encode(&self) -> Result<Vec<u8>, ignis_storage::RecordError> {
        let mut pairs: Vec<(u32, i64)> = self.values.iter().map(|(&s, &v)| (s, v)).collect();
        pairs.sort_unstable();
        let row = ProfileRow {
            timestamp_ns: 0,
            profile_id: ignis_storage::ProfileId::default(),
            total: self.total(),
            stacks: pairs.iter().map(|p| p.0).collect(),
            values: pairs.iter().map(|p| p.1).collect(),
            spans: None,
        };
        let labels = ignis_storage::Labels::new();
        let head = Head::from_parts(
            self.symbols.clone(),
            vec![Series {
                fingerprint: labels.fingerprint(),
                labels,
                profiles: vec![row],
            }],
        );
        ignis_storage::encode_head(&head)
    }

    /// Merged stacks from [`MergedStacks::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ignis_storage::RecordError> {
        let head = ignis_storage::decode_head(bytes)?;
        let mut out = MergedStacks {
            symbols: head.symbols().clone(),
            values: Default::default(),
        };
        for series in head.series() {
            for row in &series.profiles {
                for (&s, &v) in row.stacks.iter().zip(row.values.iter()) {
                    let e = out.values.entry(s).or_insert(0);
                    *e = e.saturating_add(v);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flamegraph::tests::merged;
    use crate::selector::parse_selector;

    fn flat(m: &MergedStacks) -> Vec<(Vec<String>, i64)> {
        let mut out: Vec<(Vec<String>, i64)> = m
            .values
            .iter()
            .map(|(&s, &v)| {
                let mut names = Vec::new();
                m.symbols.frame_names(s, &mut names);
                (names, v)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn absorb_sums_by_frames_and_encoding_round_trips() {
        let mut a = merged(&[(&["main", "work"], 3), (&["main"], 1)]);
        let b = merged(&[(&["main", "idle"], 5), (&["main", "work"], 2)]);
        a.absorb(&b);
        let c = merged(&[
            (&["main", "work"], 5),
            (&["main"], 1),
            (&["main", "idle"], 5),
        ]);
        assert_eq!(flat(&a), flat(&c));
        assert_eq!(a.total(), 11);
        let back = MergedStacks::decode(&a.encode().unwrap()).unwrap();
        assert_eq!(flat(&back), flat(&a));
        assert!(MergedStacks::decode(b"garbage").is_err());
    }

    #[test]
    fn premerged_hands_out_in_order_and_only_for_the_same_selection() {
        let sel = |s: &str, start| Selection::new(parse_selector(s).unwrap(), start, 10);
        let p = Premerged::new(vec![
            (sel("{a=\"1\"}", 0), merged(&[(&["x"], 1)])),
            (sel("{a=\"2\"}", 0), merged(&[(&["y"], 2)])),
        ]);
        assert_eq!(p.take(&sel("{a=\"1\"}", 0)).unwrap().total(), 1);
        assert!(!p.complete());
        assert_eq!(p.take(&sel("{a=\"2\"}", 0)).unwrap().total(), 2);
        assert!(p.complete());
        let p = Premerged::new(vec![(sel("{a=\"1\"}", 0), merged(&[(&["x"], 1)]))]);
        assert!(p.take(&sel("{a=\"1\"}", 1)).is_none(), "another range");
        assert!(p.take(&sel("{a=\"2\"}", 0)).is_none(), "another selector");
        assert_eq!(p.take(&sel("{a=\"1\"}", 0)).unwrap().total(), 1);
        assert!(!p.complete(), "it missed twice");
    }
}
