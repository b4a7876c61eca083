//! speedscope JSON (sampled and evented profiles), as Pyroscope ingests it.

use serde::Deserialize;

use std::collections::HashMap;

use super::error::IngestError;
use super::limits::Limits;
use super::stacks::{Frame, StackBuilder, Stacks};

const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

#[derive(Deserialize)]
struct File {
    #[serde(rename = "$schema")]
    schema: String,
    shared: Shared,
    profiles: Vec<Profile>,
}

#[derive(Deserialize)]
struct Shared {
    frames: Vec<Frame0>,
}

#[derive(Deserialize)]
struct Frame0 {
    name: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Profile {
    Sampled {
        name: String,
        unit: String,
        samples: Vec<Vec<usize>>,
        weights: Vec<f64>,
    },
    Evented {
        name: String,
        unit: String,
        events: Vec<Event>,
    },
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    frame: usize,
    at: f64,
}

/// One profile of a speedscope file, as integer ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedscopeProfile {
    /// The profile's name (becomes the `profile_name` label).
    pub name: String,
    /// Its unit (`seconds`, `milliseconds`, `microseconds`, `nanoseconds`, `none`, `bytes`).
    pub unit: String,
    /// Root-first stacks and their values in ticks.
    pub stacks: Stacks,
    /// Ticks per second for time units (0 for `bytes`): `ticks × 1e9 / rate` is nanoseconds.
    pub rate: u32,
}

/// Ticks per unit and the resulting rate. Time units are scaled by 100 as
/// Pyroscope does (sub-unit precision); nanoseconds are kept as they are.
fn scale(unit: &str) -> Result<(f64, u32), IngestError> {
    Ok(match unit {
        "seconds" => (100.0, 100),
        "milliseconds" => (100.0, 100_000),
        "microseconds" => (100.0, 100_000_000),
        "nanoseconds" => (1.0, 1_000_000_000),
        "none" => (100.0, 10_000),
        "bytes" => (1.0, 0),
        other => {
            return Err(IngestError::malformed(format!(
                "speedscope: unknown unit {other:?}"
            )));
        }
    })
}

fn ticks(weight: f64, mult: f64) -> i64 {
    // Rounded, not truncated: 0.29 s × 100 must be 29 ticks, not 28.
    (weight * mult).round() as i64
}

/// Parses a speedscope file into its profiles, each bounded by `limits` as
/// [`StackBuilder`] says. An evented profile's time is added up per call
/// path, so a path entered many times is one stack.
pub fn parse_speedscope(
    data: &[u8],
    limits: &Limits,
) -> Result<Vec<SpeedscopeProfile>, IngestError> {
    let file: File = serde_json::from_slice(data)
        .map_err(|e| IngestError::malformed(format!("speedscope: invalid JSON: {e}")))?;
    if file.schema != SCHEMA {
        return Err(IngestError::malformed(format!(
            "speedscope: $schema must be {SCHEMA}"
        )));
    }
    let check = |i: usize| -> Result<usize, IngestError> {
        if i < file.shared.frames.len() {
            Ok(i)
        } else {
            Err(IngestError::malformed(format!(
                "speedscope: unknown frame {i}"
            )))
        }
    };
    let mut out = Vec::new();
    for p in file.profiles {
        match p {
            Profile::Sampled {
                name,
                unit,
                samples,
                weights,
            } => {
                if samples.len() != weights.len() {
                    return Err(IngestError::malformed(
                        "speedscope: samples and weights differ in length",
                    ));
                }
                let (mult, rate) = scale(&unit)?;
                let mut out_stacks = StackBuilder::new(limits);
                let names = shared_names(&file.shared.frames, &mut out_stacks)?;
                let mut stack: Vec<Frame> = Vec::new();
                for (s, w) in samples.iter().zip(&weights) {
                    let v = ticks(*w, mult);
                    if v > 0 && !s.is_empty() {
                        stack.clear();
                        for &i in s {
                            stack.push(names[check(i)?].clone());
                        }
                        out_stacks.push(&stack, v)?;
                    }
                }
                let stacks = out_stacks.finish();
                out.push(SpeedscopeProfile {
                    name,
                    unit,
                    stacks,
                    rate,
                });
            }
            Profile::Evented { name, unit, events } => {
                let (mult, rate) = scale(&unit)?;
                let mut out_stacks = StackBuilder::new(limits);
                let names = shared_names(&file.shared.frames, &mut out_stacks)?;
                let mut tree = CallTree::new(out_stacks.max_depth());
                let mut open: Vec<usize> = Vec::new();
                let mut last = f64::NEG_INFINITY;
                for e in &events {
                    if e.at < last {
                        return Err(IngestError::malformed(
                            "speedscope: events are not ordered by time",
                        ));
                    }
                    if let Some(&node) = tree.path.last() {
                        let v = ticks(e.at - last, mult);
                        if v > 0 {
                            tree.add(node, v);
                        }
                    }
                    last = e.at;
                    match e.kind.as_str() {
                        "O" => {
                            open.push(check(e.frame)?);
                            tree.enter(e.frame);
                        }
                        "C" => {
                            tree.path.pop();
                            if open.pop() != Some(e.frame) {
                                return Err(IngestError::malformed(format!(
                                    "speedscope: close of frame {} does not match the open frame",
                                    e.frame
                                )));
                            }
                        }
                        other => {
                            return Err(IngestError::malformed(format!(
                                "speedscope: unknown event type {other:?}"
                            )));
                        }
                    }
                }
                let stacks = tree.stacks(&names, out_stacks)?;
                out.push(SpeedscopeProfile {
                    name,
                    unit,
                    stacks,
                    rate,
                });
            }
        }
    }
    Ok(out)
}

