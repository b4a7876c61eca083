//! Connect's GET form of a unary call: the message travels in the query
//! string (`encoding`, `message`, `base64`, `compression`, `connect`), so
//! browsers and CDNs can cache idempotent queries.

use actix_web::{HttpRequest, web};
use base64::Engine as _;

use super::connect::Codec;
use super::error::ApiError;

/// The codec and message bytes of a Connect GET request, inflated within `limit`.
pub fn message(req: &HttpRequest, limit: usize) -> Result<(Codec, Vec<u8>), ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?
        .into_inner();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let codec = match get("encoding") {
        Some("json") => Codec::Json,
        Some("proto") => Codec::Proto,
        Some(other) => {
            return Err(ApiError::unsupported_media_type(format!(
                "unsupported encoding {other:?}: use json or proto"
            )));
        }
        None => {
            return Err(ApiError::bad_request(
                "a Connect GET request needs encoding=json or encoding=proto",
            ));
        }
    };
    let message = get("message").unwrap_or("");
    if message.len() > limit {
        return Err(ApiError::too_large(format!(
            "message of {} bytes exceeds {limit}",
            message.len()
        )));
    }
    let raw = if get("base64") == Some("1") {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(message.trim_end_matches('='))
            .map_err(|e| ApiError::bad_request(format!("message is not base64url: {e}")))?
    } else {
        message.as_bytes().to_vec()
    };
    let body = match get("compression").unwrap_or("identity") {
        "identity" => raw,
        "gzip" => super::body::inflate(&raw, limit, "message")?,
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "unsupported compression {other:?}; use gzip or identity"
            )));
        }
    };
    Ok((codec, body))
}
