//! The query-frontend: a query that only merges stacks (flame graphs,
//! trees, pprof, DOT, diffs, legacy renders) is split into aligned
//! intervals (an hour by default); settled intervals come from the results
//! cache ([`crate::results_cache`]) or are merged once and stored, the rest
//! (the range's edges and the recent part the ingesters still add to) are
//! merged directly, and the query then runs over the combined merges.
//!
//! The parts it merges are sub-queries: up to `max_query_parallelism` of
//! them, cut at interval boundaries where the data is, queued on a
//! query-scheduler ([`crate::scheduler`]) and run by querier workers
//! ([`crate::worker`]) at once (on a node without queriers, here).
//!
//! `SelectSeries` goes the same way: each part's buckets (keyed by their end
//! time) are cached per settled interval, under the grouping, step and
//! where buckets start within a step, and sums and counts add up.
//!
//! Listings (label names and values, series lists, profile types) go the
//! same way: each part's label sets are cached per settled interval, and
//! the range's are their union.
//!
//! Every answer equals the direct one: an interval's merge is the merge of
//! all sources restricted to it (a profile has one timestamp, so it falls in
//! one interval), and merges add up. Other queries (per-profile totals,
//! span selections) and federated reads go directly.

use std::sync::Arc;

use futures::StreamExt;
use ignis_query::heatmap::HeatmapBuilder;
use ignis_query::prelisted::PreListed;
use ignis_query::timeseries::{Aggregation, SeriesBuilder, SeriesGroups, SeriesPlan};
use ignis_query::{
    Engine, MemoryBudget, MergedStacks, PreSeries, Premerged, QueryError, QueryLimits, Scope,
    Selection,
};
use ignis_storage::Labels;
use ignis_storage::proto::querier::v1 as q;

use crate::peer::protocol::WireSeriesGroup;
use crate::querier::{QueryFailure, in_lane_blocking};
use crate::results_cache::{DAY_NS, ResultsCache, key, listing_key, series_key, split_days};
use crate::store_gateway::StoreGateway;
use crate::tenants::Tenants;

/// A query that may be split (and go through the results cache): the
/// cache and the block index that keys it (when this node has both), and
/// the query's selections.
pub(crate) struct Cacheable {
    cache: Option<(Arc<ResultsCache>, Arc<StoreGateway>)>,
    selections: Vec<Selection>,
    limits: Arc<QueryLimits>,
}

/// What a query planned as `scope` needs to be split, when it may: it only
/// merges stacks (no per-profile totals, no span or profile selector), reads one
/// tenant, and this node keeps a results cache (and a block index) or its
/// sub-queries can go to querier workers.
pub(crate) fn cacheable(
    tenants: &Tenants,
    tenant: &str,
    limits: &Arc<QueryLimits>,
    scope: &Scope,
) -> Option<Cacheable> {
    let cache = tenants
        .results_cache
        .clone()
        .zip(tenants.store_gateway().cloned());
    if cache.is_none() && !tenants.has_queriers(tenant) {
        return None;
    }
    // A lookback limit moves a range's start with the clock: the plan's
    // selections and the final run's could differ.
    let merges_only = scope.stacks
        && !scope.per_profile
        && !scope.selections.is_empty()
        && scope.selections.iter().all(|s| !s.narrowed());
    (merges_only && !tenant.contains('|') && limits.max_query_lookback_secs == 0).then(|| {
        Cacheable {
            cache,
            selections: scope.selections.clone(),
            limits: limits.clone(),
        }
    })
}

/// The series plans of a query the frontend may split: one that only
/// buckets series (`SelectSeries`), of one tenant, on a node with a results
/// cache or whose sub-queries go to querier workers.
pub(crate) fn splittable_series(
    tenants: &Tenants,
    tenant: &str,
    limits: &QueryLimits,
    scope: &Scope,
) -> Option<Vec<SeriesPlan>> {
    let plans = scope.series_only()?;
    let one_tenant = !tenant.contains('|') && limits.max_query_lookback_secs == 0;
    let cache = tenants.results_cache.is_some() && tenants.store_gateway().is_some();
    (one_tenant && (cache || tenants.has_queriers(tenant))).then(|| plans.to_vec())
}

/// `range` cut at interval boundaries into at most `parts` pieces, the
/// largest (within `live`) first ([`parallelize`] with no parts inside).
#[cfg(test)]
fn cut_range(range: (i64, i64), live: (i64, i64), interval: i64, parts: usize) -> Vec<(i64, i64)> {
    let mut groups = vec![(range.0, range.1, Vec::new())];
    parallelize::<()>(&mut groups, &mut Vec::new(), parts, live, interval);
    groups.into_iter().map(|(lo, hi, _)| (lo, hi)).collect()
}