/// The file's frame names as shared frames.
fn shared_names(frames: &[Frame0], b: &mut StackBuilder) -> Result<Vec<Frame>, IngestError> {
    frames.iter().map(|f| b.name(f.name.as_bytes())).collect()
}

/// An evented profile's call paths: node 0 is the root; every other node
/// is a frame entered from its parent, with the time spent in it. Paths are
/// cut at `max_depth` frames: time deeper down counts for the node at the
/// cut, so a path entered a million levels deep costs no more than one
/// `max_depth` deep.
struct CallTree {
    /// `(parent, frame, depth)` of each node.
    nodes: Vec<(usize, usize, usize)>,
    values: Vec<i64>,
    children: HashMap<(usize, usize), usize>,
    /// The open nodes, innermost last (levels past the cut repeat the node
    /// at the cut).
    path: Vec<usize>,
    max_depth: usize,
}

impl CallTree {
    fn new(max_depth: usize) -> Self {
        Self {
            nodes: vec![(0, 0, 0)],
            values: vec![0],
            children: HashMap::new(),
            path: Vec::new(),
            max_depth,
        }
    }

    fn enter(&mut self, frame: usize) {
        let parent = self.path.last().copied().unwrap_or(0);
        let depth = self.nodes[parent].2 + 1;
        if depth > self.max_depth {
            self.path.push(parent);
            return;
        }
        let next = self.nodes.len();
        let node = *self.children.entry((parent, frame)).or_insert(next);
        if node == next {
            self.nodes.push((parent, frame, depth));
            self.values.push(0);
        }
        self.path.push(node);
    }

    fn add(&mut self, node: usize, v: i64) {
        self.values[node] = self.values[node].saturating_add(v);
    }

