//! [`Scope`]: what a query will read, known before any block is read.
//!
//! A query is a closure over an [`Engine`]; which series and time ranges it
//! selects is decided inside it. [`Scope::record`] runs it once over a
//! source that holds nothing and notes every [`Selection`] it is asked
//! about, so the store-gateway reads only those series and rows of each
//! block. Queries never choose a selection from the data they read (each
//! request names its selections), so the dry run sees them all.

use std::sync::Mutex;

use ignis_storage::Labels;

use crate::engine::{Engine, QueryLimits};
use crate::error::QueryError;
use crate::selector::matches_all;
use crate::source::{MergedStacks, ProfileTotal, Seen, Selection, Source, SpanSelector};

/// The most buckets a time series may have for blocks to answer it from
/// their window totals ([`Scope::totals_segments`]): a month of 1-minute steps.
pub const MAX_TOTALS_SEGMENTS: usize = 50_000;

/// The selections a query reads, and whether it needs stacks.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Every selection a source was asked about.
    pub selections: Vec<Selection>,
    /// True when some selection merges stacks (`samples`); otherwise series
    /// and profile totals (`profiles`) are enough.
    pub stacks: bool,
    /// True when some selection needs each profile apart (totals per
    /// profile, for time series): pre-merged rollups cannot answer it.
    pub per_profile: bool,
    /// True when blocks may answer from their rollups (a local query; a
    /// peer's fetch copies rows and never does).
    pub rollups: bool,
    /// True when every span sample of the rows is read (a compaction
    /// copies them all), not only those a span selector keeps.
    pub all_spans: bool,
    /// The `SelectSeries` plans among the selections, in order.
    pub series: Vec<crate::timeseries::SeriesPlan>,
}

/// A source that holds nothing and records what it is asked.
#[derive(Default)]
struct Recorder(Mutex<Scope>);

impl Recorder {
    fn note(&self, sel: &Selection, stacks: bool, per_profile: bool) {
        let mut scope = self.0.lock().unwrap_or_else(|e| e.into_inner());
        scope.stacks |= stacks;
        scope.per_profile |= per_profile;
        scope.selections.push(sel.clone());
    }
}

impl Source for Recorder {
    fn series(&self, sel: &Selection) -> Vec<Labels> {
        self.note(sel, false, false);
        Vec::new()
    }

    fn merge_stacks(&self, sel: &Selection, _seen: &mut Seen, _into: &mut MergedStacks) {
        self.note(sel, true, false);
    }

    fn profile_totals(
        &self,
        sel: &Selection,
        _seen: &mut Seen,
        _f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        self.note(sel, false, true);
    }

    fn profile_call_site_totals(
        &self,
        sel: &Selection,
        _call_site: &[String],
        _seen: &mut Seen,
        _f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        self.note(sel, true, true);
    }

    fn span_totals(
        &self,
        sel: &Selection,
        _seen: &mut Seen,
        _f: &mut dyn FnMut(&Labels, crate::source::SpanTotal),
    ) {
        self.note(sel, false, true);
    }

    fn series_totals(
        &self,
        plan: &crate::timeseries::SeriesPlan,
        _seen: &mut Seen,
        _into: &mut crate::timeseries::SeriesBuilder,
    ) {
        self.note(&plan.sel, !plan.call_site.is_empty(), true);
        let mut scope = self.0.lock().unwrap_or_else(|e| e.into_inner());
        scope.series.push(plan.clone());
    }

    fn time_bounds(&self) -> Option<(i64, i64)> {
        None
    }
}

impl Scope {
    /// The query's series plans when it only buckets series (every
    /// selection is a `SelectSeries` one): the query-frontend may then have
    /// parts of its range bucketed apart and add them up.
    pub fn series_only(&self) -> Option<&[crate::timeseries::SeriesPlan]> {
        (!self.series.is_empty() && self.series.len() == self.selections.len())
            .then_some(self.series.as_slice())
    }

