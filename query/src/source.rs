//! What a query reads from: the [`Source`] trait, the [`Selection`] it is asked
//! for, and [`MergedStacks`], the source-independent result of a stack merge.

use std::collections::{HashMap, HashSet};

use ignis_storage::head::{SpanIdError, SpanSample, TraceId, parse_span_id, parse_trace_id};
use ignis_storage::{Labels, Series, SymbolTable};

use crate::error::QueryError;
use crate::selector::Matcher;

/// The spans or traces a query keeps (`span_selector`, `trace_id_selector`):
/// only samples attributed to one of them count. An empty selector keeps nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanSelector {
    spans: HashSet<u64>,
    traces: HashSet<TraceId>,
    /// Keeps every sample that names a span (a span heatmap).
    every_span: bool,
}

impl SpanSelector {
    /// Parses span ids (16 hex characters each, read as little-endian `u64`).
    pub fn parse(ids: &[String]) -> Result<Self, QueryError> {
        Ok(Self {
            spans: parse_ids(ids, "span_selector", parse_span_id)?,
            ..Self::default()
        })
    }

    /// Parses trace ids (32 hex characters each).
    pub fn parse_traces(ids: &[String]) -> Result<Self, QueryError> {
        Ok(Self {
            traces: parse_ids(ids, "trace_id_selector", parse_trace_id)?,
            ..Self::default()
        })
    }

    /// A selector of exactly these spans and traces.
    pub fn from_ids(
        spans: impl IntoIterator<Item = u64>,
        traces: impl IntoIterator<Item = TraceId>,
    ) -> Self {
        Self {
            spans: spans.into_iter().collect(),
            traces: traces.into_iter().collect(),
            every_span: false,
        }
    }

    /// The selector of every sample that names a span.
    pub fn every_span() -> Self {
        Self {
            every_span: true,
            ..Self::default()
        }
    }

    /// This selector, also keeping every sample that names a span when
    /// `every_span` is set.
    pub fn with_every_span(mut self, every_span: bool) -> Self {
        self.every_span |= every_span;
        self
    }

    /// True when it keeps every sample that names a span.
    pub fn keeps_every_span(&self) -> bool {
        self.every_span
    }

    /// True when only span ids decide what it keeps (no trace ids, not
    /// every span), so a read may prune by them.
    pub fn by_span_ids_only(&self) -> bool {
        !self.every_span && self.traces.is_empty()
    }

    /// The selected span ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.spans.iter().copied()
    }

    /// The selected trace ids, in no particular order.
    pub fn trace_ids(&self) -> impl Iterator<Item = TraceId> + '_ {
        self.traces.iter().copied()
    }

    /// True when it selects no sample.
    pub fn is_empty(&self) -> bool {
        !self.every_span && self.spans.is_empty() && self.traces.is_empty()
    }

    /// True when the span sample `s` is selected: its span or its trace is.
    pub fn keeps(&self, s: &SpanSample) -> bool {
        self.keeps_ids(s.span_id, &s.trace_id)
    }

    /// True when a sample of span `span_id` (0: none) and trace `trace_id`
    /// (all zero: none) is selected.
    pub fn keeps_ids(&self, span_id: u64, trace_id: &TraceId) -> bool {
        (span_id != 0 && (self.every_span || self.spans.contains(&span_id)))
            || (*trace_id != TraceId::default() && self.traces.contains(trace_id))
    }

    /// The selected samples of a row's span samples.
    pub fn filter<'a>(
        &'a self,
        spans: Option<&'a [SpanSample]>,
    ) -> impl Iterator<Item = &'a SpanSample> + 'a {
        spans.unwrap_or_default().iter().filter(|s| self.keeps(s))
    }
}

/// The ids of a selector field (`field`: its name, for the error).
fn parse_ids<T: std::hash::Hash + Eq>(
    ids: &[String],
    field: &str,
    parse: fn(&str) -> Result<T, SpanIdError>,
) -> Result<HashSet<T>, QueryError> {
    ids.iter()
        .map(|s| parse(s).map_err(|e| QueryError::invalid(format!("invalid {field}: {e}"))))
        .collect()
}

/// The profiles a query keeps (`profile_id_selector`): only their samples
/// count. An empty selector keeps nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileSelector(HashSet<u64>);

