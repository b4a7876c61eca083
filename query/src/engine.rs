//! The query API over a set of [`Source`]s: validation of requests and
//! assembly of responses, as `querier.v1.QuerierService` defines them.

use std::collections::BTreeSet;

use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::proto::types::v1 as types;
use ignis_storage::{Labels, ProfileType, names};
use serde::{Deserialize, Serialize};

use crate::budget::MemoryBudget;
use crate::diff::diff_flamegraph;
use crate::error::QueryError;
use crate::flamegraph::FlameTree;
use crate::heatmap::HeatmapBuilder;
use crate::pprof_export::to_pprof;
use crate::selector::{Matcher, parse_selector};
use crate::source::{
    MergedStacks, ProfileSelector, ProfileTotal, Seen, Selection, Source, SpanSelector, SpanTotal,
};
use crate::timeseries::{Aggregation, SeriesBuilder, SeriesPlan};

/// Query limits. `0` disables a limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryLimits {
    /// Flame graph nodes when a request gives none.
    pub max_flamegraph_nodes_default: i64,
    /// Largest `max_nodes` a request may ask for.
    pub max_flamegraph_nodes_max: i64,
    /// Longest time range of one query, in seconds (0: unlimited).
    pub max_query_length_secs: i64,
    /// How far back queries may read, in seconds (0: unlimited): an older
    /// start is moved up to it (as Pyroscope clamps it); a range that ends
    /// before it is refused with a reason.
    pub max_query_lookback_secs: i64,
    /// Memory one query may hold (what it reads and merges), in bytes (0:
    /// unlimited); past it the query fails with `resource_exhausted`.
    pub max_query_memory_bytes: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_flamegraph_nodes_default: 8192,
            max_flamegraph_nodes_max: 1_048_576,
            max_query_length_secs: 0,
            max_query_lookback_secs: 0,
            max_query_memory_bytes: 1 << 30,
        }
    }
}

impl QueryLimits {
    /// The stricter of each limit of `self` and `other` (a federated read
    /// over tenants with different limits keeps every tenant's).
    pub fn strictest(&self, other: &Self) -> Self {
        fn min_set<T: Ord + Default + Copy>(a: T, b: T) -> T {
            let unset = T::default();
            match (a == unset, b == unset) {
                (true, _) => b,
                (_, true) => a,
                _ => a.min(b),
            }
        }
        Self {
            max_flamegraph_nodes_default: min_set(
                self.max_flamegraph_nodes_default,
                other.max_flamegraph_nodes_default,
            ),
            max_flamegraph_nodes_max: min_set(
                self.max_flamegraph_nodes_max,
                other.max_flamegraph_nodes_max,
            ),
            max_query_length_secs: min_set(self.max_query_length_secs, other.max_query_length_secs),
            max_query_lookback_secs: min_set(
                self.max_query_lookback_secs,
                other.max_query_lookback_secs,
            ),
            max_query_memory_bytes: min_set(
                self.max_query_memory_bytes,
                other.max_query_memory_bytes,
            ),
        }
    }
}

/// The sources one tenant's query reads.
pub struct Engine<'a> {
    sources: &'a [&'a dyn Source],
    limits: &'a QueryLimits,
    budget: Option<&'a MemoryBudget>,
    premerged: Option<&'a crate::premerged::Premerged>,
}

const MS: i64 = 1_000_000;

