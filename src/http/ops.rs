//! Operational endpoints: `/ready`, `/metrics` and Pyroscope's
//! `/api/v1/status/buildinfo`.

use actix_web::{HttpResponse, web};

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

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
