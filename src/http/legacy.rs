//! Legacy read endpoints: `/pyroscope/render` and `/pyroscope/label-values`.

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use ignis_query::attime::parse_time_ns;
use ignis_query::render::{
    DiffSide, RenderRequest, render_diff as render_diff_json, render_flame, render_json,
    render_timelines,
};
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::proto::types::v1 as types;

use super::error::ApiError;
use super::state::{AppState, fetch_range, now_ns};

fn params(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn time_ms(p: &[(String, String)], name: &str, default_ns: i64) -> Result<i64, ApiError> {
    match param(p, name) {
        None | Some("") => Ok(default_ns / 1_000_000),
        Some(v) => parse_time_ns(v, now_ns())
            .map(|ns| ns / 1_000_000)
            .ok_or_else(|| ApiError::bad_request(format!("{name}: invalid time {v:?}"))),
    }
}

/// `GET /pyroscope/render`: flamebearer JSON with a timeline.
pub async fn render(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.read_tenants(&req)?;
    let p = params(&req)?;
    let now = now_ns();
    let max_nodes = param(&p, "maxNodes")
        .or_else(|| param(&p, "max-nodes"))
        .and_then(|v| v.parse::<i64>().ok());
    let request = RenderRequest {
        query: param(&p, "query").unwrap_or("").to_string(),
        from_ms: time_ms(&p, "from", now)?,
        until_ms: time_ms(&p, "until", now)?,
        max_nodes,
        group_by: p
            .iter()
            .filter(|(k, _)| k == "groupBy")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let (start, end) = fetch_range(request.from_ms, request.until_ms);
    if param(&p, "format") == Some("dot") {
        let dot = state
            .tenants
            .query_range(&tenant, start, end, move |e| {
                ignis_query::render::render_dot(e, &request)
            })
            .await?;
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(dot));
    }
    if param(&p, "format") == Some("svg") {
        let svg = state
            .tenants
            .query_range(&tenant, start, end, move |e| {
                ignis_query::render::render_svg(e, &request)
            })
            .await?;
        return Ok(HttpResponse::Ok()
            .content_type("image/svg+xml")
            .insert_header(("Content-Disposition", "inline; filename=\"flamegraph.svg\""))
            .body(svg));
    }
    // Two queries: the flame graph only merges stacks (blocks answer it
    // from their rollups), the timelines read each profile's total.
    let flame = {
        let request = request.clone();
        state
            .tenants
            .query_range(&tenant, start, end, move |e| render_flame(e, &request))
            .await?
    };
    let timelines = state
        .tenants
        .query_range(&tenant, start, end, move |e| render_timelines(e, &request))
        .await?;
    Ok(HttpResponse::Ok().json(render_json(flame, timelines)))
}

/// `GET /pyroscope/render-diff`: two selections' flame graphs aligned (7-tuple levels).
pub async fn render_diff(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.read_tenants(&req)?;
    let p = params(&req)?;
    let now = now_ns();
    let side = |prefix: &str| -> Result<DiffSide, ApiError> {
        Ok(DiffSide {
            query: param(&p, &format!("{prefix}Query"))
                .unwrap_or("")
                .to_string(),
            from_ms: time_ms(&p, &format!("{prefix}From"), now)?,
            until_ms: time_ms(&p, &format!("{prefix}Until"), now)?,
        })
    };
    let (left, right) = (side("left")?, side("right")?);
    let max_nodes = param(&p, "maxNodes")
        .or_else(|| param(&p, "max-nodes"))
        .and_then(|v| v.parse::<i64>().ok());
    let (l, r) = (
        fetch_range(left.from_ms, left.until_ms),
        fetch_range(right.from_ms, right.until_ms),
    );
    let body = state
        .tenants
        .query_range(&tenant, l.0.min(r.0), l.1.max(r.1), move |e| {
            render_diff_json(e, &left, &right, max_nodes)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /pyroscope/label-values?label=…[&from=…&until=…]` (default range: the last hour).
pub async fn label_values(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.read_tenants(&req)?;
    let p = params(&req)?;
    let label = param(&p, "label").unwrap_or("").to_string();
    if label.is_empty() {
        return Err(ApiError::bad_request("label parameter is required"));
    }
    let now = now_ns();
    let start = time_ms(&p, "from", now - 3_600_000_000_000)?;
    let end = time_ms(&p, "until", now)?;
    let (fs, fe) = fetch_range(start, end);
    let values: Vec<String> = if label == "__name__" {
        let r = q::ProfileTypesRequest { start, end };
        state
            .tenants
            .query_range(&tenant, fs, fe, move |e| {
                e.profile_types(&r, now / 1_000_000)
            })
            .await?
            .profile_types
            .into_iter()
            .map(|t| t.id)
            .collect()
    } else {
        let r = types::LabelValuesRequest {
            name: label,
            matchers: vec![],
            start,
            end,
        };
        state
            .tenants
            .query_range(&tenant, fs, fe, move |e| e.label_values(&r))
            .await?
            .names
    };
    Ok(HttpResponse::Ok().json(values))
}