impl<'a> Engine<'a> {
    /// A query engine over `sources`.
    pub fn new(sources: &'a [&'a dyn Source], limits: &'a QueryLimits) -> Self {
        Self {
            sources,
            limits,
            budget: None,
            premerged: None,
        }
    }

    /// The same engine answering merges from `premerged` where it holds
    /// them (the query-frontend's per-interval merges), the sources
    /// otherwise.
    pub fn with_premerged(mut self, premerged: &'a crate::premerged::Premerged) -> Self {
        self.premerged = Some(premerged);
        self
    }

    /// The same engine charging what its merges build to `budget` (which
    /// the reads of the query's sources charged before).
    pub fn with_budget(mut self, budget: &'a MemoryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks a `[start, end]` range in ms; returns it in ns.
    pub fn range(&self, start_ms: i64, end_ms: i64) -> Result<(i64, i64), QueryError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.range_at(start_ms, end_ms, now_ms)
    }

    /// [`Engine::range`] at the clock time `now_ms`.
    fn range_at(&self, start_ms: i64, end_ms: i64, now_ms: i64) -> Result<(i64, i64), QueryError> {
        if start_ms == 0 || end_ms == 0 {
            return Err(QueryError::invalid("missing time range in the query"));
        }
        if start_ms > end_ms {
            return Err(QueryError::invalid("query start time is after end time"));
        }
        let lookback = self.limits.max_query_lookback_secs;
        let mut start_ms = start_ms;
        if lookback > 0 {
            let oldest = now_ms.saturating_sub(lookback.saturating_mul(1000));
            if end_ms < oldest {
                return Err(QueryError::invalid(format!(
                    "the query time range ends before the lookback limit (max_query_lookback: {lookback}s): nothing older may be read"
                )));
            }
            start_ms = start_ms.max(oldest);
        }
        let max = self.limits.max_query_length_secs;
        if max > 0 && end_ms.saturating_sub(start_ms) > max.saturating_mul(1000) {
            return Err(QueryError::invalid(format!(
                "the query time range exceeds the limit (max_query_length, actual: {}s, limit: {max}s)",
                end_ms.saturating_sub(start_ms) / 1000
            )));
        }
        Ok((
            start_ms.saturating_mul(MS),
            end_ms.saturating_mul(MS).saturating_add(MS - 1),
        ))
    }

    fn max_nodes(&self, requested: Option<i64>) -> Result<usize, QueryError> {
        let max = self.limits.max_flamegraph_nodes_max;
        match requested {
            None | Some(0) => Ok(self.limits.max_flamegraph_nodes_default.max(0) as usize),
            Some(n) if n < 0 => Err(QueryError::invalid(format!(
                "max flamegraph nodes limit must be set (max allowed {max})"
            ))),
            Some(n) if max > 0 && n > max => Err(QueryError::invalid(format!(
                "max flamegraph nodes limit {n} is greater than allowed {max}"
            ))),
            Some(n) => Ok(n as usize),
        }
    }

    /// The label sets of the series `sel` finds over every source, sorted
    /// and unique (what label names and values, series lists and profile
    /// types are made of).
    pub fn series_labels(&self, sel: &Selection) -> Vec<Labels> {
        let mut all: Vec<Labels> = self.sources.iter().flat_map(|s| s.series(sel)).collect();
        all.sort();
        all.dedup();
        all
    }

    fn matchers(list: &[String]) -> Result<Vec<Matcher>, QueryError> {
        let mut out = Vec::new();
        for m in list {
            out.extend(parse_selector(m)?);
        }
        Ok(out)
    }

    /// A typed selection: `label_selector` plus the profile type.
    pub fn typed_selection(
        &self,
        profile_type: &str,
        label_selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<(ProfileType, Selection), QueryError> {
        let (start_ns, end_ns) = self.range(start_ms, end_ms)?;
        let pt =
            ProfileType::parse(profile_type).map_err(|e| QueryError::invalid(e.to_string()))?;
        if label_selector.trim().is_empty() {
            return Err(QueryError::invalid("label_selector is required, e.g. {}"));
        }
        let mut matchers = parse_selector(label_selector)?;
        matchers.push(Matcher::equal(names::PROFILE_TYPE, pt.id()));
        Ok((pt, Selection::new(matchers, start_ns, end_ns)))
    }

    /// `ProfileTypes`: distinct profile types in range, sorted by id.
    pub fn profile_types(
        &self,
        req: &q::ProfileTypesRequest,
        now_ms: i64,
    ) -> Result<q::ProfileTypesResponse, QueryError> {
        let (start, end) = if req.start == 0 && req.end == 0 {
            (now_ms - 3_600_000, now_ms)
        } else {
            (req.start, req.end)
        };
        let (start_ns, end_ns) = self.range(start, end)?;
        let sel = Selection::new(vec![], start_ns, end_ns);
        let ids: BTreeSet<String> = self
            .series_labels(&sel)
            .iter()
            .filter_map(|l| l.get(names::PROFILE_TYPE).map(str::to_string))
            .collect();
        let profile_types = ids
            .iter()
            .filter_map(|id| ProfileType::parse(id).ok())
            .map(|t| t.to_proto())
            .collect();
        Ok(q::ProfileTypesResponse { profile_types })
    }

    /// `LabelNames`: sorted, unique label names of matching series.
    pub fn label_names(
        &self,
        req: &types::LabelNamesRequest,
    ) -> Result<types::LabelNamesResponse, QueryError> {
        let (start_ns, end_ns) = self.range(req.start, req.end)?;
        let sel = Selection::new(Self::matchers(&req.matchers)?, start_ns, end_ns);
        let names: BTreeSet<String> = self
            .series_labels(&sel)
            .iter()
            .flat_map(|l| l.iter().map(|(k, _)| k.to_string()))
            .collect();
        Ok(types::LabelNamesResponse {
            names: names.into_iter().collect(),
        })
    }

    /// `LabelValues`: sorted, unique values of one label.
    pub fn label_values(
        &self,
        req: &types::LabelValuesRequest,
    ) -> Result<types::LabelValuesResponse, QueryError> {
        let (start_ns, end_ns) = self.range(req.start, req.end)?;
        if req.name.is_empty() {
            return Err(QueryError::invalid("name is required"));
        }
        let sel = Selection::new(Self::matchers(&req.matchers)?, start_ns, end_ns);
        let values: BTreeSet<String> = self
            .series_labels(&sel)
            .iter()
            .filter_map(|l| l.get(&req.name).map(str::to_string))
            .collect();
        Ok(types::LabelValuesResponse {
            names: values.into_iter().collect(),
        })
    }

    /// `Series`: matching label sets, projected onto `label_names` when given.
    pub fn series(&self, req: &q::SeriesRequest) -> Result<q::SeriesResponse, QueryError> {
        let (start_ns, end_ns) = self.range(req.start, req.end)?;
        let sel = Selection::new(Self::matchers(&req.matchers)?, start_ns, end_ns);
        let mut sets: Vec<Labels> = self
            .series_labels(&sel)
            .into_iter()
            .map(|l| {
                if req.label_names.is_empty() {
                    l
                } else {
                    Labels::from_pairs(
                        req.label_names
                            .iter()
                            .filter_map(|n| l.get(n).map(|v| (n.clone(), v.to_string()))),
                    )
                }
            })
            .collect();
        sets.sort();
        sets.dedup();
        Ok(q::SeriesResponse {
            labels_set: sets
                .iter()
                .map(|l| types::Labels {
                    labels: l.to_proto(),
                })
                .collect(),
        })
    }

    /// Merges the stacks of a selection across all sources. Profiles a
    /// source answers from rollups are claimed first, so their replicas
    /// elsewhere count once.
    pub fn merge(&self, sel: &Selection) -> MergedStacks {
        if let Some(m) = self.premerged.and_then(|p| p.take(sel)) {
            return m;
        }
        let mut merged = MergedStacks::default();
        let mut seen = Seen::default();
        for s in self.sources {
            s.claim(&mut seen);
        }
        for s in self.sources {
            s.merge_stacks(sel, &mut seen, &mut merged);
        }
        merged
    }

    /// Validates a typed selection and merges its stacks (only those of
    /// the spans and profiles `ids` selects, only those under the call site
    /// of `stack_trace_selector` when given: every output of the merge obeys
    /// it): the profile type, the selection's end (ns) and the merged stacks.
    fn select_merged(
        &self,
        profile_type: &str,
        label_selector: &str,
        (start_ms, end_ms): (i64, i64),
        ids: IdSelectors,
        stack_trace_selector: Option<&types::StackTraceSelector>,
    ) -> Result<(ProfileType, i64, MergedStacks), QueryError> {
        let (pt, mut sel) = self.typed_selection(profile_type, label_selector, start_ms, end_ms)?;
        let call_site = call_site(stack_trace_selector)?;
        sel.spans = ids.spans;
        sel.profiles = ids.profiles;
        let mut merged = self.merge(&sel);
        if let Some(budget) = self.budget {
            budget.charge(merged.approx_bytes(), "the merged stacks")?;
        }
        merged.keep_call_site(&call_site);
        Ok((pt, sel.end_ns, merged))
    }

    /// The call tree of `merged`, charged to the query's budget: a few
    /// thousand deep stacks make millions of nodes, though what is answered
    /// keeps `max_nodes` of them.
    pub(crate) fn call_tree(&self, merged: &MergedStacks) -> Result<FlameTree, QueryError> {
        let tree = FlameTree::build(merged);
        if let Some(budget) = self.budget {
            budget.charge(tree.approx_bytes(), "the flame graph's call tree")?;
        }
        Ok(tree)
    }

    /// The span, trace and profile filters of a `SelectMergeStacktracesRequest`
    /// (`span_selector`, `trace_id_selector`, `profile_id_selector`); refused
    /// with spans and traces together or a bad id.
    fn stacktraces_ids(req: &q::SelectMergeStacktracesRequest) -> Result<IdSelectors, QueryError> {
        IdSelectors::parse(
            &req.span_selector,
            &req.profile_id_selector,
            &req.trace_id_selector,
        )
    }

    /// `SelectMergeStacktraces`: a flame graph (or tree bytes, or pprof);
    /// with `span_selector`, of those spans' samples only.
    pub fn select_merge_stacktraces(
        &self,
        req: &q::SelectMergeStacktracesRequest,
    ) -> Result<q::SelectMergeStacktracesResponse, QueryError> {
        let max_nodes = self.max_nodes(req.max_nodes)?;
        let format = profile_format(req.format)?;
        let ids = Self::stacktraces_ids(req)?;
        let (pt, end_ns, merged) = self.select_merged(
            &req.profile_type_id,
            &req.label_selector,
            (req.start, req.end),
            ids,
            req.stack_trace_selector.as_ref(),
        )?;
        let mut resp = q::SelectMergeStacktracesResponse::default();
        match format {
            q::ProfileFormat::Unspecified | q::ProfileFormat::Flamegraph => {
                resp.flamegraph = Some(self.call_tree(&merged)?.flamegraph(max_nodes));
            }
            q::ProfileFormat::Tree => resp.tree = self.call_tree(&merged)?.tree_bytes(max_nodes),
            q::ProfileFormat::Pprof => {
                resp.pprof = Some(q::PprofProfile {
                    profile: Some(to_pprof(&merged, &pt, end_ns)),
                });
            }
            q::ProfileFormat::Dot => {
                let nodes = req
                    .max_nodes
                    .filter(|&n| n > 0)
                    .map_or(crate::dot::DEFAULT_DOT_NODES, |n| n as usize);
                resp.dot = crate::dot::to_dot(&merged, nodes, &pt.sample_type, &pt.sample_unit);
            }
        }
        Ok(resp)
    }

    /// `SelectMergeSpanProfile`: the flame graph (or tree bytes) of the
    /// samples attributed to the spans of `span_selector` (none selected:
    /// an empty graph, as Pyroscope answers).
    pub fn select_merge_span_profile(
        &self,
        req: &q::SelectMergeSpanProfileRequest,
    ) -> Result<q::SelectMergeSpanProfileResponse, QueryError> {
        let max_nodes = self.max_nodes(req.max_nodes)?;
        let spans = SpanSelector::parse(&req.span_selector)?;
        let format = profile_format(req.format)?;
        if !matches!(
            format,
            q::ProfileFormat::Unspecified | q::ProfileFormat::Flamegraph | q::ProfileFormat::Tree
        ) {
            return Err(QueryError::invalid(format!(
                "SelectMergeSpanProfile answers a flame graph or a tree, not {}",
                format.as_str_name()
            )));
        }
        let (_, _, merged) = self.select_merged(
            &req.profile_type_id,
            &req.label_selector,
            (req.start, req.end),
            IdSelectors {
                spans: Some(spans),
                profiles: None,
            },
            None,
        )?;
        let tree = self.call_tree(&merged)?;
        let mut resp = q::SelectMergeSpanProfileResponse::default();
        if format == q::ProfileFormat::Tree {
            resp.tree = tree.tree_bytes(max_nodes);
        } else {
            resp.flamegraph = Some(tree.flamegraph(max_nodes));
        }
        Ok(resp)
    }

    /// `GetProfileStats`: whether any data was ingested, and its time span (ms).
    pub fn profile_stats(&self) -> types::GetProfileStatsResponse {
        let bounds = self.sources.iter().filter_map(|s| s.time_bounds()).fold(
            None,
            |acc: Option<(i64, i64)>, (lo, hi)| {
                Some(acc.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))))
            },
        );
        match bounds {
            Some((lo, hi)) => types::GetProfileStatsResponse {
                data_ingested: true,
                oldest_profile_time: lo.div_euclid(MS),
                newest_profile_time: hi.div_euclid(MS),
            },
            None => types::GetProfileStatsResponse::default(),
        }
    }

    /// `Diff`: two selections' flame graphs aligned on one shape.
    pub fn diff(&self, req: &q::DiffRequest) -> Result<q::DiffResponse, QueryError> {
        let (Some(left), Some(right)) = (&req.left, &req.right) else {
            return Err(QueryError::invalid("left and right are required"));
        };
        if left.profile_type_id != right.profile_type_id {
            return Err(QueryError::invalid("profile types must match"));
        }
        let tree = |r: &q::SelectMergeStacktracesRequest| -> Result<FlameTree, QueryError> {
            let (_, _, merged) = self.select_merged(
                &r.profile_type_id,
                &r.label_selector,
                (r.start, r.end),
                Self::stacktraces_ids(r)?,
                r.stack_trace_selector.as_ref(),
            )?;
            self.call_tree(&merged)
        };
        let max_nodes = self.max_nodes(left.max_nodes.or(right.max_nodes))?;
        let flamegraph = diff_flamegraph(&tree(left)?, &tree(right)?, max_nodes);
        Ok(q::DiffResponse {
            flamegraph: Some(flamegraph),
        })
    }

    /// `SelectMergeProfile`: the merged profile as pprof.
    pub fn select_merge_profile(
        &self,
        req: &q::SelectMergeProfileRequest,
    ) -> Result<pprof::Profile, QueryError> {
        let ids = IdSelectors::parse(&[], &req.profile_id_selector, &req.trace_id_selector)?;
        // With `go_pgo` the call site is ignored (as in Pyroscope): the
        // whole merge, then cut to the Go PGO shape.
        let sel = req.stack_trace_selector.as_ref();
        let go_pgo = sel.and_then(|s| s.go_pgo.as_ref());
        let selector = if go_pgo.is_some() { None } else { sel };
        let (pt, end_ns, merged) = self.select_merged(
            &req.profile_type_id,
            &req.label_selector,
            (req.start, req.end),
            ids,
            selector,
        )?;
        let mut profile = to_pprof(&merged, &pt, end_ns);
        if let Some(pgo) = go_pgo {
            crate::pgo::apply(&mut profile, pgo);
        }
        Ok(profile)
    }

    /// `SelectSeries`: profile totals bucketed by `step`, grouped by `group_by`.
    pub fn select_series(
        &self,
        req: &q::SelectSeriesRequest,
    ) -> Result<q::SelectSeriesResponse, QueryError> {
        let (sel, step_ms, exemplars) = self.bucketed_selection(
            (&req.profile_type_id, &req.label_selector),
            (req.start, req.end),
            req.step,
            (req.exemplar_type, false),
        )?;
        let aggregation = match req.aggregation {
            Some(a) if a == types::TimeSeriesAggregationType::Average as i32 => {
                Aggregation::Average
            }
            _ => Aggregation::Sum,
        };
        let plan = SeriesPlan {
            sel,
            group_by: req.group_by.clone(),
            start_ms: req.start,
            step_ms,
            call_site: call_site(req.stack_trace_selector.as_ref())?,
            exemplars,
        };
        let mut builder = SeriesBuilder::of(&plan, aggregation);
        let mut seen = Seen::default();
        for s in self.sources {
            s.claim(&mut seen);
        }
        for s in self.sources {
            s.series_totals(&plan, &mut seen, &mut builder);
        }
        let limit = req.limit.and_then(|l| usize::try_from(l).ok());
        Ok(q::SelectSeriesResponse {
            series: builder.finish(limit),
        })
    }

    /// `SelectHeatmap`: the distribution of individual profiles' totals
    /// per time slot and value bucket ([`crate::heatmap`]), grouped by
    /// `group_by`; with `EXEMPLAR_TYPE_INDIVIDUAL`, each cell's highest
    /// profile. A span heatmap (`HEATMAP_QUERY_TYPE_SPAN`) counts each span
    /// of a profile (the sum of its samples) instead, with spans as exemplars.
    pub fn select_heatmap(
        &self,
        req: &q::SelectHeatmapRequest,
    ) -> Result<q::SelectHeatmapResponse, QueryError> {
        let builder = self.heatmap_part(req, (i64::MIN, i64::MAX))?;
        let limit = req.limit.and_then(|l| usize::try_from(l).ok());
        Ok(q::SelectHeatmapResponse {
            series: builder.finish(limit),
        })
    }

    /// The heatmap of the profiles of `req` whose timestamps lie in `part`
    /// (nanoseconds, inclusive), unfinished: parts that cover the range
    /// without overlapping, absorbed ([`HeatmapBuilder::absorb`]) and
    /// finished with the request's `limit`, equal [`Engine::select_heatmap`].
    pub fn heatmap_part(
        &self,
        req: &q::SelectHeatmapRequest,
        (from_ns, to_ns): (i64, i64),
    ) -> Result<HeatmapBuilder, QueryError> {
        let spans = req.query_type == q::HeatmapQueryType::Span as i32;
        let (mut sel, step_ms, exemplars) = self.bucketed_selection(
            (&req.profile_type_id, &req.label_selector),
            (req.start, req.end),
            req.step,
            (req.exemplar_type, spans),
        )?;
        sel.start_ns = sel.start_ns.max(from_ns);
        sel.end_ns = sel.end_ns.min(to_ns);
        let mut builder = HeatmapBuilder::new(req.group_by.clone(), req.start, step_ms, exemplars);
        if sel.start_ns <= sel.end_ns {
            if spans {
                sel.spans = Some(SpanSelector::every_span());
                self.span_totals(&sel, &mut |labels, t| builder.add_span(labels, t));
            } else {
                self.profile_totals(&sel, &mut |labels, t| builder.add(labels, t));
            }
        }
        Ok(builder)
    }

    /// The typed selection, step (ms) and whether exemplars are asked for
    /// of a query bucketing profiles over time (`SelectSeries`,
    /// `SelectHeatmap`). Span exemplars are answered only where the points
    /// are spans (`of_spans`: a span heatmap, whose exemplars are spans
    /// whichever type is asked for).
    fn bucketed_selection(
        &self,
        (profile_type, label_selector): (&str, &str),
        (start_ms, end_ms): (i64, i64),
        step: f64,
        (exemplar_type, of_spans): (i32, bool),
    ) -> Result<(Selection, i64, bool), QueryError> {
        let (_, sel) = self.typed_selection(profile_type, label_selector, start_ms, end_ms)?;
        let step_ms = step_ms(step)?;
        let span = exemplar_type == types::ExemplarType::Span as i32;
        if span && !of_spans {
            return Err(QueryError::Unimplemented(
                "exemplar type span is not implemented".into(),
            ));
        }
        Ok((
            sel,
            step_ms,
            span || exemplar_type == types::ExemplarType::Individual as i32,
        ))
    }

    /// The bucketed totals of `plan` over the sources (a part of a
    /// `SelectSeries` the query-frontend had run apart).
    pub fn series_groups(&self, plan: &SeriesPlan) -> crate::timeseries::SeriesGroups {
        let mut builder = SeriesBuilder::of(plan, Aggregation::Sum);
        let mut seen = Seen::default();
        for s in self.sources {
            s.claim(&mut seen);
        }
        for s in self.sources {
            s.series_totals(plan, &mut seen, &mut builder);
        }
        builder.into_groups()
    }

    /// Calls `f(labels, span)` for every span of every profile of a selection.
    pub fn span_totals(&self, sel: &Selection, f: &mut dyn FnMut(&Labels, SpanTotal)) {
        let mut seen = Seen::default();
        for s in self.sources {
            s.span_totals(sel, &mut seen, f);
        }
    }

    /// Calls `f(labels, total)` for every profile of a selection.
    pub fn profile_totals(&self, sel: &Selection, f: &mut dyn FnMut(&Labels, ProfileTotal)) {
        let mut seen = Seen::default();
        for s in self.sources {
            s.profile_totals(sel, &mut seen, f);
        }
    }
}

