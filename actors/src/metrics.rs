//! Prometheus metrics of a node, exposed on `/metrics`.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A metric label set.
pub type LabelSet = Vec<(&'static str, String)>;

type HistogramFamily = Family<LabelSet, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// All metrics of a node; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Profiles accepted, by tenant and endpoint.
    pub ingested_profiles: Family<LabelSet, Counter>,
    /// `(stack, value)` samples accepted, by tenant and endpoint.
    pub ingested_samples: Family<LabelSet, Counter>,
    /// Request body bytes accepted (as received), by tenant and endpoint.
    pub ingested_bytes: Family<LabelSet, Counter>,
    /// Profile bytes accepted, decompressed, by tenant and endpoint.
    pub ingested_decompressed_bytes: Family<LabelSet, Counter>,
    /// Requests refused, by endpoint and reason.
    pub rejected_requests: Family<LabelSet, Counter>,
    /// HTTP request latency, by route, method and status.
    pub request_duration: HistogramFamily,
    /// Actor restarts after a failure, by component and tenant.
    pub actor_restarts: Family<LabelSet, Counter>,
    /// Series in the ingester heads, by tenant.
    pub head_series: Family<LabelSet, Gauge>,
    /// Distinct stacks in the ingester heads, by tenant.
    pub head_stacks: Family<LabelSet, Gauge>,
    /// Memory the ingester heads hold (cut heads not included), by tenant.
    pub head_bytes: Family<LabelSet, Gauge>,
    /// WAL records appended, by tenant.
    pub wal_appends: Family<LabelSet, Counter>,
    /// WAL bytes appended, by tenant.
    pub wal_bytes: Family<LabelSet, Counter>,
    /// WAL records replayed at startup.
    pub wal_replayed_records: Counter,
    /// Blocks uploaded, by tenant.
    pub blocks_uploaded: Family<LabelSet, Counter>,
    /// Block uploads that failed (and will be retried), by tenant.
    pub block_upload_failures: Family<LabelSet, Counter>,
    /// Blocks loaded from the object store at startup.
    pub blocks_loaded: Counter,
    /// Cluster members as this node sees them, by state.
    pub cluster_members: Family<LabelSet, Gauge>,
    /// Replica writes of pushes, by peer node and outcome.
    pub replica_writes: Family<LabelSet, Counter>,
    /// Pushes refused because a quorum of replicas could not be reached.
    pub quorum_failures: Counter,
    /// Query fetches from ingesters that failed, by peer node.
    pub fetch_failures: Family<LabelSet, Counter>,
    /// Blocks in the store-gateway's index.
    pub indexed_blocks: Gauge,
    /// Block reads answered from the store-gateway's cache.
    pub block_cache_hits: Counter,
    /// Block reads that fetched and decoded a block.
    pub block_cache_misses: Counter,
    /// Decoded blocks evicted to stay within the cache budget.
    pub block_cache_evictions: Counter,
    /// Bytes of decoded blocks in the cache.
    pub block_cache_bytes: Gauge,
    /// Block reads that read only a query's series and time range.
    pub pruned_reads: Counter,
    /// Block reads answered from the block's rollups.
    pub rollup_reads: Counter,
    /// Block reads answering a time series from the block's window totals.
    pub totals_reads: Counter,
    /// Block reads answering a series listing from the block's series table alone.
    pub series_table_reads: Counter,
    /// `(series, window)` cells of blocks overlapping others, by how they
    /// were answered (`rollup`, `skipped` for a replica, `raw`).
    pub replica_cells: Family<LabelSet, Counter>,
    /// Blocks the compactor wrote.
    pub compactions: Counter,
    /// Compaction jobs that failed.
    pub compaction_failures: Counter,
    /// Reloads of the tenant limit overrides file that failed (the limits
    /// in force stayed).
    pub overrides_reload_failures: Counter,
    /// Replaced blocks the compactor deleted.
    pub compaction_deleted_blocks: Counter,
    /// Blocks the compactor deleted past retention.
    pub compaction_expired_blocks: Counter,
    /// Compaction jobs running now (merging, uploading or indexing).
    pub compaction_jobs_running: Gauge,
    /// Row groups pruned reads skipped by their statistics.
    pub pruned_row_groups_skipped: Counter,
    /// Row groups pruned reads opened.
    pub pruned_row_groups_read: Counter,
    /// Rows pruned reads returned.
    pub pruned_rows_read: Counter,
    /// Parquet footers in the shared footer cache.
    pub parquet_footers_cached: Gauge,
    /// Block files read from the local disk cache.
    pub block_file_cache_hits: Counter,
    /// Query intervals the query-frontend answered from its results cache.
    pub results_cache_hits: Counter,
    /// Settled query intervals not in the results cache (computed, then stored).
    pub results_cache_misses: Counter,
    /// Bytes in the results cache.
    pub results_cache_bytes: Gauge,
    /// Sub-queries waiting in this node's query-scheduler.
    pub scheduler_queued: Gauge,
    /// Sub-queries through this node's query-scheduler, by outcome.
    pub scheduler_sub_queries: Family<LabelSet, Counter>,
    /// Sub-queries this node's querier workers ran.
    pub querier_sub_queries: Counter,
    /// Queries that entered this node, by lane (interactive, bulk).
    pub query_lanes: Family<LabelSet, Counter>,
    /// Sub-queries this node's querier workers stopped because their
    /// frontend went away.
    pub querier_sub_queries_cancelled: Counter,
    /// Block files fetched from the bucket (and then cached).
    pub block_file_cache_misses: Counter,
    /// Block files removed from the disk cache to stay within its budget.
    pub block_file_cache_evictions: Counter,
    /// Bytes of block files in the disk cache.
    pub block_file_cache_bytes: Gauge,
    /// Bytes of replica writes waiting for their node (hinted handoff).
    pub hints_pending_bytes: Gauge,
    /// Hinted replica writes delivered.
    pub hints_delivered: Counter,
    /// Hinted replica writes dropped over the budget.
    pub hints_dropped: Counter,
    /// Scrapes of pull-mode targets, by target, profile and outcome.
    pub scrapes: Family<LabelSet, Counter>,
    /// Scrape latency, by target and profile.
    pub scrape_duration: HistogramFamily,
    /// Whether the last scrape of a target's profile succeeded (1) or not (0).
    pub scrape_up: Family<LabelSet, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ignis");
        let ingested_profiles = Family::default();
        let ingested_samples = Family::default();
        let ingested_bytes = Family::default();
        let ingested_decompressed_bytes = Family::default();
        let rejected_requests = Family::default();
        let request_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let actor_restarts = Family::default();
        let head_series = Family::default();
        let head_stacks = Family::default();
        let head_bytes = Family::default();
        let wal_appends = Family::default();
        let wal_bytes = Family::default();
        let wal_replayed_records = Counter::default();
        let blocks_uploaded = Family::default();
        let block_upload_failures = Family::default();
        let blocks_loaded = Counter::default();
        let cluster_members = Family::default();
        let replica_writes = Family::default();
        let quorum_failures = Counter::default();
        let fetch_failures = Family::default();
        let indexed_blocks = Gauge::default();
        let block_cache_hits = Counter::default();
        let block_cache_misses = Counter::default();
        let block_cache_evictions = Counter::default();
        let block_cache_bytes = Gauge::default();
        let hints_pending_bytes = Gauge::default();
        let block_file_cache_hits = Counter::default();
        let results_cache_hits = Counter::default();
        let results_cache_misses = Counter::default();
        let results_cache_bytes = Gauge::default();
        let scheduler_queued = Gauge::default();
        let scheduler_sub_queries = Family::<LabelSet, Counter>::default();
        let querier_sub_queries = Counter::default();
        let query_lanes = Family::<LabelSet, Counter>::default();
        registry.register(
            "query_lanes",
            "Queries that entered this node, by lane: bulk when their tenant had another query in flight (run at query.bulk_nice), interactive otherwise",
            query_lanes.clone(),
        );
        let querier_sub_queries_cancelled = Counter::default();
        registry.register(
            "querier_sub_queries_cancelled",
            "Sub-queries this node's querier workers stopped because their frontend went away",
            querier_sub_queries_cancelled.clone(),
        );
        registry.register(
            "querier_sub_queries",
            "Sub-queries this node's querier workers ran",
            querier_sub_queries.clone(),
        );
        registry.register(
            "query_scheduler_queued",
            "Sub-queries waiting in this node's query-scheduler",
            scheduler_queued.clone(),
        );
        registry.register(
            "query_scheduler_sub_queries",
            "Sub-queries through this node's query-scheduler, by outcome (done, failed, refused, cancelled, abandoned, requeued)",
            scheduler_sub_queries.clone(),
        );
        registry.register(
            "results_cache_hits",
            "Query intervals the query-frontend answered from its results cache",
            results_cache_hits.clone(),
        );
        registry.register(
            "results_cache_misses",
            "Settled query intervals not in the results cache (computed, then stored)",
            results_cache_misses.clone(),
        );
        registry.register(
            "results_cache_bytes",
            "Bytes of merged stacks in the results cache",
            results_cache_bytes.clone(),
        );
        let pruned_reads = Counter::default();
        let rollup_reads = Counter::default();
        let totals_reads = Counter::default();
        registry.register(
            "store_gateway_totals_reads",
            "Block reads answering a time series from the block's window totals (summed per series and window)",
            totals_reads.clone(),
        );
        let series_table_reads = Counter::default();
        registry.register(
            "store_gateway_series_table_reads",
            "Block reads answering label names, label values or series lists from the block's series table alone (the query's range holds the whole block)",
            series_table_reads.clone(),
        );
        let replica_cells = Family::<LabelSet, Counter>::default();
        registry.register(
            "store_gateway_replica_cells",
            "Series windows of blocks overlapping others, by how they were answered: rollup, skipped (a replica holds them), raw (profiles read)",
            replica_cells.clone(),
        );
        let compactions = Counter::default();
        let compaction_failures = Counter::default();
        let overrides_reload_failures = Counter::default();
        registry.register(
            "overrides_reload_failures",
            "Reloads of the tenant limit overrides file that failed (the limits in force stayed)",
            overrides_reload_failures.clone(),
        );
        let compaction_deleted_blocks = Counter::default();
        let compaction_expired_blocks = Counter::default();
        let compaction_jobs_running = Gauge::default();
        registry.register(
            "compactor_jobs_running",
            "Compaction jobs running now (merging, uploading or indexing their output)",
            compaction_jobs_running.clone(),
        );
        registry.register(
            "compactor_blocks_expired",
            "Blocks the compactor deleted past retention",
            compaction_expired_blocks.clone(),
        );
        registry.register(
            "compactor_blocks_written",
            "Blocks the compactor wrote (each replaces overlapping blocks of a window)",
            compactions.clone(),
        );
        registry.register(
            "compactor_failures",
            "Compaction jobs that failed (their sources are kept and retried)",
            compaction_failures.clone(),
        );
        registry.register(
            "compactor_blocks_deleted",
            "Blocks deleted after a compacted block replaced them",
            compaction_deleted_blocks.clone(),
        );
        let pruned_row_groups_skipped = Counter::default();
        let pruned_row_groups_read = Counter::default();
        let pruned_rows_read = Counter::default();
        let parquet_footers_cached = Gauge::default();
        registry.register(
            "store_gateway_rollup_reads",
            "Block reads answered from the block's rollups (pre-merged windows)",
            rollup_reads.clone(),
        );
        registry.register(
            "store_gateway_pruned_reads",
            "Block reads that read only a query's series and time range",
            pruned_reads.clone(),
        );
        registry.register(
            "store_gateway_row_groups_skipped",
            "Row groups pruned block reads skipped by their statistics",
            pruned_row_groups_skipped.clone(),
        );
        registry.register(
            "store_gateway_row_groups_read",
            "Row groups pruned block reads opened",
            pruned_row_groups_read.clone(),
        );
        registry.register(
            "store_gateway_rows_read",
            "Rows pruned block reads returned",
            pruned_rows_read.clone(),
        );
        registry.register(
            "parquet_footers_cached",
            "Parquet footers in the footer cache shared by block reads and SQL",
            parquet_footers_cached.clone(),
        );
        let block_file_cache_misses = Counter::default();
        let block_file_cache_evictions = Counter::default();
        let block_file_cache_bytes = Gauge::default();
        registry.register(
            "block_file_cache_hits",
            "Block files read from the local disk cache",
            block_file_cache_hits.clone(),
        );
        registry.register(
            "block_file_cache_misses",
            "Block files fetched from the bucket",
            block_file_cache_misses.clone(),
        );
        registry.register(
            "block_file_cache_evictions",
            "Block files evicted from the disk cache",
            block_file_cache_evictions.clone(),
        );
        registry.register(
            "block_file_cache_bytes",
            "Bytes of block files in the disk cache",
            block_file_cache_bytes.clone(),
        );
        let hints_delivered = Counter::default();
        let hints_dropped = Counter::default();
        let scrapes = Family::default();
        let scrape_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let scrape_up = Family::default();
        registry.register(
            "scrapes",
            "Scrapes of pull-mode targets, by target, profile and outcome",
            scrapes.clone(),
        );
        registry.register(
            "scrape_duration_seconds",
            "Scrape latency, by target and profile",
            scrape_duration.clone(),
        );
        registry.register(
            "scrape_up",
            "1 if the last scrape of the target's profile succeeded, else 0",
            scrape_up.clone(),
        );
        registry.register(
            "hints_pending_bytes",
            "Bytes of replica writes waiting for their node (hinted handoff)",
            hints_pending_bytes.clone(),
        );
        registry.register(
            "hints_delivered",
            "Hinted replica writes delivered to their node",
            hints_delivered.clone(),
        );
        registry.register(
            "hints_dropped",
            "Hinted replica writes dropped over cluster.max_hint_bytes",
            hints_dropped.clone(),
        );
        registry.register(
            "indexed_blocks",
            "Blocks in the store-gateway index",
            indexed_blocks.clone(),
        );
        registry.register(
            "block_cache_hits",
            "Block reads answered from the store-gateway cache",
            block_cache_hits.clone(),
        );
        registry.register(
            "block_cache_misses",
            "Block reads that fetched and decoded a block",
            block_cache_misses.clone(),
        );
        registry.register(
            "block_cache_evictions",
            "Decoded blocks evicted to stay within the cache budget",
            block_cache_evictions.clone(),
        );
        registry.register(
            "block_cache_bytes",
            "Bytes of decoded blocks in the store-gateway cache",
            block_cache_bytes.clone(),
        );
        registry.register(
            "cluster_members",
            "Cluster members seen through gossip, by state",
            cluster_members.clone(),
        );
        registry.register(
            "replica_writes",
            "Replica writes of pushes, by peer and outcome",
            replica_writes.clone(),
        );
        registry.register(
            "quorum_failures",
            "Pushes refused because a quorum of replicas was not reached",
            quorum_failures.clone(),
        );
        registry.register(
            "fetch_failures",
            "Query fetches from ingesters that failed, by peer",
            fetch_failures.clone(),
        );
        registry.register(
            "blocks_uploaded",
            "Blocks uploaded to object storage",
            blocks_uploaded.clone(),
        );
        registry.register(
            "block_upload_failures",
            "Block uploads that failed and will be retried",
            block_upload_failures.clone(),
        );
        registry.register(
            "blocks_loaded",
            "Blocks loaded from object storage at startup",
            blocks_loaded.clone(),
        );
        registry.register("wal_appends", "WAL records appended", wal_appends.clone());
        registry.register("wal_bytes", "WAL bytes appended", wal_bytes.clone());
        registry.register(
            "wal_replayed_records",
            "WAL records replayed at startup",
            wal_replayed_records.clone(),
        );
        // The ingest rates: rate() of these is profiles, samples and bytes per second.
        registry.register(
            "ingest_profiles",
            "Profiles accepted, per series and sample type",
            ingested_profiles.clone(),
        );
        registry.register(
            "ingest_samples",
            "Stack samples accepted",
            ingested_samples.clone(),
        );
        registry.register(
            "ingest_bytes",
            "Request body bytes accepted, as received (compressed)",
            ingested_bytes.clone(),
        );
        registry.register(
            "ingest_decompressed_bytes",
            "Profile bytes accepted, decompressed (what the ingestion rate limit weighs)",
            ingested_decompressed_bytes.clone(),
        );
        registry.register(
            "rejected_requests",
            "Ingest requests refused, by reason",
            rejected_requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "HTTP request latency",
            request_duration.clone(),
        );
        registry.register(
            "actor_restarts",
            "Actors restarted by their supervisor",
            actor_restarts.clone(),
        );
        registry.register(
            "head_series",
            "Series in the ingester head",
            head_series.clone(),
        );
        registry.register(
            "head_stacks",
            "Distinct stacks in the ingester head",
            head_stacks.clone(),
        );
        registry.register(
            "head_bytes",
            "Memory the ingester heads hold, before they are cut",
            head_bytes.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ingested_profiles,
            ingested_samples,
            ingested_bytes,
            ingested_decompressed_bytes,
            rejected_requests,
            request_duration,
            actor_restarts,
            head_series,
            head_stacks,
            head_bytes,
            wal_appends,
            wal_bytes,
            wal_replayed_records,
            blocks_uploaded,
            block_upload_failures,
            blocks_loaded,
            cluster_members,
            replica_writes,
            quorum_failures,
            fetch_failures,
            indexed_blocks,
            block_cache_hits,
            block_cache_misses,
            block_cache_evictions,
            block_cache_bytes,
            hints_pending_bytes,
            pruned_reads,
            rollup_reads,
            totals_reads,
            series_table_reads,
            replica_cells,
            compactions,
            compaction_failures,
            overrides_reload_failures,
            compaction_deleted_blocks,
            compaction_expired_blocks,
            compaction_jobs_running,
            pruned_row_groups_skipped,
            pruned_row_groups_read,
            pruned_rows_read,
            parquet_footers_cached,
            block_file_cache_hits,
            results_cache_hits,
            results_cache_misses,
            results_cache_bytes,
            scheduler_queued,
            scheduler_sub_queries,
            querier_sub_queries,
            query_lanes,
            querier_sub_queries_cancelled,
            block_file_cache_misses,
            block_file_cache_evictions,
            block_file_cache_bytes,
            hints_delivered,
            hints_dropped,
            scrapes,
            scrape_duration,
            scrape_up,
        }
    }

    /// The Prometheus text exposition of all metrics.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        // The process metrics every Prometheus client library exports,
        // before OpenMetrics' closing line.
        let eof = out.strip_suffix("# EOF\n").map(str::len);
        if let Some(len) = eof {
            out.truncate(len);
        }
        process_metrics(&mut out);
        if eof.is_some() {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// `process_cpu_seconds_total` and `process_resident_memory_bytes`, from
/// `/proc/self` (nothing where there is none).
fn process_metrics(out: &mut String) {
    use std::fmt::Write;
    if let Some(cpu) = process_cpu_seconds() {
        let _ = write!(
            out,
            "# HELP process_cpu_seconds Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds counter\n\
             process_cpu_seconds_total {cpu}\n"
        );
    }
    if let Some(rss) = process_resident_bytes() {
        let _ = write!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes {rss}\n"
        );
    }
}

/// User and system CPU time of this process, seconds (`/proc/self/stat`,
/// whose times are in USER_HZ, 100 per second on Linux).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resident memory of this process, bytes (`VmRSS` of `/proc/self/status`).
pub fn process_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_process_metrics_before_its_end() {
        // Busy until the kernel has counted a tick of CPU (10 ms) for us.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while process_cpu_seconds() == Some(0.0) && started.elapsed().as_secs() < 10 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let text = Metrics::new().encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        let value = |name: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing from {text}"));
            line[name.len() + 1..].parse().unwrap()
        };
        // This test process has run and holds memory.
        assert!(value("process_cpu_seconds_total") > 0.0);
        assert!(value("process_resident_memory_bytes") > 1e6);
    }
}
