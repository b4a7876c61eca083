//! Differential tests: the in-place decoder against prost's, on the shared
//! fixtures, on hand-made edge cases and on thousands of mutated fixtures.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use super::{FlatProfile, Truncation};
use crate::proto::google::v1 as pprof;

fn fixtures() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = std::env::var("IGNIS_FIXTURES").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
        PathBuf::from,
    );
    let mut out = Vec::new();
    for name in ["cpu", "allocs", "block", "goroutine", "heap", "mutex"] {
        let path = dir.join(format!("go/{name}.pb.gz"));
        let gz = std::fs::read(&path).expect("the shared fixtures are beside the repository");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut plain)
            .expect("fixture is gzip");
        out.push((path, plain));
    }
    out
}

/// Both decoders accept `bytes` with the same result, or both refuse it.
fn agree(bytes: &[u8]) -> bool {
    let ours = FlatProfile::decode_plain(Bytes::copy_from_slice(bytes));
    let theirs = pprof::Profile::decode(bytes);
    match (ours, theirs) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.to_proto(), b, "decoders differ on {bytes:02x?}");
            true
        }
        (Err(_), Err(_)) => false,
        (a, b) => panic!(
            "one decoder accepts, the other refuses: ours {:?}, prost {:?}, bytes {bytes:02x?}",
            a.err(),
            b.err()
        ),
    }
}

#[test]
fn every_fixture_decodes_as_prost_does() {
    for (path, plain) in fixtures() {
        assert!(agree(&plain), "{} decodes", path.display());
        let p = FlatProfile::decode_plain(Bytes::from(plain.clone())).expect("decodes");
        let q = pprof::Profile::decode(plain.as_slice()).expect("decodes");
        assert_eq!(p.sample_count(), q.sample.len());
        assert_eq!(p.location_count(), q.location.len());
        for (a, b) in p.samples().zip(&q.sample) {
            assert_eq!(a.location_ids, b.location_id.as_slice());
            assert_eq!(a.values, b.value.as_slice());
        }
    }
}

/// A small xorshift generator: the mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_fixtures_are_accepted_or_refused_alike() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    for (_, plain) in fixtures() {
        // Keep the inputs small enough that thousands of cases run fast.
        let base = &plain[..plain.len().min(4096)];
        for _ in 0..1500 {
            let mut b = base.to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(b.len());
                match rng.below(5) {
                    0 => b[at] ^= 1 << rng.below(8),
                    1 => b[at] = rng.next() as u8,
                    2 => b.truncate(at),
                    3 => b.insert(at, rng.next() as u8),
                    _ => {
                        let len = rng.below(16).min(b.len() - at);
                        b.drain(at..at + len);
                    }
                }
                if b.is_empty() {
                    break;
                }
            }
            if agree(&b) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    // The mutations exercise both outcomes.
    assert!(accepted > 500 && refused > 500, "{accepted} / {refused}");
}