/// Runs `f`, which only buckets the series of `plans`, from parts of their
/// ranges bucketed apart: settled intervals over blocks from the results
/// cache (or bucketed once and stored), the rest by querier workers (at
/// most `max_query_parallelism` sub-queries per plan, cut at interval
/// boundaries where data may be). Buckets are keyed by their end time and
/// their sums and counts add up, so the answer equals the direct one.
/// Falls back to the direct path if `f` asks for anything else.
pub(crate) async fn query_series<R, F>(
    tenants: &Tenants,
    tenant: &str,
    plans: Vec<SeriesPlan>,
    limits: Arc<QueryLimits>,
    start_ns: i64,
    end_ns: i64,
    f: F,
) -> Result<R, QueryFailure>
where
    R: Send + 'static,
    F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
{
    let now = crate::now_ns();
    let cache = tenants
        .results_cache
        .clone()
        .zip(tenants.store_gateway().cloned());
    let (settled, interval) = settled_and_interval(tenants, cache.as_ref(), now);
    let mut builders: Vec<SeriesBuilder> = plans
        .iter()
        .map(|p| SeriesBuilder::of(p, Aggregation::Sum))
        .collect();
    for (builder, plan) in builders.iter_mut().zip(&plans) {
        // Cuts fall from the oldest indexed block to now (recent data
        // alone, in the ingesters' memory, is bucketed in one part);
        // without a block index, anywhere.
        let mut live = (now, now);
        let with_sel = |sel: Selection| SeriesPlan {
            sel,
            ..plan.clone()
        };
        let parts = cuts(
            tenant,
            &plan.sel,
            cache.as_ref(),
            interval,
            settled,
            &mut live,
        );
        if cache.is_none() {
            live.0 = match tenants.store_gateway() {
                Some(sg) => sg
                    .indexed_spans(tenant, plan.sel.start_ns, plan.sel.end_ns)
                    .iter()
                    .map(|b| b.1)
                    .min()
                    .unwrap_or(now),
                None => plan.sel.start_ns,
            };
        }
        let mut pieces: Vec<Piece<SeriesGroups>> = parts.pieces(0, &plan.sel, |part, ulids| {
            series_key(tenant, &with_sel(part.clone()), ulids)
        });
        let cache = cache.as_ref().map(|(c, _)| c.clone());
        read_cached(cache.as_ref(), &mut pieces, decode_groups).await?;
        let range = (plan.sel.start_ns, plan.sel.end_ns);
        let groups = runs_to_ask(tenants, &mut pieces, range, live, interval);
        let runs = groups.iter().map(|(lo, hi, members)| {
            let sels: Vec<Selection> = members.iter().map(|&i| pieces[i].sel.clone()).collect();
            let query = crate::worker::series_query(tenant, *lo, *hi, plan, &sels);
            async move { crate::worker::groups_of(tenants.ask(query).await?, sels.len()) }
        });
        let fresh = futures::future::try_join_all(runs).await?;
        fill(&mut pieces, &groups, fresh);
        // Stored and added up off the async workers, in the query's lane.
        let done = in_lane_blocking("series parts", move || {
            let mut all = Vec::with_capacity(pieces.len());
            for p in pieces {
                let g = p.merged.unwrap_or_default();
                if let (true, Some(k), Some(c)) = (p.fresh, &p.key, &cache) {
                    c.put_with(k, || {
                        crate::peer::protocol::encode(&WireSeriesGroup::of(g.clone())).ok()
                    });
                }
                all.push(g);
            }
            all
        })
        .await?;
        for g in done {
            builder.absorb(g);
        }
    }
    let pre = PreSeries::new(
        plans
            .into_iter()
            .zip(builders.into_iter().map(SeriesBuilder::into_groups))
            .collect(),
    );
    answer_prepared(tenants, tenant, (start_ns, end_ns), f, "series", move |f| {
        let sources: [&dyn ignis_query::Source; 1] = [&pre];
        let answer = f(&Engine::new(&sources, &limits)).map_err(QueryFailure::from);
        (answer, pre.complete())
    })
    .await
}

/// Most parts [`profile_parts`] cuts a range into.
const MAX_PROFILE_PARTS: i64 = 64;