    /// Runs `query` over no data and returns the selections it made; a
    /// query that fails (bad selector, bad range …) fails here the same way,
    /// before anything is read.
    pub fn record<R>(
        limits: &QueryLimits,
        query: impl FnOnce(&Engine<'_>) -> Result<R, QueryError>,
    ) -> Result<Self, QueryError> {
        let recorder = Recorder::default();
        let sources: [&dyn Source; 1] = [&recorder];
        query(&Engine::new(&sources, limits))?;
        let mut scope = recorder.0.into_inner().unwrap_or_else(|e| e.into_inner());
        scope.rollups = true;
        Ok(scope)
    }

    /// The time segments (inclusive ns, ascending) over which blocks may
    /// answer this scope from their rollups, when it only merges stacks (no
    /// per-profile totals, no span or profile selector): every selection's range cut at
    /// every other's ends, so a window wholly inside a segment is wholly
    /// inside or wholly outside each selection (a diff's two ranges too).
    pub fn rollup_segments(&self) -> Option<Vec<(i64, i64)>> {
        if !self.rollups || !self.stacks || self.per_profile || self.selections.is_empty() {
            return None;
        }
        if self.selections.iter().any(Selection::narrowed) {
            return None;
        }
        // Boundaries as the first instant of a segment (i128: ends may be i64::MAX).
        let cuts: Vec<i128> = self
            .selections
            .iter()
            .flat_map(|s| [i128::from(s.start_ns), i128::from(s.end_ns) + 1])
            .collect();
        Some(self.segments_between(cuts))
    }

    /// True when a series plan of the scope names exemplars: blocks answer
    /// it from window totals only if theirs name them too
    /// ([`ignis_storage::block::BlockMeta::has_window_exemplars`]).
    pub fn series_exemplars(&self) -> bool {
        self.series.iter().any(|p| p.exemplars)
    }

    /// The time segments (inclusive ns, ascending) over which blocks may
    /// answer this scope from their window totals, when it only buckets
    /// profile totals (`SelectSeries` without call site, span or profile
    /// selector; with exemplars, blocks whose totals name them, see
    /// [`Scope::series_exemplars`]): every selection's range cut at its own and
    /// the others' ends and bucket edges, so a window wholly inside a
    /// segment is wholly inside one bucket of each series plan. `None` too
    /// when the buckets are more than [`MAX_TOTALS_SEGMENTS`] (steps so
    /// short that profiles are cheaper).
    pub fn totals_segments(&self) -> Option<Vec<(i64, i64)>> {
        let plans = self.series_only()?;
        if !self.rollups || self.stacks {
            return None;
        }
        let plain = |p: &crate::timeseries::SeriesPlan| p.call_site.is_empty() && !p.sel.narrowed();
        if !plans.iter().all(plain) {
            return None;
        }
        // Boundaries as the first instant of a segment (i128: ends may be
        // i64::MAX). A bucket `(e − step, e]` (ms) starts at `e − step + 1` ms.
        let mut cuts: Vec<i128> = Vec::new();
        for p in plans {
            let (lo, hi) = (i128::from(p.sel.start_ns), i128::from(p.sel.end_ns) + 1);
            cuts.extend([lo, hi]);
            let step = i128::from(p.step_ms.max(1));
            let origin = i128::from(p.start_ms) - step;
            let ms = 1_000_000i128;
            let first = (lo.div_euclid(ms) - origin).div_euclid(step);
            let last = ((hi - 1).div_euclid(ms) - origin).div_euclid(step) + 1;
            if last - first > MAX_TOTALS_SEGMENTS as i128 {
                return None;
            }
            for k in first..=last {
                let edge = (origin + k * step + 1) * ms;
                if lo < edge && edge < hi {
                    cuts.push(edge);
                }
            }
        }
        Some(self.segments_between(cuts))
    }

    /// The segments between consecutive `cuts` (first instants, i128: ends
    /// may be i64::MAX) that lie inside some selection's range.
    fn segments_between(&self, mut cuts: Vec<i128>) -> Vec<(i64, i64)> {
        cuts.sort_unstable();
        cuts.dedup();
        let inside = |lo: i128, hi: i128| {
            self.selections
                .iter()
                .any(|s| i128::from(s.start_ns) <= lo && hi <= i128::from(s.end_ns))
        };
        cuts.windows(2)
            .filter(|w| inside(w[0], w[1] - 1))
            .filter_map(|w| Some((i64::try_from(w[0]).ok()?, i64::try_from(w[1] - 1).ok()?)))
            .collect()
    }

    /// Every series with stacks in `[start_ns, end_ns]` (a peer's fetch,
    /// which forwards whole slices of data).
    pub fn everything(start_ns: i64, end_ns: i64) -> Self {
        Self {
            selections: vec![Selection::new(Vec::new(), start_ns, end_ns)],
            stacks: true,
            per_profile: true,
            rollups: false,
            all_spans: false,
            series: Vec::new(),
        }
    }

    /// Every row of every series in `[start_ns, end_ns]`, with all its span
    /// samples (a compaction's read).
    pub fn all_rows(start_ns: i64, end_ns: i64) -> Self {
        Self {
            all_spans: true,
            ..Self::everything(start_ns, end_ns)
        }
    }

    /// True when the query only lists series (label names and values,
    /// series, profile types): no stacks, no profile totals (time series
    /// read them too), no span or profile selector, so a block's series
    /// table may answer it.
    pub fn labels_only(&self) -> bool {
        !self.is_empty()
            && !self.stacks
            && !self.per_profile
            && self.selections.iter().all(|s| !s.narrowed())
    }

    /// True when no series is needed (e.g. `GetProfileStats`, which blocks
    /// answer from their meta).
    pub fn is_empty(&self) -> bool {
        self.selections.is_empty()
    }

    /// The smallest range covering every selection's, if any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        self.selections.iter().fold(None, |acc, s| {
            Some(acc.map_or((s.start_ns, s.end_ns), |(a, b): (i64, i64)| {
                (a.min(s.start_ns), b.max(s.end_ns))
            }))
        })
    }

    /// True when some selection's matchers accept a series with `labels`.
    pub fn wants(&self, labels: &Labels) -> bool {
        self.selections
            .iter()
            .any(|s| matches_all(&s.matchers, labels))
    }

    /// The spans and traces any selection keeps, or `None` when no
    /// selection has a span or trace selector (span samples are then never
    /// needed).
    pub fn span_selector(&self) -> Option<SpanSelector> {
        let sels: Vec<&SpanSelector> = self
            .selections
            .iter()
            .filter_map(|s| s.spans.as_ref())
            .collect();
        (!sels.is_empty()).then(|| {
            SpanSelector::from_ids(
                sels.iter().flat_map(|s| s.ids()),
                sels.iter().flat_map(|s| s.trace_ids()),
            )
            .with_every_span(sels.iter().any(|s| s.keeps_every_span()))
        })
    }
}

