//! Per-tenant limits: the configured defaults, with overrides per tenant
//! from a runtime file (`[overrides.<tenant>]` tables of `limits` settings,
//! the query limits of `query` and its two per-tenant slot settings) that
//! is reloaded when it changes, without a restart.
//!
//! ```toml
//! [overrides.acme]
//! ingestion_rate_mb = 8.0
//! max_global_series_per_tenant = 20000
//! max_query_length_secs = 86400
//! max_concurrent_queries_per_tenant = 2
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ignis_ingest::Limits;
use ignis_query::QueryLimits;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::file_stamp::file_stamp;
use crate::tenants::validate_tenant_id;

/// Why an overrides file was not applied.
#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or names an unknown setting or tenant.
    #[error("{0}")]
    Invalid(String),
}

/// A tenant's share of a node's query slots (`0`: the node's setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySlotLimits {
    /// Queries the tenant may run at once on a node.
    pub max_concurrent_queries_per_tenant: usize,
    /// Queries the tenant may have waiting on a node.
    pub max_queued_queries_per_tenant: usize,
}

/// The limits of one tenant: ingest, query and query slots.
#[derive(Debug, Clone, PartialEq)]
pub struct Overrides {
    /// Ingest limits.
    pub ingest: Arc<Limits>,
    /// Query limits.
    pub query: Arc<QueryLimits>,
    /// Its share of the query slots.
    pub slots: QuerySlotLimits,
}

/// The limits of every tenant: defaults and per-tenant overrides.
#[derive(Debug)]
pub struct TenantLimits {
    defaults: Arc<Overrides>,
    overrides: RwLock<HashMap<String, Arc<Overrides>>>,
}

impl TenantLimits {
    /// Every tenant on `defaults` (ingest) and `query`, until overrides are set.
    pub fn new(defaults: Limits, query: QueryLimits) -> Self {
        Self {
            defaults: Arc::new(Overrides {
                ingest: Arc::new(defaults),
                query: Arc::new(query),
                slots: QuerySlotLimits::default(),
            }),
            overrides: RwLock::new(HashMap::new()),
        }
    }