/// Parts of `[start_ns, end_ns]` (inclusive, disjoint, in order) for a
/// query that reads every profile's total and adds parts up (a heatmap),
/// so it holds one part's profiles at a time: cut at UTC days (longer
/// spans of days past [`MAX_PROFILE_PARTS`]) where this node's
/// store-gateway indexes blocks of the tenant; before and after them (the
/// ingesters' recent data) no cuts. A federated read, or a node without a
/// store-gateway, reads in one part.
pub fn profile_parts(
    tenants: &Tenants,
    tenant: &str,
    start_ns: i64,
    end_ns: i64,
) -> Vec<(i64, i64)> {
    let whole = vec![(start_ns, end_ns)];
    let Some(sg) = tenants.store_gateway() else {
        return whole;
    };
    if tenant.contains('|') || start_ns >= end_ns {
        return whole;
    }
    let spans = sg.indexed_spans(tenant, start_ns, end_ns);
    let (Some(lo), Some(hi)) = (
        spans.iter().map(|s| s.1).min(),
        spans.iter().map(|s| s.2).max(),
    ) else {
        return whole;
    };
    let (lo, hi) = (lo.max(start_ns), hi.min(end_ns));
    let days = (hi - lo) / DAY_NS + 1;
    let every = DAY_NS.saturating_mul((days + MAX_PROFILE_PARTS - 1) / MAX_PROFILE_PARTS);
    let mut parts = Vec::new();
    let mut from = start_ns;
    let mut cut = (lo.div_euclid(DAY_NS) + 1).saturating_mul(DAY_NS);
    while cut <= hi && cut > from {
        parts.push((from, cut - 1));
        from = cut;
        cut = cut.saturating_add(every);
    }
    parts.push((from, end_ns));
    parts
}

/// `SelectHeatmap` over `range` (nanoseconds), in parts of it
/// ([`profile_parts`]: a day of blocks each), two at a time, each read,
/// budgeted and released on its own: a heatmap counts every profile, and a
/// month of them would not fit one query's memory. The parts add up to the
/// heatmap of the whole range ([`Engine::heatmap_part`]).
pub async fn query_heatmap(
    tenants: &Tenants,
    tenant: &str,
    req: q::SelectHeatmapRequest,
    (start_ns, end_ns): (i64, i64),
) -> Result<q::SelectHeatmapResponse, QueryFailure> {
    let req = Arc::new(req);
    let mut answers = futures::stream::iter(profile_parts(tenants, tenant, start_ns, end_ns))
        .map(|part| {
            let req = req.clone();
            tenants.query_range(tenant, part.0, part.1, move |e| e.heatmap_part(&req, part))
        })
        .buffered(2);
    let mut whole = None::<HeatmapBuilder>;
    while let Some(part) = answers.next().await {
        let part = part?;
        match &mut whole {
            Some(w) => w.absorb(part),
            None => whole = Some(part),
        }
    }
    let limit = req.limit.and_then(|l| usize::try_from(l).ok());
    Ok(q::SelectHeatmapResponse {
        series: whole.map(|w| w.finish(limit)).unwrap_or_default(),
    })
}

/// The selection of a listing the frontend may answer in parts (label
/// names and values, series lists, profile types: [`Scope::labels_only`]
/// with one selection), of one tenant, on a node with a results cache.
pub(crate) fn listable(
    tenants: &Tenants,
    tenant: &str,
    limits: &QueryLimits,
    scope: &Scope,
) -> Option<Selection> {
    let cache = tenants.results_cache.is_some() && tenants.store_gateway().is_some();
    let one_tenant = !tenant.contains('|') && limits.max_query_lookback_secs == 0;
    match &scope.selections[..] {
        [sel] if cache && one_tenant && scope.labels_only() => Some(sel.clone()),
        _ => None,
    }
}

