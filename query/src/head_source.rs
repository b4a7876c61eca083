//! [`Source`] over an in-memory [`Head`], and the same logic over any
//! symbol table and series (block slices use it, so both answer identically).

use ignis_storage::head::TraceId;
use ignis_storage::symbols::ImportMemo;
use ignis_storage::{Head, Labels, ProfileRow, Series, SymbolTable};

use crate::selector::matches_all;
use crate::source::{MergedStacks, ProfileTotal, Seen, Selection, Source, SpanTotal};

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
    for (_, row) in selected_rows(series, sel, seen) {
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

/// The rows of `series` a selection takes: matching series, in range, of
/// the selected profiles (all without a profile selector), not yet `seen`.
fn selected_rows<'a>(
    series: &'a [Series],
    sel: &'a Selection,
    seen: &'a mut Seen,
) -> impl Iterator<Item = (&'a Series, &'a ProfileRow)> + 'a {
    series
        .iter()
        .filter(|s| matches_all(&sel.matchers, &s.labels))
        .flat_map(|s| {
            s.profiles_in(sel.start_ns, sel.end_ns)
                .iter()
                .map(move |r| (s, r))
        })
        .filter(move |(_, r)| sel.keeps_profile(r.profile_id.key()))
        .filter(move |(s, r)| seen.first(s.fingerprint, r.timestamp_ns, r.profile_id.key()))
}

/// [`Source::profile_totals`] over `series`: each selected profile's total
/// (of the selected spans' samples with a span selector; of the stacks
/// `keep` accepts, when given). A total narrowed by spans or `keep` is
/// reported only when it is not zero.
pub(crate) fn series_profile_totals(
    series: &[Series],
    sel: &Selection,
    seen: &mut Seen,
    mut keep: Option<&mut dyn FnMut(u32) -> bool>,
    f: &mut dyn FnMut(&Labels, ProfileTotal),
) {
    for (s, row) in selected_rows(series, sel, seen) {
        let total = |value| ProfileTotal {
            timestamp_ns: row.timestamp_ns,
            profile_id: row.profile_id,
            value,
        };
        let value = match (&sel.spans, keep.as_mut()) {
            (None, None) => {
                f(&s.labels, total(row.total));
                continue;
            }
            (None, Some(keep)) => (row.stacks.iter().zip(row.values.iter()))
                .filter(|&(&st, _)| keep(st))
                .fold(0i64, |a, (_, &v)| a.saturating_add(v)),
            (Some(spans), mut keep) => spans
                .filter(row.spans.as_deref())
                .filter(|sp| keep.as_mut().is_none_or(|k| k(sp.stack)))
                .fold(0i64, |a, sp| a.saturating_add(sp.value)),
        };
        if value != 0 {
            f(&s.labels, total(value));
        }
    }
}

/// [`Source::span_totals`] over `series`: per selected profile, the sum of
/// each span's samples (those the selection's span selector keeps, every
/// span's without one), with a trace its samples name; spans of zero sum
/// are not reported.
pub(crate) fn series_span_totals(
    series: &[Series],
    sel: &Selection,
    seen: &mut Seen,
    f: &mut dyn FnMut(&Labels, SpanTotal),
) {
    for (s, row) in selected_rows(series, sel, seen) {
        // Span samples are sorted by (span, trace, stack): a span's are together.
        let mut current: Option<SpanTotal> = None;
        let kept = row
            .spans
            .iter()
            .flat_map(|sp| sp.iter())
            .filter(|sp| sp.span_id != 0 && sel.spans.as_ref().is_none_or(|k| k.keeps(sp)));
        for sp in kept {
            match current.as_mut() {
                Some(t) if t.span_id == sp.span_id => {
                    t.value = t.value.saturating_add(sp.value);
                    if sp.trace_id != TraceId::default() {
                        t.trace_id = sp.trace_id;
                    }
                }
                _ => {
                    if let Some(t) = current.take().filter(|t| t.value != 0) {
                        f(&s.labels, t);
                    }
                    current = Some(SpanTotal {
                        timestamp_ns: row.timestamp_ns,
                        profile_id: row.profile_id,
                        span_id: sp.span_id,
                        trace_id: sp.trace_id,
                        value: sp.value,
                    });
                }
            }
        }
        if let Some(t) = current.filter(|t| t.value != 0) {
            f(&s.labels, t);
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
    f: &mut dyn FnMut(&Labels, ProfileTotal),
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
    series_profile_totals(series, sel, seen, Some(&mut keep), f);
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
        f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        series_profile_totals(self.series(), sel, seen, None, f);
    }
}
