//! The legacy `GET /pyroscope/render` response (flamebearer JSON).

use std::collections::BTreeMap;

use ignis_storage::{ProfileType, names};
use serde_json::{Value, json};

use crate::diff::diff_flamegraph;
use crate::engine::Engine;
use crate::error::QueryError;
use crate::flamegraph::{FlameTree, Levels};
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

/// Parses a legacy `query` (`<profile_type>{matchers}`) into a typed selection.
fn selection(
    engine: &Engine<'_>,
    param: &str,
    query: &str,
    from_ms: i64,
    until_ms: i64,
) -> Result<(ProfileType, Selection), QueryError> {
    if query.trim().is_empty() {
        return Err(QueryError::invalid(format!("\"{param}\" is required")));
    }
    let mut matchers = parse_selector(query)
        .map_err(|e| QueryError::invalid(format!("failed to parse \"{param}\": {e}")))?;
    let pos = matchers
        .iter()
        .position(|m| m.name == names::METRIC_NAME && m.op == MatchOp::Equal)
        .ok_or_else(|| {
            QueryError::invalid(format!("\"{param}\" must contain a profile-type selection"))
        })?;
    let profile_type = matchers.remove(pos).value;
    let (pt, mut sel) = engine.typed_selection(&profile_type, "{}", from_ms, until_ms)?;
    sel.matchers.extend(matchers);
    Ok((pt, sel))
}

fn units(pt: &ProfileType) -> &str {
    match pt.sample_type.as_str() {
        "cpu" => "samples",
        "inuse_objects" | "alloc_objects" | "goroutine" | "samples" => "objects",
        _ => pt.sample_unit.as_str(),
    }
}

fn metadata(pt: &ProfileType, format: &str) -> Value {
    json!({
        "format": format,
        "spyName": "",
        "sampleRate": if pt.sample_type == "cpu" { 1_000_000_000u64 } else { 100 },
        "units": units(pt),
        "name": pt.sample_type,
    })
}

/// One side of a legacy diff request.
#[derive(Debug, Clone)]
pub struct DiffSide {
    /// `<profile_type_id>{matchers}`.
    pub query: String,
    /// Start, ms.
    pub from_ms: i64,
    /// End, ms.
    pub until_ms: i64,
}

/// Builds the `/pyroscope/render-diff` JSON (7-tuple levels, `format: double`).
pub fn render_diff(
    engine: &Engine<'_>,
    left: &DiffSide,
    right: &DiffSide,
    max_nodes: Option<i64>,
) -> Result<Value, QueryError> {
    let (lpt, lsel) = selection(
        engine,
        "leftQuery",
        &left.query,
        left.from_ms,
        left.until_ms,
    )?;
    let (rpt, rsel) = selection(
        engine,
        "rightQuery",
        &right.query,
        right.from_ms,
        right.until_ms,
    )?;
    if lpt != rpt {
        return Err(QueryError::invalid("profile types must match"));
    }
    let max_nodes = match max_nodes {
        Some(n) if n > 0 => n as usize,
        _ => 8192,
    };
    let (l, r) = (
        FlameTree::build(&engine.merge(&lsel)),
        FlameTree::build(&engine.merge(&rsel)),
    );
    let d = diff_flamegraph(&l, &r, max_nodes);
    Ok(json!({
        "version": 1,
        "flamebearer": {
            "names": d.names,
            "levels": d.levels.into_iter().map(|l| l.values).collect::<Vec<_>>(),
            "numTicks": d.total,
            "maxSelf": d.max_self,
        },
        "metadata": metadata(&lpt, "double"),
        "leftTicks": d.left_ticks,
        "rightTicks": d.right_ticks,
        "timeline": Value::Null,
        "groups": Value::Null,
        "heatmap": Value::Null,
    }))
}

/// `format=dot`: the call graph as Graphviz text ([`crate::dot`]), with
/// `maxNodes` nodes (default 100); empty without samples.
pub fn render_dot(engine: &Engine<'_>, req: &RenderRequest) -> Result<String, QueryError> {
    let (pt, sel) = selection(engine, "query", &req.query, req.from_ms, req.until_ms)?;
    let merged = engine.merge(&sel);
    let nodes = req
        .max_nodes
        .filter(|&n| n > 0)
        .map_or(crate::dot::DEFAULT_DOT_NODES, |n| n as usize);
    Ok(crate::dot::to_dot(
        &merged,
        nodes,
        &pt.sample_type,
        &pt.sample_unit,
    ))
}

