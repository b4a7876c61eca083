//! One compaction job: the rows of some blocks within a time window merged
//! into one block, each profile once, in bounded memory.
//!
//! The output's series are the union of the sources', in label order. They
//! are read and written a chunk at a time: for each chunk, the sources'
//! rows of those series are read with pruned scans (only their row groups),
//! imported into one head whose symbol table the whole output shares
//! (replicas, same `(series, timestamp, profile id)`, are skipped), and
//! handed to a [`BlockWriter`], which streams the row files. Memory is one
//! chunk's rows, the output's symbols and its span samples.

use std::collections::{BTreeMap, HashSet};

use ignis_query::Scope;
use ignis_query::block_read::{BlockReader, BlockTables};
use ignis_storage::block::{
    BlockError, BlockMeta, BlockStore, BlockWriter, Compaction, EncodedBlock,
};
use ignis_storage::head::RowParts;
use ignis_storage::{Head, Labels};

/// Sample rows a merge reads into memory at once (estimated from the
/// sources' average rows per series).
pub const CHUNK_ROWS: u64 = 2_000_000;

/// What a compaction merges: `sources` of `tenant`, their profiles in
/// `window` (inclusive, ns).
#[derive(Debug, Clone)]
pub struct Job {
    /// The tenant.
    pub tenant: String,
    /// The blocks merged.
    pub sources: Vec<BlockMeta>,
    /// The time range the output holds.
    pub window: (i64, i64),
}

impl Job {
    /// The output's lineage: one level above its highest source, covering
    /// every level-1 block its sources cover.
    pub fn compaction(&self) -> Compaction {
        let mut sources: Vec<String> = self
            .sources
            .iter()
            .flat_map(|m| m.compaction.sources.iter().cloned())
            .collect();
        sources.sort();
        sources.dedup();
        Compaction {
            level: self
                .sources
                .iter()
                .map(|m| m.compaction.level)
                .max()
                .unwrap_or(1)
                + 1,
            sources,
            window: Some(self.window),
        }
    }
}

/// Merges `job` into block `ulid`, reading `chunk_rows` sample rows at a
/// time. Runs DataFusion scans: call it on the query executor.
pub async fn merge(
    reader: &BlockReader,
    store: &BlockStore,
    job: &Job,
    ulid: &str,
    chunk_rows: u64,
) -> Result<EncodedBlock, BlockError> {
    let mut tables = Vec::with_capacity(job.sources.len());
    for meta in &job.sources {
        tables.push(BlockTables::fetch(store, meta).await?);
    }
    // Each output series, in label order, with where it lives in the sources.
    let mut places: BTreeMap<&Labels, Vec<(usize, u32)>> = BTreeMap::new();
    for (i, t) in tables.iter().enumerate() {
        for (r, s) in t.series.iter().enumerate() {
            places.entry(&s.labels).or_default().push((i, r as u32));
        }
    }
    let per_series: Vec<u64> = job
        .sources
        .iter()
        .map(|m| m.stats.samples / m.stats.series.max(1))
        .collect();
    let scope = Scope::all_rows(job.window.0, job.window.1);
    let mut head = Head::new();
    let mut writer = BlockWriter::new(&job.tenant, ulid)?;
    let mut chunk: Vec<Vec<u32>> = vec![Vec::new(); tables.len()];
    let mut rows = 0u64;
    let last = places.len();
    for (k, found) in places.into_values().enumerate() {
        for (i, r) in found {
            chunk[i].push(r);
            rows += per_series[i];
        }
        if rows < chunk_rows && k + 1 < last {
            continue;
        }
        let mut seen = HashSet::new();
        for (i, refs) in chunk.iter_mut().enumerate() {
            if refs.is_empty() {
                continue;
            }
            refs.sort_unstable();
            let (slice, _) = reader
                .read_slice(&job.sources[i], &tables[i], &scope, refs)
                .await?;
            head.import_rows(
                &tables[i].symbols,
                slice.series(),
                |_| true,
                RowParts::ALL,
                job.window,
                &mut seen,
            );
            refs.clear();
        }
        let mut series = head.take_series();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        writer.push_series(&series, head.symbols().stacks.len())?;
        rows = 0;
    }
    writer.finish(head.symbols(), job.compaction())
}
