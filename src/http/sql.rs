//! `POST /api/v1/sql`: read-only SQL over a tenant's profiles (an Ignis
//! extension; DataFusion over the blocks and the data still in memory).
//!
//! Body: `{"query": "SELECT …", "start": ms, "end": ms}`; the range (default:
//! the last 24 hours) chooses the blocks read. Tables: `profiles` and
//! `samples` (see `ignis_query::sql`).

use actix_web::{HttpRequest, HttpResponse, web};
use ignis_query::sql::{SqlLimits, run_sql};
use serde::Deserialize;

use super::body::read_body;
use super::error::ApiError;
use super::state::{AppState, fetch_range, now_ns};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    query: String,
    #[serde(default)]
    start: i64,
    #[serde(default)]
    end: i64,
}

/// `POST /api/v1/sql`.
pub async fn sql(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body = read_body(payload, 1 << 20).await?;
    let r: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body must be JSON {{\"query\": \"SELECT …\", \"start\": ms, \"end\": ms}}: {e}"
        ))
    })?;
    if r.query.trim().is_empty() {
        return Err(ApiError::bad_request("query is empty"));
    }
    let now_ms = now_ns() / 1_000_000;
    let (start, end) = match (r.start, r.end) {
        (0, 0) => (now_ms - 24 * 3_600_000, now_ms),
        (s, 0) => (s, now_ms),
        (s, e) => (s, e),
    };
    if start > end {
        return Err(ApiError::bad_request("start is after end"));
    }
    let (start_ns, end_ns) = fetch_range(start.max(1), end);
    let input = state.tenants.sql_input(&tenant, start_ns, end_ns).await?;
    let q = &state.config.query;
    let limits = SqlLimits {
        max_rows: q.sql_max_rows,
        max_memory: q.sql_max_memory_bytes,
    };
    let timeout = std::time::Duration::from_secs(q.sql_timeout_secs.max(1));
    let query = r.query;
    // DataFusion runs on a multi-threaded runtime of its own, not on the
    // HTTP worker's single-threaded one.
    let rt = sql_runtime()?;
    let task = rt.spawn(async move {
        tokio::time::timeout(timeout, run_sql(input, &query, limits))
            .await
            .map_err(|_| {
                ApiError::new(
                    actix_web::http::StatusCode::GATEWAY_TIMEOUT,
                    "deadline_exceeded",
                    format!("SQL query took longer than {timeout:?} (query.sql_timeout_secs)"),
                )
            })?
            .map_err(|e| ApiError::bad_request(e.to_string()))
    });
    let answer = task
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(answer))
}

fn sql_runtime() -> Result<&'static tokio::runtime::Runtime, ApiError> {
    ignis_query::executor::executor()
        .map_err(|e| ApiError::internal(format!("cannot start the SQL runtime: {e}")))
}
