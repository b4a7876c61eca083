//! Text formats (`folded`, `lines`) and their conversion to a pprof.

use std::collections::HashMap;

use ignis_storage::proto::google::v1 as pprof;

use super::error::IngestError;

/// The profile kind implied by a text upload's name suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextKind {
    /// Series `__name__`.
    pub metric: &'static str,
    /// Sample type before sampleRate scaling.
    pub sample_type: String,
    /// Sample unit before scaling.
    pub sample_unit: &'static str,
    /// For cpu/wall kinds: the sample type once values are scaled to nanoseconds.
    pub scaled_type: Option<&'static str>,
}

/// Maps a name suffix (`cpu`, `inuse_space`, …) to its kind, or `None` if unknown.
pub fn text_kind(suffix: &str) -> Option<TextKind> {
    let k = |metric, sample_type: &str, sample_unit, scaled_type| TextKind {
        metric,
        sample_type: sample_type.to_string(),
        sample_unit,
        scaled_type,
    };
    Some(match suffix {
        "cpu" | "itimer" => k("process_cpu", "samples", "count", Some("cpu")),
        "wall" | "seconds" | "nanoseconds" | "microseconds" | "milliseconds" => {
            k("wall", "samples", "count", Some("wall"))
        }
        "inuse_objects"
        | "alloc_objects"
        | "alloc_in_new_tlab_objects"
        | "alloc_outside_tlab_objects" => k("memory", suffix, "count", None),
        "inuse_space" | "alloc_space" | "alloc_in_new_tlab_bytes" | "alloc_outside_tlab_bytes" => {
            k("memory", suffix, "bytes", None)
        }
        "goroutines" => k("goroutine", "goroutines", "count", None),
        "mutex_count" => k("mutex", "contentions", "count", None),
        "mutex_duration" => k("mutex", "delay", "nanoseconds", None),
        "block_count" | "lock_count" => k("block", "contentions", "count", None),
        "block_duration" | "lock_duration" => k("block", "delay", "nanoseconds", None),
        "live" => k("memory", "live", "count", None),
        "exceptions" => k("exceptions", "samples", "count", None),
        "bytes" => k("memory", "samples", "bytes", None),
        _ => return None,
    })
}

/// Parses `folded` text: `frame;frame;… count` per line, root first. The count is
/// after the last space; lines without a space are skipped.
pub fn parse_folded(text: &str) -> Result<Vec<(Vec<&str>, i64)>, IngestError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let count: i64 = count.trim().parse().map_err(|_| {
            IngestError::malformed(format!(
                "folded line {}: sample count {count:?} is not an integer",
                n + 1
            ))
        })?;
        // An empty stack (py-spy writes ` 1` for a sample without frames) still
        // counts towards the total, at the root.
        let frames = if stack.is_empty() {
            Vec::new()
        } else {
            stack.split(';').collect()
        };
        out.push((frames, count));
    }
    Ok(out)
}

/// Parses `lines` text: one root-first stack per line, each counting 1.
pub fn parse_lines(text: &str) -> Vec<(Vec<&str>, i64)> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .map(|l| (l.split(';').collect(), 1))
        .collect()
}

