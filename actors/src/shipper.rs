//! Heads to blocks and back: cutting heads, shipping them to the object store
//! in order, truncating the WAL behind them, loading blocks at start, and
//! retention.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ignis_storage::block::{BlockError, WalPosition, decode_block, encode_block};
use ignis_storage::{ReplayStats, WalError};

use crate::ingester::Cut;
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
    /// Blocks deleted by retention.
    pub expired: u64,
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
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Tenants {
    /// One round: cut heads that are due (all non-empty ones with `force`),
    /// ship every sealed head not yet stored, then apply retention.
    pub async fn flush(&self, force: bool) -> FlushStats {
        let mut stats = FlushStats::default();
        let Some(store) = self.blocks.store.clone() else {
            return stats;
        };
        for (tenant, actors) in self.all() {
            let cut = Cut {
                force,
                max_age: self.blocks.max_block_duration,
                max_samples: self.blocks.max_head_samples,
            };
            if let Ok(Some(_)) = actors.ingester.send(cut).await {
                stats.cut += 1;
            }
            // Ship in cut order: a later block must not truncate the WAL under an earlier one.
            let pending: Vec<Arc<Sealed>> = actors
                .sealed
                .read()
                .iter()
                .filter(|s| !s.is_uploaded())
                .cloned()
                .collect();
            for sealed in pending {
                match self.ship(&store, &tenant, &sealed).await {
                    Ok(()) => {
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
            stats.expired += self.expire(&store, &tenant, &actors.sealed).await;
        }
        stats
    }

    async fn ship(
        &self,
        store: &ignis_storage::block::BlockStore,
        tenant: &str,
        sealed: &Arc<Sealed>,
    ) -> Result<(), BlockError> {
        let wal = self.wal.clone();
        let (t, s) = (tenant.to_string(), sealed.clone());
        let block = tokio::task::spawn_blocking(move || {
            let mut block = encode_block(&t, &s.ulid, &s.head)?;
            block.meta.wal = match (&wal, s.wal_last_seq) {
                (Some(w), Some(seq)) => Some(WalPosition {
                    epoch: w.epoch().to_string(),
                    last_seq: seq,
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
            let t = tenant.to_string();
            let removed = tokio::task::spawn_blocking(move || wal.truncate_through(&t, seq))
                .await
                .map_err(|e| BlockError::Corrupt(format!("WAL task failed: {e}")))?;
            if let Err(e) = removed {
                // The block records its WAL position: a restart skips these records.
                tracing::warn!(tenant, error = %e, "WAL truncation failed");
            }
        }
        Ok(())
    }

    async fn expire(
        &self,
        store: &ignis_storage::block::BlockStore,
        tenant: &str,
        sealed: &crate::sealed::SealedList,
    ) -> u64 {
        let retention = self
            .blocks
            .tenant_retention
            .get(tenant)
            .copied()
            .unwrap_or(self.blocks.retention);
        if retention.is_zero() {
            return 0;
        }
        let cutoff = now_ns().saturating_sub(retention.as_nanos().min(i64::MAX as u128) as i64);
        let expired: Vec<Arc<Sealed>> = sealed
            .read()
            .iter()
            .filter(|s| s.is_uploaded() && s.head.stats().max_time_ns.is_some_and(|t| t < cutoff))
            .cloned()
            .collect();
        let mut n = 0;
        for s in expired {
            match store.delete(tenant, &s.ulid).await {
                Ok(()) => {
                    sealed.write().retain(|x| x.ulid != s.ulid);
                    n += 1;
                    tracing::info!(tenant, ulid = %s.ulid, "deleted block past retention");
                }
                Err(e) => {
                    tracing::warn!(tenant, ulid = %s.ulid, error = %e, "deleting an expired block failed")
                }
            }
        }
        n
    }

    /// At start: loads every tenant's blocks, drops WAL records already in a
    /// block, then replays the rest of the WAL into the heads.
    pub async fn load(&self) -> Result<(u64, ReplayStats), LoadError> {
        let mut loaded = 0;
        let mut covered: HashMap<String, u64> = HashMap::new();
        if let Some(store) = self.blocks.store.clone() {
            for tenant in store.tenants().await? {
                if crate::validate_tenant_id(&tenant).is_err() {
                    continue;
                }
                let metas = store.blocks(&tenant).await?;
                if metas.is_empty() {
                    continue;
                }
                let actors = self.get_or_start(&tenant);
                for meta in metas {
                    if let (Some(pos), Some(wal)) = (&meta.wal, &self.wal)
                        && pos.epoch == wal.epoch()
                    {
                        let seq = covered.entry(tenant.clone()).or_insert(0);
                        *seq = (*seq).max(pos.last_seq);
                    }
                    let files = store.fetch(&meta).await?;
                    let m = meta.clone();
                    let head = tokio::task::spawn_blocking(move || decode_block(&m, &files))
                        .await
                        .map_err(|e| BlockError::Corrupt(format!("decoder task failed: {e}")))??;
                    actors
                        .sealed
                        .write()
                        .push(Arc::new(Sealed::from_block(head, meta.ulid.clone())));
                    loaded += 1;
                }
            }
        }
        self.metrics.blocks_loaded.inc_by(loaded);
        let Some(wal) = self.wal.clone() else {
            return Ok((loaded, ReplayStats::default()));
        };
        for (tenant, seq) in &covered {
            wal.truncate_through(tenant, *seq)?;
        }
        let stats = wal.replay(|seq, tenant, profiles| {
            if covered.get(tenant).is_some_and(|&c| seq <= c) {
                return;
            }
            let actors = self.get_or_start(tenant);
            let mut head = actors.head.write();
            for p in &profiles {
                if let Err(e) = head.insert(p) {
                    tracing::error!(seq, tenant, error = %e, "skipping a WAL profile the head refuses");
                }
            }
        })?;
        self.metrics.wal_replayed_records.inc_by(stats.records);
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
