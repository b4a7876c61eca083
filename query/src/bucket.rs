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

use std::fmt;
use std::ops::Range;
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
        let out = self.inner.get_ranges(location, ranges).await?;
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
        let store = Arc::new(ImmutableStore {
            inner: Arc::new(object_store_opendal::OpendalStore::new(op)),
            counters: counters.clone(),
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
