//! The legacy `GET /pyroscope/render` response (flamebearer JSON).

use std::collections::BTreeMap;

use ignis_storage::{ProfileType, names};
use serde_json::{Value, json};

use crate::diff::diff_flamegraph;
use crate::engine::Engine;
use crate::error::QueryError;
use crate::flamegraph::Levels;
use crate::selector::{MatchOp, parse_selector};
use crate::source::Selection;
use crate::timeseries::{SeriesPlan, Timeline, timeline_step_secs};

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
        engine.call_tree(&engine.merge(&lsel))?,
        engine.call_tree(&engine.merge(&rsel))?,
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
    Ok((pt, engine.call_tree(&merged)?.levels(max_nodes)))
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

/// The timeline of `sel` (and one per value of the first `group_by`
/// label, `*` for series without it): each step's slot `[t, t + step)`
/// holds the sum of the totals of its profiles. Counted as a time series
/// (`SeriesPlan`) whose right-closed buckets `(e − step, e]` in ms, starting
/// a millisecond before the timeline, are exactly those slots; blocks then
/// answer from their window totals and the query-frontend splits and
/// caches it like `SelectSeries`.
fn timelines(
    engine: &Engine<'_>,
    sel: &Selection,
    req: &RenderRequest,
    step: i64,
) -> (Timeline, Value) {
    let mut total = Timeline::new(req.from_ms, req.until_ms, step);
    let group_by = req.group_by.first();
    let start_ms = total.start_time.saturating_mul(1000);
    let step_ms = step.saturating_mul(1000);
    let plan = SeriesPlan {
        sel: sel.clone(),
        group_by: group_by.into_iter().cloned().collect(),
        start_ms: start_ms.saturating_sub(1),
        step_ms,
        call_site: Vec::new(),
        exemplars: false,
    };
    let mut groups: BTreeMap<String, Timeline> = BTreeMap::new();
    for (key, points) in engine.series_groups(&plan) {
        let mut group = group_by.map(|g| {
            let name = key.get(g).unwrap_or("*").to_string();
            groups
                .entry(name)
                .or_insert_with(|| Timeline::new(req.from_ms, req.until_ms, step))
        });
        for (end_ms, bucket) in points {
            // The bucket ending at `e` is the slot starting at `e + 1 − step`.
            let slot = (end_ms.saturating_add(1).saturating_sub(start_ms)).div_euclid(step_ms) - 1;
            let value = bucket.sum.max(0.0) as u64;
            total.add_slot(slot, value);
            if let Some(g) = group.as_mut() {
                g.add_slot(slot, value);
            }
        }
    }
    let groups = if group_by.is_some() {
        json!(groups)
    } else {
        Value::Null
    };
    (total, groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueryLimits;
    use crate::source::Source;
    use ignis_storage::testing::one_frame_profile;
    use ignis_storage::{Head, Labels, SeriesSplit, SplitProfile};

    const PT: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

    /// One-sample profiles of value `v` at `ts_ns`, in series `labels`.
    fn insert(head: &mut Head, labels: &Labels, ts_ns: i64, v: i64) {
        head.insert(&SplitProfile {
            profile_id: ignis_storage::ProfileId::generate(),
            profile: ignis_storage::FlatProfile::from_proto(&one_frame_profile("main", 1, v))
                .unwrap(),
            timestamp_ns: ts_ns,
            series: vec![SeriesSplit {
                labels: labels.clone(),
                value_index: 0,
                samples: vec![0],
            }],
        })
        .unwrap();
    }

    /// The timelines as counted profile by profile (each total into the
    /// slot of its second).
    fn by_profile(e: &Engine<'_>, req: &RenderRequest) -> (Timeline, Value) {
        let (_, sel) = selection(e, "query", &req.query, req.from_ms, req.until_ms).unwrap();
        let step = timeline_step_secs(req.from_ms, req.until_ms);
        let mut total = Timeline::new(req.from_ms, req.until_ms, step);
        let mut groups: BTreeMap<String, Timeline> = BTreeMap::new();
        e.profile_totals(&sel, &mut |labels, t| {
            total.add(t.timestamp_ns, t.value);
            let key = labels.get("pod").unwrap_or("*").to_string();
            groups
                .entry(key)
                .or_insert_with(|| Timeline::new(req.from_ms, req.until_ms, step))
                .add(t.timestamp_ns, t.value);
        });
        (total, json!(groups))
    }

    /// Timelines bucketed as a time series equal those counted profile by
    /// profile, for profiles on, just before and just after slot edges and
    /// ranges whose steps are 10 s to 1 d.
    #[test]
    fn timelines_as_series_equal_profile_by_profile() {
        let base: i64 = 1_700_006_400_000; // a multiple of a day, in ms
        let labels = |pod: Option<&str>| {
            let mut l = Labels::from_pairs([
                ("service_name", "svc"),
                (names::PROFILE_TYPE, PT),
                (names::METRIC_NAME, "process_cpu"),
            ]);
            if let Some(p) = pod {
                l.insert("pod", p);
            }
            l
        };
        let mut head = Head::new();
        let mut v = 1;
        for k in 0..400i64 {
            // Every 7 min 13 s, with offsets hitting edges of every step.
            let at_ms = base + k * 433_000;
            for (offset_ns, pod) in [
                (0, Some("a")),
                (-1, Some("b")),
                (1, None),
                (-1_000_000, Some("a")),
                (999_999, None),
            ] {
                let minute_edge = (at_ms / 60_000) * 60_000;
                for t in [at_ms, minute_edge] {
                    insert(&mut head, &labels(pod), t * 1_000_000 + offset_ns, v);
                    v += 1;
                }
            }
        }
        let limits = QueryLimits::default();
        let sources: [&dyn Source; 1] = [&head];
        let e = Engine::new(&sources, &limits);
        let span_ms = 400 * 433_000;
        for (from, until) in [
            (base, base + 120_000),
            (base + 17_000, base + 1_500_000),
            (base, base + 3 * 3_600_000),
            (base - 1, base + 20 * 3_600_000 + 1),
            (base + 59_999, base + span_ms),
            (base - 86_400_000, base + span_ms + 86_400_000),
        ] {
            for group_by in [vec![], vec!["pod".to_string()]] {
                let req = RenderRequest {
                    query: format!("{PT}{{service_name=\"svc\"}}"),
                    from_ms: from,
                    until_ms: until,
                    max_nodes: None,
                    group_by: group_by.clone(),
                };
                let (want_total, want_groups) = by_profile(&e, &req);
                let (total, groups) = render_timelines(&e, &req).unwrap();
                assert!(want_total.samples.iter().any(|&s| s > 0), "{from}..{until}");
                assert_eq!(
                    total, want_total,
                    "{from}..{until}, step {}",
                    total.duration_delta
                );
                if group_by.is_empty() {
                    assert_eq!(groups, Value::Null);
                } else {
                    assert_eq!(groups, want_groups, "{from}..{until}");
                }
            }
        }
    }
}
