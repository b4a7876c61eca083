//! A gRPC (or gRPC-Web) unary call as a Connect unary call, and back.
//!
//! The request's one message is streamed to the handler without its 5-byte
//! header ([`open`], [`Unframed`]): a compressed message becomes a
//! `Content-Encoding: gzip` body, so the route's own size limits and inflate
//! bounds apply as on Connect. `grpc-timeout` becomes `Connect-Timeout-Ms`.
//! The handler's answer becomes a message and a status ([`answer`]): a
//! Connect error's code maps to the gRPC code of the same name.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::http::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName,
    HeaderValue,
};
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

use super::{Code, Status};

/// The content type handlers see for a translated call (every Connect route
/// and the OTLP export take it).
pub const CONNECT_CONTENT_TYPE: &str = "application/protobuf";

/// How a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// gRPC over HTTP/2: `application/grpc`, `application/grpc+proto`.
    Grpc,
    /// gRPC-Web: `application/grpc-web`, `application/grpc-web+proto`.
    Web,
}

/// The flavor of a request by its content type: `None` when it is not gRPC
/// at all, an error (answered 415, as gRPC servers answer a content type
/// they do not take) for a gRPC codec Ignis does not speak.
pub fn flavor(content_type: &str) -> Option<Result<Flavor, String>> {
    // Every request asks: most are not gRPC, and need no lowercase copy.
    const GRPC: &str = "application/grpc";
    let head = content_type.trim_start().get(..GRPC.len())?;
    if !head.eq_ignore_ascii_case(GRPC) {
        return None;
    }
    let mime = crate::http::mime_type(content_type);
    let (flavor, codec) = if let Some(rest) = mime.strip_prefix("application/grpc-web") {
        (Flavor::Web, rest)
    } else if let Some(rest) = mime.strip_prefix("application/grpc") {
        (Flavor::Grpc, rest)
    } else {
        return None;
    };
    Some(match codec {
        "" | "+proto" => Ok(flavor),
        other => Err(format!(
            "unsupported gRPC content type {mime:?} ({}): use application/grpc{} with protobuf messages",
            if other == "-text" {
                "base64 gRPC-Web text"
            } else {
                "codec"
            },
            if flavor == Flavor::Web { "-web" } else { "" },
        )),
    })
}

/// `grpc-timeout` (`<up to 8 digits><H|M|S|m|u|n>`) in whole milliseconds,
/// rounded up so a short deadline is not 0 (which has passed).
pub fn timeout_ms(value: &str) -> Result<u64, Status> {
    let bad = || {
        Status::new(
            Code::InvalidArgument,
            format!("invalid grpc-timeout {value:?}: up to 8 digits and a unit (H, M, S, m, u, n)"),
        )
    };
    let (digits, unit) = value.split_at(value.len().saturating_sub(1));
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let nanos_per: u64 = match unit {
        "H" => 3_600_000_000_000,
        "M" => 60_000_000_000,
        "S" => 1_000_000_000,
        "m" => 1_000_000,
        "u" => 1_000,
        "n" => 1,
        _ => return Err(bad()),
    };
    Ok(n.saturating_mul(nanos_per).div_ceil(1_000_000))
}

/// Rewrites a gRPC call's headers into a Connect unary call's: protobuf
/// content type, `Content-Encoding: gzip` for a compressed message (which
/// needs `grpc-encoding: gzip`), `grpc-timeout` as `Connect-Timeout-Ms`; no
/// `Content-Length` (the body lost its header) and no `Accept-Encoding` (the
/// answer is framed here, uncompressed).
pub fn to_connect(headers: &mut HeaderMap, compressed: bool) -> Result<(), Status> {
    let grpc_encoding = headers
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    if compressed && grpc_encoding != "gzip" {
        return Err(Status::new(
            Code::Unimplemented,
            format!(
                "unsupported grpc-encoding {grpc_encoding:?} for a compressed message; use gzip or identity"
            ),
        ));
    }
    if let Some(value) = headers.get("grpc-timeout") {
        let ms = timeout_ms(value.to_str().unwrap_or(""))?;
        headers.insert(
            HeaderName::from_static("connect-timeout-ms"),
            HeaderValue::from(ms.min(9_999_999_999)),
        );
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONNECT_CONTENT_TYPE));
    headers.remove(CONTENT_LENGTH);
    headers.remove(ACCEPT_ENCODING);
    if compressed {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    } else {
        headers.remove(CONTENT_ENCODING);
    }
    Ok(())
}

/// The body stream handlers read: request bytes as actix payload chunks.
pub type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// Reads a call's 5-byte message header: whether the message is compressed,
/// and the message itself as a stream of exactly its declared length.
pub async fn open(mut body: Chunks) -> Result<(bool, Unframed), Status> {
    let mut head = BytesMut::new();
    while head.len() < 5 {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                return Err(Status::new(
                    Code::InvalidArgument,
                    format!("reading the request: {e}"),
                ));
            }
            None => {
                return Err(Status::new(
                    Code::InvalidArgument,
                    format!(
                        "request has {} bytes, shorter than a gRPC message header",
                        head.len()
                    ),
                ));
            }
        }
    }
    let compressed = match head[0] {
        0 => false,
        1 => true,
        f => {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("invalid gRPC compressed flag {f}"),
            ));
        }
    };
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as u64;
    head.advance(5);
    Ok((
        compressed,
        Unframed {
            first: Some(head.freeze()).filter(|b| !b.is_empty()),
            rest: body,
            declared: len,
            remaining: len,
        },
    ))
}

