//! A local-disk cache of block files fetched from a remote bucket (S3, GCS,
//! Azure, Swift), within a byte budget: a block evicted from the decoded
//! cache is read again from local disk, not over the network. Files are
//! written whole (temporary name, then rename), checked against the size the
//! block's meta records, and evicted least recently used first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use ignis_storage::block::{BlockError, BlockMeta, BlockStore};
use parking_lot::Mutex;

use crate::metrics::Metrics;

/// Block files on local disk.
pub struct FileCache {
    dir: PathBuf,
    budget: u64,
    used: Mutex<u64>,
    metrics: Metrics,
}

fn io(e: std::io::Error) -> BlockError {
    BlockError::Corrupt(format!("block file cache: {e}"))
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => walk(&path, out),
            Ok(m) => out.push((
                path,
                m.len(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            )),
            Err(_) => {}
        }
    }
}

impl FileCache {
    /// A cache in `dir` holding at most `budget` bytes (files already there count).
    pub fn open(dir: PathBuf, budget: u64, metrics: Metrics) -> Result<Self, BlockError> {
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut files = Vec::new();
        walk(&dir, &mut files);
        let used = files.iter().map(|f| f.1).sum();
        metrics.block_file_cache_bytes.set(used as i64);
        Ok(Self {
            dir,
            budget,
            used: Mutex::new(used),
            metrics,
        })
    }

    fn path(&self, meta: &BlockMeta, name: &str) -> PathBuf {
        self.dir.join(&meta.tenant).join(&meta.ulid).join(name)
    }

    /// The files of a block a whole decode reads (all but its rollups): from
    /// disk when cached, else from `store` (and then kept on disk).
    pub async fn fetch(
        &self,
        store: &BlockStore,
        meta: &BlockMeta,
    ) -> Result<HashMap<String, Bytes>, BlockError> {
        let names: Vec<&str> = ignis_storage::block::row_files(meta.format_version).collect();
        self.fetch_files(store, meta, &names).await
    }

    /// The files `names` of a block, as [`fetch`](Self::fetch) reads them.
    pub async fn fetch_files(
        &self,
        store: &BlockStore,
        meta: &BlockMeta,
        names: &[&str],
    ) -> Result<HashMap<String, Bytes>, BlockError> {
        let mut out = HashMap::new();
        for f in meta
            .files
            .iter()
            .filter(|f| names.contains(&f.name.as_str()))
        {
            let path = self.path(meta, &f.name);
            match tokio::fs::read(&path).await {
                Ok(b) if b.len() as u64 == f.size_bytes => {
                    self.metrics.block_file_cache_hits.inc();
                    // Recently used: evicted last.
                    if let Ok(file) = std::fs::File::options().append(true).open(&path) {
                        let _ = file.set_modified(SystemTime::now());
                    }
                    out.insert(f.name.clone(), Bytes::from(b));
                    continue;
                }
                _ => {}
            }
            self.metrics.block_file_cache_misses.inc();
            let bytes = store.fetch_file(meta, &f.name).await?;
            if let Err(e) = self.put(&path, &bytes).await {
                tracing::warn!(path = %path.display(), error = %e, "cannot cache a block file");
            }
            out.insert(f.name.clone(), bytes);
        }
        Ok(out)
    }

    async fn put(&self, path: &Path, bytes: &[u8]) -> Result<(), BlockError> {
        if bytes.len() as u64 > self.budget {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let tmp = path.with_extension("partial");
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, path).await.map_err(io)?;
        let over = {
            let mut used = self.used.lock();
            *used += bytes.len() as u64;
            *used > self.budget
        };
        if over {
            self.evict();
        }
        self.metrics
            .block_file_cache_bytes
            .set(*self.used.lock() as i64);
        Ok(())
    }

    /// Removes least recently used files until within budget.
    fn evict(&self) {
        let mut files = Vec::new();
        walk(&self.dir, &mut files);
        files.sort_by_key(|f| f.2);
        let mut used: u64 = files.iter().map(|f| f.1).sum();
        for (path, size, _) in files {
            if used <= self.budget {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                used -= size;
                self.metrics.block_file_cache_evictions.inc();
            }
        }
        *self.used.lock() = used;
    }

    /// Drops a deleted block's files.
    pub fn remove_block(&self, tenant: &str, ulid: &str) {
        let dir = self.dir.join(tenant).join(ulid);
        let mut files = Vec::new();
        walk(&dir, &mut files);
        if std::fs::remove_dir_all(&dir).is_ok() {
            let freed: u64 = files.iter().map(|f| f.1).sum();
            let mut used = self.used.lock();
            *used = used.saturating_sub(freed);
            self.metrics.block_file_cache_bytes.set(*used as i64);
        }
    }

    /// Bytes on disk.
    pub fn used_bytes(&self) -> u64 {
        *self.used.lock()
    }
}
