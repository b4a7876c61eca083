//! The store-gateway: knows the bucket's blocks and answers queries over
//! them, loading each block only when a query's time range touches it.
//!
//! The index of blocks (their `meta.json`) lives in sled, so a restart knows
//! the bucket without listing it; it is refreshed on an interval (new blocks
//! are read, deleted ones dropped) and updated at once when this node uploads
//! a block. A query reads from each block only what it selects (see
//! [`reads`] for the rule): a pruned read of its series and time range, or
//! the whole block, decoded and kept. Decoded blocks, and the symbol tables
//! pruned reads need, stay in memory in an LRU cache within a byte budget.
//! In a cluster, each store-gateway serves the blocks the ring gives it (see
//! [`StoreGateway::set_owner`]).

pub mod reads;
mod replicas;

#[cfg(test)]
mod pruned_tests;
#[cfg(test)]
mod rollup_tests;
#[cfg(test)]
mod totals_tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use ignis_query::block_read::{BlockReader, BlockTables};
use ignis_query::bucket::Bucket;
use ignis_storage::Head;
use ignis_storage::block::{BlockError, BlockMeta, BlockStore, decode_block};
use parking_lot::{Mutex, RwLock};

use crate::file_cache::FileCache;
use crate::metrics::Metrics;
use crate::retention::Retention;

/// Decides whether this node serves a block (by tenant and block id).
pub type Ownership = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// What a refresh of the index found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RefreshStats {
    /// Blocks in the index after the refresh.
    pub blocks: u64,
    /// Blocks newly indexed.
    pub added: u64,
    /// Blocks gone from the bucket and dropped from the index.
    pub removed: u64,
}

/// What the cache holds for a block.
#[derive(Clone)]
enum Entry {
    /// The whole block, decoded.
    Whole(Arc<Head>),
    /// Its symbol tables and series, for pruned reads.
    Tables(Arc<BlockTables>),
}

struct Cached {
    entry: Entry,
    bytes: u64,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Cached>,
    used: u64,
    tick: u64,
}

/// The index in memory: sled holds it across restarts, this copy (parsed
/// once at open, kept in step on every change) answers queries without
/// parsing every meta each time.
#[derive(Default)]
struct MemIndex {
    /// Metas by tenant, then ULID (so oldest first).
    blocks: HashMap<String, BTreeMap<String, BlockMeta>>,
    /// Keys (`tenant/ulid`) of blocks this node uploaded.
    uploaded_here: HashSet<String>,
    /// Blocks compacted blocks replaced, by tenant: not served (see
    /// [`crate::compactor::plan`]).
    replaced: HashMap<String, HashSet<String>>,
}

impl MemIndex {
    /// Recomputes which of `tenant`'s blocks are replaced.
    fn update_replaced(&mut self, tenant: &str) {
        let metas: Vec<BlockMeta> = self
            .blocks
            .get(tenant)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default();
        let gone = crate::compactor::plan::replaced(&metas);
        self.replaced
            .insert(tenant.to_string(), gone.into_keys().collect());
    }
}

/// The block index and the cache of decoded blocks.
pub struct StoreGateway {
    store: BlockStore,
    index: sled::Tree,
    mem: RwLock<MemIndex>,
    /// Blocks this node uploaded: served here whatever the ring says, since
    /// the ingester drops their data once they are indexed.
    uploaded_here: sled::Tree,
    cache: Mutex<Cache>,
    budget: u64,
    owner: Mutex<Option<Ownership>>,
    retention: RwLock<Retention>,
    /// [`reads::TOTALS_MIN_PROFILES`], or what a test sets.
    totals_min_profiles: std::sync::atomic::AtomicU64,
    files: Option<FileCache>,
    reader: Arc<BlockReader>,
    metrics: Metrics,
}

fn key(tenant: &str, ulid: &str) -> String {
    format!("{tenant}/{ulid}")
}

/// The cache key of a block's tables (beside its whole decoded form's).
fn tables_key(tenant: &str, ulid: &str) -> String {
    format!("{tenant}/{ulid}#tables")
}

