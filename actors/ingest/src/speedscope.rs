//! speedscope JSON (sampled and evented profiles), as Pyroscope ingests it.

use serde::Deserialize;

use super::binary_tree::Stacks;
use super::error::IngestError;

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
    frames: Vec<Frame>,
}

#[derive(Deserialize)]
struct Frame {
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

/// Parses a speedscope file into its profiles.
pub fn parse_speedscope(data: &[u8]) -> Result<Vec<SpeedscopeProfile>, IngestError> {
    let file: File = serde_json::from_slice(data)
        .map_err(|e| IngestError::malformed(format!("speedscope: invalid JSON: {e}")))?;
    if file.schema != SCHEMA {
        return Err(IngestError::malformed(format!(
            "speedscope: $schema must be {SCHEMA}"
        )));
    }
    let frames = &file.shared.frames;
    let frame = |i: usize| -> Result<String, IngestError> {
        frames
            .get(i)
            .map(|f| f.name.clone())
            .ok_or_else(|| IngestError::malformed(format!("speedscope: unknown frame {i}")))
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
                let mut stacks = Vec::with_capacity(samples.len());
                for (s, w) in samples.iter().zip(&weights) {
                    let v = ticks(*w, mult);
                    if v > 0 && !s.is_empty() {
                        stacks.push((s.iter().map(|&i| frame(i)).collect::<Result<_, _>>()?, v));
                    }
                }
                out.push(SpeedscopeProfile {
                    name,
                    unit,
                    stacks,
                    rate,
                });
            }
            Profile::Evented { name, unit, events } => {
                let (mult, rate) = scale(&unit)?;
                let mut open: Vec<usize> = Vec::new();
                let mut stacks = Vec::new();
                let mut last = f64::NEG_INFINITY;
                for e in &events {
                    if e.at < last {
                        return Err(IngestError::malformed(
                            "speedscope: events are not ordered by time",
                        ));
                    }
                    if !open.is_empty() {
                        let v = ticks(e.at - last, mult);
                        if v > 0 {
                            stacks.push((
                                open.iter().map(|&i| frame(i)).collect::<Result<_, _>>()?,
                                v,
                            ));
                        }
                    }
                    last = e.at;
                    match e.kind.as_str() {
                        "O" => open.push(e.frame),
                        "C" => {
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
        let p = parse_speedscope(json.as_bytes()).unwrap();
        assert_eq!(p[0].stacks.iter().map(|s| s.1).sum::<i64>(), 31);
        assert_eq!(p[0].rate, 100);
        let e: Vec<(Vec<String>, i64)> = p[1].stacks.clone();
        assert_eq!(
            e,
            vec![
                (vec!["main".to_string()], 200),
                (vec!["main".to_string(), "work".to_string()], 300),
                (vec!["main".to_string()], 500),
            ]
        );
        assert!(parse_speedscope(b"{}").is_err());
        let bad = json.replace(r#""type":"C","frame":1"#, r#""type":"C","frame":0"#);
        assert!(parse_speedscope(bad.as_bytes()).is_err());
    }
}
