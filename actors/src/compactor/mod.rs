//! The compactor: merges a tenant's blocks that overlap in time (replicas
//! from several ingesters, ingesters holding different series) into one
//! block per window, each profile once, deletes what it replaced, and
//! applies retention (deletes blocks past it).
//! [`plan`] decides from block metas alone; [`merge`] writes an output in
//! bounded memory.

pub mod merge;
pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ignis_query::block_read::BlockReader;
use ignis_storage::block::{BlockError, BlockMeta, BlockStore, new_ulid};
use parking_lot::Mutex;

use crate::cluster::ClusterContext;
use crate::metrics::Metrics;
use crate::retention::Retention;
use crate::store_gateway::StoreGateway;
use crate::store_gateway::reads::on_executor;

pub use merge::Job;
pub use plan::Settings;

/// What one compaction round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundStats {
    /// Blocks written.
    pub compacted: u64,
    /// Replaced blocks deleted.
    pub deleted: u64,
    /// Jobs that failed (their sources are intact; the next round retries).
    pub failed: u64,
    /// Blocks deleted past retention.
    pub expired: u64,
}

/// Runs compaction rounds over the bucket: the jobs the compactor ring
/// gives this node, then the deletion of replaced blocks.
pub struct Compactor {
    store: BlockStore,
    reader: Arc<BlockReader>,
    cluster: Arc<ClusterContext>,
    settings: Settings,
    store_gateway: Option<Arc<StoreGateway>>,
    metrics: Metrics,
    retention: Retention,
    /// Metas read so far, by tenant then ULID (a block never changes).
    known: Mutex<HashMap<String, BTreeMap<String, BlockMeta>>>,
}

