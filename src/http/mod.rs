//! The HTTP API: Pyroscope's write, query and legacy routes, plus operations.

pub mod body;
pub mod cluster;
pub mod connect;
pub mod connect_get;
pub mod error;
pub mod ingest;
pub mod internal;
pub mod legacy;
pub mod ops;
pub mod otlp;
pub mod page;
pub mod query;
pub mod scrape;
pub mod settings;
pub mod sql;
pub mod state;
pub mod ui;
pub mod unimplemented;

use actix_web::{HttpResponse, web};

use crate::roles::Roles;
use error::ApiError;

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed(
        "method not allowed on this route",
    ))
}

/// Registers every route the node's roles serve.
pub fn routes(cfg: &mut web::ServiceConfig, roles: &Roles, ui: bool) {
    cfg.route("/ready", web::get().to(ops::ready))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/api/v1/status/buildinfo", web::get().to(ops::buildinfo))
        .route("/api/v1/status/config", web::get().to(ops::config))
        .route("/api/v1/tenant_limits", web::get().to(ops::tenant_limits))
        .route("/cluster", web::get().to(cluster::cluster))
        .route("/scrape", web::get().to(scrape::scrape))
        .service(
            web::resource("/internal/v1/{method}")
                .route(web::post().to(internal::call))
                .default_service(web::to(method_not_allowed)),
        );
    cfg.service(
        web::resource("/settings.v1.SettingsService/{method}")
            .route(web::post().to(settings::settings))
            .default_service(web::to(method_not_allowed)),
    );
    for service in unimplemented::SERVICES {
        cfg.route(
            &format!("/{service}/{{procedure:.*}}"),
            web::route().to(unimplemented::procedure),
        );
    }
    if roles.serves_writes() {
        cfg.service(
            web::resource("/push.v1.PusherService/Push")
                .route(web::post().to(ingest::push))
                .default_service(web::to(method_not_allowed)),
        );
        for path in otlp::PATHS {
            cfg.service(
                web::resource(path)
                    .route(web::post().to(otlp::export_http))
                    .default_service(web::to(method_not_allowed)),
            );
        }
        for path in ["/ingest", "/pyroscope/ingest"] {
            cfg.service(
                web::resource(path)
                    .route(web::post().to(ingest::ingest))
                    .default_service(web::to(method_not_allowed)),
            );
        }
    }
    if roles.serves_reads() {
        cfg.service(
            web::resource("/querier.v1.QuerierService/{method}")
                .route(web::post().to(query::querier))
                .route(web::get().to(query::querier_get))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/pyroscope/render")
                .route(web::get().to(legacy::render))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/pyroscope/render-diff")
                .route(web::get().to(legacy::render_diff))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/pyroscope/label-values")
                .route(web::get().to(legacy::label_values))
                .default_service(web::to(method_not_allowed)),
        );
        cfg.service(
            web::resource("/api/v1/sql")
                .route(web::post().to(sql::sql))
                .default_service(web::to(method_not_allowed)),
        );
        if ui {
            cfg.route("/", web::get().to(ui::index))
                .route("/ui/{path:.*}", web::get().to(ui::asset));
        }
    }
}

/// The media type of a `Content-Type` value: lower case, without
/// parameters (`application/grpc+proto; charset=x` → `application/grpc+proto`).
pub fn mime_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Answers routes that do not exist.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such route",
    ))
}
