//! The bucket as DataFusion reads it, and the Parquet footer cache every
//! DataFusion runtime of the node shares.
//!
//! Blocks are immutable: a block's files are written once under a fresh
//! ULID directory (`meta.json` last) and only ever deleted. [`Bucket`]
//! therefore reports a constant modification time for every object, so a
//! reader can describe a block file from `meta.json` alone (path and size,
//! no `HEAD` request) and a footer cached by one query (SQL, or a pruned
//! block read) is valid for every later one. The cache is bounded (least
//! recently used footers are dropped) and forgets a block's files when the
//! block is deleted ([`Bucket::forget_block`]).
//!
//! A filesystem bucket's ranged reads (the pages a pruned scan needs) are
//! read in place with positioned reads instead of through opendal, whose
//! filesystem service sends every range to the blocking pool.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use ignis_storage::block::{BlockError, BlockMeta};

/// The URL DataFusion knows the bucket by.
pub const BUCKET_URL: &str = "ignis://bucket";

/// Default bound of the footer cache, in bytes.
pub const DEFAULT_FOOTER_CACHE_BYTES: usize = 64 << 20;

/// Requests a [`Bucket`] sent to the object store.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Object reads (`GET`, ranged or not; `HEAD`s excluded).
    pub reads: AtomicU64,
    /// Bytes those reads returned or asked for.
    pub bytes: AtomicU64,
}

/// An object store that reports a constant modification time (see the
/// module docs) and counts reads.
struct ImmutableStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<ReadCounters>,
    /// The directory of a filesystem bucket: its ranged reads are read in
    /// place (see [`read_local`]), not through opendal.
    local_root: Option<PathBuf>,
}

/// Ranged reads below this many bytes in all are read on the calling
/// thread; larger ones on the blocking pool.
const INLINE_READ_BYTES: u64 = 4 << 20;

/// Reads `ranges` of the file at `path`: one open, one positioned read per
/// range. A filesystem bucket's ranged reads (a few pages of a Parquet
/// file, usually in the page cache) cost microseconds this way; through
/// opendal each range was a hop to the blocking pool and back.
fn read_local(path: &std::path::Path, ranges: &[Range<u64>]) -> std::io::Result<Vec<Bytes>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    ranges
        .iter()
        .map(|r| {
            let len = usize::try_from(r.end.saturating_sub(r.start))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, r.start)?;
            Ok(Bytes::from(buf))
        })
        .collect()
}

/// An object store error for a failed local read of `location`.
fn local_error(location: &Path, e: std::io::Error) -> datafusion::object_store::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        datafusion::object_store::Error::NotFound {
            path: location.to_string(),
            source: Box::new(e),
        }
    } else {
        datafusion::object_store::Error::Generic {
            store: "ignis-fs",
            source: Box::new(e),
        }
    }
}

impl fmt::Display for ImmutableStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Immutable({})", self.inner)
    }
}

impl fmt::Debug for ImmutableStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImmutableStore({:?})", self.inner)
    }
}

fn constant(mut meta: ObjectMeta) -> ObjectMeta {
    meta.last_modified = Default::default();
    meta
}

#[async_trait]
impl ObjectStore for ImmutableStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> datafusion::object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> datafusion::object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> datafusion::object_store::Result<GetResult> {
        let head = options.head;
        let mut result = self.inner.get_opts(location, options).await?;
        if !head {
            self.counters.reads.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes.fetch_add(
                result.range.end.saturating_sub(result.range.start),
                Ordering::Relaxed,
            );
        }
        result.meta = constant(result.meta);
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> datafusion::object_store::Result<Vec<Bytes>> {
        let out = match &self.local_root {
            Some(root) => {
                let path = root.join(location.as_ref());
                let total: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
                if total <= INLINE_READ_BYTES {
                    read_local(&path, ranges).map_err(|e| local_error(location, e))?
                } else {
                    let ranges = ranges.to_vec();
                    tokio::task::spawn_blocking(move || read_local(&path, &ranges))
                        .await
                        .map_err(|e| datafusion::object_store::Error::Generic {
                            store: "ignis-fs",
                            source: Box::new(e),
                        })?
                        .map_err(|e| local_error(location, e))?
                }
            }
            None => self.inner.get_ranges(location, ranges).await?,
        };
        self.counters
            .reads
            .fetch_add(ranges.len() as u64, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(out.iter().map(|b| b.len() as u64).sum(), Ordering::Relaxed);
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, datafusion::object_store::Result<Path>>,
    ) -> BoxStream<'static, datafusion::object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, datafusion::object_store::Result<ObjectMeta>> {
        self.inner.list(prefix).map(|m| m.map(constant)).boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> datafusion::object_store::Result<ListResult> {
        let mut out = self.inner.list_with_delimiter(prefix).await?;
        out.objects = out.objects.into_iter().map(constant).collect();
        Ok(out)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> datafusion::object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The bucket through opendal as DataFusion's object store, with the footer
/// cache of the node. Cheap to share (`Arc`).
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    footers: Arc<FileMetadataCache>,
    footer_limit: usize,
    counters: Arc<ReadCounters>,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("footers", &self.footers.len())
            .field("footer_limit", &self.footer_limit)
            .finish()
    }
}

impl Bucket {
    /// The bucket behind `op`, caching at most `footer_cache_bytes` of
    /// Parquet footers (and page indexes).
    pub fn new(op: opendal::Operator, footer_cache_bytes: usize) -> Self {
        let counters = Arc::new(ReadCounters::default());
        let local_root = ignis_storage::block::local_root(&op);
        let store = Arc::new(ImmutableStore {
            inner: Arc::new(object_store_opendal::OpendalStore::new(op)),
            counters: counters.clone(),
            local_root,
        });
        Self {
            store,
            footers: Arc::new(
                DefaultCache::new(footer_cache_bytes).with_name("ignis-parquet-footers"),
            ),
            footer_limit: footer_cache_bytes,
            counters,
        }
    }

