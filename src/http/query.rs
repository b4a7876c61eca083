//! Read endpoints: `querier.v1.QuerierService/<Method>` (Connect unary).

use std::sync::Arc;

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use ignis_actors::Tenants;
use ignis_actors::frontend::query_heatmap;
use ignis_actors::querier::QueryFailure;
use ignis_query::lane::{Lane, in_cell};
use ignis_query::{Engine, QueryError};
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::proto::types::v1 as types;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::body::read_decoded;
use super::connect::Codec;
use super::error::ApiError;
use super::state::{AppState, fetch_range, now_ns};

/// Largest query request body.
const MAX_QUERY_BODY: usize = 16 << 20;

/// `POST /querier.v1.QuerierService/{method}`.
pub async fn querier(
    req: HttpRequest,
    method: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let codec = Codec::from_request(&req)?;
    let tenant = state.read_tenants(&req)?;
    let body = read_decoded(&req, payload, MAX_QUERY_BODY).await?;
    within_deadline(&req, dispatch(&method, codec, &body, &state, tenant)).await
}

/// `GET /querier.v1.QuerierService/{method}?encoding=…&message=…`: Connect's
/// GET form of a unary call (`base64=1` for a base64url message, as binary
/// messages are sent; `compression=gzip` for a compressed one).
pub async fn querier_get(
    req: HttpRequest,
    method: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (codec, body) = super::connect_get::message(&req, MAX_QUERY_BODY)?;
    let tenant = state.read_tenants(&req)?;
    within_deadline(&req, dispatch(&method, codec, &body, &state, tenant)).await
}

/// Runs `call` within the client's `Connect-Timeout-Ms`, when it sent one:
/// past it the client gets `deadline_exceeded` (504), as from Pyroscope.
async fn within_deadline(
    req: &HttpRequest,
    call: impl std::future::Future<Output = Result<HttpResponse, ApiError>>,
) -> Result<HttpResponse, ApiError> {
    let Some(value) = req.headers().get("connect-timeout-ms") else {
        return call.await;
    };
    // The Connect protocol allows at most 10 digits.
    let ms = value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "Connect-Timeout-Ms must be a positive integer of at most 10 digits",
            )
        })?;
    let exceeded = || {
        ApiError::new(
            actix_web::http::StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
            format!(
                "request timed out after {ms} ms (Connect-Timeout-Ms), decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed"
            ),
        )
    };
    // A deadline of 0 has passed already (a timer of 0 would still let a
    // call that finishes on its first poll answer: the outcome would race).
    if ms == 0 {
        return Err(exceeded());
    }
    tokio::time::timeout(std::time::Duration::from_millis(ms), call)
        .await
        .unwrap_or_else(|_| Err(exceeded()))
}

async fn dispatch(
    method: &str,
    codec: Codec,
    body: &[u8],
    state: &AppState,
    tenant: String,
) -> Result<HttpResponse, ApiError> {
    let federated = tenant.contains('|');
    let call = Call {
        codec,
        body,
        state,
        tenant,
    };
    match method {
        "ProfileTypes" => {
            let now_ms = now_ns() / 1_000_000;
            call.run(move |e, r: &q::ProfileTypesRequest| e.profile_types(r, now_ms))
                .await
        }
        "LabelNames" => {
            call.run(|e, r: &types::LabelNamesRequest| e.label_names(r))
                .await
        }
        "LabelValues" => {
            call.run(|e, r: &types::LabelValuesRequest| e.label_values(r))
                .await
        }
        "Series" => call.run(|e, r: &q::SeriesRequest| e.series(r)).await,
        "SelectMergeStacktraces" => {
            call.run(|e, r: &q::SelectMergeStacktracesRequest| e.select_merge_stacktraces(r))
                .await
        }
        "SelectMergeSpanProfile" => {
            call.run(|e, r: &q::SelectMergeSpanProfileRequest| e.select_merge_span_profile(r))
                .await
        }
        "SelectMergeProfile" => {
            call.run(|e, r: &q::SelectMergeProfileRequest| e.select_merge_profile(r))
                .await
        }
        "SelectSeries" => {
            call.run(|e, r: &q::SelectSeriesRequest| e.select_series(r))
                .await
        }
        "SelectHeatmap" => {
            call.run_with(|tenants, tenant, req, range| async move {
                query_heatmap(&tenants, &tenant, req, range).await
            })
            .await
        }
        "Diff" => call.run(|e, r: &q::DiffRequest| e.diff(r)).await,
        "AnalyzeQuery" => analyze(codec, body, state, &call.tenant).await,
        "GetProfileStats" if federated => Err(ApiError::bad_request(
            "GetProfileStats requires exactly one tenant in X-Scope-OrgID",
        )),
        "GetProfileStats" => {
            call.run(|e, _: &types::GetProfileStatsRequest| Ok(e.profile_stats()))
                .await
        }
        other => Err(ApiError::not_found(format!(
            "querier.v1.QuerierService/{other} is not implemented by this server"
        ))),
    }
}

/// The time range (ms) a request reads, so a cluster node fetches only that.
trait FetchRange {
    fn range_ms(&self) -> (i64, i64) {
        (0, 0)
    }
}

macro_rules! ranged {
    ($($t:ty),*) => {$(
        impl FetchRange for $t {
            fn range_ms(&self) -> (i64, i64) {
                (self.start, self.end)
            }
        }
    )*};
}

ranged!(
    types::LabelNamesRequest,
    types::LabelValuesRequest,
    q::SeriesRequest,
    q::SelectMergeStacktracesRequest,
    q::SelectMergeSpanProfileRequest,
    q::SelectMergeProfileRequest,
    q::SelectSeriesRequest,
    q::SelectHeatmapRequest
);

