//! Node configuration: embedded defaults, an optional TOML file, and
//! `IGNIS_…` environment overrides (`IGNIS_SERVER__HTTP_LISTEN_ADDRESS=…`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ignis_actors::scrape::ScrapeConfig;
use ignis_ingest::Limits;
use ignis_query::QueryLimits;
use ignis_storage::WalSync;
use ignis_storage::block::ObjectStoreConfig;
use serde::{Deserialize, Serialize};

use crate::roles::Roles;

/// The whole configuration of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Roles this node runs: `all`, or a comma-separated list.
    pub target: String,
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Where node-local data lives.
    pub storage: StorageConfig,
    /// How requests are assigned to tenants.
    pub tenancy: TenancyConfig,
    /// Ingest limits (per tenant; the same for all tenants for now).
    pub limits: Limits,
    /// Per-tenant overrides of `limits`, from a file reloaded at runtime.
    pub overrides: OverridesConfig,
    /// Built-in authentication and authorization.
    pub auth: crate::auth::AuthConfig,
    /// Query limits.
    pub query: QueryConfig,
    /// Logging.
    pub log: LogConfig,
    /// The web UI.
    pub ui: UiConfig,
    /// Gossip membership and replication.
    pub cluster: ClusterConfig,
    /// Pull mode: Go `net/http/pprof` targets to scrape.
    pub scrape: ScrapeConfig,
    /// The compactor (nodes with the `compactor` role).
    pub compactor: CompactorConfig,
}

/// Compactor settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// Seconds between compaction rounds.
    pub interval_secs: u64,
    /// Length of the aligned windows overlapping blocks are merged by, in seconds.
    pub window_secs: u64,
    /// Length of the aligned windows (days) all of a settled window's
    /// blocks are merged by, in seconds (0: never).
    pub day_window_secs: u64,
    /// Seconds after a window ends before it is compacted (no ingester
    /// still holds data for it).
    pub settle_secs: u64,
    /// Seconds a replaced block is kept after its replacement is written
    /// (longer than `storage.block_sync_interval_secs`, so every
    /// store-gateway indexes the replacement first).
    pub deletion_delay_secs: u64,
    /// Sample rows one merge holds in memory at once.
    pub chunk_rows: u64,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        let s = ignis_actors::compactor::Settings::default();
        Self {
            interval_secs: 60,
            window_secs: (s.window_ns / 1_000_000_000) as u64,
            day_window_secs: (s.day_window_ns / 1_000_000_000) as u64,
            settle_secs: (s.settle_ns / 1_000_000_000) as u64,
            deletion_delay_secs: (s.deletion_delay_ns / 1_000_000_000) as u64,
            chunk_rows: s.chunk_rows,
        }
    }
}

