//! Write endpoints: `push.v1.PusherService/Push` and `/ingest`.

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use ignis_actors::distributor::Distribute;
use ignis_ingest::{
    IngestBody, IngestError, IngestParams, LegacyFormat, Reason, decode_legacy, decode_push,
    detect_format, parse_multipart,
};
use ignis_storage::proto::push::v1::{PushRequest, PushResponse};
use ignis_storage::{SplitProfile, encode_record};
use tracing::Instrument;

use super::body::{decode_content_encoding, read_body};
use super::connect::Codec;
use super::error::ApiError;
use super::state::{AppState, now_ns};

/// `POST /push.v1.PusherService/Push`.
pub async fn push(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = push_inner(&req, payload, &state).await;
    if let Err(e) = &result {
        state.reject("push", e);
    }
    result
}

async fn push_inner(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let codec = Codec::from_request(req)?;
    let tenant = state.tenant(req)?;
    let limits = state.tenants.limits(&tenant);
    let raw = read_body(payload, limits.ingestion_body_limit_bytes).await?;
    let raw_len = raw.len();
    let body = decode_content_encoding(req, raw, limits.ingestion_body_limit_bytes)?;
    let msg: PushRequest = codec.decode(&body)?;
    let t = tenant.clone();
    let (profiles, record) = decode_beside(raw_len, move || {
        with_record(&t, decode_push(msg, &limits, now_ns()))
    })
    .await??;
    let profiles = profiles.map_err(|e| ApiError::from_ingest(e, StatusCode::BAD_REQUEST))?;
    store(state, &tenant, profiles, record, "push", raw_len).await?;
    Ok(codec.respond(&PushResponse {}))
}

/// `POST /ingest` (and `/pyroscope/ingest`).
pub async fn ingest(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = ingest_inner(&req, payload, &state).await;
    if let Err(e) = &result {
        state.reject("ingest", e);
    }
    result
}

async fn ingest_inner(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(req)?;
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?
        .into_inner();
    let params = IngestParams::from_query(&pairs);
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let format = detect_format(params.format.as_deref(), &content_type);
    let limits = state.tenants.limits(&tenant);
    let raw = read_body(payload, limits.ingestion_body_limit_bytes).await?;
    let raw_len = raw.len();
    let body = decode_content_encoding(req, raw, limits.ingestion_body_limit_bytes)?;
    let multipart = content_type.contains("multipart/form-data");
    let body = if multipart && matches!(format, LegacyFormat::PprofMultipart | LegacyFormat::Jfr) {
        IngestBody::Multipart(
            parse_multipart(&content_type, body)
                .await
                .map_err(|e| ApiError::from_ingest(e, StatusCode::BAD_REQUEST))?,
        )
    } else {
        IngestBody::Raw(body)
    };
    let pprof_like = matches!(
        format,
        LegacyFormat::Pprof
            | LegacyFormat::PprofMultipart
            | LegacyFormat::Jfr
            | LegacyFormat::Speedscope
    );
    let t = tenant.clone();
    let (profiles, record) = decode_beside(raw_len, move || {
        with_record(&t, decode_legacy(&params, format, body, &limits, now_ns()))
    })
    .await??;
    let profiles = profiles.map_err(|e| {
        let status = match e.reason {
            Reason::InvalidRequest | Reason::InvalidLabels | Reason::MissingLabels => {
                StatusCode::BAD_REQUEST
            }
            Reason::Unsupported => StatusCode::UNPROCESSABLE_ENTITY,
            _ if pprof_like => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::from_ingest(e, status)
    })?;
    store(state, &tenant, profiles, record, "ingest", raw_len).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Request bodies up to this size (as sent, usually gzipped) are decoded on
/// the HTTP worker that read them; larger ones on the blocking pool. A
/// typical SDK push (10–100 KiB) decodes in well under a millisecond, less
/// than the two thread hand-offs the pool costs, and decoding on the
/// workers bounds concurrent decodes to the cores. A large body (a JFR
/// recording, a big pprof) would stall the worker's other connections.
const INLINE_DECODE_BYTES: usize = 128 << 10;

/// Runs `decode` for a body of `raw_len` bytes: at once when it is small
/// ([`INLINE_DECODE_BYTES`]), otherwise on the blocking pool.
pub(crate) async fn decode_beside<T: Send + 'static>(
    raw_len: usize,
    decode: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    if raw_len <= INLINE_DECODE_BYTES {
        return Ok(decode());
    }
    web::block(decode)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The decoded profiles and, when they decoded, their WAL record, encoded
/// beside the decode ([`decode_beside`]) rather than on the tenant's actor thread.
#[allow(clippy::type_complexity)]
pub(crate) fn with_record(
    tenant: &str,
    decoded: Result<Vec<SplitProfile>, IngestError>,
) -> Result<(Result<Vec<SplitProfile>, IngestError>, Option<Bytes>), ApiError> {
    let record = match &decoded {
        Ok(p) if !p.is_empty() => Some(
            encode_record(tenant, p.iter())
                .map(Bytes::from)
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ),
        _ => None,
    };
    Ok((decoded, record))
}

/// Stores decoded `profiles` (and their `record`) of `tenant` through its
/// distributor and counts the `bytes` the client sent; nothing to store
/// only counts them.
pub(crate) async fn store(
    state: &AppState,
    tenant: &str,
    profiles: Vec<SplitProfile>,
    record: Option<Bytes>,
    endpoint: &'static str,
    bytes: usize,
) -> Result<(), ApiError> {
    if profiles.is_empty() {
        count_bytes(state, tenant, endpoint, bytes);
        return Ok(());
    }
    let distributor = state
        .tenants
        .get_or_start(tenant)
        .distributor
        .ok_or_else(|| ApiError::unavailable("this node does not run the distributor role"))?;
    let span = tracing::debug_span!("distribute", tenant, profiles = profiles.len());
    distributor
        .send(Distribute {
            profiles,
            record,
            endpoint,
        })
        .instrument(span)
        .await
        .map_err(|e| ApiError::unavailable(format!("distributor unavailable: {e}")))?
        .map_err(ApiError::from_ingester)?;
    count_bytes(state, tenant, endpoint, bytes);
    Ok(())
}

/// Counts the body bytes of an accepted request.
fn count_bytes(state: &AppState, tenant: &str, endpoint: &str, bytes: usize) {
    let labels = vec![
        ("tenant", tenant.to_string()),
        ("endpoint", endpoint.to_string()),
    ];
    state
        .metrics
        .ingested_bytes
        .get_or_create(&labels)
        .inc_by(bytes as u64);
}
