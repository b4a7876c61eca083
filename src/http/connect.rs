//! Connect unary codec: `application/proto` or `application/json` bodies
//! (protojson mapping), answered in the codec the request used.

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The message encoding of a Connect request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Binary protobuf.
    Proto,
    /// protojson.
    Json,
}

impl Codec {
    /// Picks the codec from `Content-Type`; anything else is 415.
    pub fn from_request(req: &HttpRequest) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = super::mime_type(ct);
        match mime.as_str() {
            "application/proto" | "application/protobuf" | "application/x-protobuf" => {
                Ok(Self::Proto)
            }
            "application/json" => Ok(Self::Json),
            grpc if grpc == "application/grpc" || grpc.starts_with("application/grpc+") => {
                Err(ApiError::unsupported_media_type(format!(
                    "{grpc} needs HTTP/2: send gRPC with prior knowledge (h2c) to this port, or use application/grpc-web, application/proto or application/json"
                )))
            }
            "" => Err(ApiError::unsupported_media_type(
                "missing Content-Type: use application/proto or application/json",
            )),
            other => Err(ApiError::unsupported_media_type(format!(
                "unsupported Content-Type {other:?}: use application/proto or application/json"
            ))),
        }
    }

    /// Decodes one message.
    pub fn decode<T: prost::Message + Default + DeserializeOwned>(
        self,
        body: &[u8],
    ) -> Result<T, ApiError> {
        match self {
            Self::Proto => T::decode(body)
                .map_err(|e| ApiError::bad_request(format!("invalid protobuf message: {e}"))),
            Self::Json => {
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Err(ApiError::bad_request("empty JSON body: send at least {}"));
                }
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON message: {e}")))
            }
        }
    }

    /// Encodes a message: its content type and bytes.
    pub fn encode<T: prost::Message + Serialize>(
        self,
        msg: &T,
    ) -> Result<(&'static str, Vec<u8>), ApiError> {
        match self {
            Self::Proto => Ok(("application/proto", msg.encode_to_vec())),
            Self::Json => serde_json::to_vec(msg)
                .map(|body| ("application/json", body))
                .map_err(|e| ApiError::internal(format!("failed to encode the response: {e}"))),
        }
    }

    /// Encodes a 200 response.
    pub fn respond<T: prost::Message + Serialize>(self, msg: &T) -> HttpResponse {
        match self {
            Self::Proto => HttpResponse::Ok()
                .content_type("application/proto")
                .body(msg.encode_to_vec()),
            Self::Json => match serde_json::to_vec(msg) {
                Ok(body) => HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body),
                Err(e) => ApiError::internal(format!("failed to encode the response: {e}"))
                    .into_response(),
            },
        }
    }
}

trait IntoResponse {
    fn into_response(self) -> HttpResponse;
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}
