//! Per-tenant ingest limits, with Pyroscope's defaults.

use serde::{Deserialize, Serialize};

use crate::relabel::RelabelRule;

/// Validation limits applied by the distributor. `0` disables a limit, except
/// for the two size limits, which must be set (they stop gzip bombs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Sustained ingest per tenant, in MiB/s of stored bytes (decompressed
    /// profiles and their labels), per distributor; 0: unlimited (Ignis's
    /// default; Pyroscope's is 4). Over it a push gets 429 `rate_limited`
    /// with `Retry-After`.
    pub ingestion_rate_mb: f64,
    /// Most MiB a tenant may push at once above the rate (0 with a rate
    /// set: one second of the rate, and at least `max_profile_size_bytes`).
    /// A push larger than the burst never passes.
    pub ingestion_burst_size_mb: f64,
    /// Most series a tenant may have active (pushed within the last hour),
    /// per distributor; 0: unlimited. A push that would make more active is
    /// refused whole with 429 `series_limit`; one profile that alone splits
    /// into more series is refused before its series are built.
    pub max_global_series_per_tenant: usize,
    /// Largest accepted HTTP request body, before decompression.
    pub ingestion_body_limit_bytes: usize,
    /// Largest accepted profile after decompression.
    pub max_profile_size_bytes: usize,
    /// Most samples one profile may carry.
    pub max_profile_stacktrace_samples: usize,
    /// Most labels one sample may carry.
    pub max_profile_stacktrace_sample_labels: usize,
    /// Deeper stacks are truncated, keeping the root-side frames.
    pub max_profile_stacktrace_depth: usize,
    /// Longer symbol strings are truncated, keeping their last bytes.
    pub max_profile_symbol_value_length: usize,
    /// Longest label name.
    pub max_label_name_length: usize,
    /// Longest label value.
    pub max_label_value_length: usize,
    /// Most label names per series (after merging sample labels).
    pub max_label_names_per_series: usize,
    /// Reject profiles older than this many seconds (0: accept any age).
    pub reject_older_than_secs: u64,
    /// Reject profiles further than this many seconds in the future (0: accept any).
    pub reject_newer_than_secs: u64,
    /// Relabel rules (Prometheus `relabel_config`) applied to every series'
    /// labels (with `__name__`, `__type__`, `__unit__`) after the built-in
    /// ones; a series a rule drops is not stored.
    pub ingestion_relabeling_rules: Vec<RelabelRule>,
    /// Relabel rules deciding which sample types of a profile are kept: each
    /// sees the profile's labels with `__type__` and `__unit__`; a sample
    /// type a rule drops is not stored.
    pub sample_type_relabeling_rules: Vec<RelabelRule>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ingestion_rate_mb: 0.0,
            ingestion_burst_size_mb: 0.0,
            max_global_series_per_tenant: 5000,
            ingestion_body_limit_bytes: 256 << 20,
            max_profile_size_bytes: 4 << 20,
            max_profile_stacktrace_samples: 16_000,
            max_profile_stacktrace_sample_labels: 100,
            max_profile_stacktrace_depth: 1000,
            max_profile_symbol_value_length: 65_535,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_label_names_per_series: 30,
            reject_older_than_secs: 0,
            reject_newer_than_secs: 0,
            ingestion_relabeling_rules: Vec::new(),
            sample_type_relabeling_rules: Vec::new(),
        }
    }
}

impl Limits {
    /// The ingest rate as bytes: `(bytes per second, burst bytes)`, or
    /// `None` when unlimited.
    pub fn ingest_rate_bytes(&self) -> Option<(f64, f64)> {
        const MIB: f64 = 1024.0 * 1024.0;
        if !(self.ingestion_rate_mb > 0.0 && self.ingestion_rate_mb.is_finite()) {
            return None;
        }
        let rate = self.ingestion_rate_mb * MIB;
        let burst = if self.ingestion_burst_size_mb > 0.0 {
            self.ingestion_burst_size_mb * MIB
        } else {
            rate.max(self.max_profile_size_bytes as f64)
        };
        Some((rate, burst))
    }
}
