//! Node-to-node endpoints, `POST /internal/v1/{push,fetch}`: replicated
//! writes into this node's ingester and reads of its data for a peer's
//! query. Served only in cluster mode; bodies are rkyv messages.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ignis_actors::ingester::Append;
use ignis_actors::validate_tenant_id;
use ignis_cluster::rpc::{self, FetchRequest, PROTOCOL_VERSION, PushReply, VERSION_HEADER};
use ignis_storage::decode_record;

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

fn octets(bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(bytes)
}

/// `POST /internal/v1/{method}`.
pub async fn call(
    req: HttpRequest,
    method: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_version(&req)?;
    let Some(cluster) = state.tenants.cluster().cloned() else {
        return Err(ApiError::not_found("this node is not in a cluster"));
    };
    // A replicated push may hold several profiles, each within the limits.
    let limit = state
        .config
        .limits
        .ingestion_body_limit_bytes
        .saturating_mul(4);
    let body = read_body(payload, limit).await?.freeze();
    match method.as_str() {
        "push" => {
            if !cluster.local_ingester {
                return Err(ApiError::bad_request(
                    "this node does not run the ingester role",
                ));
            }
            let record = body.clone();
            let (tenant, profiles) = web::block(move || decode_record(&body))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::bad_request(format!("push record: {e}")))?;
            validate_tenant_id(&tenant).map_err(ApiError::bad_request)?;
            let ingester = state
                .tenants
                .get_or_start(&tenant)
                .ingester
                .ok_or_else(|| ApiError::bad_request("this node does not run the ingester role"))?;
            let stats = ingester
                .send(Append {
                    profiles: Arc::new(profiles),
                    // Stored in the WAL as received: it is this tenant's record.
                    record: Some(record),
                })
                .await
                .map_err(|e| ApiError::unavailable(format!("ingester unavailable: {e}")))?
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            let reply = rpc::encode(&PushReply {
                profiles: stats.profiles,
                samples: stats.samples,
            })
            .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(octets(reply))
        }
        "fetch" => {
            let fr: FetchRequest = rpc::decode(&body)
                .map_err(|e| ApiError::bad_request(format!("fetch request: {e}")))?;
            validate_tenant_id(&fr.tenant).map_err(ApiError::bad_request)?;
            let local = if cluster.local_ingester {
                state.tenants.local_data(&fr.tenant)
            } else {
                None
            };
            let blocks = state
                .tenants
                .block_heads(&fr.tenant, fr.start_ns, fr.end_ns)
                .await?;
            let bytes = web::block(move || {
                ignis_actors::cluster::encode_slice(local.as_ref(), &blocks, fr.start_ns, fr.end_ns)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(ApiError::internal)?;
            Ok(octets(bytes))
        }
        other => Err(ApiError::not_found(format!("no internal method {other:?}"))),
    }
}
