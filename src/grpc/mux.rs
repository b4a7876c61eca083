//! The main listener: HTTP/1.1 and HTTP/2 on one port, as Pyroscope serves
//! gRPC and HTTP on :4040, in plain text or TLS.
//!
//! A plain connection is sniffed for the HTTP/2 client preface
//! (`PRI * HTTP/2.0…`, what a gRPC client or any h2c client with prior
//! knowledge sends first); a TLS one is HTTP/2 when ALPN chose `h2`. HTTP/2
//! goes to [`super::bridge`], the rest to actix-http's HTTP/1.1 dispatcher,
//! as `HttpServer::listen` would serve it. Both call the same `App`, built
//! once per worker for each.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::{HttpService, Protocol};
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, fn_factory, fn_service,
    map_config,
};
use actix_web::App;
use actix_web::body::BoxBody;
use actix_web::dev::{AppConfig, ServiceRequest, ServiceResponse};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;

/// The HTTP/2 client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a new connection may take to send its first bytes.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a TLS handshake may take (actix-web's default).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// A port the server listens on.
pub struct Listener {
    /// The bound socket.
    pub socket: std::net::TcpListener,
    /// The only request paths served there (`None`: every route); any
    /// other is answered 404, which a gRPC client sees as `unimplemented`.
    pub only: Option<&'static [&'static str]>,
}

/// An actix server on `listeners` with `workers` threads serving the `App`
/// that `factory` builds over HTTP/1.1 and HTTP/2, over TLS with `tls`
/// (which must offer `h2` and `http/1.1` by ALPN). Setting `stopping` to
/// true asks HTTP/2 connections to finish (HTTP/1.1 ones end by keep-alive).
pub fn server<F, T>(
    listeners: Vec<Listener>,
    workers: usize,
    factory: F,
    tls: Option<Arc<rustls::ServerConfig>>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> io::Result<actix_server::Server>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: AppFactory + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = actix_server::Server::build()
        .workers(workers)
        .disable_signals();
    for (i, l) in listeners.into_iter().enumerate() {
        let name = format!("ignis-http-{i}");
        let (acceptor, stopping) = (acceptor.clone(), stopping.clone());
        builder = match l.only {
            None => listen(builder, name, l.socket, factory.clone(), acceptor, stopping)?,
            Some(paths) => {
                let factory = factory.clone();
                let only = move || only_paths(factory(), paths);
                listen(builder, name, l.socket, only, acceptor, stopping)?
            }
        };
    }
    Ok(builder.run())
}

/// What an `App`'s service factory is here.
pub trait AppFactory:
    ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >
{
}

impl<T> AppFactory for T where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        >
{
}

/// `app` answering only `paths`; any other path gets a 404 with a reason
/// (a Connect `not_found` error, which a gRPC client sees as `unimplemented`).
fn only_paths<T: AppFactory + 'static>(
    app: App<T>,
    paths: &'static [&'static str],
) -> App<impl AppFactory> {
    app.wrap_fn(move |req, srv| {
        if paths.contains(&req.path()) {
            futures::future::Either::Left(srv.call(req))
        } else {
            let refused = crate::http::error::ApiError::new(
                actix_web::http::StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "{} is not served on this port, which serves only {}",
                    req.path(),
                    paths.join(" and ")
                ),
            );
            futures::future::Either::Right(std::future::ready(Ok(req.error_response(refused))))
        }
    })
}

/// Adds `socket` to `builder`, served as [`server`] says.
fn listen<F, T>(
    builder: actix_server::ServerBuilder,
    name: String,
    socket: std::net::TcpListener,
    factory: F,
    acceptor: Option<TlsAcceptor>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> io::Result<actix_server::ServerBuilder>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: AppFactory + 'static,
{
    let addr = socket.local_addr()?;
    builder.listen(name, socket, move || {
        let factory = factory.clone();
        let stopping = stopping.clone();
        let acceptor = acceptor.clone();
        fn_factory(move || {
            let factory = factory.clone();
            let stopping = stopping.clone();
            let acceptor = acceptor.clone();
            async move {
                let config = |(): ()| AppConfig::default();
                // HttpServer's defaults: a refused body is drained a
                // moment before the connection closes.
                let http = HttpService::build()
                    .local_addr(addr)
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .finish(map_config(
                        factory()
                            .into_factory()
                            .map_err(|e: actix_web::Error| e.error_response()),
                        config,
                    ))
                    .new_service(())
                    .await?;
                let app = factory()
                    .into_factory()
                    .new_service(AppConfig::default())
                    .await?;
                let http = Rc::new(http);
                let app = Rc::new(app);
                Ok::<_, ()>(fn_service(move |io: TcpStream| {
                    let http = http.clone();
                    let app = app.clone();
                    let stopping = stopping.clone();
                    let acceptor = acceptor.clone();
                    async move {
                        let peer = io.peer_addr().ok();
                        let (conn, h2) = match acceptor {
                            None => {
                                let h2 = sniff_h2(&io).await;
                                (Either::Left(io), h2)
                            }
                            Some(acceptor) => {
                                match tokio::time::timeout(
                                    TLS_HANDSHAKE_TIMEOUT,
                                    acceptor.accept(io),
                                )
                                .await
                                {
                                    Ok(Ok(tls)) => {
                                        let h2 = tls.get_ref().1.alpn_protocol()
                                            == Some(b"h2".as_slice());
                                        (Either::Right(Box::new(tls)), h2)
                                    }
                                    Ok(Err(e)) => {
                                        tracing::debug!(error = %e, "TLS handshake failed");
                                        return Ok(());
                                    }
                                    Err(_) => {
                                        tracing::debug!("TLS handshake timed out");
                                        return Ok(());
                                    }
                                }
                            }
                        };
                        if h2 {
                            super::bridge::serve(conn, app, peer, stopping).await;
                        } else if let Err(e) = http.call((conn, Protocol::Http1, peer)).await {
                            tracing::debug!(error = ?e, "HTTP/1.1 connection ended");
                        }
                        Ok::<(), ()>(())
                    }
                }))
            }
        })
    })
}

/// Whether the connection opens with the HTTP/2 preface. Reads nothing: a
/// connection that does not is HTTP/1.1's, bytes and all.
async fn sniff_h2(io: &TcpStream) -> bool {
    let deadline = Instant::now() + SNIFF_TIMEOUT;
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, io.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        if n == 0 || buf[..n] != PREFACE[..n] {
            return false;
        }
        if n == PREFACE.len() {
            return true;
        }
        // A preface split across packets: wait for the rest.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