/// A request's `format`; a value this build does not know (a newer
/// `PROFILE_FORMAT_*` sent in protobuf) is refused (`unimplemented`), never
/// answered as a flame graph.
fn profile_format(format: i32) -> Result<q::ProfileFormat, QueryError> {
    q::ProfileFormat::try_from(format).map_err(|_| {
        QueryError::Unimplemented(format!(
            "profile format {format} is not supported by Ignis yet"
        ))
    })
}

/// A `step` in seconds as whole milliseconds: at least 1 ms, finite.
fn step_ms(step: f64) -> Result<i64, QueryError> {
    if step.is_nan() || step < 0.001 {
        return Err(QueryError::invalid("step must be >= 1ms"));
    }
    if !step.is_finite() {
        return Err(QueryError::invalid(
            "step must be a finite number of seconds",
        ));
    }
    Ok((step * 1000.0).round() as i64)
}

/// The spans and profiles a merge keeps (all of them when `None`).
#[derive(Debug, Default)]
struct IdSelectors {
    spans: Option<SpanSelector>,
    profiles: Option<ProfileSelector>,
}

impl IdSelectors {
    /// A request's `span_selector` or `trace_id_selector`, and its
    /// `profile_id_selector` (an empty list selects all); spans and traces
    /// together are refused.
    fn parse(
        span_ids: &[String],
        profile_ids: &[String],
        trace_ids: &[String],
    ) -> Result<Self, QueryError> {
        let spans = match (span_ids.is_empty(), trace_ids.is_empty()) {
            (true, true) => None,
            (false, true) => Some(SpanSelector::parse(span_ids)?),
            (true, false) => Some(SpanSelector::parse_traces(trace_ids)?),
            (false, false) => {
                return Err(QueryError::invalid(
                    "span_selector and trace_id_selector cannot be combined",
                ));
            }
        };
        Ok(Self {
            spans,
            profiles: (!profile_ids.is_empty())
                .then(|| ProfileSelector::parse(profile_ids))
                .transpose()?,
        })
    }
}