/// Renders a render request's flame graph as an SVG image (inferno), with
/// `max_nodes` as in the JSON form and the unit in the tooltip.
pub fn render_svg(engine: &Engine<'_>, req: &RenderRequest) -> Result<Vec<u8>, QueryError> {
    let (pt, sel) = selection(engine, "query", &req.query, req.from_ms, req.until_ms)?;
    let merged = engine.merge(&sel);
    let mut lines = Vec::with_capacity(merged.values.len());
    let mut names = Vec::new();
    for (&stack, &value) in &merged.values {
        if value <= 0 {
            continue;
        }
        merged.symbols.frame_names(stack, &mut names);
        if names.is_empty() {
            continue;
        }
        // Collapsed stacks are root first; `;` separates frames.
        let frames: Vec<String> = names.iter().rev().map(|n| n.replace(';', ":")).collect();
        lines.push(format!("{} {value}", frames.join(";")));
    }
    lines.sort_unstable();
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = req.query.clone();
    opts.count_name = pt.sample_unit.clone();
    opts.min_width = 0.1;
    if let Some(n) = req.max_nodes.filter(|&n| n > 0) {
        // inferno prunes by width, not node count: keep frames above 1/n of the total.
        opts.min_width = (100.0 / n as f64).max(0.01);
    }
    let mut out = Vec::new();
    if lines.is_empty() {
        let text = format!("No data for {} in this range", req.query)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        return Ok(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"60\">\
             <text x=\"600\" y=\"34\" text-anchor=\"middle\" font-family=\"Verdana\" \
             font-size=\"14\">{text}</text></svg>"
        )
        .into_bytes());
    }
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut out)
        .map_err(|e| QueryError::invalid(format!("cannot render the flame graph: {e}")))?;
    Ok(out)
}

/// Builds the flamebearer JSON for a render request (its flame graph and
/// its timelines over one engine).
pub fn render(engine: &Engine<'_>, req: &RenderRequest) -> Result<Value, QueryError> {
    Ok(render_json(
        render_flame(engine, req)?,
        render_timelines(engine, req)?,
    ))
}

/// The flame graph part of a render: the profile type and the merged levels.
/// A query of its own, it only merges stacks, so blocks answer it from
/// their rollups.
pub fn render_flame(
    engine: &Engine<'_>,
    req: &RenderRequest,
) -> Result<(ProfileType, Levels), QueryError> {
    let (pt, sel) = selection(engine, "query", &req.query, req.from_ms, req.until_ms)?;
    let max_nodes = match req.max_nodes {
        Some(n) if n > 0 => n as usize,
        _ => 8192,
    };
    let merged = engine.merge(&sel);
    Ok((pt, FlameTree::build(&merged).levels(max_nodes)))
}

/// The timeline part of a render: the total and, with `groupBy`, one
/// timeline per group (each profile's total, so it reads profiles).
pub fn render_timelines(
    engine: &Engine<'_>,
    req: &RenderRequest,
) -> Result<(Timeline, Value), QueryError> {
    let (_, sel) = selection(engine, "query", &req.query, req.from_ms, req.until_ms)?;
    let step = timeline_step_secs(req.from_ms, req.until_ms);
    Ok(timelines(engine, &sel, req, step))
}

/// The flamebearer JSON of a render's two parts.
pub fn render_json(
    (pt, levels): (ProfileType, Levels),
    (timeline, groups): (Timeline, Value),
) -> Value {
    let names = if levels.total == 0 {
        Value::Null
    } else {
        json!(levels.names)
    };
    json!({
        "version": 1,
        "flamebearer": {
            "names": names,
            "levels": levels.levels,
            "numTicks": levels.total,
            "maxSelf": levels.max_self,
        },
        "metadata": metadata(&pt, "single"),
        "timeline": timeline,
        "groups": groups,
        "heatmap": Value::Null,
    })
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
    engine.profile_totals(sel, &mut |labels, t| {
        let (ts, v) = (t.timestamp_ns, t.value);
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
