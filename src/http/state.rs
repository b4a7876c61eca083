//! Shared handler state and request helpers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpMessage, HttpRequest};
use ignis_actors::{Metrics, Tenants, tenant_ids, validate_tenant_id};

use super::error::ApiError;
use crate::auth::Authenticated;
use crate::config::Config;

/// What every handler can reach.
pub struct AppState {
    /// The tenant actor registry.
    pub tenants: Arc<Tenants>,
    /// The node configuration.
    pub config: Arc<Config>,
    /// The node metrics.
    pub metrics: Metrics,
    /// Health of the pull-mode scrape targets.
    pub scrape: Arc<ignis_actors::scrape::ScrapeStatus>,
}

impl AppState {
    /// The tenant of a request: `X-Scope-OrgID`, or the default tenant.
    /// Writes, SQL and `GetProfileStats` take one; see
    /// [`AppState::read_tenants`] for reads.
    pub fn tenant(&self, req: &HttpRequest) -> Result<String, ApiError> {
        one_tenant(self.read_tenants(req)?)
    }

    /// The tenant(s) a read is for (see [`AppState::tenants_of`]), with the
    /// credential the auth middleware found, if any.
    pub fn read_tenants(&self, req: &HttpRequest) -> Result<String, ApiError> {
        let values: Vec<&[u8]> = req
            .headers()
            .get_all("x-scope-orgid")
            .map(|v| v.as_bytes())
            .collect();
        let who = req.extensions().get::<Authenticated>().cloned();
        self.tenants_of(&values, who.as_ref())
    }

    /// The tenant(s) named by a request's `X-Scope-OrgID` header `values`
    /// (or the default tenant, or the credential's own): one id, or several
    /// joined by `|` (a federated read as Pyroscope serves it), each valid
    /// and allowed to `who`, sorted and deduplicated.
    fn tenants_of(
        &self,
        values: &[&[u8]],
        who: Option<&Authenticated>,
    ) -> Result<String, ApiError> {
        let v = match values {
            [] => {
                if let Some(who) = who {
                    return Ok(who.own_tenant(&self.config.tenancy.default_tenant));
                }
                if self.config.tenancy.require_tenant_header {
                    return Err(ApiError::unauthenticated("no org id"));
                }
                return Ok(self.config.tenancy.default_tenant.clone());
            }
            [one] => std::str::from_utf8(one)
                .ok()
                .filter(|v| v.is_ascii())
                .ok_or_else(|| ApiError::bad_request("X-Scope-OrgID is not valid ASCII"))?,
            _ => {
                return Err(ApiError::bad_request(
                    "X-Scope-OrgID is given more than once; send one header (several tenants of a read are joined by '|')",
                ));
            }
        };
        let mut ids: Vec<&str> = tenant_ids(v).map(str::trim).collect();
        for id in &ids {
            validate_tenant_id(id)
                .map_err(|e| ApiError::bad_request(format!("X-Scope-OrgID: {e}")))?;
            if let Some(who) = who {
                who.check_tenant(id)?;
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids.join("|"))
    }

    /// Counts a refused ingest request.
    pub fn reject(&self, endpoint: &str, err: &ApiError) {
        let reason = err
            .reason
            .map_or_else(|| err.code.to_string(), |r| r.as_str().to_string());
        self.metrics
            .rejected_requests
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("reason", reason),
            ])
            .inc();
        tracing::debug!(endpoint, status = err.status.as_u16(), error = %err.message, "refused request");
    }
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The nanosecond range a query over `[start_ms, end_ms]` reads; a missing
/// bound (0) means everything, and the engine reports the error itself.
pub fn fetch_range(start_ms: i64, end_ms: i64) -> (i64, i64) {
    if start_ms == 0 || end_ms == 0 || start_ms > end_ms {
        return (i64::MIN, i64::MAX);
    }
    (
        start_ms.saturating_mul(1_000_000),
        end_ms.saturating_mul(1_000_000).saturating_add(999_999),
    )
}

/// `spec` when it names one tenant: writes, SQL and `GetProfileStats`
/// take one.
fn one_tenant(spec: String) -> Result<String, ApiError> {
    if spec.contains('|') {
        return Err(ApiError::bad_request(format!(
            "X-Scope-OrgID: {spec:?} names several tenants; this endpoint takes one"
        )));
    }
    Ok(spec)
}