/// A unary call's one message: the bytes after its header, checked against
/// the declared length (more, or fewer, is an error the handler reports).
pub struct Unframed {
    first: Option<Bytes>,
    rest: Chunks,
    declared: u64,
    remaining: u64,
}

impl Unframed {
    fn take(&mut self, chunk: Bytes) -> Result<Bytes, PayloadError> {
        if chunk.len() as u64 > self.remaining {
            return Err(PayloadError::Io(std::io::Error::other(format!(
                "a unary call carries one message: more than its {} bytes follow its header",
                self.declared
            ))));
        }
        self.remaining -= chunk.len() as u64;
        Ok(chunk)
    }
}

impl Stream for Unframed {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(this.take(first)));
        }
        match this.rest.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(this.take(chunk))),
            Poll::Ready(None) if this.remaining > 0 => {
                let got = this.declared - this.remaining;
                this.remaining = 0;
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::other(format!(
                    "the gRPC message ended after {got} of its {} bytes",
                    this.declared
                ))))))
            }
            other => other,
        }
    }
}

/// The gRPC outcome of a handler's Connect response ([`answer`] of its
/// status and body).
pub async fn outcome(
    res: actix_web::HttpResponse<actix_web::body::BoxBody>,
    path: &str,
) -> Result<Vec<u8>, Status> {
    let status = res.status().as_u16();
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .map_err(|e| Status::new(Code::Internal, format!("reading the answer: {e}")))?;
    answer(status, &body, path)
}

/// The gRPC outcome of a handler's Connect answer: its message on success,
/// else the status its Connect error names (by HTTP status when the body is
/// not a Connect error). `path` names an unknown procedure.
pub fn answer(http_status: u16, body: &[u8], path: &str) -> Result<Vec<u8>, Status> {
    if http_status == 200 {
        return Ok(body.to_vec());
    }
    #[derive(serde::Deserialize)]
    struct ConnectError {
        code: String,
        #[serde(default)]
        message: String,
    }
    let parsed = serde_json::from_slice::<ConnectError>(body).ok();
    // An unknown route is an unknown method to a gRPC client.
    if http_status == 404 && parsed.as_ref().is_none_or(|e| e.code == "not_found") {
        return Err(Status::new(
            Code::Unimplemented,
            format!("unknown method {path}"),
        ));
    }
    Err(match parsed {
        Some(e) => Status::new(
            Code::from_connect(&e.code).unwrap_or_else(|| Code::from_http(http_status)),
            e.message,
        ),
        None => Status::new(
            Code::from_http(http_status),
            format!(
                "HTTP {http_status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<&'static [u8]>) -> Chunks {
        Box::pin(futures::stream::iter(
            parts.into_iter().map(|p| Ok(Bytes::from_static(p))),
        ))
    }

    async fn collect(u: Unframed) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut u = Box::pin(u);
        while let Some(c) = u.next().await {
            out.extend_from_slice(&c.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_message_is_unframed_across_chunks() {
        let (gz, u) = open(chunks(vec![b"\0\0\0", b"\0\x05he", b"llo"]))
            .await
            .unwrap();
        assert!(!gz);
        assert_eq!(collect(u).await.unwrap(), b"hello");
        let (gz, u) = open(chunks(vec![b"\x01\0\0\0\0"])).await.unwrap();
        assert!(gz);
        assert_eq!(collect(u).await.unwrap(), b"");

        let (_, u) = open(chunks(vec![b"\0\0\0\0\x02abc"])).await.unwrap();
        assert!(collect(u).await.unwrap_err().contains("one message"));
        let (_, u) = open(chunks(vec![b"\0\0\0\0\x09abc"])).await.unwrap();
        assert!(collect(u).await.unwrap_err().contains("after 3 of its 9"));
        assert!(open(chunks(vec![b"\0\0"])).await.is_err());
        assert!(open(chunks(vec![b"\x07\0\0\0\0"])).await.is_err());
    }

    #[test]
    fn flavors_timeouts_and_answers() {
        assert_eq!(flavor("application/grpc"), Some(Ok(Flavor::Grpc)));
        assert_eq!(flavor("application/grpc+proto"), Some(Ok(Flavor::Grpc)));
        assert_eq!(flavor("application/grpc-web+proto"), Some(Ok(Flavor::Web)));
        assert!(matches!(flavor("application/grpc+json"), Some(Err(_))));
        assert!(matches!(flavor("application/grpc-web-text"), Some(Err(_))));
        assert_eq!(flavor("application/proto"), None);

        assert_eq!(timeout_ms("1S"), Ok(1000));
        assert_eq!(timeout_ms("1500u"), Ok(2));
        assert_eq!(timeout_ms("2M"), Ok(120_000));
        assert!(timeout_ms("123456789S").is_err());
        assert!(timeout_ms("S").is_err());
        assert!(timeout_ms("5x").is_err());

        assert_eq!(answer(200, b"msg", "/a.B/C"), Ok(b"msg".to_vec()));
        let e = answer(
            429,
            br#"{"code":"resource_exhausted","message":"over budget"}"#,
            "/a.B/C",
        )
        .unwrap_err();
        assert_eq!(e, Status::new(Code::ResourceExhausted, "over budget"));
        let e = answer(
            404,
            br#"{"code":"not_found","message":"no such route"}"#,
            "/a.B/C",
        )
        .unwrap_err();
        assert_eq!(e, Status::new(Code::Unimplemented, "unknown method /a.B/C"));
        assert_eq!(
            answer(503, b"down", "/a.B/C").unwrap_err().code,
            Code::Unavailable
        );
    }
}
