//! gRPC-Web (`application/grpc-web`, `application/grpc-web+proto`) on every
//! route: an actix middleware that turns the call into a Connect unary call
//! for the handler and its answer into gRPC-Web (the message frame, then a
//! trailers frame, flag `0x80`, in the body). It works over HTTP/1.1 and
//! HTTP/2 alike, which is what gRPC-Web is for (browsers, proxies). A gRPC
//! codec other than protobuf is refused with 415.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use futures::future::LocalBoxFuture;

use super::translate::{Chunks, Flavor, flavor, open, outcome, to_connect};
use super::{Status, frame, percent_encode};
use crate::http::error::ApiError;

/// The middleware; wrap the `App` with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcWeb;

impl<S, B> Transform<S, ServiceRequest> for GrpcWeb
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = GrpcWebService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GrpcWebService {
            service: Rc::new(service),
        }))
    }
}

/// The middleware's service.
pub struct GrpcWebService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for GrpcWebService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match flavor(content_type) {
            Some(Ok(Flavor::Web)) => {
                let service = self.service.clone();
                Box::pin(async move { call(&*service, req).await })
            }
            Some(Err(message)) => {
                let res = ApiError::unsupported_media_type(message).error_response();
                Box::pin(async move { Ok(req.into_response(res)) })
            }
            _ => {
                let fut = self.service.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_boxed_body) })
            }
        }
    }
}

async fn call<S, B>(
    service: &S,
    mut req: ServiceRequest,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let path = req.path().to_string();
    let body: Chunks = Box::pin(req.take_payload());
    // Headers change before the request is shared (they need it unique).
    let opened = match open(body).await {
        Ok((compressed, message)) => to_connect(req.headers_mut(), compressed).map(|()| message),
        Err(status) => Err(status),
    };
    let message = match opened {
        Ok(message) => message,
        Err(status) => return Ok(req.into_response(respond(Err(status)))),
    };
    req.set_payload(Payload::from(Box::pin(message) as Chunks));
    // Routing needs the request unshared, so an error from within (which
    // leaves no request to answer with) is answered as an error whose
    // response is the gRPC-Web one.
    match service.call(req).await {
        Ok(res) => {
            let (http, res) = res.into_parts();
            Ok(ServiceResponse::new(
                http,
                respond(outcome(res.map_into_boxed_body(), &path).await),
            ))
        }
        Err(e) => {
            let status = match outcome(e.error_response(), &path).await {
                Ok(_) => Status::new(super::Code::Internal, e.to_string()),
                Err(status) => status,
            };
            Err(WebStatus(status).into())
        }
    }
}

/// A gRPC error answered as gRPC-Web (HTTP 200, status in the trailers).
#[derive(Debug)]
struct WebStatus(Status);

impl std::fmt::Display for WebStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gRPC status {}: {}", self.0.code as i32, self.0.message)
    }
}

impl ResponseError for WebStatus {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::OK
    }

    fn error_response(&self) -> HttpResponse {
        respond(Err(self.0.clone()))
    }
}

/// A gRPC-Web answer: the message (on success), then the trailers frame.
fn respond(outcome: Result<Vec<u8>, Status>) -> HttpResponse {
    let (mut body, status) = match outcome {
        Ok(msg) => (frame(0, &msg), Status::ok()),
        Err(status) => (Vec::new(), status),
    };
    let mut trailers = format!("grpc-status: {}\r\n", status.code as i32);
    if !status.message.is_empty() {
        trailers.push_str(&format!(
            "grpc-message: {}\r\n",
            percent_encode(&status.message)
        ));
    }
    body.extend_from_slice(&frame(0x80, trailers.as_bytes()));
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc-web+proto"),
        ))
        .body(body)
}