impl CompactorConfig {
    /// The compactor's settings.
    pub fn settings(&self) -> ignis_actors::compactor::Settings {
        let ns = |s: u64| i64::try_from(s).unwrap_or(i64::MAX / 1_000_000_000) * 1_000_000_000;
        ignis_actors::compactor::Settings {
            window_ns: ns(self.window_secs.max(1)),
            day_window_ns: ns(self.day_window_secs),
            settle_ns: ns(self.settle_secs),
            deletion_delay_ns: ns(self.deletion_delay_secs),
            chunk_rows: self.chunk_rows.max(1),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            target: "all".into(),
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            tenancy: TenancyConfig::default(),
            limits: Limits::default(),
            overrides: OverridesConfig::default(),
            auth: crate::auth::AuthConfig::default(),
            query: QueryConfig::default(),
            log: LogConfig::default(),
            ui: UiConfig::default(),
            cluster: ClusterConfig::default(),
            scrape: ScrapeConfig::default(),
            compactor: CompactorConfig::default(),
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port` the HTTP API listens on.
    pub http_listen_address: String,
    /// HTTP worker threads (0: one per core).
    pub http_workers: usize,
    /// Actor threads tenants are spread over (0: one per core).
    pub actor_threads: usize,
    /// Ingesters each tenant's series are spread over, each on its own
    /// actor thread with its own head, WAL stream and blocks (0: one per
    /// actor thread), so one busy tenant can use every core. Each shard
    /// cuts its own blocks, so more shards mean more (smaller) blocks
    /// until the compactor merges them.
    pub ingester_shards: usize,
    /// `host:port` of a port serving only OTLP profile export, over gRPC
    /// (h2c, or TLS with the HTTP listener's certificate) and OTLP/HTTP
    /// (empty: off; 4317 is the usual port). The main port serves it too.
    pub otlp_grpc_listen_address: String,
    /// PEM certificate chain for TLS on the HTTP listener (empty: plain
    /// HTTP). Reloaded when the file changes.
    pub tls_cert_file: String,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: String,
    /// How often the certificate files are checked for changes, in seconds.
    pub tls_reload_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_listen_address: "127.0.0.1:4040".into(),
            http_workers: 0,
            actor_threads: 0,
            ingester_shards: 1,
            otlp_grpc_listen_address: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_reload_secs: 10,
        }
    }
}

/// Node-local storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for node-local data (the WAL lives in `<data_dir>/wal`).
    pub data_dir: PathBuf,
    /// `always`: a push is acknowledged only once its WAL record is fsynced.
    /// `batched`: records are fsynced every `wal_flush_interval_ms`, and a crash
    /// can lose the pushes acknowledged in that interval.
    pub wal_sync: WalSync,
    /// How often the WAL is fsynced in the background (and in `batched` mode).
    pub wal_flush_interval_ms: u64,
    /// `always`: under load, the least time between two group-commit
    /// fsyncs, in microseconds (each then serves every push of its window;
    /// a push after a quiet spell is synced at once). 0: sync at once.
    pub wal_commit_window_us: u64,
    /// Cut a tenant's head into a block once its first profile is this old.
    pub max_block_duration_secs: u64,
    /// Cut a tenant's head into a block once it holds this many samples (0: no limit).
    pub max_head_samples: u64,
    /// Cut a tenant's head into a block as soon as its memory reaches this
    /// many bytes (0: no bound): the ingester cuts at the bound itself, so
    /// the head's memory never grows past it between shipping rounds.
    pub max_head_bytes: u64,
    /// How often heads are checked for cutting and blocks are shipped.
    pub block_check_interval_secs: u64,
    /// How often the store-gateway lists the bucket for new and deleted blocks.
    pub block_sync_interval_secs: u64,
    /// Memory for decoded blocks in the store-gateway's cache, in bytes.
    pub block_cache_bytes: u64,
    /// Local disk for block files of a remote bucket, in bytes (0: no disk cache).
    pub block_file_cache_bytes: u64,
    /// Memory for Parquet footers of blocks, shared by pruned block reads and
    /// SQL, in bytes (least recently used dropped first).
    pub parquet_footer_cache_bytes: u64,
    /// Delete blocks whose newest profile is older than this (0: keep forever).
    pub retention_secs: u64,
    /// Per-tenant retention overrides, in seconds.
    pub tenant_retention_secs: BTreeMap<String, u64>,
    /// The object store blocks are uploaded to.
    pub bucket: ObjectStoreConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            wal_sync: WalSync::Always,
            wal_flush_interval_ms: 200,
            wal_commit_window_us: 1000,
            max_block_duration_secs: 3600,
            max_head_samples: 10_000_000,
            max_head_bytes: 256 << 20,
            block_check_interval_secs: 15,
            block_sync_interval_secs: 60,
            block_cache_bytes: 1 << 30,
            block_file_cache_bytes: 8 << 30,
            parquet_footer_cache_bytes: 64 << 20,
            retention_secs: 0,
            tenant_retention_secs: BTreeMap::new(),
            bucket: ObjectStoreConfig::default(),
        }
    }
}

/// Per-tenant limit overrides: a TOML file of `[overrides.<tenant>]`
/// tables of `limits` settings, reloaded when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverridesConfig {
    /// The file (empty: no overrides). A bad file stops the node at start;
    /// at a reload it is logged and the limits in force stay.
    pub file: String,
    /// How often the file is checked for changes, in seconds.
    pub reload_secs: u64,
}

impl Default for OverridesConfig {
    fn default() -> Self {
        Self {
            file: String::new(),
            reload_secs: 10,
        }
    }
}

/// Tenancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// Refuse requests without `X-Scope-OrgID` (401) instead of using the default tenant.
    pub require_tenant_header: bool,
    /// Tenant of requests without `X-Scope-OrgID`.
    pub default_tenant: String,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            require_tenant_header: false,
            default_tenant: "anonymous".into(),
        }
    }
}

/// Query settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Queries running at once on this node; more wait.
    pub max_concurrent_queries: usize,
    /// Queries one tenant may run at once on this node; more wait their
    /// turn (0: all slots but one, so another tenant always finds one).
    pub max_concurrent_queries_per_tenant: usize,
    /// Queries one tenant may have waiting; more get 429 at once (0: no limit).
    pub max_queued_queries_per_tenant: usize,
    /// Flame graph nodes when a request gives none.
    pub max_flamegraph_nodes_default: i64,
    /// Largest `max_nodes` a request may ask for.
    pub max_flamegraph_nodes_max: i64,
    /// Longest time range of one query, in seconds (0: unlimited).
    pub max_query_length_secs: i64,
    /// How far back queries may read, in seconds (0: unlimited; Pyroscope's
    /// default is 7 days): older starts are moved up, older ranges refused.
    pub max_query_lookback_secs: i64,
    /// Memory one query of the Pyroscope API may hold (the rows it reads
    /// and what it merges), in bytes; past it the query fails with 429
    /// `resource_exhausted` naming this setting (0: unlimited).
    pub max_query_memory_bytes: u64,
    /// Disk for the query-frontend's results cache, in bytes (0: off): the
    /// merged stacks of settled intervals, under `<data_dir>/results-cache`.
    /// Needs a store-gateway on the node (its block index keys the entries).
    pub results_cache_bytes: u64,
    /// Length of the aligned intervals merges are split into and cached by,
    /// in seconds (at least 60).
    pub results_cache_interval_secs: u64,
    /// Sub-queries the query-frontend splits one query into at most, run at
    /// once by querier workers (1: one per run of intervals to read).
    pub max_query_parallelism: usize,
    /// Sub-queries one tenant may have queued or running at a
    /// query-scheduler; more get 429 at once (0: no limit).
    pub max_outstanding_per_tenant: usize,
    /// The `nice` value (0–19) of the threads that run a tenant's queries
    /// beyond its first (a flood, or a long range split into parts), so
    /// another tenant's single query and ingest get the CPU first (0: the
    /// same priority as any).
    pub bulk_nice: i32,
    /// Whether those threads (with `bulk_nice` > 0) are also in Linux's
    /// `SCHED_IDLE` class: a normal thread that wakes takes their core at
    /// once, and while normal work keeps every core busy they get almost
    /// none (false: `bulk_nice` alone).
    pub bulk_sched_idle: bool,
    /// Workers a querier runs per query-scheduler, each pulling one
    /// sub-query at a time (0: `max_concurrent_queries`).
    pub querier_workers: usize,
    /// How long a sub-query may wait and run, in seconds; past it the query
    /// fails as unavailable.
    pub sub_query_timeout_secs: u64,
    /// Rows one SQL query returns at most.
    pub sql_max_rows: usize,
    /// Memory one SQL query may use, in bytes.
    pub sql_max_memory_bytes: usize,
    /// Time one SQL query may take, in seconds.
    pub sql_timeout_secs: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        let l = QueryLimits::default();
        Self {
            max_concurrent_queries: 8,
            max_concurrent_queries_per_tenant: 0,
            max_queued_queries_per_tenant: 64,
            max_flamegraph_nodes_default: l.max_flamegraph_nodes_default,
            max_flamegraph_nodes_max: l.max_flamegraph_nodes_max,
            max_query_length_secs: l.max_query_length_secs,
            max_query_lookback_secs: l.max_query_lookback_secs,
            max_query_memory_bytes: l.max_query_memory_bytes,
            results_cache_bytes: 1 << 30,
            results_cache_interval_secs: 3600,
            max_query_parallelism: 4,
            max_outstanding_per_tenant: 256,
            bulk_nice: ignis_query::lane::DEFAULT_BULK_NICE,
            bulk_sched_idle: true,
            querier_workers: 0,
            sub_query_timeout_secs: 300,
            sql_max_rows: 10_000,
            sql_max_memory_bytes: 512 << 20,
            sql_timeout_secs: 60,
        }
    }
}

impl QueryConfig {
    /// The limits the query engine applies.
    pub fn limits(&self) -> QueryLimits {
        QueryLimits {
            max_flamegraph_nodes_default: self.max_flamegraph_nodes_default,
            max_flamegraph_nodes_max: self.max_flamegraph_nodes_max,
            max_query_length_secs: self.max_query_length_secs,
            max_query_lookback_secs: self.max_query_lookback_secs,
            max_query_memory_bytes: self.max_query_memory_bytes,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `ignis=debug,actix_web=info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// OTLP/HTTP traces endpoint (full URL, e.g.
    /// `http://127.0.0.1:4318/v1/traces`); empty: spans are not exported.
    pub otlp_traces_endpoint: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
            otlp_traces_endpoint: String::new(),
        }
    }
}