#[cfg(test)]
mod tests {
    use ignis_storage::proto::querier::v1 as q;

    use super::*;

    const PT: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

    fn stacktraces(selector: &str, start: i64, end: i64) -> q::SelectMergeStacktracesRequest {
        q::SelectMergeStacktracesRequest {
            profile_type_id: PT.into(),
            label_selector: selector.into(),
            start,
            end,
            ..Default::default()
        }
    }

    #[test]
    fn a_dry_run_records_each_selection_of_a_query() {
        let limits = QueryLimits::default();
        let scope = Scope::record(&limits, |e| {
            e.select_merge_stacktraces(&stacktraces("{service_name=\"a\"}", 1_000, 2_000))
        })
        .unwrap();
        assert!(scope.stacks);
        assert_eq!(scope.selections.len(), 1);
        assert_eq!(scope.time_range(), Some((1_000_000_000, 2_000_999_999)));
        let labels = |svc: &str| {
            Labels::from_pairs([
                ("service_name", svc),
                (ignis_storage::names::PROFILE_TYPE, PT),
            ])
        };
        assert!(scope.wants(&labels("a")));
        assert!(!scope.wants(&labels("b")));
        assert_eq!(scope.span_selector(), None);

        // Both sides of a diff, with the union of their ranges.
        let diff = Scope::record(&limits, |e| {
            e.diff(&q::DiffRequest {
                left: Some(stacktraces("{service_name=\"a\"}", 1_000, 2_000)),
                right: Some(q::SelectMergeStacktracesRequest {
                    span_selector: vec!["0100000000000000".into()],
                    ..stacktraces("{service_name=\"b\"}", 5_000, 6_000)
                }),
            })
        })
        .unwrap();
        assert!(diff.wants(&labels("a")) && diff.wants(&labels("b")));
        assert_eq!(diff.time_range(), Some((1_000_000_000, 6_000_999_999)));
        assert_eq!(diff.span_selector(), Some(SpanSelector::from_ids([1], [])));
        // A span selector keeps every block on its profiles.
        assert_eq!(diff.rollup_segments(), None);
        // Without one, the two ranges cut each other into three segments.
        let overlapping = Scope::record(&limits, |e| {
            e.diff(&q::DiffRequest {
                left: Some(stacktraces("{service_name=\"a\"}", 1_000, 2_000)),
                right: Some(stacktraces("{service_name=\"b\"}", 1_500, 3_000)),
            })
        })
        .unwrap();
        assert_eq!(
            overlapping.rollup_segments(),
            Some(vec![
                (1_000_000_000, 1_499_999_999),
                (1_500_000_000, 2_000_999_999),
                (2_001_000_000, 3_000_999_999),
            ])
        );

        // Series and totals need no stacks; profile stats need no series.
        let series = Scope::record(&limits, |e| {
            e.select_series(&q::SelectSeriesRequest {
                profile_type_id: PT.into(),
                label_selector: "{}".into(),
                start: 1,
                end: 2,
                step: 1.0,
                ..Default::default()
            })
        })
        .unwrap();
        assert!(!series.stacks && !series.is_empty());
        assert_eq!(series.rollup_segments(), None);
        assert!(
            Scope::record(&limits, |e| Ok(e.profile_stats()))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_query_that_fails_fails_before_reading() {
        let limits = QueryLimits::default();
        let err = Scope::record(&limits, |e| {
            e.select_merge_stacktraces(&stacktraces("{service_name=", 1, 2))
        })
        .unwrap_err();
        assert!(err.to_string().contains("parse"), "{err}");
    }
}
