//! HTTP/2 connections (h2c or TLS) served by hyper in front of the node's actix `App`.
//!
//! actix-http cannot send HTTP/2 trailers, and gRPC needs them, so an h2c
//! connection on the main port is served by hyper: a gRPC call is translated
//! into a Connect unary call ([`super::translate`]) and handed to the same
//! `App` (routes, auth, metrics, limits), its answer framed back with
//! `grpc-status` trailers; any other request (Connect, the legacy API, the
//! UI) passes through to the `App` as is, bodies streamed both ways. The
//! `App` runs on this worker's thread: hyper spawns locally.

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderName as AxName, HeaderValue as AxValue};
use actix_web::http::{Method as AxMethod, Version as AxVersion};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::translate::{Chunks, Flavor, flavor, open, outcome, to_connect};
use super::{BoxError, LocalBody, Status, http_error, ok_response, status_response};

/// How often an idle HTTP/2 connection is pinged, and how long the client
/// has to answer before the connection is closed: a client that vanished
/// (no FIN, no RST) does not hold a connection forever. Live gRPC
/// channels, which idle by design, answer and stay.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// See [`KEEP_ALIVE_INTERVAL`].
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves one HTTP/2 connection until the client closes it or `stopping`
/// turns true (then in-flight calls finish and the connection ends).
pub async fn serve<IO, S>(
    io: IO,
    app: Rc<S>,
    peer: Option<SocketAddr>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
        + 'static,
{
    let calls = Rc::new(Cell::new(0usize));
    let service = hyper::service::service_fn({
        let calls = calls.clone();
        move |req| {
            let app = app.clone();
            let guard = InFlight::new(&calls);
            async move {
                let res = call(&*app, req, peer).await;
                drop(guard);
                Ok::<_, Infallible>(res)
            }
        }
    });
    let conn = hyper::server::conn::http2::Builder::new(LocalExec)
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = stopping.wait_for(|s| *s) => {
            conn.as_mut().graceful_shutdown();
            // A client that never acknowledges the GOAWAY would hold the
            // node's stop: the connection ends once its calls have (and
            // their answers had a moment to leave).
            let drained = async {
                while calls.get() > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            tokio::select! {
                ended = conn.as_mut() => ended,
                () = drained => Ok(()),
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP/2 connection ended");
    }
}

/// Counts a call in flight on a connection while it lives.
struct InFlight(Rc<Cell<usize>>);

impl InFlight {
    fn new(calls: &Rc<Cell<usize>>) -> Self {
        calls.set(calls.get() + 1);
        Self(calls.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Spawns hyper's per-stream tasks on this thread (the `App` is not `Send`).
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, fut: F) {
        actix_web::rt::spawn(async move {
            fut.await;
        });
    }
}

async fn call<S>(app: &S, req: Request<Incoming>, peer: Option<SocketAddr>) -> Response<LocalBody>
where
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    let (parts, body) = req.into_parts();
    let body = incoming(body);
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match flavor(content_type) {
        Some(Ok(Flavor::Grpc)) => grpc(app, &parts, body, peer).await,
        // Everything else, gRPC-Web and unknown gRPC codecs (415) included,
        // is the App's.
        _ => match actix_request(&parts, body, peer) {
            Ok(req) => hyper_response(respond(app, req).await),
            Err(message) => local(http_error(StatusCode::BAD_REQUEST, message)),
        },
    }
}

async fn grpc<S>(
    app: &S,
    parts: &hyper::http::request::Parts,
    body: Chunks,
    peer: Option<SocketAddr>,
) -> Response<LocalBody>
where
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    let path = parts.uri.path();
    let outcome = async {
        let (compressed, message) = open(body).await?;
        let mut req = actix_request(parts, Box::pin(message), peer)
            .map_err(|m| Status::new(super::Code::InvalidArgument, m))?;
        to_connect(&mut req.head_mut().headers, compressed)?;
        outcome(respond(app, req).await, path).await
    };
    local(match outcome.await {
        Ok(msg) => ok_response(msg),
        Err(status) => status_response(&status),
    })
}

async fn respond<S>(app: &S, req: actix_http::Request) -> HttpResponse<BoxBody>
where
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    match app.call(req).await {
        Ok(res) => res.into_parts().1,
        Err(e) => e.error_response(),
    }
}

/// A request body as the chunks actix handlers read.
fn incoming(body: Incoming) -> Chunks {
    Box::pin(futures::stream::unfold(body, |mut body| async move {
        loop {
            match body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some((Ok(data), body));
                    }
                }
                Err(e) => return Some((Err(PayloadError::Io(std::io::Error::other(e))), body)),
            }
        }
    }))
}

/// hyper's request (http 1) as actix's (http 0.2), with `body` as payload.
fn actix_request(
    parts: &hyper::http::request::Parts,
    body: Chunks,
    peer: Option<SocketAddr>,
) -> Result<actix_http::Request, &'static str> {
    let mut req = actix_http::Request::with_payload(Payload::from(body));
    let head = req.head_mut();
    head.method =
        AxMethod::from_bytes(parts.method.as_str().as_bytes()).map_err(|_| "invalid method")?;
    head.uri = parts
        .uri
        .to_string()
        .parse()
        .map_err(|_| "invalid request URI")?;
    head.version = AxVersion::HTTP_2;
    head.peer_addr = peer;
    for (name, value) in &parts.headers {
        let name = AxName::from_bytes(name.as_str().as_bytes()).map_err(|_| "invalid header")?;
        let value = AxValue::from_bytes(value.as_bytes()).map_err(|_| "invalid header")?;
        head.headers.append(name, value);
    }
    if !head.headers.contains_key("host")
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = AxValue::from_str(authority.as_str())
    {
        head.headers.insert(AxName::from_static("host"), value);
    }
    Ok(req)
}

/// Connection-specific headers HTTP/2 forbids.
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// actix's response as hyper's, its body streamed.
fn hyper_response(res: HttpResponse<BoxBody>) -> Response<LocalBody> {
    let mut builder = Response::builder().status(res.status().as_u16());
    for (name, value) in res.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
    }
    builder
        .body(Box::pin(ActixBody(res.into_body())) as LocalBody)
        .unwrap_or_else(|_| {
            local(http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "invalid response",
            ))
        })
}

/// A response built for hyper's `Send` bodies, as a local one.
fn local(res: Response<super::Body>) -> Response<LocalBody> {
    res.map(|b| Box::pin(b) as LocalBody)
}

/// An actix body as a hyper body.
struct ActixBody(BoxBody);

impl hyper::body::Body for ActixBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.0).poll_next(cx) {
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.to_string().into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0.size(), BodySize::None | BodySize::Sized(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.0.size() {
            BodySize::Sized(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
