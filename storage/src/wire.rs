//! A head (or a slice of one) as bytes, for node-to-node query answers:
//! rkyv behind a versioned magic. The receiver rebuilds a [`Head`] with the
//! same symbol ids, so the engine runs the same code on remote data.

use rkyv::rancor;

use crate::head::{Head, ProfileRow, Series, SpanSample, merge_span_samples};
use crate::labels::Labels;
use crate::profile_id::ProfileId;
use crate::record::RecordError;
use crate::symbols::{Function, Line, Location, Mapping, SymbolTable};

/// Leading bytes of an encoded head.
/// 03: rows carry their total, so a slice may leave stacks out.
/// 04: rows carry their profile's whole id.
/// 05: span samples carry a trace id.
pub const HEAD_MAGIC: &[u8; 8] = b"IGNHED05";

/// A location: mapping, address, lines as (function, line).
type WireLocation = (u32, u64, Vec<(u32, i64)>);

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct WireHead {
    strings: Vec<String>,
    /// name, system_name, filename, start_line
    functions: Vec<(u32, u32, u32, i64)>,
    /// memory_start, memory_limit, file_offset, filename, build_id, flags
    mappings: Vec<(u64, u64, u64, u32, u32, u8)>,
    /// mapping, address, lines (function, line)
    locations: Vec<WireLocation>,
    stacks: Vec<Vec<u32>>,
    series: Vec<WireSeries>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct WireSeries {
    labels: Vec<(String, String)>,
    rows: Vec<WireRow>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct WireRow {
    timestamp_ns: i64,
    /// The profile id's key (low 64 bits).
    profile_id: u64,
    /// The profile id's high 64 bits.
    profile_id_hi: u64,
    /// Sum of the profile's values; rows sent without stacks keep only it.
    total: i64,
    stacks: Vec<u32>,
    values: Vec<i64>,
    /// (span id, stack, value, trace id); empty when the row has no span.
    spans: Vec<(u64, u32, i64, [u8; 16])>,
}

/// Encodes a whole head.
pub fn encode_head(head: &Head) -> Result<Vec<u8>, RecordError> {
    let sym = head.symbols();
    let wire = WireHead {
        strings: sym.strings.items().to_vec(),
        functions: sym
            .functions
            .items()
            .iter()
            .map(|f| (f.name, f.system_name, f.filename, f.start_line))
            .collect(),
        mappings: sym
            .mappings
            .items()
            .iter()
            .map(|m| {
                (
                    m.memory_start,
                    m.memory_limit,
                    m.file_offset,
                    m.filename,
                    m.build_id,
                    m.flags,
                )
            })
            .collect(),
        locations: sym
            .locations
            .items()
            .iter()
            .map(|l| {
                (
                    l.mapping,
                    l.address,
                    l.lines.iter().map(|x| (x.function, x.line)).collect(),
                )
            })
            .collect(),
        stacks: sym.stacks.items().iter().map(|s| s.to_vec()).collect(),
        series: head
            .series()
            .iter()
            .map(|s| WireSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                rows: s
                    .profiles
                    .iter()
                    .map(|r| WireRow {
                        timestamp_ns: r.timestamp_ns,
                        profile_id: r.profile_id.lo,
                        profile_id_hi: r.profile_id.hi,
                        total: r.total,
                        stacks: r.stacks.to_vec(),
                        values: r.values.to_vec(),
                        spans: r
                            .spans
                            .iter()
                            .flat_map(|s| s.iter())
                            .map(|s| (s.span_id, s.stack, s.value, s.trace_id))
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let body =
        rkyv::to_bytes::<rancor::Error>(&wire).map_err(|e| RecordError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEAD_MAGIC.len() + body.len());
    out.extend_from_slice(HEAD_MAGIC);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a head, checking every reference so bad bytes never panic later.
pub fn decode_head(bytes: &[u8]) -> Result<Head, RecordError> {
    let Some(body) = bytes.strip_prefix(HEAD_MAGIC.as_slice()) else {
        return Err(RecordError::Version(
            "not an encoded head of format IGNHED04".into(),
        ));
    };
    let mut buf = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    buf.extend_from_slice(body);
    let w = rkyv::from_bytes::<WireHead, rancor::Error>(&buf)
        .map_err(|e| RecordError::Corrupt(e.to_string()))?;
    let corrupt = |what: &str| RecordError::Corrupt(format!("{what} out of range"));
    let (ns, nf, nm, nl, nst) = (
        w.strings.len() as u32,
        w.functions.len() as u32,
        w.mappings.len() as u32,
        w.locations.len() as u32,
        w.stacks.len() as u32,
    );
    if ns == 0 {
        return Err(corrupt("string table is empty; string 0"));
    }
    let mut sym = SymbolTable::empty();
    for s in w.strings {
        sym.strings.intern(s);
    }
    for (name, system_name, filename, start_line) in w.functions {
        if name >= ns || system_name >= ns || filename >= ns {
            return Err(corrupt("function string"));
        }
        sym.functions.intern(Function {
            name,
            system_name,
            filename,
            start_line,
        });
    }
    for (memory_start, memory_limit, file_offset, filename, build_id, flags) in w.mappings {
        if filename >= ns || build_id >= ns {
            return Err(corrupt("mapping string"));
        }
        sym.mappings.intern(Mapping {
            memory_start,
            memory_limit,
            file_offset,
            filename,
            build_id,
            flags,
        });
    }
    for (mapping, address, lines) in w.locations {
        if mapping > nm || lines.iter().any(|&(f, _)| f >= nf) {
            return Err(corrupt("location mapping or function"));
        }
        sym.locations.intern(Location {
            mapping,
            address,
            lines: lines
                .into_iter()
                .map(|(function, line)| Line { function, line })
                .collect(),
        });
    }
    for s in w.stacks {
        if s.iter().any(|&l| l >= nl) {
            return Err(corrupt("stack location"));
        }
        sym.stacks.intern(s.into_boxed_slice());
    }
    // Interning dedups: a table with repeated entries would shift every id after it.
    if sym.strings.len() as u32 != ns
        || sym.functions.len() as u32 != nf
        || sym.mappings.len() as u32 != nm
        || sym.locations.len() as u32 != nl
        || sym.stacks.len() as u32 != nst
    {
        return Err(RecordError::Corrupt("symbol tables hold duplicates".into()));
    }
    let mut series = Vec::with_capacity(w.series.len());
    for s in w.series {
        let labels = Labels::from_pairs(s.labels);
        let mut profiles = Vec::with_capacity(s.rows.len());
        for r in s.rows {
            if r.stacks.len() != r.values.len() || r.stacks.iter().any(|&st| st >= nst) {
                return Err(corrupt("row stack"));
            }
            let spans: Vec<SpanSample> = r
                .spans
                .into_iter()
                .map(|(span_id, stack, value, trace_id)| SpanSample {
                    span_id,
                    stack,
                    value,
                    trace_id,
                })
                .collect();
            if spans.iter().any(|s| !s.is_attributed() || s.stack >= nst) {
                return Err(corrupt("span sample without span and trace, or its stack"));
            }
            if profiles
                .last()
                .is_some_and(|p: &ProfileRow| p.timestamp_ns > r.timestamp_ns)
            {
                return Err(RecordError::Corrupt("rows are not in time order".into()));
            }
            profiles.push(ProfileRow {
                timestamp_ns: r.timestamp_ns,
                profile_id: ProfileId {
                    hi: r.profile_id_hi,
                    lo: r.profile_id,
                },
                total: if r.values.is_empty() {
                    r.total
                } else {
                    r.values.iter().fold(0i64, |a, &v| a.saturating_add(v))
                },
                stacks: r.stacks.into_boxed_slice(),
                values: r.values.into_boxed_slice(),
                spans: merge_span_samples(spans),
            });
        }
        series.push(Series {
            fingerprint: labels.fingerprint(),
            labels,
            profiles,
        });
    }
    Ok(Head::from_parts(sym, series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{SeriesSplit, SplitProfile};
    use crate::proto::google::v1 as pprof;
    use crate::testing::one_frame_profile;

    #[test]
    fn round_trip_keeps_ids_and_refuses_damage() {
        let mut head = Head::new();
        let mut profile = one_frame_profile("main", 4, 9);
        profile.string_table.push("lib.so".into());
        profile.mapping = vec![pprof::Mapping {
            id: 1,
            filename: 2,
            ..Default::default()
        }];
        profile.location[0].mapping_id = 1;
        let mut with_span = profile.clone();
        with_span.string_table.extend(
            ["span_id", "0300000000000000", "trace_id", &"ab".repeat(16)].map(String::from),
        );
        for (key, str) in [(3, 4), (5, 6)] {
            with_span.sample[0].label.push(pprof::Label {
                key,
                str,
                ..Default::default()
            });
        }
        for (id, ts, profile) in [(5, 100, &profile), (6, 100, &with_span)] {
            head.insert(&SplitProfile {
                profile_id: ProfileId { hi: 77, lo: id },
                profile: crate::FlatProfile::from_proto(profile).unwrap(),
                timestamp_ns: ts,
                series: vec![SeriesSplit {
                    labels: Labels::from_pairs([("service_name", "s")]),
                    value_index: 0,
                    samples: vec![0],
                }],
            })
            .unwrap();
        }
        let bytes = encode_head(&head).unwrap();
        let back = decode_head(&bytes).unwrap();
        assert_eq!(back.stats(), head.stats());
        let rows = &back.series()[0].profiles;
        assert_eq!(
            rows.iter().map(|r| r.profile_id).collect::<Vec<_>>(),
            vec![ProfileId { hi: 77, lo: 5 }, ProfileId { hi: 77, lo: 6 }]
        );
        assert!(rows[0].spans.is_none());
        assert_eq!(
            rows[1].spans.as_deref(),
            head.series()[0].profiles[1].spans.as_deref()
        );
        assert_eq!(back.stats().span_samples, 1);
        let span = rows[1].spans.as_deref().unwrap()[0];
        assert_eq!((span.span_id, span.trace_id), (3, [0xab; 16]));
        let mut names = Vec::new();
        back.symbols().frame_names(rows[0].stacks[0], &mut names);
        assert_eq!(names, vec!["main".to_string()]);
        assert!(decode_head(&bytes[..bytes.len() - 3]).is_err());
        assert!(decode_head(b"IGNHED00xxxxxxxx").is_err());
    }
}