/// The root-first frames of a `stack_trace_selector`'s call site (empty:
/// every stack). `go_pgo` shapes a pprof (`SelectMergeProfile`) only:
/// elsewhere it is refused (`unimplemented`), never answered as if absent.
fn call_site(sel: Option<&types::StackTraceSelector>) -> Result<Vec<String>, QueryError> {
    let Some(sel) = sel else {
        return Ok(Vec::new());
    };
    if sel.go_pgo.is_some() {
        return Err(QueryError::Unimplemented(
            "stack_trace_selector.go_pgo applies to SelectMergeProfile (a pprof) only".into(),
        ));
    }
    Ok(sel.call_site.iter().map(|l| l.name.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignis_storage::{Head, SeriesSplit, SplitProfile};

    #[test]
    fn the_lookback_limit_moves_old_starts_and_refuses_old_ranges() {
        let now = 10_000_000;
        let lookback = QueryLimits {
            max_query_lookback_secs: 3600,
            ..QueryLimits::default()
        };
        let e = Engine::new(&[], &lookback);
        // A start two hours ago is moved up to one hour ago.
        assert_eq!(
            e.range_at(now - 7_200_000, now, now).unwrap(),
            ((now - 3_600_000) * MS, now * MS + MS - 1)
        );
        // A range ending before the limit is refused with a reason.
        let err = e
            .range_at(now - 7_200_000, now - 3_700_000, now)
            .unwrap_err();
        assert!(err.to_string().contains("max_query_lookback"), "{err}");
        // The length limit applies after the move, as in Pyroscope.
        let both = QueryLimits {
            max_query_lookback_secs: 3600,
            max_query_length_secs: 1800,
            ..QueryLimits::default()
        };
        let e = Engine::new(&[], &both);
        assert!(e.range_at(now - 7_200_000, now - 2_000_000, now).is_ok());
        assert!(e.range_at(now - 7_200_000, now, now).is_err());
        let none = QueryLimits::default();
        assert_eq!(
            Engine::new(&[], &none).range_at(1, 2, now).unwrap(),
            (MS, 2 * MS + MS - 1)
        );
    }

    const PT: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    const SPAN_A: &str = "0100000000000000";
    const SPAN_B: &str = "0200000000000000";

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// Stacks main;work (3, span A, trace), main;work (4, span B), main (5,
    /// span A as `profile_id`), main;work (6, no span, trace).
    fn head_with_spans(profile_id: u64) -> Head {
        let strings = [
            "",
            "main",
            "work",
            "span_id",
            "profile_id",
            SPAN_A,
            SPAN_B,
            "trace_id",
            TRACE,
        ];
        let label = |k: i64, v: i64| pprof::Label {
            key: k,
            str: v,
            ..Default::default()
        };
        let sample = |locs: Vec<u64>, v: i64, label: Vec<pprof::Label>| pprof::Sample {
            location_id: locs,
            value: vec![v],
            label,
        };
        let p = pprof::Profile {
            string_table: strings.map(String::from).to_vec(),
            function: (1..=2)
                .map(|i| pprof::Function {
                    id: i,
                    name: i as i64,
                    ..Default::default()
                })
                .collect(),
            location: (1..=2)
                .map(|i| pprof::Location {
                    id: i,
                    line: vec![pprof::Line {
                        function_id: i,
                        line: 1,
                    }],
                    ..Default::default()
                })
                .collect(),
            sample: vec![
                sample(vec![2, 1], 3, vec![label(3, 5), label(7, 8)]),
                sample(vec![2, 1], 4, vec![label(3, 6)]),
                sample(vec![1], 5, vec![label(4, 5)]),
                sample(vec![2, 1], 6, vec![label(7, 8)]),
            ],
            ..Default::default()
        };
        let mut head = Head::new();
        head.insert(&SplitProfile {
            profile_id: ignis_storage::ProfileId::from_key(profile_id),
            profile: ignis_storage::FlatProfile::from_proto(&p).unwrap(),
            timestamp_ns: 5_000_000,
            series: vec![SeriesSplit {
                labels: Labels::from_pairs([("service_name", "svc"), (names::PROFILE_TYPE, PT)]),
                value_index: 0,
                samples: vec![0, 1, 2, 3],
            }],
        })
        .unwrap();
        head
    }

    fn stacktraces(spans: &[&str]) -> q::SelectMergeStacktracesRequest {
        q::SelectMergeStacktracesRequest {
            profile_type_id: PT.into(),
            label_selector: "{service_name=\"svc\"}".into(),
            start: 1,
            end: 10,
            span_selector: spans.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn span_profile(spans: &[&str], format: q::ProfileFormat) -> q::SelectMergeSpanProfileRequest {
        q::SelectMergeSpanProfileRequest {
            profile_type_id: PT.into(),
            label_selector: "{}".into(),
            span_selector: spans.iter().map(|s| s.to_string()).collect(),
            start: 1,
            end: 10,
            max_nodes: None,
            format: format as i32,
        }
    }

    fn total(r: &q::SelectMergeStacktracesResponse) -> i64 {
        r.flamegraph.as_ref().map_or(-1, |f| f.total)
    }

    #[test]
    fn span_selector_keeps_only_those_spans_and_replicas_count_once() {
        // Two replicas of the same profile: counted once with or without spans.
        let (a, b) = (head_with_spans(7), head_with_spans(7));
        let limits = QueryLimits::default();
        let sources: [&dyn Source; 2] = [&a, &b];
        let e = Engine::new(&sources, &limits);
        let t = |spans: &[&str]| total(&e.select_merge_stacktraces(&stacktraces(spans)).unwrap());
        assert_eq!(t(&[]), 18);
        assert_eq!(t(&[SPAN_A]), 8);
        assert_eq!(t(&[SPAN_B]), 4);
        assert_eq!(t(&[SPAN_A, SPAN_B]), 12);
        assert_eq!(t(&["ffffffffffffffff"]), 0);

        let fg = e
            .select_merge_span_profile(&span_profile(&[SPAN_A], q::ProfileFormat::Unspecified))
            .unwrap()
            .flamegraph
            .unwrap();
        assert_eq!(fg.total, 8);
        assert!(fg.names.contains(&"work".to_string()));
        let tree = e
            .select_merge_span_profile(&span_profile(&[SPAN_B], q::ProfileFormat::Tree))
            .unwrap();
        assert!(tree.flamegraph.is_none() && !tree.tree.is_empty());
        // No span selected: nothing, as Pyroscope answers.
        let none = e
            .select_merge_span_profile(&span_profile(&[], q::ProfileFormat::Flamegraph))
            .unwrap();
        assert_eq!(none.flamegraph.map(|f| f.total), Some(0));

        // Diff sides carry span selectors too.
        let d = e
            .diff(&q::DiffRequest {
                left: Some(stacktraces(&[SPAN_A])),
                right: Some(stacktraces(&[SPAN_B])),
            })
            .unwrap()
            .flamegraph
            .unwrap();
        assert_eq!((d.left_ticks, d.right_ticks), (8, 4));
    }

    #[test]
    fn trace_id_selector_keeps_only_that_traces_samples() {
        let (a, b) = (head_with_spans(7), head_with_spans(7));
        let limits = QueryLimits::default();
        let sources: [&dyn Source; 2] = [&a, &b];
        let e = Engine::new(&sources, &limits);
        let traced = |traces: &[&str]| q::SelectMergeStacktracesRequest {
            trace_id_selector: traces.iter().map(|s| s.to_string()).collect(),
            ..stacktraces(&[])
        };
        let t = |traces: &[&str]| total(&e.select_merge_stacktraces(&traced(traces)).unwrap());
        assert_eq!(t(&[TRACE]), 9);
        assert_eq!(t(&[&TRACE.to_uppercase()]), 9);
        assert_eq!(t(&[&"0".repeat(32)]), 0);
        assert_eq!(t(&[&"e".repeat(32)]), 0);
        // pprof of the trace.
        let pprof = e
            .select_merge_profile(&q::SelectMergeProfileRequest {
                profile_type_id: PT.into(),
                label_selector: "{}".into(),
                start: 1,
                end: 10,
                trace_id_selector: vec![TRACE.into()],
                ..Default::default()
            })
            .unwrap();
        let sum: i64 = pprof.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(sum, 9);
        // And a diff of a trace against a span.
        let d = e
            .diff(&q::DiffRequest {
                left: Some(traced(&[TRACE])),
                right: Some(stacktraces(&[SPAN_B])),
            })
            .unwrap()
            .flamegraph
            .unwrap();
        assert_eq!((d.left_ticks, d.right_ticks), (9, 4));
        let bad = e.select_merge_stacktraces(&traced(&["abc"])).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "invalid trace_id_selector: trace id \"abc\" is not 32 hex characters"
        );
    }

    #[test]
    fn a_span_heatmap_counts_each_span_of_a_profile_once() {
        let (a, b) = (head_with_spans(7), head_with_spans(7));
        let limits = QueryLimits::default();
        let sources: [&dyn Source; 2] = [&a, &b];
        let e = Engine::new(&sources, &limits);
        let heatmap = |exemplar_type: types::ExemplarType| {
            e.select_heatmap(&q::SelectHeatmapRequest {
                profile_type_id: PT.into(),
                label_selector: "{}".into(),
                start: 1,
                end: 10,
                step: 60.0,
                query_type: q::HeatmapQueryType::Span as i32,
                exemplar_type: exemplar_type as i32,
                ..Default::default()
            })
            .unwrap()
        };
        for t in [types::ExemplarType::Individual, types::ExemplarType::Span] {
            let series = heatmap(t).series;
            assert_eq!(series.len(), 1);
            let slot = &series[0].slots[0];
            // Span A: 3 + 5 (its `profile_id` spelling); span B: 4. The
            // traced sample without a span is in no span.
            assert_eq!(slot.counts, vec![1, 1]);
            let ex: Vec<(String, String, i64)> = slot
                .exemplars
                .iter()
                .map(|x| (x.span_id.clone(), x.trace_id.clone(), x.value))
                .collect();
            assert_eq!(
                ex,
                vec![
                    (SPAN_B.to_string(), String::new(), 4),
                    (SPAN_A.to_string(), TRACE.to_string(), 8)
                ]
            );
            assert!(
                slot.exemplars
                    .iter()
                    .all(|x| x.profile_id == ignis_storage::ProfileId::from_key(7).to_string())
            );
            assert!(slot.y_min[0] <= 4.0 && slot.y_min[1] <= 8.0 && slot.y_min[1] > 4.0);
        }
        assert!(
            heatmap(types::ExemplarType::None).series[0].slots[0]
                .exemplars
                .is_empty()
        );
    }

    #[test]
    fn bad_span_selectors_are_refused() {
        let a = head_with_spans(7);
        let limits = QueryLimits::default();
        let sources: [&dyn Source; 1] = [&a];
        let e = Engine::new(&sources, &limits);
        let err =
            |r: Result<q::SelectMergeStacktracesResponse, QueryError>| r.unwrap_err().to_string();
        assert!(err(e.select_merge_stacktraces(&stacktraces(&["abc"]))).contains("16 hex"));
        assert!(
            err(e.select_merge_stacktraces(&stacktraces(&["zz00000000000000"])))
                .contains("not hexadecimal")
        );
        let mut both = stacktraces(&[SPAN_A]);
        both.trace_id_selector = vec!["0".repeat(32)];
        assert_eq!(
            err(e.select_merge_stacktraces(&both)),
            "span_selector and trace_id_selector cannot be combined"
        );
        assert!(
            e.select_merge_span_profile(&span_profile(&["x"], q::ProfileFormat::Tree))
                .is_err()
        );
        assert!(
            e.select_merge_span_profile(&span_profile(&[SPAN_A], q::ProfileFormat::Pprof))
                .is_err()
        );
    }
}
