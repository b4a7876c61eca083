//! Node-to-node endpoints, `POST /internal/v1/<method>`: the HTTP form of
//! `ignis_actors::peer`. This module only checks the protocol version and
//! the body size, then hands the call to [`server::handle`].

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ignis_actors::peer::{PROTOCOL_VERSION, PeerError, server};
use ignis_cluster::rpc::VERSION_HEADER;

use super::body::read_body;
use super::error::ApiError;
use super::state::AppState;

fn check_version(req: &HttpRequest) -> Result<(), ApiError> {
    let theirs = req
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    if theirs == PROTOCOL_VERSION.to_string() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "protocol_mismatch",
        format!(
            "internal protocol version {theirs} is not this node's {PROTOCOL_VERSION}; \
             finish the rolling upgrade before mixing versions"
        ),
    ))
}

/// Refuses a call without the cluster secret, when the cluster has one.
fn check_secret(req: &HttpRequest, secret: &str) -> Result<(), ApiError> {
    if secret.is_empty() {
        return Ok(());
    }
    let theirs = req
        .headers()
        .get(ignis_cluster::rpc::SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if bool::from(subtle::ConstantTimeEq::ct_eq(theirs, secret.as_bytes())) {
        return Ok(());
    }
    Err(ApiError::unauthenticated(
        "internal call without this cluster's secret (cluster.secret)",
    ))
}

/// `POST /internal/v1/{method}`.
pub async fn call(
    req: HttpRequest,
    method: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_secret(&req, &state.config.cluster.secret)?;
    check_version(&req)?;
    // A replicated push may hold several profiles, each within the limits;
    // a querier's answer holds merged stacks, bounded by the query memory.
    let limit = match method.as_str() {
        ignis_actors::peer::protocol::DONE => 1 << 30,
        _ => state
            .config
            .limits
            .ingestion_body_limit_bytes
            .saturating_mul(4),
    };
    let body = read_body(payload, limit).await?.freeze();
    let answer = server::handle(&state.tenants, &method, body).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(answer))
}

impl From<PeerError> for ApiError {
    fn from(e: PeerError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match status.as_u16() {
            400 => "invalid_argument",
            404 => "unimplemented",
            409 => "protocol_mismatch",
            503 => "unavailable",
            _ => "internal",
        };
        ApiError::new(status, code, e.to_string())
    }
}
