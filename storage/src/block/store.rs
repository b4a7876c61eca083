//! Where blocks live: any object store opendal speaks (local filesystem, S3
//! and S3-compatible, Azure Blob, GCS, Swift), laid out as
//! `<tenant>/blocks/<ULID>/<file>` with `meta.json` written last.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator, services};
use serde::{Deserialize, Serialize};

use super::BlockError;
use super::encode::EncodedBlock;
use super::meta::BlockMeta;

/// Object storage settings (`[storage.bucket]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// `filesystem`, `s3`, `azblob`, `gcs` or `swift`.
    pub backend: String,
    /// filesystem: the directory (empty: `<data_dir>/bucket`).
    pub path: String,
    /// s3/gcs: bucket; azblob/swift: container.
    pub bucket: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Endpoint URL (S3-compatible servers, Azure, Swift).
    pub endpoint: String,
    /// s3: region.
    pub region: String,
    /// s3: access key id; azblob: account name.
    pub access_key_id: String,
    /// s3: secret key; azblob: account key; gcs: credential (base64 JSON); swift: token.
    pub secret_access_key: String,
    /// Timeout of one request, in seconds.
    pub timeout_secs: u64,
    /// Attempts of one request before it fails.
    pub max_retries: usize,
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        Self {
            backend: "filesystem".into(),
            path: String::new(),
            bucket: String::new(),
            prefix: String::new(),
            endpoint: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            timeout_secs: 60,
            max_retries: 5,
        }
    }
}

/// The directory of a filesystem bucket's operator (`None` for any other
/// service): its files are read with the standard library, which is much
/// cheaper than opendal's filesystem reader for whole files and ranges.
pub fn local_root(op: &Operator) -> Option<std::path::PathBuf> {
    let info = op.info();
    (info.scheme() == "fs").then(|| info.root().into())
}

/// Blocks in an object store.
#[derive(Clone)]
pub struct BlockStore {
    op: Operator,
    local: bool,
    /// The directory of a filesystem bucket: block files are read from it
    /// directly (see [`BlockStore::read_file`]).
    root: Option<std::path::PathBuf>,
}

impl BlockStore {
    /// Opens the configured store; `data_dir` anchors the default filesystem bucket.
    pub fn open(cfg: &ObjectStoreConfig, data_dir: &Path) -> Result<Self, BlockError> {
        let op = match cfg.backend.as_str() {
            "filesystem" | "fs" => {
                let path = if cfg.path.is_empty() {
                    data_dir.join("bucket")
                } else {
                    cfg.path.clone().into()
                };
                std::fs::create_dir_all(&path)
                    .map_err(|e| BlockError::Config(format!("{}: {e}", path.display())))?;
                let root = path.canonicalize().unwrap_or(path);
                Operator::new(services::Fs::default().root(&root.to_string_lossy()))?
            }
            "s3" => {
                let mut b = services::S3::default()
                    .bucket(&cfg.bucket)
                    .root(&format!("/{}", cfg.prefix));
                if !cfg.endpoint.is_empty() {
                    b = b.endpoint(&cfg.endpoint);
                }
                b = b.region(if cfg.region.is_empty() {
                    "us-east-1"
                } else {
                    &cfg.region
                });
                if !cfg.access_key_id.is_empty() {
                    b = b.access_key_id(&cfg.access_key_id);
                }
                if !cfg.secret_access_key.is_empty() {
                    b = b.secret_access_key(&cfg.secret_access_key);
                }
                Operator::new(b)?
            }
            "azblob" => {
                let mut b = services::Azblob::default()
                    .container(&cfg.bucket)
                    .root(&format!("/{}", cfg.prefix));
                if !cfg.endpoint.is_empty() {
                    b = b.endpoint(&cfg.endpoint);
                }
                if !cfg.access_key_id.is_empty() {
                    b = b.account_name(&cfg.access_key_id);
                }
                if !cfg.secret_access_key.is_empty() {
                    b = b.account_key(&cfg.secret_access_key);
                }
                Operator::new(b)?
            }
            "gcs" => {
                let mut b = services::Gcs::default()
                    .bucket(&cfg.bucket)
                    .root(&format!("/{}", cfg.prefix));
                if !cfg.endpoint.is_empty() {
                    b = b.endpoint(&cfg.endpoint);
                }
                if !cfg.secret_access_key.is_empty() {
                    b = b.credential(&cfg.secret_access_key);
                }
                Operator::new(b)?
            }
            "swift" => {
                let mut b = services::Swift::default()
                    .container(&cfg.bucket)
                    .root(&format!("/{}", cfg.prefix));
                if !cfg.endpoint.is_empty() {
                    b = b.endpoint(&cfg.endpoint);
                }
                if !cfg.secret_access_key.is_empty() {
                    b = b.token(&cfg.secret_access_key);
                }
                Operator::new(b)?
            }
            other => {
                return Err(BlockError::Config(format!(
                    "unknown backend {other:?}; expected filesystem, s3, azblob, gcs or swift"
                )));
            }
        };
        let op = op
            .layer(TimeoutLayer::new().with_timeout(Duration::from_secs(cfg.timeout_secs.max(1))))
            .layer(
                RetryLayer::new()
                    .with_max_times(cfg.max_retries)
                    .with_jitter(),
            );
        let local = matches!(cfg.backend.as_str(), "filesystem" | "fs");
        let root = local_root(&op);
        Ok(Self { op, local, root })
    }