/// Runs `f`, which lists the series `sel` finds, from the label sets of
/// parts of its range: settled intervals over blocks from the results
/// cache (or listed once and stored), the rest read directly. The union of
/// the parts' label sets is the whole range's (a series with a profile in
/// the range has one in some part), so the answer equals the direct one.
/// Falls back to the direct path if `f` asks for anything else.
pub(crate) async fn query_listing<R, F>(
    tenants: &Tenants,
    tenant: &str,
    sel: Selection,
    limits: Arc<QueryLimits>,
    (start_ns, end_ns): (i64, i64),
    f: F,
) -> Result<R, QueryFailure>
where
    R: Send + 'static,
    F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
{
    let now = crate::now_ns();
    let cache = tenants
        .results_cache
        .clone()
        .zip(tenants.store_gateway().cloned());
    let (settled, interval) = settled_and_interval(tenants, cache.as_ref(), now);
    let mut live = (now, now);
    let mut pieces: Vec<Piece<Vec<Labels>>> =
        cuts(tenant, &sel, cache.as_ref(), interval, settled, &mut live).pieces(
            0,
            &sel,
            |part, ulids| listing_key(tenant, part, ulids),
        );
    let cache = cache.as_ref().map(|(c, _)| c.clone());
    read_cached(cache.as_ref(), &mut pieces, decode_listing).await?;
    // The missing parts in one query of a selection each: a block read
    // once for all (from its series table where every part holds it whole
    // or misses it), peers sending label sets per part.
    let missing: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i].merged.is_none())
        .collect();
    let fresh: Vec<Vec<Labels>> = match (
        missing.iter().map(|&i| pieces[i].sel.start_ns).min(),
        missing.iter().map(|&i| pieces[i].sel.end_ns).max(),
    ) {
        (Some(lo), Some(hi)) => {
            let parts: Vec<Selection> = missing.iter().map(|&i| pieces[i].sel.clone()).collect();
            tenants
                .query_direct(tenant, lo, hi, move |e| {
                    Ok(parts.iter().map(|p| e.series_labels(p)).collect())
                })
                .await?
        }
        _ => Vec::new(),
    };
    for (&i, labels) in missing.iter().zip(fresh) {
        pieces[i].merged = Some(labels);
        pieces[i].fresh = true;
    }
    let pre = in_lane_blocking("listing parts", move || {
        let mut all = Vec::new();
        for p in pieces {
            let labels = p.merged.unwrap_or_default();
            if let (true, Some(k), Some(c)) = (p.fresh, &p.key, &cache) {
                c.put_with(k, || {
                    crate::peer::protocol::encode(&wire_labels(&labels)).ok()
                });
            }
            all.extend(labels);
        }
        PreListed::new(sel, all)
    })
    .await?;
    answer_prepared(
        tenants,
        tenant,
        (start_ns, end_ns),
        f,
        "listing",
        move |f| {
            let sources: [&dyn ignis_query::Source; 1] = [&pre];
            let answer = f(&Engine::new(&sources, &limits)).map_err(QueryFailure::from);
            (answer, pre.complete())
        },
    )
    .await
}

