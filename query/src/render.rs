//! The legacy `GET /pyroscope/render` response (flamebearer JSON).

use std::collections::BTreeMap;

use ignis_storage::names;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::error::QueryError;
use crate::flamegraph::FlameTree;
use crate::selector::{MatchOp, parse_selector};
use crate::source::Selection;
use crate::timeseries::{Timeline, timeline_step_secs};

/// A parsed render request.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    /// `<profile_type_id>{matchers}`.
    pub query: String,
    /// Start, ms.
    pub from_ms: i64,
    /// End, ms.
    pub until_ms: i64,
    /// Flame graph node budget (None: server default).
    pub max_nodes: Option<i64>,
    /// Labels to group the timeline by (only the first is used).
    pub group_by: Vec<String>,
}

/// Builds the flamebearer JSON for a render request.
pub fn render(engine: &Engine<'_>, req: &RenderRequest) -> Result<Value, QueryError> {
    if req.query.trim().is_empty() {
        return Err(QueryError::invalid("\"query\" is required"));
    }
    let mut matchers = parse_selector(&req.query)
        .map_err(|e| QueryError::invalid(format!("failed to parse \"query\": {e}")))?;
    let pos = matchers
        .iter()
        .position(|m| m.name == names::METRIC_NAME && m.op == MatchOp::Equal)
        .ok_or_else(|| QueryError::invalid("\"query\" must contain a profile-type selection"))?;
    let profile_type = matchers.remove(pos).value;
    let (pt, mut sel) = engine.typed_selection(&profile_type, "{}", req.from_ms, req.until_ms)?;
    sel.matchers.extend(matchers);

    let max_nodes = match req.max_nodes {
        Some(n) if n > 0 => n as usize,
        _ => 8192,
    };
    let merged = engine.merge(&sel);
    let levels = FlameTree::build(&merged, &[]).levels(max_nodes);

    let step = timeline_step_secs(req.from_ms, req.until_ms);
    let (timeline, groups) = timelines(engine, &sel, req, step);

    let units = match pt.sample_type.as_str() {
        "cpu" => "samples",
        "inuse_objects" | "alloc_objects" | "goroutine" | "samples" => "objects",
        _ => pt.sample_unit.as_str(),
    };
    let names = if levels.total == 0 {
        Value::Null
    } else {
        json!(levels.names)
    };
    Ok(json!({
        "version": 1,
        "flamebearer": {
            "names": names,
            "levels": levels.levels,
            "numTicks": levels.total,
            "maxSelf": levels.max_self,
        },
        "metadata": {
            "format": "single",
            "spyName": "",
            "sampleRate": if pt.sample_type == "cpu" { 1_000_000_000u64 } else { 100 },
            "units": units,
            "name": pt.sample_type,
        },
        "timeline": timeline,
        "groups": groups,
        "heatmap": Value::Null,
    }))
}

fn timelines(
    engine: &Engine<'_>,
    sel: &Selection,
    req: &RenderRequest,
    step: i64,
) -> (Timeline, Value) {
    let mut total = Timeline::new(req.from_ms, req.until_ms, step);
    let mut groups: BTreeMap<String, Timeline> = BTreeMap::new();
    let group_by = req.group_by.first();
    engine.profile_totals(sel, &mut |labels, ts, v| {
        total.add(ts, v);
        if let Some(g) = group_by {
            let key = labels.get(g).unwrap_or("*").to_string();
            groups
                .entry(key)
                .or_insert_with(|| Timeline::new(req.from_ms, req.until_ms, step))
                .add(ts, v);
        }
    });
    let groups = if group_by.is_some() {
        json!(groups)
    } else {
        Value::Null
    };
    (total, groups)
}