impl ProfileSelector {
    /// Parses profile ids (UUIDs, [`ignis_storage::ProfileId`]); profiles
    /// are matched by their key (the low 64 bits), as replicas are.
    pub fn parse(ids: &[String]) -> Result<Self, QueryError> {
        let mut out = HashSet::new();
        for s in ids {
            let id = ignis_storage::ProfileId::parse(s)
                .map_err(|e| QueryError::invalid(format!("invalid profile_id_selector: {e}")))?;
            if id.key() != 0 {
                out.insert(id.key());
            }
        }
        Ok(Self(out))
    }

    /// A selector of exactly `ids`.
    pub fn from_ids(ids: impl IntoIterator<Item = u64>) -> Self {
        Self(ids.into_iter().collect())
    }

    /// The selected profiles' keys, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().copied()
    }

    /// True when the profile with key `key` is selected.
    pub fn contains(&self, key: u64) -> bool {
        self.0.contains(&key)
    }
}

/// Which series and time range a query covers.
#[derive(Debug, Clone)]
pub struct Selection {
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// Inclusive start, nanoseconds.
    pub start_ns: i64,
    /// Inclusive end, nanoseconds.
    pub end_ns: i64,
    /// When set, only the samples of these spans count.
    pub spans: Option<SpanSelector>,
    /// When set, only these profiles count.
    pub profiles: Option<ProfileSelector>,
}

impl Selection {
    /// The selection of the series `matchers` pick in `[start_ns, end_ns]`,
    /// every profile and sample of them.
    pub fn new(matchers: Vec<Matcher>, start_ns: i64, end_ns: i64) -> Self {
        Self {
            matchers,
            start_ns,
            end_ns,
            spans: None,
            profiles: None,
        }
    }

    /// True when it keeps only some profiles or samples of its series
    /// (a span or profile selector): pre-merged data cannot answer it.
    pub fn narrowed(&self) -> bool {
        self.spans.is_some() || self.profiles.is_some()
    }

    /// True when it keeps the row of the profile whose key is `key`.
    pub fn keeps_profile(&self, key: u64) -> bool {
        self.profiles.as_ref().is_none_or(|p| p.contains(key))
    }
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
    /// An estimate of the memory it holds, in bytes.
    pub fn approx_bytes(&self) -> u64 {
        ignis_storage::head::approx_tables_bytes(&self.symbols, &[]) + self.values.len() as u64 * 24
    }

    /// Sum of all values.
    pub fn total(&self) -> i64 {
        self.values.values().fold(0i64, |a, &v| a.saturating_add(v))
    }

    /// Keeps only the stacks whose root-first function names start with
    /// `call_site` (a `stack_trace_selector`; all of them when it is empty).
    pub fn keep_call_site(&mut self, call_site: &[String]) {
        if call_site.is_empty() {
            return;
        }
        let mut frames = Vec::new();
        let symbols = &self.symbols;
        self.values.retain(|&stack, _| {
            symbols.frame_names(stack, &mut frames);
            starts_with_call_site(&frames, call_site)
        });
    }
}

/// Whether leaf-first `frames` start, from the root, with `call_site`.
pub fn starts_with_call_site(frames: &[String], call_site: &[String]) -> bool {
    frames.len() >= call_site.len() && frames.iter().rev().zip(call_site).all(|(f, c)| f == c)
}

/// One profile's total, as a source reports it to a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileTotal {
    /// The profile's timestamp, nanoseconds.
    pub timestamp_ns: i64,
    /// Its id (key 0: unknown).
    pub profile_id: ignis_storage::ProfileId,
    /// Sum of the values counted (all of the profile's, or those a span
    /// selector or call site keeps).
    pub value: i64,
}

/// One span's samples in one profile, as a source reports them to a span
/// heatmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanTotal {
    /// The profile's timestamp, nanoseconds.
    pub timestamp_ns: i64,
    /// The profile's id (key 0: unknown).
    pub profile_id: ignis_storage::ProfileId,
    /// The span ([`parse_span_id`]), never 0.
    pub span_id: u64,
    /// The trace its samples name (all zero: none).
    pub trace_id: TraceId,
    /// Sum of the span's samples in the profile.
    pub value: i64,
}