    /// A store over an in-memory operator (tests; feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn memory() -> Result<Self, BlockError> {
        Ok(Self {
            op: Operator::new(services::Memory::default())?,
            local: true,
            root: None,
        })
    }

    /// True when the bucket is a local directory (caching its files would copy them).
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Downloads one file of a block.
    pub async fn fetch_file(&self, meta: &BlockMeta, name: &str) -> Result<Bytes, BlockError> {
        let dir = Self::dir(&meta.tenant, &meta.ulid);
        self.read_file(&format!("{dir}{name}")).await
    }

    /// Reads a whole object. A filesystem bucket's file is read in one
    /// call on the blocking pool: opendal's filesystem reader zero-fills a
    /// fresh buffer of its read size for every chunk, which cost more than
    /// the read.
    async fn read_file(&self, path: &str) -> Result<Bytes, BlockError> {
        let Some(root) = &self.root else {
            return Ok(self.op.read(path).await?.to_bytes());
        };
        let file = root.join(path);
        tokio::task::spawn_blocking(move || std::fs::read(&file).map_err(|e| (file, e)))
            .await
            .map_err(|e| BlockError::Read(format!("read task failed: {e}")))?
            .map(Bytes::from)
            .map_err(|(file, e)| BlockError::Read(format!("{}: {e}", file.display())))
    }

    /// The opendal operator over the bucket (for readers such as DataFusion).
    pub fn operator(&self) -> &Operator {
        &self.op
    }

    fn dir(tenant: &str, ulid: &str) -> String {
        format!("{tenant}/blocks/{ulid}/")
    }

    /// Uploads the files, then `meta.json`: until that last write the block is
    /// invisible, so a crash at any point leaves no partial block behind.
    pub async fn upload(&self, block: &EncodedBlock) -> Result<(), BlockError> {
        self.upload_files(block).await?;
        self.publish(&block.meta).await
    }

    /// Uploads only the data files (the first step of [`upload`](Self::upload)).
    pub async fn upload_files(&self, block: &EncodedBlock) -> Result<(), BlockError> {
        let dir = Self::dir(&block.meta.tenant, &block.meta.ulid);
        for (name, bytes) in &block.files {
            self.op
                .write(&format!("{dir}{name}"), bytes.clone())
                .await?;
        }
        Ok(())
    }

    /// Writes `meta.json`, making the block visible.
    pub async fn publish(&self, meta: &BlockMeta) -> Result<(), BlockError> {
        let dir = Self::dir(&meta.tenant, &meta.ulid);
        self.op
            .write(&format!("{dir}meta.json"), serde_json::to_vec_pretty(meta)?)
            .await?;
        Ok(())
    }

    /// A small file of `tenant` outside its blocks (`<tenant>/<name>`, e.g.
    /// its settings), or `None` when there is none.
    pub async fn read_tenant_file(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, BlockError> {
        match self.op.read(&format!("{tenant}/{name}")).await {
            Ok(buf) => Ok(Some(buf.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the file `<tenant>/<name>`, replacing it.
    pub async fn write_tenant_file(
        &self,
        tenant: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(), BlockError> {
        self.op.write(&format!("{tenant}/{name}"), bytes).await?;
        Ok(())
    }

    /// Tenants that have a `blocks/` directory.
    pub async fn tenants(&self) -> Result<Vec<String>, BlockError> {
        let mut out: Vec<String> = self
            .op
            .list("/")
            .await?
            .into_iter()
            .filter(|e| e.metadata().is_dir())
            .map(|e| e.name().trim_end_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The ids of `tenant`'s block directories (complete or not), sorted.
    pub async fn block_ids(&self, tenant: &str) -> Result<Vec<String>, BlockError> {
        let prefix = format!("{tenant}/blocks/");
        let entries = match self.op.list(&prefix).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out: Vec<String> = entries
            .into_iter()
            // Listings include the directory listed itself.
            .filter(|e| e.metadata().is_dir() && e.path() != prefix)
            .map(|e| e.name().trim_end_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The meta of one block, or `None` while it is incomplete (no `meta.json`).
    pub async fn meta(&self, tenant: &str, ulid: &str) -> Result<Option<BlockMeta>, BlockError> {
        match self
            .op
            .read(&format!("{}meta.json", Self::dir(tenant, ulid)))
            .await
        {
            Ok(buf) => Ok(Some(serde_json::from_slice::<BlockMeta>(&buf.to_vec())?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The complete blocks of `tenant` (those with a `meta.json`), oldest first.
    pub async fn blocks(&self, tenant: &str) -> Result<Vec<BlockMeta>, BlockError> {
        let mut out = Vec::new();
        for ulid in self.block_ids(tenant).await? {
            match self.meta(tenant, &ulid).await? {
                Some(meta) => out.push(meta),
                None => tracing::debug!(
                    tenant,
                    ulid,
                    "skipping block without meta.json (incomplete upload)"
                ),
            }
        }
        out.sort_by(|a, b| a.ulid.cmp(&b.ulid));
        Ok(out)
    }

    /// Downloads the files of a block a whole decode reads (all but its
    /// rollups, which only pruned reads use).
    pub async fn fetch(&self, meta: &BlockMeta) -> Result<HashMap<String, Bytes>, BlockError> {
        let dir = Self::dir(&meta.tenant, &meta.ulid);
        let mut files = HashMap::new();
        let wanted: Vec<&str> = super::row_files(meta.format_version).collect();
        for f in meta
            .files
            .iter()
            .filter(|f| wanted.contains(&f.name.as_str()))
        {
            let buf = self.read_file(&format!("{dir}{}", f.name)).await?;
            files.insert(f.name.clone(), buf);
        }
        Ok(files)
    }

    /// Deletes a block: `meta.json` first, so it disappears at once.
    pub async fn delete(&self, tenant: &str, ulid: &str) -> Result<(), BlockError> {
        let dir = Self::dir(tenant, ulid);
        self.op.delete(&format!("{dir}meta.json")).await?;
        self.op.delete_with(&dir).recursive(true).await?;
        Ok(())
    }
}
