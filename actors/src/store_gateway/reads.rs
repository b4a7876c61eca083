//! What a query reads from each block: the rule between a pruned read and
//! a whole decode.
//!
//! For each block in a query's range, given the query's [`Scope`] (its
//! selections, recorded by a dry run):
//!
//! 1. A block already decoded whole in the cache answers from memory.
//! 2. A query that selects no series (`GetProfileStats`) reads nothing: the
//!    block's meta gives its time bounds.
//! 3. A block with at most one row group of samples (`SAMPLES_ROW_GROUP`
//!    rows) is decoded whole and cached: statistics could not skip any of
//!    it, and small blocks are cheap to keep.
//! 4. Otherwise the block's tables (symbols and series labels, small) are
//!    read whole and cached, and the query's label matchers pick the series:
//!    - none: nothing more is read;
//!    - a query without stacks (series, label names and values, time
//!      series) reads only `profiles.parquet`, pruned;
//!    - a query with stacks reads `samples.parquet`, pruned, unless the row
//!      groups whose statistics may match hold more than half the block's
//!      samples: then the block is decoded whole and cached (the read would
//!      decode most of it anyway, and the next query over it is free).
//!
//! A query that only lists series (label names and values, series,
//! profile types) over a range that holds a block whole reads only the
//! block's series table ([`SeriesLabels`]): every series there has a
//! profile in the block.
//!
//! Before all this, a block with rollups (format 4) answers a query that
//! only merges stacks from its rollups ([`RollupPlan`] over
//! [`Scope::rollup_segments`]): a pre-merged row per series and window
//! wholly inside a segment, and the profiles of the edges, instead of every
//! profile. Blocks that overlap in time (replicas) share the windows out
//! among themselves (see [`super::replicas`]). Small blocks (one row group)
//! are still decoded whole. When an ingester or a peer holds data in a span
//! the rollups answer, the profiles there are read too
//! ([`StoreGateway::claim_overlaps`]) so their replicas count once.
//!
//! Pruned reads (`ignis_query::block_read`) run on the DataFusion executor
//! and are not cached: they are small, and a different query needs
//! different rows. They read through the bucket directly (ranged reads),
//! not through the local disk cache of block files, which whole decodes and
//! block tables use.

use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use ignis_query::block_read::{BlockTables, ReadStats};
use ignis_query::block_slice::Claimed;
use ignis_query::series_labels::SeriesLabels;
use ignis_query::{BlockSlice, MemoryBudget, Scope, Source};
use ignis_storage::block::{BlockError, BlockMeta, RollupPlan, SAMPLES_ROW_GROUP};
use ignis_storage::head::approx_row_bytes;
use tracing::Instrument;

use super::replicas::overlap_groups;
use super::{Entry, StoreGateway, tables_key};
use crate::querier::QueryFailure;

/// What decoding all of a block holds, from its stats: its rows (a profile
/// row and each sample) and its symbol tables.
fn whole_decode_bytes(meta: &BlockMeta) -> u64 {
    let st = &meta.stats;
    approx_row_bytes(st.profiles, st.samples, st.span_samples)
        + st.stacks * 64
        + st.locations * 112
        + st.functions * 48
        + st.strings * 80
}

/// The profiles (estimated from the block's stats) the series a time
/// series selects of a block must hold for it to read the block's window
/// totals rather than the profiles.
pub const TOTALS_MIN_PROFILES: u64 = 16_384;

/// Blocks one query reads at once.
pub const CONCURRENT_BLOCK_READS: usize = 4;

/// What [`StoreGateway::sources_within`] reads as one: a block by the rule
/// of this module (by index), or the blocks of an overlap group that
/// answer from their rollups by the plan (a lone block is a group of one),
/// beside the bounds of the group's blocks read the other way.
enum Unit {
    Rows(usize),
    Rollups(Vec<usize>, Vec<(i64, i64)>, RollupPlan),
    Totals(usize, Arc<RollupPlan>),
}