/// The web UI served at `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the UI (on nodes that answer queries).
    pub enabled: bool,
    /// Serve the UI's files from this directory instead of the copies built
    /// into the binary (for UI development); empty means embedded.
    pub assets_dir: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            assets_dir: String::new(),
        }
    }
}

/// Gossip membership, the ingester ring and replication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Join a cluster through gossip (off: a standalone node).
    pub enabled: bool,
    /// Unique, stable id of this node (empty: its HTTP advertise address).
    pub node_id: String,
    /// Nodes with another cluster id ignore each other.
    pub cluster_id: String,
    /// Shared secret of the cluster's nodes (empty: none). Internal calls
    /// (replica pushes, reads) without it are refused (401), and it is part
    /// of the gossip cluster id, so nodes without it do not join the ring.
    pub secret: String,
    /// UDP `host:port` gossip listens on.
    pub gossip_listen_address: String,
    /// UDP `host:port` peers gossip to (empty: the listen address).
    pub gossip_advertise_address: String,
    /// HTTP `host:port` peers call (empty: the HTTP listen address).
    pub http_advertise_address: String,
    /// Gossip addresses of seed nodes.
    pub seeds: Vec<String>,
    /// Time between gossip rounds, in milliseconds.
    pub gossip_interval_ms: u64,
    /// How long a failed node keeps its ring place, in seconds.
    pub dead_node_grace_secs: u64,
    /// Copies of every profile, on distinct ingesters.
    pub replication_factor: usize,
    /// Ring tokens per ingester.
    pub tokens_per_ingester: usize,
    /// Timeout of one node-to-node call, in milliseconds.
    pub rpc_timeout_ms: u64,
    /// Retries of a node-to-node call to an unreachable peer (a call gives
    /// up after `rpc_timeout_ms × (rpc_retries + 1) + 2 s` in all).
    pub rpc_retries: u32,
    /// Memory for replica writes kept for a node that is down (hinted handoff).
    pub max_hint_bytes: usize,
    /// With TLS on the HTTP listener (`server.tls_cert_file`), internal
    /// calls go over HTTPS and trust only the certificates in this PEM file
    /// (the CA that signed the nodes' certificates; empty: the node's own
    /// certificate, for a cluster sharing one). Every node of a cluster
    /// serves TLS or none does.
    pub tls_ca_file: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            node_id: String::new(),
            cluster_id: "ignis".into(),
            secret: String::new(),
            gossip_listen_address: "127.0.0.1:7946".into(),
            gossip_advertise_address: String::new(),
            http_advertise_address: String::new(),
            seeds: Vec::new(),
            gossip_interval_ms: 500,
            dead_node_grace_secs: 3600,
            replication_factor: 3,
            tokens_per_ingester: 128,
            rpc_timeout_ms: 5000,
            rpc_retries: 2,
            max_hint_bytes: 256 << 20,
            tls_ca_file: String::new(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, a value or a key is wrong.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The file does not exist.
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
}