/// Label sets as the cache stores them.
fn wire_labels(labels: &[Labels]) -> Vec<Vec<(String, String)>> {
    labels
        .iter()
        .map(|l| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A cached listing part.
fn decode_listing(bytes: &[u8]) -> Result<Vec<Labels>, String> {
    crate::peer::protocol::decode::<Vec<Vec<(String, String)>>>(bytes)
        .map(|sets| sets.into_iter().map(Labels::from_pairs).collect())
        .map_err(|e| e.to_string())
}

/// A cached `SelectSeries` part (its groups as the wire carries them).
fn decode_groups(bytes: &[u8]) -> Result<SeriesGroups, String> {
    crate::peer::protocol::decode::<Vec<WireSeriesGroup>>(bytes)
        .map(WireSeriesGroup::into_groups)
        .map_err(|e| e.to_string())
}

/// Runs `prepared` (which runs `f` over parts prepared before, and says
/// whether `f` used exactly them) on the blocking pool; when `f` asked for
/// anything not prepared, answers it directly instead.
async fn answer_prepared<R, F>(
    tenants: &Tenants,
    tenant: &str,
    (start_ns, end_ns): (i64, i64),
    f: F,
    what: &'static str,
    prepared: impl FnOnce(&F) -> (Result<R, QueryFailure>, bool) + Send + 'static,
) -> Result<R, QueryFailure>
where
    R: Send + 'static,
    F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let run = f.clone();
    let answer = in_lane_blocking("query task", move || prepared(&run)).await?;
    match answer {
        (answer, true) => answer,
        (_, false) => {
            tracing::debug!(
                tenant,
                what,
                "query-frontend: unplanned parts, answered directly"
            );
            tenants
                .query_direct(tenant, start_ns, end_ns, move |e| f(e))
                .await
        }
    }
}

/// Most direct queries one query is split into (more runs of missing
/// intervals are read as one).
const MAX_DIRECT_QUERIES: usize = 4;

/// The ULIDs of `blocks` (sorted by start) overlapping `part`, sorted.
fn overlapping(blocks: &[(String, i64, i64)], (a, b): (i64, i64)) -> Vec<String> {
    let upto = blocks.partition_point(|x| x.1 <= b);
    let mut ulids: Vec<String> = blocks[..upto]
        .iter()
        .filter(|x| x.2 >= a)
        .map(|x| x.0.clone())
        .collect();
    ulids.sort_unstable();
    ulids
}

/// Inclusive ranges sorted, adjacent ones joined.
fn coalesce(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1).is_some_and(|n| n >= a) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// One part of a selection's range: a cached interval or a direct part,
/// and its answer `T` (merged stacks, or bucketed series) once known.
struct Piece<T> {
    /// Which selection it belongs to.
    of: usize,
    /// The selection restricted to the part.
    sel: Selection,
    /// Its cache key (settled intervals only).
    key: Option<[u8; 16]>,
    merged: Option<T>,
    /// Answered by this query (not read from the cache): stored once done.
    fresh: bool,
}

impl<T> Piece<T> {
    fn new(of: usize, sel: Selection, key: Option<[u8; 16]>) -> Self {
        Self {
            of,
            sel,
            key,
            merged: None,
            fresh: false,
        }
    }
}

/// Where intervals end settled (before it, ns) and their length (ns):
/// the cache's, else the split's with nothing settled.
fn settled_and_interval(
    tenants: &Tenants,
    cache: Option<&(Arc<ResultsCache>, Arc<StoreGateway>)>,
    now: i64,
) -> (i64, i64) {
    let (settle, interval) = match cache {
        Some((c, _)) => (c.settle, c.interval),
        None => (std::time::Duration::ZERO, tenants.split.interval),
    };
    let settled = now.saturating_sub(i64::try_from(settle.as_nanos()).unwrap_or(i64::MAX));
    let interval = i64::try_from(interval.as_nanos())
        .unwrap_or(i64::MAX)
        .max(1);
    (settled, interval)
}

/// Where a selection's range is cut: settled intervals over blocks, which
/// the results cache may hold (with the blocks under each, which key it),
/// and the rest, read directly.
struct Cuts {
    cached: Vec<((i64, i64), Vec<String>)>,
    direct: Vec<(i64, i64)>,
}

impl Cuts {
    /// Its parts as pieces of selection `of` (`sel` restricted to each):
    /// the cached intervals keyed by `key_of(part, blocks under it)`, then
    /// the direct parts, adjacent ones joined.
    fn pieces<T>(
        self,
        of: usize,
        sel: &Selection,
        key_of: impl Fn(&Selection, &[String]) -> [u8; 16],
    ) -> Vec<Piece<T>> {
        let sub = |(a, b): (i64, i64)| Selection {
            start_ns: a,
            end_ns: b,
            ..sel.clone()
        };
        let mut pieces = Vec::new();
        for (part, ulids) in self.cached {
            let part = sub(part);
            let k = key_of(&part, &ulids);
            pieces.push(Piece::new(of, part, Some(k)));
        }
        for part in coalesce(self.direct) {
            pieces.push(Piece::new(of, sub(part), None));
        }
        pieces
    }
}

/// The cuts of `sel`'s range for `tenant`, widening `live` (where
/// sub-queries may be cut) to the oldest indexed block: only where blocks
/// are may an interval be cached; the rest of the range (a wide range's
/// empty years too) is one direct part.
fn cuts(
    tenant: &str,
    sel: &Selection,
    cache: Option<&(Arc<ResultsCache>, Arc<StoreGateway>)>,
    interval: i64,
    settled: i64,
    live: &mut (i64, i64),
) -> Cuts {
    let blocks = match cache {
        Some((_, sg)) => sg.indexed_spans(tenant, sel.start_ns, sel.end_ns),
        None => Vec::new(),
    };
    live.0 = live.0.min(match cache {
        Some(_) => blocks.iter().map(|b| b.1).min().unwrap_or(i64::MAX),
        None => sel.start_ns,
    });
    let covered = blocks
        .iter()
        .map(|b| b.1)
        .min()
        .zip(blocks.iter().map(|b| b.2).max());
    let mut out = Cuts {
        cached: Vec::new(),
        direct: Vec::new(),
    };
    let Some((lo, hi)) = covered else {
        out.direct.push((sel.start_ns, sel.end_ns));
        return out;
    };
    // Widened to whole intervals: a block ends at its last profile, not at
    // an interval's end.
    let lo = lo.div_euclid(interval).saturating_mul(interval);
    let hi = hi
        .div_euclid(interval)
        .saturating_add(1)
        .saturating_mul(interval)
        .saturating_sub(1);
    let (lo, hi) = (lo.max(sel.start_ns), hi.min(sel.end_ns));
    if sel.start_ns < lo {
        out.direct.push((sel.start_ns, lo - 1));
    }
    // A settled edge is cached too, under its exact range: the same query
    // repeated is answered from the cache alone.
    let parts = split_days(lo, hi, interval, settled);
    out.direct.extend(parts.direct);
    for part in parts.cached {
        let ulids = overlapping(&blocks, part);
        if ulids.is_empty() {
            out.direct.push(part);
        } else {
            out.cached.push((part, ulids));
        }
    }
    if hi < sel.end_ns {
        out.direct.push((hi + 1, sel.end_ns));
    }
    out
}

/// The runs of adjacent pieces not answered yet: one direct query each (a
/// repeat misses only the range's edges: two small queries, not one over
/// the whole range), all in one past [`MAX_DIRECT_QUERIES`].
fn missing_runs<T>(pieces: &[Piece<T>], start_ns: i64, end_ns: i64) -> Vec<(i64, i64, Vec<usize>)> {
    let mut missing: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i].merged.is_none())
        .collect();
    missing.sort_by_key(|&i| pieces[i].sel.start_ns);
    let mut groups: Vec<(i64, i64, Vec<usize>)> = Vec::new();
    for i in missing {
        let (a, b) = (pieces[i].sel.start_ns, pieces[i].sel.end_ns);
        match groups.last_mut() {
            Some(g) if g.1.checked_add(1).is_none_or(|n| n >= a) => {
                g.1 = g.1.max(b);
                g.2.push(i);
            }
            _ => groups.push((a, b, vec![i])),
        }
    }
    if groups.len() > MAX_DIRECT_QUERIES {
        let all: Vec<usize> = groups.iter().flat_map(|g| g.2.clone()).collect();
        let lo = groups.iter().map(|g| g.0).min().unwrap_or(start_ns);
        let hi = groups.iter().map(|g| g.1).max().unwrap_or(end_ns);
        groups = vec![(lo, hi, all)];
    }
    groups
}