impl StoreGateway {
    /// Opens the index under `dir`; decoded blocks take at most `cache_bytes`
    /// of memory, block files of a remote bucket at most `file_cache_bytes`
    /// of disk under `dir/files` (0: no disk cache), and Parquet footers (shared
    /// with SQL) at most `footer_cache_bytes` of memory.
    pub fn open(
        store: BlockStore,
        dir: &Path,
        cache_bytes: u64,
        file_cache_bytes: u64,
        footer_cache_bytes: u64,
        metrics: Metrics,
    ) -> Result<Self, BlockError> {
        let files = if file_cache_bytes > 0 && !store.is_local() {
            Some(FileCache::open(
                dir.join("files"),
                file_cache_bytes,
                metrics.clone(),
            )?)
        } else {
            None
        };
        // The index is read whole into memory at start; sled's own cache
        // (1 GiB by default) need not hold it again.
        let db =
            ignis_storage::sled_open::open(&sled::Config::new().path(dir).cache_capacity(16 << 20))
                .map_err(|e| BlockError::Corrupt(format!("block index {}: {e}", dir.display())))?;
        let index = db.open_tree("blocks").map_err(Self::index_err)?;
        let uploaded_here = db.open_tree("uploaded-here").map_err(Self::index_err)?;
        let mut mem = MemIndex::default();
        for entry in index.iter() {
            let (k, v) = entry.map_err(Self::index_err)?;
            match serde_json::from_slice::<BlockMeta>(&v) {
                Ok(meta) => {
                    mem.blocks
                        .entry(meta.tenant.clone())
                        .or_default()
                        .insert(meta.ulid.clone(), meta);
                }
                Err(e) => tracing::warn!(
                    key = %String::from_utf8_lossy(&k),
                    error = %e,
                    "unreadable block index entry; the next refresh indexes the block again"
                ),
            }
        }
        let tenants: Vec<String> = mem.blocks.keys().cloned().collect();
        for t in &tenants {
            mem.update_replaced(t);
        }
        for k in uploaded_here.iter().keys() {
            let k = k.map_err(Self::index_err)?;
            mem.uploaded_here
                .insert(String::from_utf8_lossy(&k).into_owned());
        }
        let bucket = Bucket::new(
            store.operator().clone(),
            usize::try_from(footer_cache_bytes).unwrap_or(usize::MAX),
        );
        let reader = Arc::new(BlockReader::new(Arc::new(bucket))?);
        Ok(Self {
            store,
            index,
            mem: RwLock::new(mem),
            uploaded_here,
            cache: Mutex::new(Cache::default()),
            budget: cache_bytes,
            owner: Mutex::new(None),
            retention: RwLock::new(Retention::default()),
            totals_min_profiles: reads::TOTALS_MIN_PROFILES.into(),
            files,
            reader,
            metrics,
        })
    }

    /// The bucket as DataFusion reads it, with the footer cache SQL shares.
    pub fn bucket(&self) -> Arc<Bucket> {
        self.reader.bucket().clone()
    }

    /// Serves only the blocks `owner` accepts (the ring's choice in a cluster).
    pub fn set_owner(&self, owner: Ownership) {
        *self.owner.lock() = Some(owner);
    }

    /// Stops serving blocks past `retention` (the compactor deletes them
    /// a deletion delay later).
    pub fn set_retention(&self, retention: Retention) {
        *self.retention.write() = retention;
    }

    /// Reads window totals for blocks whose selected series hold at least
    /// `profiles` profiles (tests use small blocks).
    pub fn set_totals_min_profiles(&self, profiles: u64) {
        self.totals_min_profiles
            .store(profiles, std::sync::atomic::Ordering::Relaxed);
    }

    fn owns(&self, tenant: &str, ulid: &str) -> bool {
        self.owner.lock().as_ref().is_none_or(|o| o(tenant, ulid))
            || self.mem.read().uploaded_here.contains(&key(tenant, ulid))
    }

    fn index_err(e: sled::Error) -> BlockError {
        BlockError::Corrupt(format!("block index: {e}"))
    }

