//! OTLP profiles over HTTP: `POST /v1development/profiles` and
//! `POST /opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export`
//! with `application/x-protobuf`, `application/protobuf` or `application/json`
//! bodies, answered with an `ExportProfilesServiceResponse` in the same
//! encoding. [`export`] is shared with the gRPC server.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ignis_ingest::otlp::{Encoding, decode_otlp, decode_request, encode_response};
use ignis_storage::proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceResponse;

use super::body::{decode_content_encoding, read_body};
use super::error::ApiError;
use super::ingest::{decode_beside, store, with_record};
use super::state::{AppState, now_ns};

/// The endpoint name of OTLP requests in the metrics.
const ENDPOINT: &str = "otlp";

/// The OTLP profiles export's paths: OTLP/HTTP's, and the gRPC method's
/// (served over gRPC and, as Connect or OTLP/HTTP, over HTTP).
pub const PATHS: [&str; 2] = ["/v1development/profiles", EXPORT_PATH];

/// The gRPC method of an OTLP profiles export.
pub const EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export";

/// `POST /v1development/profiles` (and the Export path over HTTP/1.1).
pub async fn export_http(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = export_http_inner(&req, payload, &state).await;
    if let Err(e) = &result {
        state.reject(ENDPOINT, e);
    }
    result
}

async fn export_http_inner(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(req)?;
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let encoding = Encoding::from_content_type(content_type).ok_or_else(|| {
        let hint = if content_type.starts_with("application/grpc") {
            " (gRPC needs HTTP/2: send it with prior knowledge (h2c) to this port, or to server.otlp_grpc_listen_address)"
        } else {
            ""
        };
        ApiError::unsupported_media_type(format!(
            "unsupported Content-Type {content_type:?}: use application/x-protobuf, application/protobuf or application/json{hint}"
        ))
    })?;
    let limit = state.tenants.limits(&tenant).ingestion_body_limit_bytes;
    let raw = read_body(payload, limit).await?;
    let raw_len = raw.len();
    let body = decode_content_encoding(req, raw, limit)?;
    let resp = export(state, &tenant, body, encoding, raw_len).await?;
    let bytes = encode_response(&resp, encoding).map_err(|e| ApiError::internal(e.message))?;
    Ok(HttpResponse::Ok()
        .content_type(encoding.content_type())
        .body(bytes))
}

/// Decodes an export request (already decompressed), converts and stores
/// its profiles for `tenant`; `raw_len` is what the client sent, for the
/// ingested-bytes metric. The export is stored whole or not at all.
async fn export(
    state: &AppState,
    tenant: &str,
    body: Vec<u8>,
    encoding: Encoding,
    raw_len: usize,
) -> Result<ExportProfilesServiceResponse, ApiError> {
    let limits = state.tenants.limits(tenant);
    let t = tenant.to_string();
    let (profiles, record) = decode_beside(raw_len, move || {
        let decoded =
            decode_request(&body, encoding).and_then(|req| decode_otlp(&req, &limits, now_ns()));
        with_record(&t, decoded)
    })
    .await??;
    let profiles = profiles.map_err(|e| ApiError::from_ingest(e, StatusCode::BAD_REQUEST))?;
    store(state, tenant, profiles, record, ENDPOINT, raw_len).await?;
    Ok(ExportProfilesServiceResponse::default())
}