impl From<ProfileTotal> for SpanTotal {
    /// A whole profile, as span 0.
    fn from(t: ProfileTotal) -> Self {
        Self {
            timestamp_ns: t.timestamp_ns,
            profile_id: t.profile_id,
            span_id: 0,
            trace_id: TraceId::default(),
            value: t.value,
        }
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

/// Something that holds profiles: an ingester head, a decoded block, or a
/// [`BlockSlice`](crate::block_slice::BlockSlice) of one.
pub trait Source: Send + Sync {
    /// Label sets of the matching series that have a profile in range.
    fn series(&self, sel: &Selection) -> Vec<Labels>;
    /// Adds the stacks of every matching profile in range not yet `seen` to `into`.
    fn merge_stacks(&self, sel: &Selection, seen: &mut Seen, into: &mut MergedStacks);
    /// Calls `f(labels, total)` for every matching profile in range not yet
    /// `seen`.
    fn profile_totals(
        &self,
        sel: &Selection,
        seen: &mut Seen,
        f: &mut dyn FnMut(&Labels, ProfileTotal),
    );
    /// [`Source::profile_totals`] counting of each profile only its stacks
    /// whose root-first frames start with `call_site` (a
    /// `stack_trace_selector`): the query reads stacks. Sources that hold
    /// their rows ([`Source::rows`]) answer it from them.
    fn profile_call_site_totals(
        &self,
        sel: &Selection,
        call_site: &[String],
        seen: &mut Seen,
        f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        if let Some((symbols, series)) = self.rows() {
            crate::head_source::series_call_site_totals(symbols, series, sel, call_site, seen, f);
        }
    }
    /// Calls `f(labels, span)` for every span (a sample's span id) of every
    /// matching profile in range not yet `seen`: the span samples its
    /// selection's span selector keeps (every span's when it has none).
    /// Sources that hold their rows ([`Source::rows`]) answer it from them.
    fn span_totals(&self, sel: &Selection, seen: &mut Seen, f: &mut dyn FnMut(&Labels, SpanTotal)) {
        if let Some((_, series)) = self.rows() {
            crate::head_source::series_span_totals(series, sel, seen, f);
        }
    }
    /// Adds the totals of the profiles `plan` selects, not yet `seen`, to
    /// `into` (a `SelectSeries`). Sources answer it from their profile
    /// totals; the query-frontend's [`crate::preseries::PreSeries`] from
    /// totals bucketed apart.
    fn series_totals(
        &self,
        plan: &crate::timeseries::SeriesPlan,
        seen: &mut Seen,
        into: &mut crate::timeseries::SeriesBuilder,
    ) {
        let mut add = |labels: &Labels, t: ProfileTotal| into.add(labels, t);
        if plan.call_site.is_empty() {
            self.profile_totals(&plan.sel, seen, &mut add);
        } else {
            self.profile_call_site_totals(&plan.sel, &plan.call_site, seen, &mut add);
        }
    }
    /// The oldest and newest profile timestamps (ns), if it holds any profile.
    fn time_bounds(&self) -> Option<(i64, i64)>;
    /// The time spans (inclusive, ns) it answers from pre-merged rollups:
    /// its profiles there are not counted one by one through [`Seen`].
    fn rollup_spans(&self) -> &[(i64, i64)] {
        &[]
    }
    /// Whether its rollups answer the profile of the series `fingerprint`
    /// at `t` (a block read beside replicas reads some windows' profiles,
    /// or leaves them to a replica).
    fn rolls_up(&self, _fingerprint: u64, t: i64) -> bool {
        self.rollup_spans()
            .iter()
            .any(|&(a, b)| (a..=b).contains(&t))
    }
    /// Marks as seen the profiles its rollups answer, before any source
    /// merges (so another source's replica of one is skipped). Only
    /// sources whose rollups overlap another source's data know them.
    fn claim(&self, _seen: &mut Seen) {}
    /// Its rows and their symbol table, when it holds them in memory (a
    /// head, a decoded block, a block slice): a peer answers a query by
    /// copying the rows the query's scope selects.
    fn rows(&self) -> Option<(&SymbolTable, &[Series])> {
        None
    }
    /// An estimate of the memory it holds, in bytes, for a query's
    /// [`MemoryBudget`](crate::budget::MemoryBudget): its rows and symbols.
    fn held_bytes(&self) -> u64 {
        self.rows().map_or(0, |(symbols, series)| {
            ignis_storage::head::approx_rows_bytes(symbols, series)
        })
    }
}