/// How one block answered a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRead {
    /// From the whole block, cached or decoded now.
    Whole,
    /// From a pruned read of its series and range.
    Pruned,
    /// Nothing was needed from it.
    Nothing,
    /// From its series table alone (a query listing series over a range
    /// that holds the whole block).
    SeriesTable,
}

impl StoreGateway {
    /// What `scope` needs of the blocks `metas` (from
    /// [`StoreGateway::metas`]): one source per block, in their order,
    /// following the rule of this module. Up to [`CONCURRENT_BLOCK_READS`] blocks are
    /// read at once, so a long range waits on the bucket's latency a few
    /// times, not once per block.
    pub async fn sources(
        &self,
        metas: Vec<BlockMeta>,
        scope: &Scope,
    ) -> Result<Vec<Arc<dyn Source>>, QueryFailure> {
        self.sources_within(metas, scope, &MemoryBudget::unlimited())
            .await
    }

    /// [`StoreGateway::sources`] charging each block's source to `budget`
    /// as it is read: past it the reads stop (those in flight are dropped)
    /// and the query fails with `resource_exhausted`.
    pub async fn sources_within(
        &self,
        metas: Vec<BlockMeta>,
        scope: &Scope,
        budget: &MemoryBudget,
    ) -> Result<Vec<Arc<dyn Source>>, QueryFailure> {
        let bounds: Vec<(i64, i64)> = metas
            .iter()
            .map(|m| (m.min_time_ns, m.max_time_ns))
            .collect();
        let mut plans: Vec<Option<RollupPlan>> =
            metas.iter().map(|m| rollup_plan(m, scope)).collect();
        let mut units = Vec::new();
        let mut totals = TotalsPlans::new(scope);
        for group in overlap_groups(&bounds) {
            // A block no other overlaps answers a time series from its
            // window totals (replicas read their profiles, counted once).
            if let [i] = group[..]
                && let Some(plan) = totals.plan(&metas[i])
            {
                units.push(Unit::Totals(i, plan));
                continue;
            }
            // Blocks of a group answer from rollups together when they
            // share resolutions (see `replicas`); the others read rows.
            let resolutions = group
                .iter()
                .find(|&&i| plans[i].is_some())
                .map(|&i| metas[i].rollup_resolutions_ns.clone());
            let (rolled, rows): (Vec<usize>, Vec<usize>) = group.into_iter().partition(|&i| {
                plans[i].is_some() && Some(&metas[i].rollup_resolutions_ns) == resolutions.as_ref()
            });
            units.extend(rows.iter().map(|&i| Unit::Rows(i)));
            if let Some(&first) = rolled.first() {
                let plan = plans[first].take().unwrap_or_default();
                let beside = rows.iter().map(|&i| bounds[i]).collect();
                units.push(Unit::Rollups(rolled, beside, plan));
            }
        }
        let metas = &metas;
        let mut out: Vec<(usize, Arc<dyn Source>)> = futures::stream::iter(units)
            .map(|unit| self.read_unit(unit, metas, scope, budget).boxed())
            .buffered(CONCURRENT_BLOCK_READS)
            .try_collect::<Vec<Vec<_>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// The sources of one [`Unit`], with their blocks' indexes.
    async fn read_unit(
        &self,
        unit: Unit,
        metas: &[BlockMeta],
        scope: &Scope,
        budget: &MemoryBudget,
    ) -> Result<Vec<(usize, Arc<dyn Source>)>, QueryFailure> {
        match unit {
            Unit::Rows(i) => {
                let meta = metas[i].clone();
                let span =
                    tracing::debug_span!("read_block", tenant = %meta.tenant, ulid = %meta.ulid);
                let what = format!("block {}", meta.ulid);
                let (source, _, reserved) = self
                    .source_within(meta, scope, budget)
                    .instrument(span)
                    .await?;
                budget.charge(source.held_bytes().saturating_sub(reserved), &what)?;
                Ok(vec![(i, source)])
            }
            Unit::Rollups(members, beside, plan) => {
                let these = members.iter().map(|&i| metas[i].clone()).collect();
                let span = tracing::debug_span!("read_rollups", blocks = members.len());
                let sources = self
                    .rollup_sources(these, &beside, scope, &plan, budget)
                    .instrument(span)
                    .await?;
                Ok(members.into_iter().zip(sources).collect())
            }
            Unit::Totals(i, plan) => {
                let meta = metas[i].clone();
                let span =
                    tracing::debug_span!("read_totals", tenant = %meta.tenant, ulid = %meta.ulid);
                let (source, reserved) = self
                    .totals_source(meta, scope, plan, budget)
                    .instrument(span)
                    .await?;
                let what = format!("block {}", metas[i].ulid);
                budget.charge(source.held_bytes().saturating_sub(reserved), &what)?;
                Ok(vec![(i, source)])
            }
        }
    }

    /// A block's source for a time series from its window totals (from
    /// memory when the block is decoded whole in the cache; from its
    /// profiles when the series selected hold few, fewer than
    /// [`TOTALS_MIN_PROFILES`]: a scan of them costs less than the totals'
    /// scans), and the bytes reserved in `budget`.
    async fn totals_source(
        &self,
        meta: BlockMeta,
        scope: &Scope,
        plan: Arc<RollupPlan>,
        budget: &MemoryBudget,
    ) -> Result<(Arc<dyn Source>, u64), QueryFailure> {
        if let Some(head) = self.cached_whole(&meta) {
            return Ok((head, 0));
        }
        let tables = self.tables(&meta).await?;
        let refs = tables.wanted(scope);
        let selected =
            meta.stats.profiles.saturating_mul(refs.len() as u64) / meta.stats.series.max(1);
        let least = self
            .totals_min_profiles
            .load(std::sync::atomic::Ordering::Relaxed);
        if selected < least {
            let (source, _, reserved) = self.source_within(meta, scope, budget).await?;
            return Ok((source, reserved));
        }
        let reader = self.reader.clone();
        let exemplars = scope.series_exemplars();
        let (slice, stats) = on_executor(async move {
            reader
                .read_totals_slice(&meta, &tables, &plan, (&refs, exemplars))
                .await
        })
        .await?;
        self.metrics.totals_reads.inc();
        self.record_scans(&stats);
        Ok((Arc::new(slice), 0))
    }

    /// One block's source for `scope`, and how it was read.
    pub async fn source(
        &self,
        meta: BlockMeta,
        scope: &Scope,
    ) -> Result<(Arc<dyn Source>, BlockRead), QueryFailure> {
        let (source, read, _) = self
            .source_within(meta, scope, &MemoryBudget::unlimited())
            .await?;
        Ok((source, read))
    }

    /// [`StoreGateway::source`] reserving in `budget`, before it decodes,
    /// what a whole decode or a pruned read of the block will hold (from
    /// the block's stats, or the samples a pruned read selects): a read past
    /// the budget fails before it takes the memory. Returns the bytes
    /// reserved too.
    async fn source_within(
        &self,
        meta: BlockMeta,
        scope: &Scope,
        budget: &MemoryBudget,
    ) -> Result<(Arc<dyn Source>, BlockRead, u64), QueryFailure> {
        if let Some(head) = self.cached_whole(&meta) {
            return Ok((head, BlockRead::Whole, 0));
        }
        let bounds = (meta.stats.profiles > 0).then_some((meta.min_time_ns, meta.max_time_ns));
        if scope.is_empty() {
            let empty = BlockSlice::new(Arc::default(), Vec::new(), bounds);
            return Ok((Arc::new(empty), BlockRead::Nothing, 0));
        }
        // A query that only lists series, over a block its range holds
        // whole: the series table answers.
        if let Some(b) = bounds.filter(|&b| SeriesLabels::answers(scope, b)) {
            let tables = self.tables(&meta).await?;
            let labels = tables
                .wanted(scope)
                .iter()
                .map(|&r| tables.series[r as usize].labels.clone())
                .collect();
            self.metrics.series_table_reads.inc();
            return Ok((
                Arc::new(SeriesLabels::new(labels, b)),
                BlockRead::SeriesTable,
                0,
            ));
        }
        let what = format!("block {}", meta.ulid);
        let whole = whole_decode_bytes(&meta);
        if meta.stats.samples <= SAMPLES_ROW_GROUP as u64 {
            budget.charge(whole, &what)?;
            return Ok((self.load(meta).await?, BlockRead::Whole, whole));
        }
        let tables = self.tables(&meta).await?;
        let refs = tables.wanted(scope);
        if refs.is_empty() {
            let empty = BlockSlice::new(tables.symbols.clone(), Vec::new(), bounds);
            return Ok((Arc::new(empty), BlockRead::Nothing, 0));
        }
        let mut reserved = 0;
        if scope.stacks {
            let (reader, m, s, r) = (
                self.reader.clone(),
                meta.clone(),
                scope.clone(),
                refs.clone(),
            );
            let (candidates, total) =
                on_executor(async move { reader.candidate_samples(&m, &s, &r).await }).await?;
            if candidates.saturating_mul(2) > total {
                budget.charge(whole, &what)?;
                return Ok((self.load(meta).await?, BlockRead::Whole, whole));
            }
            reserved = approx_row_bytes(0, candidates, 0);
            budget.charge(reserved, &what)?;
        }
        let (reader, scope) = (self.reader.clone(), scope.clone());
        let (slice, stats) =
            on_executor(async move { reader.read_slice(&meta, &tables, &scope, &refs).await })
                .await?;
        self.metrics.pruned_reads.inc();
        self.record_scans(&stats);
        Ok((Arc::new(slice), BlockRead::Pruned, reserved))
    }

    /// Counts what a read's scans skipped and read.
    pub(super) fn record_scans(&self, stats: &ReadStats) {
        let m = &self.metrics;
        m.pruned_row_groups_skipped
            .inc_by(stats.scan.row_groups_pruned);
        m.pruned_row_groups_read.inc_by(
            stats
                .scan
                .row_groups
                .saturating_sub(stats.scan.row_groups_pruned),
        );
        m.pruned_rows_read.inc_by(stats.scan.rows);
        m.parquet_footers_cached
            .set(self.reader.bucket().cached_footers() as i64);
    }

    /// `blocks` (the sources [`StoreGateway::sources`] read for `metas`, in
    /// their order), where a block answering from rollups in a span that
    /// `others` (the time bounds of the query's other sources: ingesters,
    /// peers) overlap also claims the profiles it pre-merged there, so a
    /// replica of one in another source counts once.
    pub async fn claim_overlaps(
        &self,
        metas: &[BlockMeta],
        blocks: Vec<Arc<dyn Source>>,
        scope: &Scope,
        others: &[(i64, i64)],
    ) -> Result<Vec<Arc<dyn Source>>, BlockError> {
        let mut out = Vec::with_capacity(blocks.len());
        for (meta, block) in metas.iter().zip(blocks) {
            let spans: Vec<(i64, i64)> = block
                .rollup_spans()
                .iter()
                .copied()
                .filter(|&(lo, hi)| others.iter().any(|&(a, b)| a <= hi && lo <= b))
                .collect();
            if spans.is_empty() {
                out.push(block);
                continue;
            }
            let tables = self.tables(meta).await?;
            let refs = tables.wanted(scope);
            let (reader, m) = (self.reader.clone(), meta.clone());
            let mut keys =
                on_executor(async move { reader.profile_keys(&m, &tables, &spans, &refs).await })
                    .await?;
            // Only what its rollups answer: a replica's skipped or raw cell
            // is counted by another block or by its own rows.
            keys.retain(|&(f, t, _)| block.rolls_up(f, t));
            out.push(Arc::new(Claimed::new(block, keys)));
        }
        Ok(out)
    }

    /// A block's symbol tables and series, cached (read whole on a miss).
    pub(super) async fn tables(&self, meta: &BlockMeta) -> Result<Arc<BlockTables>, BlockError> {
        let k = tables_key(&meta.tenant, &meta.ulid);
        if let Some(Entry::Tables(t)) = self.cached(&k) {
            return Ok(t);
        }
        let tables = match &self.files {
            Some(cache) => {
                let names: Vec<&str> = BlockTables::files().collect();
                let files = cache.fetch_files(&self.store, meta, &names).await?;
                BlockTables::decode_blocking(files).await?
            }
            None => BlockTables::fetch(&self.store, meta).await?,
        };
        let tables = Arc::new(tables);
        self.insert(k, Entry::Tables(tables.clone()), tables.approx_bytes());
        Ok(tables)
    }
}

/// How `meta` answers `scope` from its rollups, when it can: the block has
/// them and more than one row group of samples, the scope only merges stacks
/// ([`Scope::rollup_segments`]), and a window holds some of the block's time.
fn rollup_plan(meta: &BlockMeta, scope: &Scope) -> Option<RollupPlan> {
    if !meta.has_rollups() || meta.stats.samples <= SAMPLES_ROW_GROUP as u64 {
        return None;
    }
    let segments = scope.rollup_segments()?;
    let plan = RollupPlan::over(&segments, &meta.rollup_resolutions_ns);
    plan.windows
        .iter()
        .any(|w| {
            let (lo, hi) = w.span();
            lo <= meta.max_time_ns && meta.min_time_ns <= hi
        })
        .then_some(plan)
}

/// The plans by which blocks answer a scope from their window totals
/// ([`Scope::totals_segments`]), made once per set of resolutions.
struct TotalsPlans {
    segments: Option<Vec<(i64, i64)>>,
    /// The scope's series name exemplars.
    exemplars: bool,
    plans: Vec<(Vec<i64>, Arc<RollupPlan>)>,
}

impl TotalsPlans {
    fn new(scope: &Scope) -> Self {
        Self {
            segments: scope.totals_segments(),
            exemplars: scope.series_exemplars(),
            plans: Vec::new(),
        }
    }