/// The sub-queries that answer `pieces` not answered yet ([`missing_runs`],
/// cut to `max_query_parallelism` by [`parallelize`]).
fn runs_to_ask<T>(
    tenants: &Tenants,
    pieces: &mut Vec<Piece<T>>,
    (start_ns, end_ns): (i64, i64),
    live: (i64, i64),
    interval: i64,
) -> Vec<(i64, i64, Vec<usize>)> {
    let mut groups = missing_runs(pieces, start_ns, end_ns);
    parallelize(
        &mut groups,
        pieces,
        tenants.split.max_query_parallelism,
        live,
        interval,
    );
    groups
}

/// Puts the sub-queries' answers (one per member piece, in order) into
/// their pieces, marked fresh (to be stored).
fn fill<T>(pieces: &mut [Piece<T>], groups: &[(i64, i64, Vec<usize>)], answers: Vec<Vec<T>>) {
    for ((_, _, members), answer) in groups.iter().zip(answers) {
        for (&i, a) in members.iter().zip(answer) {
            pieces[i].merged = Some(a);
            pieces[i].fresh = true;
        }
    }
}

/// Reads the cached pieces' entries (decoded by `decode`) on a blocking
/// thread of the query's lane: not on the async workers that serve every
/// other request.
async fn read_cached<T: Send + 'static>(
    cache: Option<&Arc<ResultsCache>>,
    pieces: &mut [Piece<T>],
    decode: fn(&[u8]) -> Result<T, String>,
) -> Result<(), QueryFailure> {
    let lookups: Vec<(usize, [u8; 16])> = pieces
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.key.map(|k| (i, k)))
        .collect();
    let Some(c) = cache.cloned().filter(|_| !lookups.is_empty()) else {
        return Ok(());
    };
    let keys: Vec<[u8; 16]> = lookups.iter().map(|&(_, k)| k).collect();
    let found = in_lane_blocking("reading the results cache", move || {
        keys.iter()
            .map(|k| {
                let m = c.get_with(k, decode);
                c.count(m.is_some());
                m
            })
            .collect::<Vec<_>>()
    })
    .await?;
    for ((i, _), m) in lookups.into_iter().zip(found) {
        pieces[i].merged = m;
    }
    Ok(())
}

