//! Heads to blocks and back: cutting heads, shipping them to the object store
//! in order, truncating the WAL behind them, and loading blocks at start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ignis_storage::block::{BlockError, BlockMeta, WalPosition, encode_block};
use ignis_storage::{Head, ReplayStats, WalError};

use crate::ingester::{Cut, ReleaseSealed, Replayed, SealedHeads};
use crate::sealed::Sealed;
use crate::tenants::Tenants;

/// What one flush round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    /// Heads cut.
    pub cut: u64,
    /// Blocks uploaded.
    pub uploaded: u64,
    /// Uploads that failed (retried next round).
    pub failed: u64,
}

/// A failure while loading blocks at start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A block could not be listed, fetched or decoded.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The WAL could not be truncated or replayed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Replayed data could not be handed to its ingester.
    #[error("WAL replay: {0}")]
    Replay(String),
}

impl Tenants {
    /// One round: cut heads that are due (all non-empty ones with `force`),
    /// ship every sealed head not yet stored (retention is the compactor's).
    pub async fn flush(&self, force: bool) -> FlushStats {
        let mut stats = FlushStats::default();
        let Some(store) = self.blocks.store.clone() else {
            return stats;
        };
        for (tenant, actors) in self.all() {
            let Some(shards) = &actors.ingester else {
                continue;
            };
            for ingester in shards.all() {
                self.flush_ingester(&store, &tenant, ingester, force, &mut stats)
                    .await;
            }
        }
        stats
    }

    /// One round for one ingester (a shard of `tenant`): cut its head if
    /// due, ship its sealed heads in cut order, release those stored.
    async fn flush_ingester(
        &self,
        store: &ignis_storage::block::BlockStore,
        tenant: &String,
        ingester: &actix::Addr<crate::ingester::Ingester>,
        force: bool,
        stats: &mut FlushStats,
    ) {
        let cut = Cut {
            force,
            max_age: self.blocks.max_block_duration,
            max_samples: self.blocks.max_head_samples,
        };
        if let Ok(Some(_)) = ingester.send(cut).await {
            stats.cut += 1;
        }
        // Ship in cut order: a later block must not truncate the WAL under an earlier one.
        let pending: Vec<Arc<Sealed>> = match ingester.send(SealedHeads).await {
            Ok(sealed) => sealed.into_iter().filter(|s| !s.is_uploaded()).collect(),
            Err(e) => {
                tracing::warn!(tenant, error = %e, "ingester unavailable; its heads ship next round");
                return;
            }
        };
        let mut handed_over = Vec::new();
        for sealed in pending {
            match self.ship(store, tenant, &sealed).await {
                Ok(meta) => {
                    // A store-gateway on this node serves the block from
                    // now on, so the ingester lets go of it; otherwise it
                    // keeps it until store-gateways have indexed it.
                    if let Some(sg) = &self.store_gateway {
                        match sg.add_uploaded(&meta) {
                            Ok(()) => handed_over.push(meta.ulid.clone()),
                            Err(e) => {
                                tracing::warn!(tenant, ulid = %meta.ulid, error = %e, "indexing an uploaded block failed");
                            }
                        }
                    }
                    stats.uploaded += 1;
                    self.metrics
                        .blocks_uploaded
                        .get_or_create(&vec![("tenant", tenant.clone())])
                        .inc();
                }
                Err(e) => {
                    stats.failed += 1;
                    self.metrics
                        .block_upload_failures
                        .get_or_create(&vec![("tenant", tenant.clone())])
                        .inc();
                    tracing::warn!(tenant, ulid = %sealed.ulid, error = %e, "block upload failed; the data stays in the WAL and is retried");
                    break;
                }
            }
        }
        ingester.do_send(ReleaseSealed {
            handed_over,
            keep: self.blocks.keep_shipped,
        });
    }

