//! Operational endpoints: `/ready` and `/metrics`.

use actix_web::{HttpResponse, web};

use super::state::AppState;

/// `GET /ready`.
pub async fn ready() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ready")
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