/// Builds a pprof from root-first stacks: one synthetic mapping, one
/// function and location per distinct frame name. With a non-zero
/// `sample_rate`, cpu/wall counts become nanoseconds (`count × 1e9/rate`).
pub fn text_to_pprof<S: AsRef<str>>(
    stacks: &[(Vec<S>, i64)],
    kind: &TextKind,
    sample_rate: u32,
    time_ns: i64,
) -> pprof::Profile {
    let mut strings: Vec<String> = vec![String::new()];
    let mut string_ids: HashMap<String, i64> = HashMap::new();
    let mut intern = |s: &str, strings: &mut Vec<String>| -> i64 {
        if let Some(&id) = string_ids.get(s) {
            return id;
        }
        let id = strings.len() as i64;
        strings.push(s.to_string());
        string_ids.insert(s.to_string(), id);
        id
    };
    let (sample_type, unit, period_type, period) = match (kind.scaled_type, sample_rate) {
        (Some(scaled), rate) if rate > 0 => (
            scaled.to_string(),
            "nanoseconds",
            Some(("cpu", "nanoseconds")),
            1_000_000_000 / i64::from(rate),
        ),
        _ => (kind.sample_type.clone(), kind.sample_unit, None, 0),
    };
    let st = pprof::ValueType {
        r#type: intern(&sample_type, &mut strings),
        unit: intern(unit, &mut strings),
    };
    let period_type = period_type.map(|(t, u)| pprof::ValueType {
        r#type: intern(t, &mut strings),
        unit: intern(u, &mut strings),
    });
    let mut locations: HashMap<&str, u64> = HashMap::new();
    let mut function = Vec::new();
    let mut location = Vec::new();
    let mut sample: Vec<pprof::Sample> = Vec::new();
    // Equal stacks become one sample (their values added), so the samples
    // limit counts distinct stacks, not lines.
    let mut sample_of: HashMap<Vec<u64>, usize> = HashMap::new();
    for (frames, count) in stacks {
        let mut ids = Vec::with_capacity(frames.len());
        for frame in frames.iter().rev() {
            let frame = frame.as_ref();
            let id = match locations.get(frame) {
                Some(&id) => id,
                None => {
                    let id = location.len() as u64 + 1;
                    let name = intern(frame, &mut strings);
                    function.push(pprof::Function {
                        id,
                        name,
                        system_name: name,
                        ..Default::default()
                    });
                    location.push(pprof::Location {
                        id,
                        mapping_id: 1,
                        line: vec![pprof::Line {
                            function_id: id,
                            line: 0,
                        }],
                        ..Default::default()
                    });
                    locations.insert(frame, id);
                    id
                }
            };
            ids.push(id);
        }
        let value = if period > 0 {
            count.saturating_mul(period)
        } else {
            *count
        };
        match sample_of.get(&ids) {
            Some(&i) => sample[i].value[0] = sample[i].value[0].saturating_add(value),
            None => {
                sample_of.insert(ids.clone(), sample.len());
                sample.push(pprof::Sample {
                    location_id: ids,
                    value: vec![value],
                    label: vec![],
                });
            }
        }
    }
    pprof::Profile {
        sample_type: vec![st],
        sample,
        mapping: vec![pprof::Mapping {
            id: 1,
            has_functions: true,
            ..Default::default()
        }],
        location,
        function,
        string_table: strings,
        time_nanos: time_ns,
        period_type,
        period,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_and_scaling() {
        let stacks = parse_folded("a;b 3\nno-count-line\na;c d 2\n").unwrap();
        assert_eq!(stacks.len(), 2);
        assert_eq!(stacks[1].0, vec!["a", "c d"]);
        let kind = text_kind("cpu").unwrap();
        let p = text_to_pprof(&stacks, &kind, 100, 7);
        let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(total, 5 * 10_000_000);
        assert_eq!(p.string_table[p.sample_type[0].r#type as usize], "cpu");
        assert_eq!(p.function.len(), 3);
        // Leaf first.
        let leaf = p.sample[0].location_id[0] as usize;
        assert_eq!(p.string_table[p.function[leaf - 1].name as usize], "b");
        assert!(parse_folded("a;b x").is_err());
    }

    #[test]
    fn unscaled_kinds() {
        let p = text_to_pprof(
            &parse_lines("a;b\na;b\n"),
            &text_kind("alloc_space").unwrap(),
            100,
            0,
        );
        assert_eq!(p.sample.iter().map(|s| s.value[0]).sum::<i64>(), 2);
        assert_eq!(p.sample.len(), 1, "equal stacks are one sample");
        assert_eq!(p.period_type, None);
        assert!(text_kind("nope").is_none());
    }
}
