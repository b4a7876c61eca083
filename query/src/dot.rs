//! The DOT format (`PROFILE_FORMAT_DOT`, `/pyroscope/render?format=dot`):
//! a Graphviz call graph of the merged stacks, as `go tool pprof -dot`
//! draws one. A node is a function with its flat value (in its own frame)
//! and cumulative value (on the stack at all); an edge is a call with the
//! value that went through it. The `max_nodes` functions of highest
//! cumulative value are kept, and the edges between them.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::source::MergedStacks;

/// Nodes of the graph when a request gives no `max_nodes` (as Pyroscope).
pub const DEFAULT_DOT_NODES: usize = 100;

#[derive(Default)]
struct Function {
    flat: i64,
    cum: i64,
}

/// The call graph of `merged` as Graphviz text; empty when there is no
/// sample. `unit` labels the values (`nanoseconds`, `bytes`, …).
pub fn to_dot(merged: &MergedStacks, max_nodes: usize, sample_type: &str, unit: &str) -> String {
    let mut funcs: HashMap<String, Function> = HashMap::new();
    let mut edges: HashMap<(String, String), i64> = HashMap::new();
    let mut frames = Vec::new();
    let mut total = 0i64;
    for (&stack, &v) in &merged.values {
        if v == 0 {
            continue;
        }
        merged.symbols.frame_names(stack, &mut frames);
        let Some(leaf) = frames.first() else {
            continue;
        };
        total = total.saturating_add(v);
        let f = funcs.entry(leaf.clone()).or_default();
        f.flat = f.flat.saturating_add(v);
        // A recursive function or call counts once per stack.
        let mut on_stack: HashSet<&str> = HashSet::new();
        let mut calls: HashSet<(&str, &str)> = HashSet::new();
        for (i, f) in frames.iter().enumerate() {
            if on_stack.insert(f.as_str()) {
                let e = funcs.entry(f.clone()).or_default();
                e.cum = e.cum.saturating_add(v);
            }
            if let Some(caller) = frames.get(i + 1)
                && calls.insert((caller.as_str(), f.as_str()))
            {
                let e = edges.entry((caller.clone(), f.clone())).or_insert(0);
                *e = e.saturating_add(v);
            }
        }
    }
    if total == 0 {
        return String::new();
    }
    let mut ranked: Vec<(&String, &Function)> = funcs.iter().collect();
    ranked.sort_by(|a, b| b.1.cum.cmp(&a.1.cum).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(max_nodes.max(1));
    let ids: HashMap<&str, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i + 1))
        .collect();
    let shown = ranked
        .iter()
        .fold(0i64, |a, (_, f)| a.saturating_add(f.flat));
    let pct = |v: i64| 100.0 * v as f64 / total as f64;
    let mut out =
        String::from("digraph \"unnamed\" {\nnode [style=filled fillcolor=\"#f8f8f8\"]\n");
    let _ = writeln!(
        out,
        "subgraph cluster_L {{ \"Type: {t}\" [shape=box fontsize=16 label=\"Type: {t}\\lShowing nodes accounting for {shown} {unit}, {:.2}% of {total} {unit} total\\l\"] }}",
        pct(shown),
        t = escape(sample_type),
    );
    for (i, (name, f)) in ranked.iter().enumerate() {
        let size = 8.0 + 42.0 * (f.flat as f64 / total as f64);
        let _ = writeln!(
            out,
            "N{} [label=\"{}\\n{} ({:.2}%)\\nof {} ({:.2}%)\" id=\"node{}\" fontsize={:.0} shape=box tooltip=\"{} ({} {unit})\" fillcolor=\"{}\"]",
            i + 1,
            escape(name),
            f.flat,
            pct(f.flat),
            f.cum,
            pct(f.cum),
            i + 1,
            size,
            escape(name),
            f.cum,
            fill(pct(f.cum)),
        );
    }
    let mut kept: Vec<(&(String, String), &i64)> = edges
        .iter()
        .filter(|((a, b), _)| ids.contains_key(a.as_str()) && ids.contains_key(b.as_str()))
        .collect();
    kept.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    for ((caller, callee), v) in kept {
        let _ = writeln!(
            out,
            "N{} -> N{} [label=\" {v}\" weight={} penwidth={:.1} tooltip=\"{} -> {} ({v} {unit})\"]",
            ids[caller.as_str()],
            ids[callee.as_str()],
            (pct(*v).ceil() as i64).max(1),
            1.0 + 4.0 * pct(*v) / 100.0,
            escape(caller),
            escape(callee),
        );
    }
    out.push_str("}\n");
    out
}

/// A node's fill: warmer for a larger share of the total.
fn fill(pct: f64) -> &'static str {
    match pct {
        p if p >= 50.0 => "#edd5d5",
        p if p >= 20.0 => "#eddcd5",
        p if p >= 5.0 => "#ede5d5",
        _ => "#edeae6",
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