/// Runs `f` (which only merges `selections`) from cached and fresh
/// per-interval merges. Falls back to the direct path if `f` asks for a
/// merge it did not plan.
pub(crate) async fn query_cached<R, F>(
    tenants: &Tenants,
    Cacheable {
        cache,
        selections,
        limits,
    }: Cacheable,
    tenant: &str,
    start_ns: i64,
    end_ns: i64,
    f: F,
) -> Result<R, QueryFailure>
where
    R: Send + 'static,
    F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
{
    let now = crate::now_ns();
    let (settled, interval) = settled_and_interval(tenants, cache.as_ref(), now);
    // Where cuts may fall: from the oldest indexed block to now (recent
    // data alone, in the ingesters' memory, is merged in one part); without
    // a block index, anywhere in the range. Every part of the range is
    // read either way.
    let mut live = (now, now);
    let mut pieces: Vec<Piece<MergedStacks>> = Vec::new();
    for (of, sel) in selections.iter().enumerate() {
        let c = cuts(tenant, sel, cache.as_ref(), interval, settled, &mut live);
        pieces.extend(c.pieces(of, sel, |part, ulids| key(tenant, part, ulids)));
    }
    let cache = cache.map(|(c, _)| c);
    read_cached(cache.as_ref(), &mut pieces, |b| {
        MergedStacks::decode(b).map_err(|e| e.to_string())
    })
    .await?;
    let groups = runs_to_ask(tenants, &mut pieces, (start_ns, end_ns), live, interval);
    let runs = groups.iter().map(|(lo, hi, members)| {
        let subs: Vec<Selection> = members.iter().map(|&i| pieces[i].sel.clone()).collect();
        let n = subs.len();
        let query = crate::worker::sub_query(tenant, *lo, *hi, &subs);
        async move { crate::worker::merges_of(tenants.ask(query).await?, n).await }
    });
    let fresh = futures::future::try_join_all(runs).await?;
    fill(&mut pieces, &groups, fresh);
    answer_prepared(tenants, tenant, (start_ns, end_ns), f, "merges", move |f| {
        let mut combined: Vec<Option<MergedStacks>> = selections.iter().map(|_| None).collect();
        for p in pieces {
            let m = p.merged.unwrap_or_default();
            if let (true, Some(k), Some(c)) = (p.fresh, &p.key, &cache) {
                c.put_with(k, || m.encode().ok());
            }
            match &mut combined[p.of] {
                Some(all) => all.absorb(&m),
                slot @ None => *slot = Some(m),
            }
        }
        let premerged = Premerged::new(
            selections
                .iter()
                .cloned()
                .zip(combined.into_iter().map(Option::unwrap_or_default))
                .collect(),
        );
        let budget = MemoryBudget::new(limits.max_query_memory_bytes);
        let engine = Engine::new(&[], &limits)
            .with_budget(&budget)
            .with_premerged(&premerged);
        let answer = f(&engine).map_err(QueryFailure::from);
        (answer, premerged.complete())
    })
    .await
}

/// Where to cut `(lo, hi)` in two so both halves hold part of `live`: the
/// interval boundary nearest the middle of their overlap, if one lies
/// strictly inside it.
fn cut_point((lo, hi): (i64, i64), live: (i64, i64), interval: i64) -> Option<i64> {
    let (a, b) = (i128::from(lo.max(live.0)), i128::from(hi.min(live.1)));
    if a >= b {
        return None;
    }
    let step = i128::from(interval);
    let mid = a + (b - a) / 2;
    let nearest = (mid + step / 2).div_euclid(step) * step;
    [nearest, nearest + step, nearest - step]
        .into_iter()
        .find(|&c| c > a && c <= b)
        .and_then(|c| i64::try_from(c).ok())
}

/// `cut` of group `g`, moved out of the cached piece it falls inside (to
/// the piece's start, or past its end), if it can stay inside the group.
fn around_cached<T>(cut: i64, g: &(i64, i64, Vec<usize>), pieces: &[Piece<T>]) -> Option<i64> {
    let inside =
        g.2.iter()
            .map(|&i| &pieces[i])
            .find(|p| p.key.is_some() && p.sel.start_ns < cut && cut <= p.sel.end_ns);
    let Some(p) = inside else {
        return Some(cut);
    };
    let (a, b) = (p.sel.start_ns, p.sel.end_ns);
    if a > g.0 {
        Some(a)
    } else {
        b.checked_add(1).filter(|&c| c <= g.1)
    }
}