    /// How `meta` answers from its window totals, when it can: it has
    /// them (naming their exemplars, when the scope's series do) and more
    /// than one row group of samples (smaller blocks are decoded whole),
    /// and a window of the plan meets its time.
    fn plan(&mut self, meta: &BlockMeta) -> Option<Arc<RollupPlan>> {
        let segments = self.segments.as_ref()?;
        let totals = if self.exemplars {
            meta.has_window_exemplars()
        } else {
            meta.has_totals()
        };
        if !totals || meta.stats.samples <= SAMPLES_ROW_GROUP as u64 {
            return None;
        }
        let resolutions = &meta.rollup_resolutions_ns;
        let plan = match self.plans.iter().find(|(r, _)| r == resolutions) {
            Some((_, plan)) => plan.clone(),
            None => {
                let plan = Arc::new(RollupPlan::over(segments, resolutions));
                self.plans.push((resolutions.clone(), plan.clone()));
                plan
            }
        };
        (!plan
            .windows_within(meta.min_time_ns, meta.max_time_ns)
            .is_empty())
        .then_some(plan)
    }
}

/// Runs `fut` on the DataFusion executor of the current query lane
/// ([`ignis_query::lane`]): Parquet decoding stays off the HTTP workers,
/// and a bulk query's yields the CPU to interactive ones.
pub(crate) async fn on_executor<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, BlockError>> + Send + 'static,
) -> Result<T, BlockError> {
    ignis_query::lane::current()
        .spawn(fut)
        .map_err(|e| BlockError::Read(format!("no executor: {e}")))?
        .await
        .map_err(|e| BlockError::Read(format!("block read task failed: {e}")))?
}
