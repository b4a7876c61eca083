//! API errors, rendered as Connect errors: `{"code": "...", "message": "..."}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use ignis_actors::querier::QueryFailure;
use ignis_ingest::{IngestError, Reason};
use std::fmt;

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Connect error code.
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
    /// Ingest discard reason, for the rejection metric.
    pub reason: Option<Reason>,
    /// Seconds to send as `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
    /// Send `WWW-Authenticate: Basic` (a missing or wrong credential), so
    /// browsers ask for one.
    pub challenge: bool,
}

impl ApiError {
    /// Builds an error; its message quotes at most
    /// [`ignis_ingest::error::MAX_MESSAGE_BYTES`] (errors quote input).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: ignis_ingest::error::bounded(message.into()),
            reason: None,
            retry_after: None,
            challenge: false,
        }
    }

    /// A store that failed in the distributor or the ingesters: 429
    /// `resource_exhausted` with `Retry-After` for a rate limit (reason
    /// `rate_limited`) and without for the series limit (`series_limit`),
    /// else 503 `unavailable`.
    pub fn from_ingester(e: ignis_actors::ingester::IngesterError) -> Self {
        match e {
            ignis_actors::ingester::IngesterError::RateLimited(over) => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "resource_exhausted",
                    match over.retry_after {
                        Some(_) => over.message,
                        None => format!(
                            "{}: larger than the burst (limits.ingestion_burst_size_mb), it can never pass",
                            over.message
                        ),
                    },
                );
                err.reason = Some(Reason::RateLimited);
                err.retry_after = over
                    .retry_after
                    .map(|d| d.as_secs_f64().ceil().max(1.0) as u64);
                err
            }
            ignis_actors::ingester::IngesterError::SeriesLimit(over) => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "resource_exhausted",
                    over.message(),
                );
                err.reason = Some(Reason::SeriesLimit);
                err
            }
            other => Self::unavailable(other.to_string()),
        }
    }

    /// 400 `invalid_argument`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    /// The same error asking for credentials (`WWW-Authenticate`).
    pub fn with_challenge(mut self) -> Self {
        self.challenge = true;
        self
    }

    /// 403 `permission_denied`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", message)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 404 `unimplemented` (unknown procedure).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "unimplemented", message)
    }

    /// 501 `unimplemented` (a known procedure this server does not serve).
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "unimplemented", message)
    }

    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "unimplemented", message)
    }

    /// 413 `invalid_argument`.
    pub fn too_large(message: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_argument", message);
        err.reason = Some(Reason::BodySizeLimit);
        err
    }

    /// 415.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_argument",
            message,
        )
    }

    /// 422 `unknown` (what Pyroscope answers for unparsable pprof uploads).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown", message)
    }

    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Maps an ingest error; `status` is used for refusals that are not
    /// size limits (the series limit is always 429 `resource_exhausted`).
    pub fn from_ingest(e: IngestError, status: StatusCode) -> Self {
        let mut err = if e.reason == Reason::SeriesLimit {
            Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                e.message,
            )
        } else if status == StatusCode::UNPROCESSABLE_ENTITY {
            Self::unprocessable(e.message)
        } else {
            Self::new(status, "invalid_argument", e.message)
        };
        err.reason = Some(e.reason);
        err
    }
}

impl From<QueryFailure> for ApiError {
    fn from(e: QueryFailure) -> Self {
        match e {
            QueryFailure::Query(q @ ignis_query::QueryError::Unimplemented(_)) => {
                Self::unimplemented(q.to_string())
            }
            QueryFailure::Query(q @ ignis_query::QueryError::ResourceExhausted(_)) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                q.to_string(),
            ),
            QueryFailure::Query(q) => Self::bad_request(q.to_string()),
            QueryFailure::Unavailable(m) => Self::unavailable(m),
            QueryFailure::TooManyQueries(m) => {
                let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, "resource_exhausted", m);
                err.retry_after = Some(1);
                err
            }
            QueryFailure::Corrupt(m) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "data_loss", m)
            }
            QueryFailure::Internal(m) => Self::internal(m),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            resp.insert_header(("Retry-After", secs.to_string()));
        }
        if self.challenge {
            resp.insert_header((
                "WWW-Authenticate",
                "Basic realm=\"ignis\", charset=\"UTF-8\"",
            ));
        }
        resp.json(serde_json::json!({ "code": self.code, "message": self.message }))
    }
}