/// A key, as protobuf writes it.
fn key(tag: u32, wire_type: u8) -> Vec<u8> {
    varint(u64::from(tag) << 3 | u64::from(wire_type))
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn delimited(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = key(tag, 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

#[test]
fn edge_cases_of_the_wire_format_match_prost() {
    let cat = |parts: &[Vec<u8>]| parts.concat();
    // A sample whose fields are interleaved, unpacked and packed, twice.
    let sample = cat(&[
        key(1, 0),
        varint(7),
        key(2, 0),
        varint(5),
        delimited(1, &cat(&[varint(8), varint(9)])),
        delimited(3, &cat(&[key(1, 0), varint(1), key(2, 0), varint(2)])),
        key(2, 0),
        varint(u64::MAX),
    ]);
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        delimited(2, &sample),
        cat(&[delimited(2, &sample), delimited(2, &sample)]),
        // period_type twice merges field by field; scalars: the last wins.
        cat(&[
            delimited(11, &cat(&[key(1, 0), varint(3)])),
            delimited(11, &cat(&[key(2, 0), varint(4)])),
            key(9, 0),
            varint(1),
            key(9, 0),
            varint(2),
        ]),
        // Unknown fields of every wire type, a group with a nested group.
        cat(&[
            key(99, 0),
            varint(300),
            key(98, 1),
            vec![0; 8],
            key(97, 5),
            vec![0; 4],
            delimited(96, b"xyz"),
            key(95, 3),
            key(94, 3),
            key(94, 4),
            key(95, 4),
            delimited(6, b""),
        ]),
        // Refused: a mismatched end group, a bare end group, tag 0, wire type 6.
        cat(&[key(95, 3), key(94, 4)]),
        key(95, 4),
        key(0, 0),
        vec![0x0e],
        // Refused: a string that is not UTF-8, a scalar as a message.
        delimited(6, &[0xff, 0xfe]),
        cat(&[key(2, 0), varint(1)]),
        // Refused: an 11-byte varint and a 10-byte one that overflows.
        cat(&[key(9, 0), vec![0x80; 10], vec![0]]),
        cat(&[key(9, 0), vec![0xff; 9], vec![0x02]]),
        // Accepted: the largest 10-byte varint.
        cat(&[key(9, 0), vec![0xff; 9], vec![0x01]]),
        // Refused: packed values running past their length.
        delimited(2, &cat(&[key(1, 2), varint(2), vec![0x80, 0x80]])),
        // A location with lines, a function, a mapping.
        cat(&[
            delimited(
                4,
                &cat(&[
                    key(1, 0),
                    varint(1),
                    delimited(4, &cat(&[key(1, 0), varint(2), key(2, 0), varint(10)])),
                    key(5, 0),
                    varint(1),
                ]),
            ),
            delimited(5, &cat(&[key(1, 0), varint(2), key(2, 0), varint(1)])),
            delimited(3, &cat(&[key(1, 0), varint(1), key(10, 0), varint(1)])),
        ]),
    ];
    let outcomes: Vec<bool> = cases.iter().map(|c| agree(c)).collect();
    assert_eq!(
        outcomes,
        [
            true, true, true, true, true, false, false, false, false, false, false, false, false,
            true, false, true
        ]
    );
    // Groups nested past prost's recursion limit are refused by both.
    let mut deep = Vec::new();
    for _ in 0..101 {
        deep.extend(key(95, 3));
    }
    for _ in 0..101 {
        deep.extend(key(95, 4));
    }
    assert!(!agree(&deep));
    let mut shallow = Vec::new();
    for _ in 0..99 {
        shallow.extend(key(95, 3));
    }
    for _ in 0..99 {
        shallow.extend(key(95, 4));
    }
    assert!(agree(&shallow));
}

#[test]
fn truncation_keeps_the_root_side_and_the_tail_of_symbols() {
    let profile = pprof::Profile {
        sample_type: vec![pprof::ValueType { r#type: 1, unit: 1 }],
        sample: vec![pprof::Sample {
            location_id: vec![1, 2, 3, 4],
            value: vec![5],
            label: vec![],
        }],
        string_table: vec!["".into(), "héllo_world".into(), "ok".into()],
        ..Default::default()
    };
    let mut p = FlatProfile::from_proto(&profile).expect("decodes");
    p.truncate(Truncation {
        stack_depth: 2,
        symbol_bytes: 10,
    });
    let q = p.to_proto();
    assert_eq!(q.sample[0].location_id, vec![3, 4]);
    // 12 bytes: the last 10 would split 'é', so 9 are kept.
    assert_eq!(q.string_table, vec!["", "llo_world", "ok"]);
    assert_eq!(p.wire(), &Bytes::from(profile.encode_to_vec()));
}

#[test]
fn truncation_counts_a_locations_inlined_lines_as_frames() {
    let line = |f: u64| pprof::Line {
        function_id: f,
        line: 1,
    };
    let location = |id: u64, lines: usize| pprof::Location {
        id,
        line: (0..lines).map(|_| line(1)).collect(),
        ..Default::default()
    };
    let profile = pprof::Profile {
        sample_type: vec![pprof::ValueType { r#type: 1, unit: 1 }],
        sample: vec![
            // Leaf first: 3 + 3 + 1 + 3 frames.
            pprof::Sample {
                location_id: vec![1, 1, 2, 1],
                value: vec![5],
                label: vec![],
            },
            // Two frames: kept whole.
            pprof::Sample {
                location_id: vec![2, 2],
                value: vec![1],
                label: vec![],
            },
        ],
        location: vec![location(1, 3), location(2, 1)],
        function: vec![pprof::Function {
            id: 1,
            name: 1,
            ..Default::default()
        }],
        string_table: vec!["".into(), "f".into()],
        ..Default::default()
    };
    let mut p = FlatProfile::from_proto(&profile).expect("decodes");
    p.truncate(Truncation {
        stack_depth: 5,
        symbol_bytes: 0,
    });
    let q = p.to_proto();
    // Root side: location 1 (3 frames), then 2 (1): 4; the next would be 7.
    assert_eq!(q.sample[0].location_id, vec![2, 1]);
    assert_eq!(q.sample[1].location_id, vec![2, 2]);
}