impl Compactor {
    /// A compactor over `store`, reading through `reader`; outputs are
    /// indexed at once by `store_gateway` when the node runs one.
    pub fn new(
        store: BlockStore,
        reader: Arc<BlockReader>,
        cluster: Arc<ClusterContext>,
        settings: Settings,
        store_gateway: Option<Arc<StoreGateway>>,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            reader,
            cluster,
            settings,
            store_gateway,
            metrics,
            retention: Retention::default(),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The same compactor deleting blocks past `retention` (a deletion
    /// delay after store-gateways stopped serving them).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// One round at `now_ns` (Unix ns). A tenant whose blocks cannot be
    /// listed, or a block that cannot be deleted, is logged and counted as
    /// failed; the others go on.
    pub async fn run_once(&self, now_ns: i64) -> Result<RoundStats, BlockError> {
        let mut stats = RoundStats::default();
        for tenant in self.store.tenants().await? {
            if crate::validate_tenant_id(&tenant).is_err() {
                continue;
            }
            if let Err(e) = self.run_tenant(&tenant, now_ns, &mut stats).await {
                stats.failed += 1;
                self.metrics.compaction_failures.inc();
                tracing::warn!(tenant, error = %e, "compaction round of a tenant failed; retried next round");
            }
        }
        Ok(stats)
    }

    /// One round over `tenant`'s blocks: the deletion of those past
    /// retention, its jobs this node owns, then the deletion of what was
    /// replaced long enough ago.
    async fn run_tenant(
        &self,
        tenant: &str,
        now_ns: i64,
        stats: &mut RoundStats,
    ) -> Result<(), BlockError> {
        let all = self.metas(tenant).await?;
        self.expire(tenant, &all, now_ns, stats).await;
        let metas: Vec<BlockMeta> = all
            .into_iter()
            .filter(|m| !self.retention.expired(tenant, m.max_time_ns, now_ns))
            .collect();
        for job in plan::jobs(tenant, &metas, now_ns, &self.settings) {
            if !self
                .cluster
                .owns_compaction(tenant, &format!("window/{}", job.window.0))
            {
                continue;
            }
            self.metrics.compaction_jobs_running.inc();
            let done = self.compact(&job).await;
            self.metrics.compaction_jobs_running.dec();
            match done {
                Ok(meta) => {
                    stats.compacted += 1;
                    self.metrics.compactions.inc();
                    tracing::info!(
                        tenant,
                        ulid = %meta.ulid,
                        sources = job.sources.len(),
                        profiles = meta.stats.profiles,
                        "compacted blocks"
                    );
                }
                Err(e) => {
                    stats.failed += 1;
                    self.metrics.compaction_failures.inc();
                    tracing::warn!(tenant, error = %e, "compaction failed; sources kept, retried next round");
                }
            }
        }
        let metas = self.metas(tenant).await?;
        let delay_ms = self.settings.deletion_delay_ns / 1_000_000;
        for (ulid, since_ms) in plan::replaced(&metas) {
            if now_ns / 1_000_000 - since_ms < delay_ms
                || !self
                    .cluster
                    .owns_compaction(tenant, &format!("delete/{ulid}"))
            {
                continue;
            }
            if let Err(e) = self.store.delete(tenant, &ulid).await {
                stats.failed += 1;
                tracing::warn!(tenant, ulid, error = %e, "deleting a replaced block failed; retried next round");
                continue;
            }
            if let Some(b) = self.known.lock().get_mut(tenant) {
                b.remove(&ulid);
            }
            stats.deleted += 1;
            self.metrics.compaction_deleted_blocks.inc();
        }
        Ok(())
    }

    /// Deletes those of `tenant`'s blocks `metas` whose newest profile was past retention a
    /// deletion delay ago (store-gateways stopped serving them at once),
    /// those of them this node's ring share holds.
    async fn expire(&self, tenant: &str, metas: &[BlockMeta], now_ns: i64, stats: &mut RoundStats) {
        let Some(cutoff) = self.retention.cutoff_ns(tenant, now_ns) else {
            return;
        };
        let cutoff = cutoff.saturating_sub(self.settings.deletion_delay_ns);
        for meta in metas {
            let ulid = &meta.ulid;
            if meta.max_time_ns >= cutoff
                || !self
                    .cluster
                    .owns_compaction(tenant, &format!("delete/{ulid}"))
            {
                continue;
            }
            let deleted = match &self.store_gateway {
                Some(sg) => sg.delete_block(tenant, ulid).await,
                None => self.store.delete(tenant, ulid).await,
            };
            if let Err(e) = deleted {
                stats.failed += 1;
                tracing::warn!(tenant, ulid, error = %e, "deleting a block past retention failed; retried next round");
                continue;
            }
            if let Some(b) = self.known.lock().get_mut(tenant) {
                b.remove(ulid);
            }
            stats.expired += 1;
            self.metrics.compaction_expired_blocks.inc();
            tracing::info!(tenant, ulid, "deleted block past retention");
        }
    }

    /// Merges, uploads and indexes one job's output.
    async fn compact(&self, job: &Job) -> Result<BlockMeta, BlockError> {
        let ulid = new_ulid();
        let (reader, store, j, u, chunk) = (
            self.reader.clone(),
            self.store.clone(),
            job.clone(),
            ulid.clone(),
            self.settings.chunk_rows,
        );
        let block =
            on_executor(async move { merge::merge(&reader, &store, &j, &u, chunk).await }).await?;
        self.store.upload(&block).await?;
        if let Some(sg) = &self.store_gateway {
            sg.index(&block.meta)?;
        }
        self.known
            .lock()
            .entry(job.tenant.clone())
            .or_default()
            .insert(ulid, block.meta.clone());
        Ok(block.meta)
    }

    /// Every complete block of `tenant` in the bucket (metas read once).
    async fn metas(&self, tenant: &str) -> Result<Vec<BlockMeta>, BlockError> {
        let ids = self.store.block_ids(tenant).await?;
        let missing: Vec<String> = {
            let known = self.known.lock();
            let have = known.get(tenant);
            ids.iter()
                .filter(|u| have.is_none_or(|h| !h.contains_key(*u)))
                .cloned()
                .collect()
        };
        let mut found = Vec::new();
        for ulid in missing {
            // Blocks without meta.json are still uploading: next time.
            if let Some(meta) = self.store.meta(tenant, &ulid).await? {
                found.push(meta);
            }
        }
        let mut known = self.known.lock();
        let blocks = known.entry(tenant.to_string()).or_default();
        for meta in found {
            blocks.insert(meta.ulid.clone(), meta);
        }
        let listed: std::collections::HashSet<&String> = ids.iter().collect();
        blocks.retain(|u, _| listed.contains(u));
        Ok(blocks.values().cloned().collect())
    }
}

/// Runs a round every `every`, forever.
pub fn spawn_loop(compactor: Arc<Compactor>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            match compactor.run_once(now).await {
                Ok(s) if s.compacted + s.deleted + s.failed + s.expired > 0 => {
                    tracing::info!(?s, "compaction round")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "compaction round failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests;
