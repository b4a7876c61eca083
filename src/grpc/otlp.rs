//! A small unary gRPC server (h2c, HTTP/2 with prior knowledge) on its own
//! port for OTLP profiles: `opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export`.
//!
//! Hand-written on hyper's HTTP/2 server rather than tonic: one unary method
//! needs only the 5-byte message framing, `grpc-encoding: gzip`, and the
//! `grpc-status`/`grpc-message` trailers, and hyper and h2 are already in the
//! dependency tree (through reqwest). The tenant is the `x-scope-orgid`
//! metadata, as on HTTP. Decoding, limits and storage are the HTTP path's
//! ([`crate::http::otlp::export`]).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ignis_ingest::otlp::Encoding;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{Body, Code, Status, http_error, ok_response, status_response};
use crate::http::error::ApiError;
use crate::http::otlp::{ENDPOINT, export};
use crate::http::state::AppState;

/// The one method served.
pub const EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export";

/// Serves gRPC on `listener` until the returned task is aborted; aborting it
/// also ends the connections it accepted. With `tls`, connections are TLS
/// (the HTTP listener's certificate, reloaded with it; ALPN `h2`).
pub fn spawn(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<crate::tls::ReloadingCert>>,
) -> tokio::task::JoinHandle<()> {
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(Arc::new(t.server_config())));
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "gRPC accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                // Reap finished connections so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let state = state.clone();
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                match acceptor {
                    None => serve(stream, state).await,
                    Some(acceptor) => {
                        // A handshake that stalls must not hold the task forever.
                        let handshake = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(stream),
                        );
                        match handshake.await {
                            Ok(Ok(tls)) => serve(tls, state).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "gRPC TLS handshake failed"),
                            Err(_) => tracing::debug!("gRPC TLS handshake timed out"),
                        }
                    }
                }
            });
        }
    })
}

/// Serves one connection's HTTP/2 gRPC calls.
async fn serve<IO>(io: IO, state: Arc<AppState>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(req, &state).await) }
    });
    if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(error = %e, "gRPC connection ended");
    }
}

async fn handle(req: Request<Incoming>, state: &AppState) -> Response<Body> {
    if req.method() != hyper::Method::POST {
        return http_error(StatusCode::METHOD_NOT_ALLOWED, "gRPC calls are POST");
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // `application/grpc`, `application/grpc+proto`; not `+json` or others.
    if !(content_type == "application/grpc" || content_type.starts_with("application/grpc+proto")) {
        return http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Type: use application/grpc",
        );
    }
    if req.uri().path() != EXPORT_PATH {
        return status_response(&Status::new(
            Code::Unimplemented,
            format!("unknown method {}", req.uri().path()),
        ));
    }
    match export_call(req, state).await {
        Ok(msg) => ok_response(msg),
        Err(e) => {
            state.reject(ENDPOINT, &e);
            status_response(&Status::from(&e))
        }
    }
}

async fn export_call(req: Request<Incoming>, state: &AppState) -> Result<Vec<u8>, ApiError> {
    let tenant = tenant(req.headers(), state)?;
    let gzip = match req
        .headers()
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
    {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(ApiError::unsupported_media_type(format!(
                "unsupported grpc-encoding {other:?}; use gzip or identity"
            )));
        }
    };
    let limit = state.tenants.limits(&tenant).ingestion_body_limit_bytes;
    let body = read_limited(req.into_body(), limit.saturating_add(5)).await?;
    let raw_len = body.len();
    let message = unframe(&body, gzip, limit)?;
    let resp = export(state, &tenant, message, Encoding::Protobuf, raw_len).await?;
    Ok(resp.encode_to_vec())
}

/// The tenant from `x-scope-orgid` metadata, as the HTTP routes read it
/// ([`AppState::tenants_of`], one tenant). With auth on, the
/// `authorization` metadata must name a credential with the `write` scope.
fn tenant(headers: &HeaderMap, state: &AppState) -> Result<String, ApiError> {
    let who = if state.config.auth.enabled {
        let header = headers.get("authorization").and_then(|v| v.to_str().ok());
        Some(crate::auth::authorize(
            &state.config.auth,
            header,
            crate::auth::Scope::Write,
        )?)
    } else {
        None
    };
    let values: Vec<&[u8]> = headers
        .get_all("x-scope-orgid")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    crate::http::state::one_tenant(state.tenants_of(&values, who.as_ref())?)
}

async fn read_limited(mut body: Incoming, limit: usize) -> Result<BytesMut, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ApiError::too_large(format!(
                    "request message too large: more than {limit} bytes (ingestion_body_limit_bytes)"
                )));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// The one message of a unary call: a compressed flag, a big-endian u32
/// length, then the message (gzip when flagged).
pub fn unframe(body: &[u8], gzip: bool, limit: usize) -> Result<Vec<u8>, ApiError> {
    let bad = ApiError::bad_request;
    let Some((header, rest)) = body.split_first_chunk::<5>() else {
        return Err(bad(format!(
            "request has {} bytes, shorter than a gRPC message header",
            body.len()
        )));
    };
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len != rest.len() {
        return Err(bad(format!(
            "a unary call carries one message: header says {len} bytes, {} follow",
            rest.len()
        )));
    }
    match header[0] {
        0 => Ok(rest.to_vec()),
        1 if gzip => crate::http::body::inflate(rest, limit, "gRPC message"),
        1 => Err(bad(
            "compressed message without a grpc-encoding header".into()
        )),
        f => Err(bad(format!("invalid gRPC compressed flag {f}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_messages() {
        let msg = b"hello".to_vec();
        let mut framed = vec![0, 0, 0, 0, 5];
        framed.extend_from_slice(&msg);
        assert_eq!(unframe(&framed, false, 100).unwrap(), msg);
        assert!(unframe(&framed[..4], false, 100).is_err());
        assert!(unframe(&framed[..7], false, 100).is_err());
        framed[0] = 1;
        assert!(unframe(&framed, false, 100).is_err());
        framed[0] = 7;
        assert!(unframe(&framed, true, 100).is_err());

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &msg).unwrap();
        let gz = gz.finish().unwrap();
        let mut framed = vec![1];
        framed.extend_from_slice(&(gz.len() as u32).to_be_bytes());
        framed.extend_from_slice(&gz);
        assert_eq!(unframe(&framed, true, 100).unwrap(), msg);
        let e = unframe(&framed, true, 2).unwrap_err();
        assert_eq!(Status::from(&e).code, Code::ResourceExhausted);
    }
}