/// Cuts the largest groups of missing parts at interval boundaries until
/// there are `parallelism` of them (or no group can be cut inside `live`),
/// splitting the direct parts a cut crosses; a cut inside a cached part
/// (a whole day) moves to its start or end, so cached parts stay whole.
fn parallelize<T>(
    groups: &mut Vec<(i64, i64, Vec<usize>)>,
    pieces: &mut Vec<Piece<T>>,
    parallelism: usize,
    live: (i64, i64),
    interval: i64,
) {
    while groups.len() < parallelism {
        let span =
            |g: &(i64, i64, Vec<usize>)| i128::from(g.1.min(live.1)) - i128::from(g.0.max(live.0));
        let Some((at, cut)) = groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let cut = cut_point((g.0, g.1), live, interval)?;
                Some((i, around_cached(cut, g, pieces)?))
            })
            .max_by_key(|&(i, _)| span(&groups[i]))
        else {
            return;
        };
        let (lo, hi, members) = groups.remove(at);
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for i in members {
            let (a, b) = (pieces[i].sel.start_ns, pieces[i].sel.end_ns);
            if b < cut {
                left.push(i);
            } else if a >= cut {
                right.push(i);
            } else {
                let mut sel = pieces[i].sel.clone();
                sel.start_ns = cut;
                pieces[i].sel.end_ns = cut - 1;
                left.push(i);
                right.push(pieces.len());
                pieces.push(Piece::new(pieces[i].of, sel, None));
            }
        }
        groups.insert(at, (cut, hi, right));
        groups.insert(at, (lo, cut - 1, left));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_blocks_and_joined_ranges() {
        let blocks = vec![
            ("c".to_string(), 0, 99),
            ("a".to_string(), 50, 149),
            ("b".to_string(), 200, 299),
        ];
        assert_eq!(overlapping(&blocks, (100, 199)), vec!["a".to_string()]);
        assert_eq!(overlapping(&blocks, (60, 210)), vec!["a", "b", "c"]);
        assert!(overlapping(&blocks, (150, 199)).is_empty());
        assert_eq!(
            coalesce(vec![(10, 19), (0, 9), (30, 39), (20, 25)]),
            vec![(0, 25), (30, 39)]
        );
        assert_eq!(
            coalesce(vec![(i64::MAX - 1, i64::MAX), (0, 1)]),
            vec![(0, 1), (i64::MAX - 1, i64::MAX)]
        );
    }

    #[test]
    fn ranges_are_cut_largest_first() {
        assert_eq!(
            cut_range((0, 79), (0, 79), 10, 4),
            vec![(0, 19), (20, 39), (40, 59), (60, 79)]
        );
        assert_eq!(cut_range((0, 79), (0, 79), 10, 1), vec![(0, 79)]);
        // Data only in [50, 79]: cuts fall there.
        assert_eq!(
            cut_range((0, 79), (50, 79), 10, 3),
            vec![(0, 59), (60, 69), (70, 79)]
        );
    }

    #[test]
    fn cuts_never_split_a_cached_day() {
        let sel = |a: i64, b: i64| Selection::new(Vec::new(), a, b);
        let cached = |a: i64, b: i64| Piece::<MergedStacks>::new(0, sel(a, b), Some([0; 16]));
        // Three cached "days" of 30 and a direct edge: cuts at their ends.
        let mut pieces = vec![
            cached(0, 29),
            cached(30, 59),
            cached(60, 89),
            Piece::new(0, sel(90, 94), None),
        ];
        let mut groups = vec![(0, 94, vec![0, 1, 2, 3])];
        parallelize(&mut groups, &mut pieces, 4, (0, 94), 10);
        assert_eq!(pieces.len(), 4, "no piece was split");
        for (lo, hi, members) in &groups {
            for &i in members {
                let p = &pieces[i].sel;
                assert!(*lo <= p.start_ns && p.end_ns <= *hi, "{lo}..{hi} {p:?}");
            }
        }
        assert!(groups.len() >= 3, "{groups:?}");
        // One cached day alone is never cut.
        let mut pieces = vec![cached(0, 29)];
        let mut groups = vec![(0, 29, vec![0])];
        parallelize(&mut groups, &mut pieces, 4, (0, 29), 10);
        assert_eq!(groups, vec![(0, 29, vec![0])]);
    }

    #[test]
    fn cuts_fall_on_interval_boundaries_where_the_data_is() {
        // An hour of data in a range of ten: cut inside the data only.
        assert_eq!(cut_point((0, 999), (500, 599), 10), Some(550));
        assert_eq!(cut_point((0, 999), (500, 505), 10), None);
        assert_eq!(cut_point((0, 999), (2000, 3000), 10), None);
        assert_eq!(cut_point((i64::MIN, i64::MAX), (0, 40), 10), Some(20));
        let sel = |a: i64, b: i64| Selection::new(Vec::new(), a, b);
        let piece = |of: usize, a: i64, b: i64| Piece::<MergedStacks>::new(of, sel(a, b), None);
        // Two selections over [0, 79] (as a diff has), one group.
        let mut pieces = vec![piece(0, 0, 79), piece(1, 0, 79)];
        let mut groups = vec![(0, 79, vec![0, 1])];
        parallelize(&mut groups, &mut pieces, 4, (0, 79), 10);
        let spans: Vec<(i64, i64)> = groups.iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(spans, vec![(0, 19), (20, 39), (40, 59), (60, 79)]);
        for (lo, hi, members) in &groups {
            assert_eq!(members.len(), 2);
            let mut of: Vec<usize> = members.iter().map(|&i| pieces[i].of).collect();
            of.sort_unstable();
            assert_eq!(of, vec![0, 1]);
            for &i in members {
                assert_eq!((pieces[i].sel.start_ns, pieces[i].sel.end_ns), (*lo, *hi));
            }
        }
        // Never more than one part per interval.
        let mut pieces = vec![piece(0, 0, 19)];
        let mut groups = vec![(0, 19, vec![0])];
        parallelize(&mut groups, &mut pieces, 8, (0, 19), 10);
        assert_eq!(groups.len(), 2);
    }
}