    /// The object store DataFusion reads through.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The URL the store is registered under.
    pub fn url(&self) -> Result<ObjectStoreUrl, BlockError> {
        ObjectStoreUrl::parse(BUCKET_URL).map_err(|e| BlockError::Read(e.to_string()))
    }

    /// The shared footer cache.
    pub fn footers(&self) -> Arc<FileMetadataCache> {
        self.footers.clone()
    }

    /// Footers (files) cached.
    pub fn cached_footers(&self) -> usize {
        self.footers.len()
    }

    /// Reads sent to the object store so far.
    pub fn counters(&self) -> &ReadCounters {
        &self.counters
    }

    /// A DataFusion runtime over this bucket and its footer cache, with its
    /// own memory pool of `max_memory` bytes (`None`: unbounded).
    pub fn runtime(&self, max_memory: Option<usize>) -> Result<Arc<RuntimeEnv>, BlockError> {
        let caches = CacheManagerConfig::default()
            .with_file_metadata_cache(Some(self.footers.clone()))
            .with_metadata_cache_limit(self.footer_limit);
        let mut builder = RuntimeEnvBuilder::new().with_cache_manager(caches);
        if let Some(max) = max_memory {
            builder = builder.with_memory_limit(max, 1.0);
        }
        let runtime = builder
            .build_arc()
            .map_err(|e| BlockError::Read(e.to_string()))?;
        runtime.register_object_store(self.url()?.as_ref(), self.store.clone());
        Ok(runtime)
    }

    /// Where a block file is, inside the bucket.
    pub fn path(meta: &BlockMeta, file: &str) -> Path {
        Path::from(format!("{}/blocks/{}/{file}", meta.tenant, meta.ulid))
    }

    /// A block file as the object store describes it, from `meta.json`
    /// alone (no request); `None` if the meta does not list it.
    pub fn object(meta: &BlockMeta, file: &str) -> Option<ObjectMeta> {
        let f = meta.files.iter().find(|f| f.name == file)?;
        Some(ObjectMeta {
            location: Self::path(meta, file),
            last_modified: Default::default(),
            size: f.size_bytes,
            e_tag: None,
            version: None,
        })
    }

    /// Drops a deleted block's footers from the cache.
    pub fn forget_block(&self, meta: &BlockMeta) {
        for f in &meta.files {
            self.footers.remove(&Self::path(meta, &f.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_filesystem_buckets_ranged_reads_are_read_in_place_and_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = ignis_storage::block::ObjectStoreConfig::default();
        let store = ignis_storage::block::BlockStore::open(&cfg, dir.path()).expect("store");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let files = dir.path().join("bucket/t/blocks/b");
        std::fs::create_dir_all(&files).expect("mkdir");
        std::fs::write(files.join("f.parquet"), &data).expect("write");
        let bucket = Bucket::new(store.operator().clone(), 1 << 20);
        assert!(bucket.store().to_string().contains("Immutable"));
        let location = Path::from("t/blocks/b/f.parquet");
        let ranges = [0..10, 500..70_000, 99_990..100_000, 7..7];
        let got = bucket
            .store()
            .get_ranges(&location, &ranges)
            .await
            .expect("read");
        for (r, b) in ranges.iter().zip(&got) {
            assert_eq!(b.as_ref(), &data[r.start as usize..r.end as usize]);
        }
        assert_eq!(bucket.counters().reads.load(Ordering::Relaxed), 4);
        // A missing file is NotFound; a range past the end an error.
        let missing = bucket
            .store()
            .get_ranges(&Path::from("t/blocks/b/gone.parquet"), &[0..1, 1..2])
            .await
            .expect_err("missing");
        assert!(
            matches!(missing, datafusion::object_store::Error::NotFound { .. }),
            "{missing}"
        );
        assert!(
            bucket
                .store()
                .get_ranges(&location, &[0..1, 99_999..100_001])
                .await
                .is_err()
        );
    }
}
