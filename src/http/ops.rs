//! Operational endpoints: `/ready`, `/metrics`, Pyroscope's
//! `/api/v1/status/buildinfo` and `/api/v1/status/config`, and the limits
//! of a tenant (`/api/v1/tenant_limits`).

use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ApiError;
use super::state::AppState;

/// `GET /ready`.
pub async fn ready() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ready")
}

/// `GET /api/v1/status/buildinfo`, in Pyroscope's shape. The revision is
/// `IGNIS_REVISION` at build time when set; fields Ignis has no value for
/// (Go version, build user) are empty.
pub async fn buildinfo() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "success",
        "data": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": option_env!("IGNIS_REVISION").unwrap_or("unknown"),
            "branch": option_env!("IGNIS_BRANCH").unwrap_or(""),
            "build_user": "",
            "build_date": option_env!("IGNIS_BUILD_DATE").unwrap_or(""),
            "go_version": "",
        }
    }))
}

/// `GET /api/v1/tenant_limits`: the ingest and query limits in force for the
/// request's tenant (`X-Scope-OrgID`): the configured `limits` with that
/// tenant's overrides (`overrides.file`) applied.
pub async fn tenant_limits(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let all = state.tenants.tenant_limits();
    let (running, queued) = state.tenants.query_slot_limits(&tenant);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "tenant": tenant,
        "overridden": all.is_overridden(&tenant),
        "limits": &*all.get(&tenant),
        "query": &*all.query(&tenant),
        "query_slots": {
            "max_concurrent_queries_per_tenant": running,
            "max_queued_queries_per_tenant": queued,
        },
    })))
}

/// `GET /api/v1/status/config`: the node's effective configuration.
/// Pyroscope answers YAML; this is JSON, which YAML readers read as YAML
/// (JSON is YAML 1.2). Secrets (`secret_access_key`, and any key naming a
/// secret, password or token) are masked.
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    let mut v = serde_json::to_value(&*state.config).unwrap_or_default();
    mask_secrets(&mut v);
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn mask_secrets(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let k = k.to_ascii_lowercase();
                let secret = ["secret", "password", "token"]
                    .iter()
                    .any(|s| k.contains(s) && !k.starts_with("tokens_"));
                match v {
                    serde_json::Value::String(s) if secret && !s.is_empty() => {
                        *s = "********".into();
                    }
                    _ => mask_secrets(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
