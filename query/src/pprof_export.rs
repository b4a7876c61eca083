//! Merged stacks as a pprof that `go tool pprof` reads.

use std::collections::HashMap;

use ignis_storage::ProfileType;
use ignis_storage::proto::google::v1 as pprof;

use crate::source::MergedStacks;

/// What a location is, by content: its lines (function name, system name,
/// file, start line, line), address and mapping (file, build id, range).
type LocationKey<'a> = (
    Vec<(&'a str, &'a str, &'a str, i64, i64)>,
    u64,
    Option<(&'a str, &'a str, u64, u64, u64, u8)>,
);

/// The stacks of `merged` with their values, ordered by what their frames
/// are rather than by their ids: the same merge gives the same pprof
/// however its symbols were numbered (whatever the order its parts were
/// merged in, or how a query was split).
fn canonical_order(merged: &MergedStacks) -> Vec<(u32, i64)> {
    let sym = &merged.symbols;
    let mut used: Vec<u32> = merged
        .values
        .keys()
        .filter_map(|&s| sym.stacks.get(s))
        .flat_map(|locs| locs.iter().copied())
        .collect();
    used.sort_unstable();
    used.dedup();
    let key = |loc: u32| -> Option<LocationKey<'_>> {
        let l = sym.locations.get(loc)?;
        let lines = l
            .lines
            .iter()
            .map(|ln| match sym.functions.get(ln.function) {
                Some(f) => (
                    sym.string(f.name),
                    sym.string(f.system_name),
                    sym.string(f.filename),
                    f.start_line,
                    ln.line,
                ),
                None => ("", "", "", 0, ln.line),
            })
            .collect();
        let mapping = l
            .mapping
            .checked_sub(1)
            .and_then(|m| sym.mappings.get(m))
            .map(|m| {
                (
                    sym.string(m.filename),
                    sym.string(m.build_id),
                    m.memory_start,
                    m.memory_limit,
                    m.file_offset,
                    m.flags,
                )
            });
        Some((lines, l.address, mapping))
    };
    let mut keyed: Vec<(Option<LocationKey<'_>>, u32)> =
        used.iter().map(|&loc| (key(loc), loc)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // Equal locations (the same frame under two ids) share a rank.
    let mut rank: HashMap<u32, u32> = HashMap::with_capacity(keyed.len());
    let mut r = 0u32;
    for (i, (k, loc)) in keyed.iter().enumerate() {
        if i > 0 && keyed[i - 1].0 != *k {
            r += 1;
        }
        rank.insert(*loc, r);
    }
    let mut stacks: Vec<(Vec<u32>, i64, u32)> = merged
        .values
        .iter()
        .map(|(&s, &v)| {
            let frames = sym
                .stacks
                .get(s)
                .map(|locs| {
                    locs.iter()
                        .map(|l| rank.get(l).copied().unwrap_or(0))
                        .collect()
                })
                .unwrap_or_default();
            (frames, v, s)
        })
        .collect();
    stacks.sort_unstable();
    stacks.into_iter().map(|(_, v, s)| (s, v)).collect()
}

/// Builds a one-sample-type pprof from merged stacks (reference §5.4: the
/// requested type, `time_nanos` = query end, period guessed from the name).
pub fn to_pprof(merged: &MergedStacks, pt: &ProfileType, end_ns: i64) -> pprof::Profile {
    let sym = &merged.symbols;
    let mut strings: Vec<String> = vec![String::new()];
    let mut string_ids: HashMap<u32, i64> = HashMap::new();
    let mut extra: HashMap<String, i64> = HashMap::new();
    let mut add = |s: &str, strings: &mut Vec<String>| -> i64 {
        if let Some(&i) = extra.get(s) {
            return i;
        }
        strings.push(s.to_string());
        let i = strings.len() as i64 - 1;
        extra.insert(s.to_string(), i);
        i
    };
    let sample_type = pprof::ValueType {
        r#type: add(&pt.sample_type, &mut strings),
        unit: add(&pt.sample_unit, &mut strings),
    };
    let period_type = pprof::ValueType {
        r#type: add(&pt.period_type, &mut strings),
        unit: add(&pt.period_unit, &mut strings),
    };
    let mut string = |id: u32, strings: &mut Vec<String>| -> i64 {
        if id == 0 {
            return 0;
        }
        *string_ids.entry(id).or_insert_with(|| {
            strings.push(sym.string(id).to_string());
            strings.len() as i64 - 1
        })
    };

    let mut functions = Vec::new();
    let mut function_ids: HashMap<u32, u64> = HashMap::new();
    let mut mappings = Vec::new();
    let mut mapping_ids: HashMap<u32, u64> = HashMap::new();
    let mut locations = Vec::new();
    let mut location_ids: HashMap<u32, u64> = HashMap::new();
    let mut samples = Vec::with_capacity(merged.values.len());

    for (stack, value) in canonical_order(merged) {
        if value == 0 {
            continue;
        }
        let Some(locs) = sym.stacks.get(stack) else {
            continue;
        };
        let mut location_id = Vec::with_capacity(locs.len());
        for &loc in locs.iter() {
            if let Some(&id) = location_ids.get(&loc) {
                location_id.push(id);
                continue;
            }
            let Some(l) = sym.locations.get(loc) else {
                continue;
            };
            let mapping_id = if l.mapping == 0 {
                0
            } else if let Some(&id) = mapping_ids.get(&l.mapping) {
                id
            } else if let Some(m) = sym.mappings.get(l.mapping - 1) {
                let id = mappings.len() as u64 + 1;
                mappings.push(pprof::Mapping {
                    id,
                    memory_start: m.memory_start,
                    memory_limit: m.memory_limit,
                    file_offset: m.file_offset,
                    filename: string(m.filename, &mut strings),
                    build_id: string(m.build_id, &mut strings),
                    has_functions: m.flags & 1 != 0,
                    has_filenames: m.flags & 2 != 0,
                    has_line_numbers: m.flags & 4 != 0,
                    has_inline_frames: m.flags & 8 != 0,
                });
                mapping_ids.insert(l.mapping, id);
                id
            } else {
                0
            };
            let mut line = Vec::with_capacity(l.lines.len());
            for ln in l.lines.iter() {
                let function_id = match function_ids.get(&ln.function) {
                    Some(&id) => id,
                    None => {
                        let Some(f) = sym.functions.get(ln.function) else {
                            continue;
                        };
                        let id = functions.len() as u64 + 1;
                        functions.push(pprof::Function {
                            id,
                            name: string(f.name, &mut strings),
                            system_name: string(f.system_name, &mut strings),
                            filename: string(f.filename, &mut strings),
                            start_line: f.start_line,
                        });
                        function_ids.insert(ln.function, id);
                        id
                    }
                };
                line.push(pprof::Line {
                    function_id,
                    line: ln.line,
                });
            }
            let id = locations.len() as u64 + 1;
            locations.push(pprof::Location {
                id,
                mapping_id,
                address: l.address,
                line,
                is_folded: false,
            });
            location_ids.insert(loc, id);
            location_id.push(id);
        }
        samples.push(pprof::Sample {
            location_id,
            value: vec![value],
            label: vec![],
        });
    }

    let period = match pt.name.as_str() {
        "process_cpu" => 1_000_000_000,
        "memory" => 524_288,
        _ => 1,
    };
    pprof::Profile {
        sample_type: vec![sample_type],
        sample: samples,
        mapping: mappings,
        location: locations,
        function: functions,
        string_table: strings,
        time_nanos: end_ns,
        period_type: Some(period_type),
        period,
        default_sample_type: sample_type.r#type,
        ..Default::default()
    }
}