    fn of(&self, tenant: &str) -> Arc<Overrides> {
        self.overrides
            .read()
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone())
    }

    /// The ingest limits of `tenant`.
    pub fn get(&self, tenant: &str) -> Arc<Limits> {
        self.of(tenant).ingest.clone()
    }

    /// The query limits of `tenant`; of a federated spec (`a|b`), the
    /// strictest of each.
    pub fn query(&self, spec: &str) -> Arc<QueryLimits> {
        let mut ids = crate::tenants::tenant_ids(spec);
        let first = self.of(ids.next().unwrap_or_default()).query.clone();
        ids.fold(first, |acc, id| Arc::new(acc.strictest(&self.of(id).query)))
    }

    /// The query slot share of `tenant`.
    pub fn slots(&self, tenant: &str) -> QuerySlotLimits {
        self.of(tenant).slots
    }

    /// The tenants with overrides.
    pub fn overridden(&self) -> Vec<String> {
        self.overrides.read().keys().cloned().collect()
    }

    /// True when `tenant` has overrides.
    pub fn is_overridden(&self, tenant: &str) -> bool {
        self.overrides.read().contains_key(tenant)
    }

    /// Replaces all overrides; returns the tenants whose limits changed.
    pub fn replace(&self, next: HashMap<String, Overrides>) -> Vec<String> {
        let next: HashMap<String, Arc<Overrides>> =
            next.into_iter().map(|(t, l)| (t, Arc::new(l))).collect();
        let mut current = self.overrides.write();
        let mut changed: Vec<String> = current
            .keys()
            .chain(next.keys())
            .filter(|t| {
                let before = current.get(*t).unwrap_or(&self.defaults);
                let after = next.get(*t).unwrap_or(&self.defaults);
                before != after
            })
            .cloned()
            .collect();
        changed.sort_unstable();
        changed.dedup();
        *current = next;
        changed
    }

    /// Parses an overrides file: each `[overrides.<tenant>]` table sets
    /// some `limits` and query settings of that tenant, the others keep
    /// the defaults.
    pub fn parse(&self, text: &str) -> Result<HashMap<String, Overrides>, OverridesError> {
        let invalid = OverridesError::Invalid;
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if let Some(key) = doc.keys().find(|k| *k != "overrides") {
            return Err(invalid(format!(
                "unknown top-level key {key:?}: tenants go under [overrides.<tenant>]"
            )));
        }
        let Some(tenants) = doc.remove("overrides") else {
            return Ok(HashMap::new());
        };
        let toml::Value::Table(tenants) = tenants else {
            return Err(invalid("overrides must be a table of tenants".into()));
        };
        let table =
            |v: Result<toml::Table, toml::ser::Error>| v.map_err(|e| invalid(e.to_string()));
        let ingest_defaults = table(toml::Table::try_from(self.defaults.ingest.as_ref()))?;
        let query_defaults = table(toml::Table::try_from(self.defaults.query.as_ref()))?;
        let slot_defaults = table(toml::Table::try_from(self.defaults.slots))?;
        let mut out = HashMap::new();
        for (tenant, settings) in tenants {
            validate_tenant_id(&tenant).map_err(|e| invalid(format!("overrides: {e}")))?;
            let toml::Value::Table(settings) = settings else {
                return Err(invalid(format!(
                    "overrides.{tenant} must be a table of limits"
                )));
            };
            let (mut ingest, mut query, mut slots) = (
                ingest_defaults.clone(),
                query_defaults.clone(),
                slot_defaults.clone(),
            );
            for (key, value) in settings {
                let to = if query.contains_key(&key) {
                    &mut query
                } else if slots.contains_key(&key) {
                    &mut slots
                } else {
                    // Unknown keys are refused by the ingest limits' parse.
                    &mut ingest
                };
                to.insert(key, value);
            }
            let tenant_err = |e: toml::de::Error| invalid(format!("overrides.{tenant}: {e}"));
            let ingest: Limits = ingest.try_into().map_err(tenant_err)?;
            let query: QueryLimits = query.try_into().map_err(tenant_err)?;
            let slots: QuerySlotLimits = slots.try_into().map_err(tenant_err)?;
            if ingest.ingestion_body_limit_bytes == 0 || ingest.max_profile_size_bytes == 0 {
                return Err(invalid(format!(
                    "overrides.{tenant}: the size limits (ingestion_body_limit_bytes, max_profile_size_bytes) must be set"
                )));
            }
            out.insert(
                tenant,
                Overrides {
                    ingest: Arc::new(ingest),
                    query: Arc::new(query),
                    slots,
                },
            );
        }
        Ok(out)
    }

    /// Reads, parses and applies the file at `path`; returns the tenants
    /// whose limits changed. On error nothing changes.
    pub fn load(&self, path: &Path) -> Result<Vec<String>, OverridesError> {
        let text = std::fs::read_to_string(path).map_err(|source| OverridesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed = self.parse(&text)?;
        Ok(self.replace(parsed))
    }
}