impl FetchRange for q::ProfileTypesRequest {
    fn range_ms(&self) -> (i64, i64) {
        if self.start == 0 && self.end == 0 {
            // The engine's default: the last hour.
            let now = now_ns() / 1_000_000;
            (now - 3_600_000, now)
        } else {
            (self.start, self.end)
        }
    }
}

impl FetchRange for q::DiffRequest {
    fn range_ms(&self) -> (i64, i64) {
        match (&self.left, &self.right) {
            (Some(l), Some(r)) => (l.start.min(r.start), l.end.max(r.end)),
            _ => (0, 0),
        }
    }
}

impl FetchRange for types::GetProfileStatsRequest {}

struct Call<'a> {
    codec: Codec,
    body: &'a [u8],
    state: &'a AppState,
    tenant: String,
}

impl Call<'_> {
    /// Answers with `f` run over the tenant's data in the request's range.
    async fn run<Req, Resp, F>(self, f: F) -> Result<HttpResponse, ApiError>
    where
        Req: prost::Message + Default + DeserializeOwned + FetchRange + Send + Sync + 'static,
        Resp: prost::Message + Serialize + Send + 'static,
        F: Fn(&Engine<'_>, &Req) -> Result<Resp, QueryError> + Send + Sync + 'static,
    {
        self.run_with(
            move |tenants, tenant, request: Req, (start, end)| async move {
                tenants
                    .query_range(&tenant, start, end, move |e| f(e, &request))
                    .await
            },
        )
        .await
    }

    /// Answers with what `g` makes of the decoded request and its range
    /// (nanoseconds), in the query's lane.
    async fn run_with<Req, Resp, G, Fut>(self, g: G) -> Result<HttpResponse, ApiError>
    where
        Req: prost::Message + Default + DeserializeOwned + FetchRange + Send + Sync + 'static,
        Resp: prost::Message + Serialize + Send + 'static,
        G: FnOnce(Arc<Tenants>, String, Req, (i64, i64)) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Resp, QueryFailure>> + Send + 'static,
    {
        // A tenant with another query in flight runs this one, decoding
        // and encoding included, on the bulk lane's threads: what it costs
        // never delays another tenant's requests on the HTTP workers.
        let tenants = self.state.tenants.clone();
        let entered = tenants.enter_query(&self.tenant);
        let (lane, cell) = (entered.lane(), entered.cell());
        let (codec, tenant) = (self.codec, self.tenant);
        let run = move |body: &[u8]| {
            let request = codec.decode::<Req>(body);
            async move {
                let _entered = entered;
                let request = request?;
                let (start_ms, end_ms) = request.range_ms();
                let range = fetch_range(start_ms, end_ms);
                let resp = g(tenants, tenant, request, range).await?;
                codec.encode(&resp)
            }
        };
        let (content_type, bytes) = match lane {
            // Its cell: the query's work turns bulk if the tenant starts
            // another meanwhile (the decoding and encoding stay here).
            Lane::Interactive => in_cell(cell, run(self.body)).await?,
            Lane::Bulk => {
                let body = self.body.to_vec();
                let task = |e: &dyn std::fmt::Display| {
                    ApiError::internal(format!("the query's task failed: {e}"))
                };
                lane.spawn(async move { run(&body).await })
                    .map_err(|e| task(&e))?
                    .await
                    .map_err(|e| task(&e))??
            }
        };
        Ok(HttpResponse::Ok().content_type(content_type).body(bytes))
    }
}

/// `AnalyzeQuery`: what a query over the range touches, counted exactly:
/// the heads and blocks it would read (this node's ingester and
/// store-gateway: a standalone node, or a node whose store-gateway serves
/// every block), and the series its selector selects (over the whole
/// cluster, through the query path).
async fn analyze(
    codec: Codec,
    body: &[u8],
    state: &AppState,
    tenant: &str,
) -> Result<HttpResponse, ApiError> {
    let req: q::AnalyzeQueryRequest = codec.decode(body)?;
    let (start, end) = (req.start, req.end);
    let (start_ns, end_ns) = (
        start.saturating_mul(1_000_000),
        end.saturating_mul(1_000_000),
    );
    let analysis = state.tenants.analyze(tenant, start_ns, end_ns).await?;
    let series_req = q::SeriesRequest {
        matchers: if req.query.trim().is_empty() {
            Vec::new()
        } else {
            vec![req.query.clone()]
        },
        label_names: Vec::new(),
        start,
        end,
    };
    let f = move |e: &Engine<'_>| e.series(&series_req).map(|r| r.labels_set.len() as u64);
    let total_series = state
        .tenants
        .query_range(tenant, start_ns, end_ns, f)
        .await?;
    let cluster = state.tenants.cluster();
    let ring = cluster.ring();
    let gateways = cluster.store_gateway_ring().members.len().max(1) as u64;
    let scope = |component: &str, count: u64, t: &ignis_actors::analyze::Touched| q::QueryScope {
        component_type: component.into(),
        component_count: count,
        block_count: t.blocks,
        series_count: t.series,
        profile_count: t.profiles,
        sample_count: t.samples,
        index_bytes: t.index_bytes,
        profile_bytes: t.profile_bytes,
        symbol_bytes: t.symbol_bytes,
    };
    Ok(codec.respond(&q::AnalyzeQueryResponse {
        query_scopes: vec![
            scope(
                "Short term storage",
                ring.members.len().max(1) as u64,
                &analysis.memory,
            ),
            scope("Long term storage", gateways, &analysis.blocks),
        ],
        query_impact: Some(q::QueryImpact {
            total_bytes_in_time_range: analysis.memory.bytes() + analysis.blocks.bytes(),
            total_queried_series: total_series,
            deduplication_needed: ring.replication_factor > 1,
        }),
    }))
}
