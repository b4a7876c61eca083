//! [`Source`] over an in-memory [`Head`], and the same logic over any
//! symbol table and series (block slices use it, so both answer identically).

use ignis_storage::symbols::ImportMemo;
use ignis_storage::{Head, Labels, Series, SymbolTable};

use crate::selector::matches_all;
use crate::source::{MergedStacks, Seen, Selection, Source};

/// [`Source::series`] over `series`.
pub(crate) fn select_series(series: &[Series], sel: &Selection) -> Vec<Labels> {
    series
        .iter()
        .filter(|s| matches_all(&sel.matchers, &s.labels))
        .filter(|s| !s.profiles_in(sel.start_ns, sel.end_ns).is_empty())
        .map(|s| s.labels.clone())
        .collect()
}

/// [`Source::merge_stacks`] over `series`, whose stack ids are `symbols`'.
pub(crate) fn merge_series_stacks(
    symbols: &SymbolTable,
    series: &[Series],
    sel: &Selection,
    seen: &mut Seen,
    into: &mut MergedStacks,
) {
    // Aggregate by stack id first (dense), then copy each distinct stack's
    // symbols into the result once.
    let mut sums: Vec<i64> = Vec::new();
    let mut touched = false;
    for s in series {
        if !matches_all(&sel.matchers, &s.labels) {
            continue;
        }
        for row in s.profiles_in(sel.start_ns, sel.end_ns) {
            if !seen.first(s.fingerprint, row.timestamp_ns, row.profile_id) {
                continue;
            }
            if sel.spans.is_some() && row.spans.is_none() {
                continue;
            }
            if !touched {
                sums = vec![0; symbols.stacks.len()];
                touched = true;
            }
            let mut add = |stack: u32, v: i64| {
                if let Some(slot) = sums.get_mut(stack as usize) {
                    *slot = slot.saturating_add(v);
                }
            };
            match &sel.spans {
                None => {
                    for (&stack, &v) in row.stacks.iter().zip(row.values.iter()) {
                        add(stack, v);
                    }
                }
                Some(spans) => {
                    for s in spans.filter(row.spans.as_deref()) {
                        add(s.stack, s.value);
                    }
                }
            }
        }
    }
    let mut memo = ImportMemo::default();
    for (stack, &v) in sums.iter().enumerate() {
        if v == 0 {
            continue;
        }
        let id = into.symbols.import_stack(symbols, stack as u32, &mut memo);
        let slot = into.values.entry(id).or_insert(0);
        *slot = slot.saturating_add(v);
    }
}

/// [`Source::profile_totals`] over `series`.
pub(crate) fn series_profile_totals(
    series: &[Series],
    sel: &Selection,
    seen: &mut Seen,
    f: &mut dyn FnMut(&Labels, i64, i64),
) {
    for s in series {
        if !matches_all(&sel.matchers, &s.labels) {
            continue;
        }
        for row in s.profiles_in(sel.start_ns, sel.end_ns) {
            if !seen.first(s.fingerprint, row.timestamp_ns, row.profile_id) {
                continue;
            }
            match &sel.spans {
                None => f(&s.labels, row.timestamp_ns, row.total),
                Some(spans) => {
                    let total = spans
                        .filter(row.spans.as_deref())
                        .fold(0i64, |a, s| a.saturating_add(s.value));
                    if total != 0 {
                        f(&s.labels, row.timestamp_ns, total);
                    }
                }
            }
        }
    }
}

/// [`Source::profile_call_site_totals`] over `series` and their `symbols`.
pub(crate) fn series_call_site_totals(
    symbols: &SymbolTable,
    series: &[Series],
    sel: &Selection,
    call_site: &[String],
    seen: &mut Seen,
    f: &mut dyn FnMut(&Labels, i64, i64),
) {
    // Whether a stack is under the call site, resolved once per stack.
    let mut under: std::collections::HashMap<u32, bool> = std::collections::HashMap::new();
    let mut frames = Vec::new();
    let mut keep = |stack: u32| {
        *under.entry(stack).or_insert_with(|| {
            symbols.frame_names(stack, &mut frames);
            crate::source::starts_with_call_site(&frames, call_site)
        })
    };
    for s in series {
        if !matches_all(&sel.matchers, &s.labels) {
            continue;
        }
        for row in s.profiles_in(sel.start_ns, sel.end_ns) {
            if !seen.first(s.fingerprint, row.timestamp_ns, row.profile_id) {
                continue;
            }
            let total = match &sel.spans {
                None => row
                    .stacks
                    .iter()
                    .zip(row.values.iter())
                    .filter(|&(&st, _)| keep(st))
                    .fold(0i64, |a, (_, &v)| a.saturating_add(v)),
                Some(spans) => spans
                    .filter(row.spans.as_deref())
                    .filter(|s| keep(s.stack))
                    .fold(0i64, |a, s| a.saturating_add(s.value)),
            };
            if total != 0 {
                f(&s.labels, row.timestamp_ns, total);
            }
        }
    }
}

impl Source for Head {
    fn series(&self, sel: &Selection) -> Vec<Labels> {
        select_series(self.series(), sel)
    }

    fn merge_stacks(&self, sel: &Selection, seen: &mut Seen, into: &mut MergedStacks) {
        merge_series_stacks(self.symbols(), self.series(), sel, seen, into);
    }

    fn time_bounds(&self) -> Option<(i64, i64)> {
        let s = self.stats();
        s.min_time_ns.zip(s.max_time_ns)
    }

    fn rows(&self) -> Option<(&SymbolTable, &[Series])> {
        Some((self.symbols(), self.series()))
    }

    fn profile_totals(
        &self,
        sel: &Selection,
        seen: &mut Seen,
        f: &mut dyn FnMut(&Labels, i64, i64),
    ) {
        series_profile_totals(self.series(), sel, seen, f);
    }
}
