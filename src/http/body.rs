//! Reading request bodies: a size limit before decompression, and bounded
//! `Content-Encoding: gzip` decoding after.

use actix_web::HttpRequest;
use actix_web::web::{BytesMut, Payload};
use futures::StreamExt;
use ignis_ingest::gzip::gunzip_body;

use super::error::ApiError;

/// Reads the whole body, refusing more than `limit` bytes (413).
pub async fn read_body(mut payload: Payload, limit: usize) -> Result<BytesMut, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("failed to read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(format!(
                "request body too large: more than {limit} bytes (ingestion_body_limit_bytes)"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Inflates gzip `data` of a request (`what` names it in errors): 413 past
/// `limit` bytes (a gzip bomb stops there), 400 when it is not gzip.
pub fn inflate(data: &[u8], limit: usize, what: &str) -> Result<Vec<u8>, ApiError> {
    gunzip_body(data, limit, what).map_err(|e| {
        if e.reason == ignis_ingest::Reason::BodySizeLimit {
            ApiError::too_large(e.message)
        } else {
            ApiError::bad_request(e.message)
        }
    })
}

/// Reads the whole body ([`read_body`]) and undoes its `Content-Encoding`
/// ([`decode_content_encoding`]), `limit` bytes at most each way.
pub async fn read_decoded(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let raw = read_body(payload, limit).await?;
    decode_content_encoding(req, raw, limit)
}

/// Undoes `Content-Encoding` (gzip or identity), inflating at most `limit` bytes.
pub fn decode_content_encoding(
    req: &HttpRequest,
    body: BytesMut,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let encoding = req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(Vec::from(body)),
        "gzip" | "x-gzip" => inflate(&body, limit, "request body"),
        other => Err(ApiError::unsupported_media_type(format!(
            "unsupported Content-Encoding {other:?}; use gzip or none"
        ))),
    }
}