/// Watches an overrides file: every `every`, when its modification time or
/// length changed, loads it into `limits` and calls `changed` with the
/// tenants whose limits changed. A bad file is logged and counted by
/// `failed`; the limits in force stay.
pub async fn watch(
    limits: Arc<TenantLimits>,
    path: PathBuf,
    every: Duration,
    changed: impl Fn(&[String]) + Send + 'static,
    failed: impl Fn(&OverridesError) + Send + 'static,
) {
    // The first check loads the file again (unchanged limits call nothing),
    // so a change between the start's load and this task is not missed.
    let mut seen = None;
    let mut interval = tokio::time::interval(every.max(Duration::from_millis(100)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = file_stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match limits.load(&path) {
            Ok(tenants) => {
                tracing::info!(path = %path.display(), ?tenants, "reloaded tenant limit overrides");
                if !tenants.is_empty() {
                    changed(&tenants);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "tenant limit overrides not reloaded; the previous ones stay");
                failed(&e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_some_limits_of_some_tenants() {
        let limits = TenantLimits::new(Limits::default(), QueryLimits::default());
        let parsed = limits
            .parse(
                "[overrides.acme]\ningestion_rate_mb = 8.0\nmax_global_series_per_tenant = 20000\n\n[overrides.\"team-b\"]\nmax_label_names_per_series = 5\n",
            )
            .unwrap();
        assert_eq!(
            limits.replace(parsed),
            vec!["acme".to_string(), "team-b".into()]
        );
        let acme = limits.get("acme");
        assert_eq!(acme.ingestion_rate_mb, 8.0);
        assert_eq!(acme.max_global_series_per_tenant, 20_000);
        assert_eq!(
            acme.max_label_names_per_series, 30,
            "others keep the default"
        );
        assert_eq!(limits.get("team-b").max_label_names_per_series, 5);
        assert_eq!(*limits.get("other"), Limits::default());
        assert!(limits.is_overridden("acme") && !limits.is_overridden("other"));
        // Dropping team-b's override changes team-b only.
        let parsed = limits
            .parse(
                "[overrides.acme]\ningestion_rate_mb = 8.0\nmax_global_series_per_tenant = 20000\n",
            )
            .unwrap();
        assert_eq!(limits.replace(parsed), vec!["team-b".to_string()]);
    }

    #[test]
    fn query_limits_and_slots_are_overridden_too() {
        let query = QueryLimits {
            max_query_length_secs: 7200,
            ..QueryLimits::default()
        };
        let limits = TenantLimits::new(Limits::default(), query);
        let parsed = limits
            .parse(
                "[overrides.a]\nmax_query_length_secs = 3600\nmax_concurrent_queries_per_tenant = 2\ningestion_rate_mb = 1.0\n\n[overrides.b]\nmax_query_lookback_secs = 60\nmax_query_memory_bytes = 1000\n",
            )
            .unwrap();
        limits.replace(parsed);
        let a = limits.query("a");
        assert_eq!(a.max_query_length_secs, 3600);
        assert_eq!(limits.get("a").ingestion_rate_mb, 1.0);
        assert_eq!(limits.slots("a").max_concurrent_queries_per_tenant, 2);
        assert_eq!(limits.slots("b"), QuerySlotLimits::default());
        assert_eq!(limits.query("c").max_query_length_secs, 7200);
        // A federated read keeps the strictest of each.
        let ab = limits.query("a|b");
        assert_eq!(
            (
                ab.max_query_length_secs,
                ab.max_query_lookback_secs,
                ab.max_query_memory_bytes
            ),
            (3600, 60, 1000)
        );
    }

    #[test]
    fn bad_files_are_refused_with_reasons() {
        let limits = TenantLimits::new(Limits::default(), QueryLimits::default());
        for (text, want) in [
            ("[overrides.acme]\nmax_serie = 3\n", "unknown field"),
            (
                "[overrides.acme]\nmax_global_series_per_tenant = \"many\"\n",
                "invalid type",
            ),
            (
                "[overrides.\"a/b\"]\nmax_label_names_per_series = 3\n",
                "unsupported character",
            ),
            (
                "[acme]\nmax_label_names_per_series = 3\n",
                "unknown top-level key",
            ),
            (
                "[overrides.acme]\nmax_profile_size_bytes = 0\n",
                "size limits",
            ),
            ("[overrides\n", "expected"),
            (
                "[overrides.acme]\nmax_query_length_secs = \"1h\"\n",
                "invalid type",
            ),
        ] {
            let e = limits.parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(limits.parse("").unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_watcher_applies_changes_and_keeps_limits_past_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overrides.toml");
        std::fs::write(&path, "").unwrap();
        let limits = Arc::new(TenantLimits::new(Limits::default(), QueryLimits::default()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (ftx, mut frx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(watch(
            limits.clone(),
            path.clone(),
            Duration::from_millis(100),
            move |t| {
                let _ = tx.send(t.to_vec());
            },
            move |e| {
                let _ = ftx.send(e.to_string());
            },
        ));
        std::fs::write(&path, "[overrides.acme]\nmax_label_names_per_series = 4\n").unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert_eq!(changed, Some(vec!["acme".to_string()]));
        assert_eq!(limits.get("acme").max_label_names_per_series, 4);
        std::fs::write(
            &path,
            "[overrides.acme]\nmax_label_names_per_series = \"x\"\n",
        )
        .unwrap();
        let failed = tokio::time::timeout(Duration::from_secs(10), frx.recv())
            .await
            .unwrap();
        assert!(failed.is_some());
        assert_eq!(limits.get("acme").max_label_names_per_series, 4, "kept");
        task.abort();
    }
}
