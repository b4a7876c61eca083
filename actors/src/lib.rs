//! Ignis actors: the components of a node (distributor, ingester, querier),
//! each an actix actor supervised per tenant. The ingest decoders they use are
//! the `ignis-ingest` crate (`actors/ingest`).

#![warn(missing_docs)]

pub mod analyze;
pub mod cluster;
pub mod compactor;
pub mod distributor;
pub mod fair;
pub mod file_cache;
pub mod file_stamp;
pub mod frontend;
pub mod hints;
pub mod ingester;
pub mod metrics;
pub mod overrides;
pub mod peer;
pub mod querier;
pub mod rate;
pub mod results_cache;
pub mod retention;
pub mod scheduler;
pub mod scrape;
pub mod sealed;
pub mod series_limit;
pub mod settings;
pub mod shipper;
pub mod store_gateway;
pub mod supervisor;
pub mod tenants;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod worker;

pub use metrics::Metrics;
pub use tenants::{
    BlockSettings, SplitSettings, TenantActors, Tenants, tenant_ids, validate_tenant_id,
};

/// Wall-clock time in nanoseconds since the epoch.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