    /// Indexes a block this node just uploaded, and serves it from now on.
    pub fn add_uploaded(&self, meta: &BlockMeta) -> Result<(), BlockError> {
        self.add(meta)?;
        let k = key(&meta.tenant, &meta.ulid);
        self.uploaded_here
            .insert(k.as_bytes(), &[])
            .map_err(Self::index_err)?;
        self.mem.write().uploaded_here.insert(k);
        Ok(())
    }

    /// Indexes a block another node uploaded, or a compactor wrote (served
    /// by the ring's choice, like any block found by a refresh).
    pub fn index(&self, meta: &BlockMeta) -> Result<(), BlockError> {
        self.add(meta)
    }

    /// Indexes a block.
    fn add(&self, meta: &BlockMeta) -> Result<(), BlockError> {
        let value = serde_json::to_vec(meta)?;
        self.index
            .insert(key(&meta.tenant, &meta.ulid), value)
            .map_err(Self::index_err)?;
        let mut mem = self.mem.write();
        mem.blocks
            .entry(meta.tenant.clone())
            .or_default()
            .insert(meta.ulid.clone(), meta.clone());
        if meta.compaction.window.is_some() {
            mem.update_replaced(&meta.tenant);
        }
        Ok(())
    }

    /// Every indexed block of `tenant`, oldest first.
    pub fn all_metas(&self, tenant: &str) -> Vec<BlockMeta> {
        self.mem
            .read()
            .blocks
            .get(tenant)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Tenants with indexed blocks.
    pub fn tenants(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .mem
            .read()
            .blocks
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        out.sort();
        out
    }

    /// Every block in the index that overlaps `[start_ns, end_ns]` and is
    /// not replaced, whichever store-gateway serves it, as `(ulid,
    /// min_time_ns, max_time_ns)` sorted by start: what the results cache
    /// keys an interval by.
    pub fn indexed_spans(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<(String, i64, i64)> {
        let mut spans = self.served_as(tenant, start_ns, end_ns, |m| {
            (m.ulid.clone(), m.min_time_ns, m.max_time_ns)
        });
        spans.sort_unstable_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        spans
    }

    /// The indexed blocks of `tenant` this node serves that overlap
    /// `[start_ns, end_ns]`, but those compacted blocks replaced.
    pub fn metas(&self, tenant: &str, start_ns: i64, end_ns: i64) -> Vec<BlockMeta> {
        self.served(tenant, start_ns, end_ns)
            .into_iter()
            .filter(|m| self.owns(tenant, &m.ulid))
            .collect()
    }

    /// [`StoreGateway::metas`] and, of the blocks other store-gateways
    /// serve, those that overlap another served block in time (replicas
    /// not yet compacted): a merge reads a group of overlapping blocks in
    /// one place, from their rollups ([`replicas`]), instead of each owner
    /// sending its blocks' rows.
    pub fn metas_with_replicas(&self, tenant: &str, start_ns: i64, end_ns: i64) -> Vec<BlockMeta> {
        let all = self.served(tenant, start_ns, end_ns);
        let bounds: Vec<(i64, i64)> = all.iter().map(|m| (m.min_time_ns, m.max_time_ns)).collect();
        let mut shared = vec![false; all.len()];
        for group in replicas::overlap_groups(&bounds) {
            if group.len() > 1 {
                for i in group {
                    shared[i] = true;
                }
            }
        }
        all.into_iter()
            .zip(shared)
            .filter(|(m, shared)| *shared || self.owns(tenant, &m.ulid))
            .map(|(m, _)| m)
            .collect()
    }

    /// The indexed blocks of `tenant` overlapping `[start_ns, end_ns]`, but
    /// those compacted blocks replaced, whoever serves them.
    fn served(&self, tenant: &str, start_ns: i64, end_ns: i64) -> Vec<BlockMeta> {
        self.served_as(tenant, start_ns, end_ns, BlockMeta::clone)
    }

    /// `f` of each block [`StoreGateway::served`] lists, oldest ULID first
    /// (blocks past retention are not served).
    fn served_as<T>(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
        f: impl Fn(&BlockMeta) -> T,
    ) -> Vec<T> {
        let cutoff = self.retention.read().cutoff_ns(tenant, crate::now_ns());
        let mem = self.mem.read();
        let replaced = mem.replaced.get(tenant);
        mem.blocks
            .get(tenant)
            .map(|b| {
                b.values()
                    .filter(|m| m.max_time_ns >= start_ns && m.min_time_ns <= end_ns)
                    .filter(|m| cutoff.is_none_or(|c| m.max_time_ns >= c))
                    .filter(|m| replaced.is_none_or(|r| !r.contains(&m.ulid)))
                    .map(f)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Lists the bucket: indexes new complete blocks, drops deleted ones.
    pub async fn refresh(&self) -> Result<RefreshStats, BlockError> {
        let mut stats = RefreshStats::default();
        for tenant in self.store.tenants().await? {
            if crate::validate_tenant_id(&tenant).is_err() {
                continue;
            }
            let ids = self.store.block_ids(&tenant).await?;
            let listed: HashSet<&String> = ids.iter().collect();
            let known: HashSet<String> = self
                .mem
                .read()
                .blocks
                .get(&tenant)
                .map(|b| b.keys().cloned().collect())
                .unwrap_or_default();
            for ulid in ids.iter().filter(|u| !known.contains(*u)) {
                // Blocks without meta.json are still uploading: next time.
                if let Some(meta) = self.store.meta(&tenant, ulid).await? {
                    self.add(&meta)?;
                    stats.added += 1;
                }
            }
            for ulid in known.iter().filter(|u| !listed.contains(u)) {
                self.forget(&tenant, ulid)?;
                stats.removed += 1;
            }
        }
        stats.blocks = self
            .mem
            .read()
            .blocks
            .values()
            .map(|b| b.len() as u64)
            .sum();
        self.metrics.indexed_blocks.set(stats.blocks as i64);
        Ok(stats)
    }

    fn forget(&self, tenant: &str, ulid: &str) -> Result<(), BlockError> {
        let k = key(tenant, ulid);
        self.index.remove(&k).map_err(Self::index_err)?;
        self.uploaded_here.remove(&k).map_err(Self::index_err)?;
        let meta = {
            let mut mem = self.mem.write();
            mem.uploaded_here.remove(&k);
            let meta = mem.blocks.get_mut(tenant).and_then(|b| b.remove(ulid));
            mem.update_replaced(tenant);
            meta
        };
        if let Some(files) = &self.files {
            files.remove_block(tenant, ulid);
        }
        if let Some(meta) = meta {
            self.reader.bucket().forget_block(&meta);
            self.metrics
                .parquet_footers_cached
                .set(self.reader.bucket().cached_footers() as i64);
        }
        let mut cache = self.cache.lock();
        for k in [k, tables_key(tenant, ulid)] {
            if let Some(c) = cache.entries.remove(&k) {
                cache.used -= c.bytes;
            }
        }
        self.metrics.block_cache_bytes.set(cache.used as i64);
        Ok(())
    }

    /// The cached whole decoded block, if any (counted as a hit).
    fn cached_whole(&self, meta: &BlockMeta) -> Option<Arc<Head>> {
        match self.cached(&key(&meta.tenant, &meta.ulid)) {
            Some(Entry::Whole(head)) => {
                self.metrics.block_cache_hits.inc();
                Some(head)
            }
            _ => None,
        }
    }

    fn cached(&self, k: &str) -> Option<Entry> {
        let mut cache = self.cache.lock();
        cache.tick += 1;
        let tick = cache.tick;
        let c = cache.entries.get_mut(k)?;
        c.last_used = tick;
        Some(c.entry.clone())
    }

    /// The whole block, from the cache or fetched, decoded and cached.
    async fn load(&self, meta: BlockMeta) -> Result<Arc<Head>, BlockError> {
        if let Some(head) = self.cached_whole(&meta) {
            return Ok(head);
        }
        self.metrics.block_cache_misses.inc();
        let files = match &self.files {
            Some(cache) => cache.fetch(&self.store, &meta).await?,
            None => self.store.fetch(&meta).await?,
        };
        let (tenant, ulid) = (meta.tenant.clone(), meta.ulid.clone());
        let head = ignis_query::lane::current()
            .spawn_blocking(move || decode_block(&meta, &files))
            .map_err(|e| BlockError::Read(format!("no thread for the decoder: {e}")))?
            .await
            .map_err(|e| BlockError::Corrupt(format!("decoder task failed: {e}")))??;
        let head = Arc::new(head);
        let bytes = head.approx_bytes();
        // The whole block holds its tables: a cached copy of them is redundant.
        self.uncache(&tables_key(&tenant, &ulid));
        self.insert(key(&tenant, &ulid), Entry::Whole(head.clone()), bytes);
        Ok(head)
    }

    fn uncache(&self, k: &str) {
        let mut cache = self.cache.lock();
        if let Some(c) = cache.entries.remove(k) {
            cache.used -= c.bytes;
        }
    }

    /// Caches `entry` under `k`, then evicts least recently used entries
    /// until within budget (the entry just inserted stays, even alone over
    /// budget: the query needs it).
    fn insert(&self, k: String, entry: Entry, bytes: u64) {
        let mut cache = self.cache.lock();
        cache.tick += 1;
        let tick = cache.tick;
        if let Some(old) = cache.entries.insert(
            k,
            Cached {
                entry,
                bytes,
                last_used: tick,
            },
        ) {
            cache.used -= old.bytes;
        }
        cache.used += bytes;
        while cache.used > self.budget && cache.entries.len() > 1 {
            let Some(victim) = cache
                .entries
                .iter()
                .filter(|(_, c)| c.last_used != tick)
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(c) = cache.entries.remove(&victim) {
                cache.used -= c.bytes;
                self.metrics.block_cache_evictions.inc();
            }
        }
        self.metrics.block_cache_bytes.set(cache.used as i64);
    }

    /// Deletes a block from the bucket, then from the index and the
    /// caches (the compactor's retention; nothing reads it any more).
    pub async fn delete_block(&self, tenant: &str, ulid: &str) -> Result<(), BlockError> {
        self.store.delete(tenant, ulid).await?;
        self.forget(tenant, ulid)
    }

    /// Bytes of decoded blocks (and block tables) held in memory.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.lock().used
    }
}

#[cfg(test)]
mod tests {
    use ignis_storage::block::{BlockStats, Compaction, ObjectStoreConfig};

    use super::*;

    fn meta(tenant: &str, ulid: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            format_version: ignis_storage::block::FORMAT_VERSION,
            ulid: ulid.into(),
            tenant: tenant.into(),
            min_time_ns: min,
            max_time_ns: max,
            stats: BlockStats::default(),
            rollup_resolutions_ns: vec![],
            compaction: Compaction {
                level: 1,
                sources: vec![ulid.into()],
                window: None,
            },
            files: vec![],
            wal: None,
        }
    }

    #[test]
    fn the_index_survives_a_reopen_and_answers_from_memory() {
        let data = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&ObjectStoreConfig::default(), data.path()).unwrap();
        let dir = data.path().join("index");
        let open = || {
            StoreGateway::open(store.clone(), &dir, 1 << 20, 0, 1 << 20, Metrics::new()).unwrap()
        };
        {
            let sg = open();
            sg.add_uploaded(&meta("a", "01B", 10, 20)).unwrap();
            sg.add_uploaded(&meta("a", "01A", 0, 5)).unwrap();
            sg.add_uploaded(&meta("b", "01C", 0, 100)).unwrap();
            sg.forget("b", "01C").unwrap();
        }
        let sg = open();
        assert_eq!(sg.tenants(), vec!["a".to_string()]);
        let ulids = |v: Vec<BlockMeta>| v.into_iter().map(|m| m.ulid).collect::<Vec<_>>();
        assert_eq!(ulids(sg.all_metas("a")), ["01A", "01B"]);
        assert_eq!(ulids(sg.metas("a", 6, 15)), ["01B"]);
        // Blocks this node uploaded are served whatever the owner says.
        sg.set_owner(Arc::new(|_: &str, _: &str| false));
        assert_eq!(ulids(sg.metas("a", 0, 100)), ["01A", "01B"]);
        assert!(sg.all_metas("b").is_empty());
    }
}