    /// One stack per call path with time, in the order paths were entered.
    fn stacks(&self, names: &[Frame], mut out: StackBuilder) -> Result<Stacks, IngestError> {
        let mut stack: Vec<Frame> = Vec::new();
        for (node, &v) in self.values.iter().enumerate().skip(1) {
            if v <= 0 {
                continue;
            }
            stack.clear();
            let mut n = node;
            while n != 0 {
                let (parent, frame, _) = self.nodes[n];
                stack.push(names[frame].clone());
                n = parent;
            }
            stack.reverse();
            out.push(&stack, v)?;
        }
        Ok(out.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_and_evented() {
        let json = r#"{"$schema":"https://www.speedscope.app/file-format-schema.json",
          "shared":{"frames":[{"name":"main"},{"name":"work"}]},
          "profiles":[
            {"type":"sampled","name":"t1","unit":"seconds","startValue":0,"endValue":1,
             "samples":[[0,1],[0],[0,1]],"weights":[0.01,0.29,0.01]},
            {"type":"evented","name":"t2","unit":"milliseconds","startValue":0,"endValue":10,
             "events":[{"type":"O","frame":0,"at":0},{"type":"O","frame":1,"at":2},
                       {"type":"C","frame":1,"at":5},{"type":"C","frame":0,"at":10}]}]}"#;
        let p = parse_speedscope(json.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(p[0].stacks.iter().map(|s| s.1).sum::<i64>(), 31);
        assert_eq!(p[0].rate, 100);
        // Evented time adds up per call path: main 2 + 5 ms, main;work 3 ms.
        let e: Vec<(Vec<String>, i64)> = p[1]
            .stacks
            .iter()
            .map(|(f, v)| (f.iter().map(|f| f.to_string()).collect(), *v))
            .collect();
        assert_eq!(
            e,
            vec![
                (vec!["main".to_string()], 700),
                (vec!["main".to_string(), "work".to_string()], 300),
            ]
        );
        assert!(parse_speedscope(b"{}", &Limits::default()).is_err());
        let bad = json.replace(r#""type":"C","frame":1"#, r#""type":"C","frame":0"#);
        assert!(parse_speedscope(bad.as_bytes(), &Limits::default()).is_err());
    }

    #[test]
    fn a_deep_evented_path_costs_no_more_than_the_depth_limit() {
        // 100 000 nested frames, a millisecond in each: 5 billion frames if
        // every tick's stack were spelled out.
        let n = 100_000;
        let mut events = Vec::with_capacity(2 * n);
        for i in 0..n {
            events.push(format!(r#"{{"type":"O","frame":0,"at":{i}}}"#));
        }
        for i in 0..n {
            events.push(format!(r#"{{"type":"C","frame":0,"at":{}}}"#, n + i));
        }
        let json = format!(
            r#"{{"$schema":"{SCHEMA}","shared":{{"frames":[{{"name":"f"}}]}},
              "profiles":[{{"type":"evented","name":"deep","unit":"milliseconds",
              "startValue":0,"endValue":0,"events":[{}]}}]}}"#,
            events.join(",")
        );
        let p = parse_speedscope(json.as_bytes(), &Limits::default()).expect("accepted");
        let stacks = &p[0].stacks;
        // 2n - 1 ms of open frames, scaled by 100 ticks per ms.
        assert_eq!(
            stacks.iter().map(|s| s.1).sum::<i64>(),
            (2 * n as i64 - 1) * 100
        );
        assert!(stacks.len() <= 1_000 && stacks.iter().all(|s| s.0.len() <= 1_000));
    }

    #[test]
    fn sampled_stacks_share_their_frames_and_are_bounded() {
        // A 60 KB frame name in 2 000 samples of 1 000 frames: shared, not
        // copied 2 million times (120 GB), and within the frame budget
        // (2 million frames is under the 4 MiB default).
        let name = "x".repeat(60_000);
        let sample = format!("[{}]", vec!["0"; 1_000].join(","));
        let json = format!(
            r#"{{"$schema":"{SCHEMA}","shared":{{"frames":[{{"name":"{name}"}}]}},
              "profiles":[{{"type":"sampled","name":"wide","unit":"none","startValue":0,"endValue":0,
              "samples":[{}],"weights":[{}]}}]}}"#,
            vec![sample.as_str(); 2_000].join(","),
            vec!["1"; 2_000].join(",")
        );
        let p = parse_speedscope(json.as_bytes(), &Limits::default()).expect("accepted");
        let first = &p[0].stacks[0].0[0];
        assert!(
            p[0].stacks
                .iter()
                .all(|(f, _)| f.iter().all(|x| std::rc::Rc::ptr_eq(x, first)))
        );
        // Four times as many samples: over the budget, refused.
        let json = json
            .replacen(
                &vec![sample.as_str(); 2_000].join(","),
                &vec![sample.as_str(); 8_000].join(","),
                1,
            )
            .replacen(&vec!["1"; 2_000].join(","), &vec!["1"; 8_000].join(","), 1);
        let err = parse_speedscope(json.as_bytes(), &Limits::default()).expect_err("refused");
        assert!(err.message.contains("stack frames"), "{}", err.message);
    }
}