/// Most threads a thread-count setting may ask for.
pub(crate) const MAX_THREADS: usize = 1024;

impl Config {
    /// Defaults, then `file` (if any), then `IGNIS_…` variables from `env`.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Missing(f.to_path_buf()));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(
            Env::prefixed("IGNIS_")
                .filter(|k| k.as_str().contains("__") || k == "target")
                .split("__"),
        );
        let config: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document over the defaults (no environment).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.auth.validate().map_err(ConfigError::Invalid)?;
        if !self.cluster.tls_ca_file.is_empty() && self.server.tls_cert_file.is_empty() {
            return Err(ConfigError::Invalid(
                "cluster.tls_ca_file is for TLS between nodes, which needs server.tls_cert_file"
                    .into(),
            ));
        }
        if self.server.tls_cert_file.is_empty() != self.server.tls_key_file.is_empty() {
            return Err(ConfigError::Invalid(
                "server.tls_cert_file and server.tls_key_file are set together".into(),
            ));
        }
        Roles::parse(&self.target).map_err(|e| ConfigError::Invalid(format!("target: {e}")))?;
        for (key, n) in [
            ("server.http_workers", self.server.http_workers),
            ("server.actor_threads", self.server.actor_threads),
            ("server.ingester_shards", self.server.ingester_shards),
            ("query.querier_workers", self.query.querier_workers),
        ] {
            if n > MAX_THREADS {
                return Err(ConfigError::Invalid(format!(
                    "{key}: {n} threads; at most {MAX_THREADS} (0: one per core)"
                )));
            }
        }
        if !(0..=19).contains(&self.query.bulk_nice) {
            return Err(ConfigError::Invalid(format!(
                "query.bulk_nice: {}; a nice value from 0 (same priority) to 19 (lowest)",
                self.query.bulk_nice
            )));
        }
        if self.query.max_query_parallelism > 1024 {
            return Err(ConfigError::Invalid(format!(
                "query.max_query_parallelism: {} sub-queries per query; at most 1024",
                self.query.max_query_parallelism
            )));
        }
        if self
            .server
            .http_listen_address
            .parse::<std::net::SocketAddr>()
            .is_err()
            && !self.server.http_listen_address.contains(':')
        {
            return Err(ConfigError::Invalid(format!(
                "server.http_listen_address: {:?} is not a host:port address",
                self.server.http_listen_address
            )));
        }
        self.scrape.validate().map_err(ConfigError::Invalid)?;
        let otlp = &self.log.otlp_traces_endpoint;
        if !(otlp.is_empty() || otlp.starts_with("http://") || otlp.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "log.otlp_traces_endpoint: {otlp:?} is not an http(s) URL"
            )));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log.format: {:?} is not one of text, json",
                self.log.format
            )));
        }
        // In a cluster every store-gateway must index a compacted block
        // before the blocks it replaced go, or it would serve neither.
        let sync = self.storage.block_sync_interval_secs.max(1);
        if self.cluster.enabled && self.compactor.deletion_delay_secs < 2 * sync {
            return Err(ConfigError::Invalid(format!(
                "compactor.deletion_delay_secs ({}) must be at least twice storage.block_sync_interval_secs ({sync}) in a cluster, so every store-gateway indexes a compacted block before what it replaced is deleted",
                self.compactor.deletion_delay_secs
            )));
        }
        let roles =
            Roles::parse(&self.target).map_err(|e| ConfigError::Invalid(format!("target: {e}")))?;
        if !self.cluster.enabled && roles.names().len() != crate::roles::ALL_ROLES.len() {
            return Err(ConfigError::Invalid(format!(
                "target: {:?} splits the roles across nodes, which needs cluster.enabled = true",
                self.target
            )));
        }
        if self.cluster.enabled {
            let c = &self.cluster;
            let gossip: std::net::SocketAddr = c.gossip_listen_address.parse().map_err(|_| {
                ConfigError::Invalid(format!(
                    "cluster.gossip_listen_address: {:?} is not an ip:port address",
                    c.gossip_listen_address
                ))
            })?;
            if c.gossip_advertise_address.is_empty() && gossip.ip().is_unspecified() {
                return Err(ConfigError::Invalid(
                    "cluster.gossip_advertise_address: must be set when gossip listens on an unspecified address".into(),
                ));
            }
            if !c.gossip_advertise_address.is_empty()
                && c.gossip_advertise_address
                    .parse::<std::net::SocketAddr>()
                    .is_err()
            {
                return Err(ConfigError::Invalid(format!(
                    "cluster.gossip_advertise_address: {:?} is not an ip:port address",
                    c.gossip_advertise_address
                )));
            }
            if c.replication_factor == 0 {
                return Err(ConfigError::Invalid(
                    "cluster.replication_factor: must be at least 1".into(),
                ));
            }
            if c.tokens_per_ingester == 0 {
                return Err(ConfigError::Invalid(
                    "cluster.tokens_per_ingester: must be at least 1".into(),
                ));
            }
        }
        if self.limits.max_profile_size_bytes == 0 || self.limits.ingestion_body_limit_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_profile_size_bytes and limits.ingestion_body_limit_bytes must be above 0: they bound decompression".into(),
            ));
        }
        ignis_actors::validate_tenant_id(&self.tenancy.default_tenant)
            .map_err(|e| ConfigError::Invalid(format!("tenancy.default_tenant: {e}")))?;
        Ok(())
    }
}

fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                e.to_string()
            } else {
                format!("{key}: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_config_toml_documents_the_defaults() {
        let text = include_str!("../config.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("[server]\nhttp_listen_adress = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http_listen_adress"), "{e}");
        let e = Config::from_toml("[limits]\nmax_label_name_length = \"long\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_label_name_length"), "{e}");
        let e = Config::from_toml("[limits]\nmax_profile_size_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_profile_size_bytes"), "{e}");
        let e = Config::from_toml("target = \"all,bogus\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn a_cluster_keeps_replaced_blocks_until_every_store_gateway_indexed_their_output() {
        let mut c = Config::default();
        c.compactor.deletion_delay_secs = 0;
        c.validate()
            .expect("standalone: the node indexes its outputs itself");
        c.cluster.enabled = true;
        c.target = "compactor".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("compactor.deletion_delay_secs"), "{e}");
        c.compactor.deletion_delay_secs = 2 * c.storage.block_sync_interval_secs;
        c.validate().expect("twice the sync interval");
    }
}
