//! Block files as a store-gateway reads them from the bucket: a valid block
//! (encoded once) with one file corrupted (bytes patched, truncated, or
//! replaced whole), or a corrupt `meta.json`, decoded. A damaged block must
//! give an error, never a panic or a huge allocation.
//!
//! Input: byte 0 picks the file (the last choice is `meta.json`) and the
//! mode (bit 7: replace whole with the rest of the input; else bytes 1..3
//! give a length to truncate to, then (offset u16, value) triples patch it).
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use ignis_storage::block::{BlockMeta, decode_block, encode_block, read_parquet};
use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::{Head, Labels, SeriesSplit, SplitProfile};
use libfuzzer_sys::fuzz_target;

struct Valid {
    meta: BlockMeta,
    meta_json: Vec<u8>,
    files: Vec<(String, Vec<u8>)>,
}

fn valid() -> &'static Valid {
    static V: OnceLock<Valid> = OnceLock::new();
    V.get_or_init(|| {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let p = pprof::Profile {
            string_table: s(&["", "main", "work", "app.go", "span_id", "00000000000000a1"]),
            function: vec![
                pprof::Function { id: 1, name: 1, filename: 3, ..Default::default() },
                pprof::Function { id: 2, name: 2, filename: 3, ..Default::default() },
            ],
            location: vec![
                pprof::Location {
                    id: 1,
                    line: vec![pprof::Line { function_id: 1, line: 3 }],
                    ..Default::default()
                },
                pprof::Location {
                    id: 2,
                    line: vec![pprof::Line { function_id: 2, line: 9 }],
                    ..Default::default()
                },
            ],
            sample: vec![
                pprof::Sample { location_id: vec![2, 1], value: vec![3, 30], label: vec![] },
                pprof::Sample {
                    location_id: vec![1],
                    value: vec![1, 10],
                    label: vec![pprof::Label { key: 4, str: 5, ..Default::default() }],
                },
            ],
            ..Default::default()
        };
        let mut head = Head::new();
        for (ts, svc) in [(1_000, "a"), (2_000, "a"), (1_500, "b")] {
            let labels =
                |t: &str| Labels::from_pairs([("service_name", svc), ("__profile_type__", t)]);
            head.insert(&SplitProfile {
                profile_id: ignis_storage::ProfileId::generate(),
                profile: ignis_storage::FlatProfile::from_proto(&p).expect("encodes"),
                timestamp_ns: ts,
                series: vec![
                    SeriesSplit { labels: labels("x:samples:count::"), value_index: 0, samples: vec![0, 1] },
                    SeriesSplit { labels: labels("x:cpu:nanoseconds::"), value_index: 1, samples: vec![0, 1] },
                ],
            })
            .expect("a valid head");
        }
        let block = encode_block("fuzz", &ignis_storage::block::new_ulid(), &head).expect("encodes");
        let meta_json = serde_json::to_vec(&block.meta).expect("meta");
        Valid { meta: block.meta, meta_json, files: block.files }
    })
}

fn corrupt(original: &[u8], input: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = input.split_first() else {
        return original.to_vec();
    };
    if mode & 0x80 != 0 {
        return rest.to_vec();
    }
    let mut out = original.to_vec();
    if let [a, b, patches @ ..] = rest {
        let keep = u16::from_le_bytes([*a, *b]) as usize;
        if keep != 0xffff {
            out.truncate(keep % (out.len() + 1));
        }
        for p in patches.chunks_exact(3) {
            if out.is_empty() {
                break;
            }
            let at = u16::from_le_bytes([p[0], p[1]]) as usize % out.len();
            out[at] = p[2];
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let v = valid();
    let Some((&pick, _)) = data.split_first() else {
        return;
    };
    let which = (pick & 0x7f) as usize % (v.files.len() + 1);
    let mut files: HashMap<String, Bytes> = v
        .files
        .iter()
        .map(|(n, b)| (n.clone(), Bytes::copy_from_slice(b)))
        .collect();
    let mut meta = v.meta.clone();
    // `corrupt` reads the mode from byte 0's high bit.
    if which == v.files.len() {
        let json = corrupt(&v.meta_json, data);
        match serde_json::from_slice::<BlockMeta>(&json) {
            Ok(m) => meta = m,
            Err(_) => return,
        }
    } else {
        let (name, original) = &v.files[which];
        let bad = Bytes::from(corrupt(original, data));
        let _ = read_parquet(&bad);
        files.insert(name.clone(), bad);
    }
    let _ = decode_block(&meta, &files);
});
