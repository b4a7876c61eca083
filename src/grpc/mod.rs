//! gRPC and gRPC-Web in front of Ignis's Connect routes.
//!
//! A gRPC unary call is a Connect unary call in other framing: the message
//! behind a 5-byte header, the status in trailers. So every Connect route
//! (querier, push, settings, OTLP export) is served over gRPC by translating
//! the call ([`translate`]) and handing it to the same actix `App`: over
//! HTTP/2 by [`bridge`] (hyper, which sends trailers; actix-http cannot),
//! over HTTP/1.1 as gRPC-Web by the [`web`] middleware. [`mux`] serves both
//! HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on the main port.

pub mod bridge;
pub mod mux;
pub mod translate;
pub mod web;

use std::convert::Infallible;

use bytes::Bytes;
use futures::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

/// gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 0.
    Ok = 0,
    /// 1.
    Canceled = 1,
    /// 2.
    Unknown = 2,
    /// 3.
    InvalidArgument = 3,
    /// 4.
    DeadlineExceeded = 4,
    /// 5.
    NotFound = 5,
    /// 6.
    AlreadyExists = 6,
    /// 7.
    PermissionDenied = 7,
    /// 8.
    ResourceExhausted = 8,
    /// 9.
    FailedPrecondition = 9,
    /// 10.
    Aborted = 10,
    /// 11.
    OutOfRange = 11,
    /// 12.
    Unimplemented = 12,
    /// 13.
    Internal = 13,
    /// 14.
    Unavailable = 14,
    /// 15.
    DataLoss = 15,
    /// 16.
    Unauthenticated = 16,
}

impl Code {
    /// The gRPC code of a Connect error code (`invalid_argument`, …).
    pub fn from_connect(code: &str) -> Option<Self> {
        Some(match code {
            "canceled" => Self::Canceled,
            "unknown" => Self::Unknown,
            "invalid_argument" => Self::InvalidArgument,
            "deadline_exceeded" => Self::DeadlineExceeded,
            "not_found" => Self::NotFound,
            "already_exists" => Self::AlreadyExists,
            "permission_denied" => Self::PermissionDenied,
            "resource_exhausted" => Self::ResourceExhausted,
            "failed_precondition" => Self::FailedPrecondition,
            "aborted" => Self::Aborted,
            "out_of_range" => Self::OutOfRange,
            "unimplemented" => Self::Unimplemented,
            "internal" => Self::Internal,
            "unavailable" => Self::Unavailable,
            "data_loss" => Self::DataLoss,
            "unauthenticated" => Self::Unauthenticated,
            _ => return None,
        })
    }

    /// The gRPC code of an HTTP status without a Connect code, as gRPC
    /// clients map one (gRPC's "HTTP to gRPC status code mapping").
    pub fn from_http(status: u16) -> Self {
        match status {
            400 => Self::Internal,
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            404 => Self::Unimplemented,
            429 | 502 | 503 | 504 => Self::Unavailable,
            _ => Self::Unknown,
        }
    }
}

/// A gRPC error: a status code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The code.
    pub code: Code,
    /// The `grpc-message`.
    pub message: String,
}

impl Status {
    /// A status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Success.
    pub fn ok() -> Self {
        Self::new(Code::Ok, "")
    }
}

/// A boxed error of a response body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of the responses hyper sends.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A response body that stays on its thread (the bridge's, from actix).
pub type LocalBody = std::pin::Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = BoxError>>>;

/// One gRPC message frame: a flag (0, uncompressed), a big-endian u32
/// length, the message.
pub fn frame(flag: u8, msg: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(msg.len() + 5);
    framed.push(flag);
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(msg);
    framed
}

fn grpc_headers(builder: hyper::http::response::Builder) -> hyper::http::response::Builder {
    builder
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "application/grpc")
        .header("grpc-accept-encoding", "gzip,identity")
}

fn empty() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A successful unary answer: the message, then `grpc-status: 0` trailers.
pub fn ok_response(msg: Vec<u8>) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = stream::iter([
        Ok::<_, BoxError>(Frame::data(Bytes::from(frame(0, &msg)))),
        Ok(Frame::trailers(trailers)),
    ]);
    grpc_headers(Response::builder())
        .body(StreamBody::new(frames).boxed_unsync())
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A trailers-only response carrying an error status.
pub fn status_response(status: &Status) -> Response<Body> {
    let message = HeaderValue::from_str(&percent_encode(&status.message))
        .unwrap_or_else(|_| HeaderValue::from_static("error"));
    grpc_headers(Response::builder())
        .header("grpc-status", (status.code as i32).to_string())
        .header("grpc-message", message)
        .body(empty())
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A plain HTTP error (a request that is not gRPC at all).
pub fn http_error(code: StatusCode, message: &'static str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(CONTENT_TYPE, "text/plain")
        .body(
            Full::new(Bytes::from_static(message.as_bytes()))
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
        .unwrap_or_else(|_| Response::new(empty()))
}

/// `grpc-message` encoding: printable ASCII except `%` as is, the rest `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("bad: 100% ü\n"), "bad: 100%25 %C3%BC%0A");
    }

    #[test]
    fn connect_codes_map_to_grpc_codes() {
        assert_eq!(
            Code::from_connect("resource_exhausted"),
            Some(Code::ResourceExhausted)
        );
        assert_eq!(
            Code::from_connect("deadline_exceeded").map(|c| c as i32),
            Some(4)
        );
        assert_eq!(Code::from_connect("nope"), None);
        assert_eq!(Code::from_http(404), Code::Unimplemented);
        assert_eq!(frame(0, b"ab"), vec![0, 0, 0, 0, 2, b'a', b'b']);
    }
}