    async fn ship(
        &self,
        store: &ignis_storage::block::BlockStore,
        tenant: &str,
        sealed: &Arc<Sealed>,
    ) -> Result<BlockMeta, BlockError> {
        let wal = self.wal.clone();
        let (t, s) = (tenant.to_string(), sealed.clone());
        let block = tokio::task::spawn_blocking(move || {
            let mut block = s.with_head(|head| encode_block(&t, &s.ulid, head))?;
            block.meta.wal = match (&wal, s.wal_last_seq) {
                (Some(w), Some(seq)) => Some(WalPosition {
                    epoch: w.epoch().to_string(),
                    last_seq: seq,
                    stream: (s.wal_stream != t).then(|| s.wal_stream.clone()),
                }),
                _ => None,
            };
            Ok::<_, BlockError>(block)
        })
        .await
        .map_err(|e| BlockError::Corrupt(format!("encoder task failed: {e}")))??;
        store.upload(&block).await?;
        sealed.mark_uploaded();
        tracing::info!(tenant, ulid = %sealed.ulid, profiles = block.meta.stats.profiles, bytes = block.files.iter().map(|f| f.1.len()).sum::<usize>(), "block uploaded");
        if let (Some(wal), Some(seq)) = (self.wal.clone(), sealed.wal_last_seq) {
            let stream = sealed.wal_stream.clone();
            let removed = tokio::task::spawn_blocking(move || wal.truncate_through(&stream, seq))
                .await
                .map_err(|e| BlockError::Corrupt(format!("WAL task failed: {e}")))?;
            if let Err(e) = removed {
                // The block records its WAL position: a restart skips these records.
                tracing::warn!(tenant, error = %e, "WAL truncation failed");
            }
        }
        Ok(block.meta)
    }

    /// At start: loads every tenant's blocks, drops WAL records already in a
    /// block, then replays the rest of the WAL into the heads.
    pub async fn load(&self) -> Result<(u64, ReplayStats), LoadError> {
        // Blocks are not loaded into memory: the store-gateway reads them
        // when a query needs them. Their metas say which WAL records they hold.
        let mut loaded = 0;
        let mut covered: HashMap<String, u64> = HashMap::new();
        let mut metas: Vec<BlockMeta> = Vec::new();
        if let Some(sg) = &self.store_gateway {
            let r = sg.refresh().await?;
            tracing::info!(
                blocks = r.blocks,
                added = r.added,
                removed = r.removed,
                "indexed the bucket's blocks"
            );
            for tenant in sg.tenants() {
                metas.extend(sg.all_metas(&tenant));
            }
        } else if let Some(store) = self.blocks.store.clone() {
            for tenant in store.tenants().await? {
                if crate::validate_tenant_id(&tenant).is_ok() {
                    metas.extend(store.blocks(&tenant).await?);
                }
            }
        }
        for meta in &metas {
            loaded += 1;
            if let (Some(pos), Some(wal)) = (&meta.wal, &self.wal)
                && pos.epoch == wal.epoch()
            {
                let stream = pos.stream_of(&meta.tenant).to_string();
                let seq = covered.entry(stream).or_insert(0);
                *seq = (*seq).max(pos.last_seq);
            }
        }
        self.metrics.blocks_loaded.inc_by(loaded);
        let Some(wal) = self.wal.clone() else {
            return Ok((loaded, ReplayStats::default()));
        };
        for (stream, seq) in &covered {
            wal.truncate_through(stream, *seq)?;
        }
        // Rebuilt off the actors, then handed to the ingester of each WAL
        // stream (a tenant's shard), which owns it from then on.
        let (stats, heads) = tokio::task::spawn_blocking(move || {
            let mut heads: HashMap<String, (Head, u64)> = HashMap::new();
            let stats = wal.replay(|seq, stream, profiles| {
                if covered.get(stream).is_some_and(|&c| seq <= c) {
                    return;
                }
                let (head, last) = heads
                    .entry(stream.to_string())
                    .or_insert_with(|| (Head::new(), seq));
                *last = (*last).max(seq);
                for p in &profiles {
                    if let Err(e) = head.insert(p) {
                        tracing::error!(seq, stream, error = %e, "skipping a WAL profile the head refuses");
                    }
                }
            })?;
            Ok::<_, WalError>((stats, heads))
        })
        .await
        .map_err(|e| LoadError::Replay(format!("replay task failed: {e}")))??;
        self.metrics.wal_replayed_records.inc_by(stats.records);
        for (stream, (head, last_seq)) in heads {
            let Some((tenant, shard)) = ignis_storage::wal::parse_stream(&stream) else {
                tracing::warn!(stream, "skipping a WAL stream of no tenant shard");
                continue;
            };
            let Some(shards) = self.get_or_start_shards(tenant, shard + 1).ingester else {
                tracing::warn!(
                    tenant,
                    "WAL records of a node without the ingester role are not served"
                );
                continue;
            };
            shards.all()[shard]
                .send(Replayed { head, last_seq })
                .await
                .map_err(|e| LoadError::Replay(format!("ingester of {stream} unavailable: {e}")))?;
        }
        Ok((loaded, stats))
    }
}

/// Runs [`Tenants::flush`] every `interval` until the returned handle is dropped.
pub fn spawn_flush_loop(tenants: Arc<Tenants>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let stats = tenants.flush(false).await;
            if stats != FlushStats::default() {
                tracing::debug!(?stats, "flush round");
            }
        }
    })
}
