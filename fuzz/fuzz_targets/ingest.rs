//! An `/ingest` body in each raw format: the first byte picks the format
//! (pprof, tree, trie, folded, lines, speedscope, JFR), the rest is the body.
#![no_main]

use ignis_ingest::{IngestBody, IngestParams, LegacyFormat, Limits, decode_legacy};
use libfuzzer_sys::fuzz_target;

const FORMATS: [LegacyFormat; 7] = [
    LegacyFormat::Pprof,
    LegacyFormat::Tree,
    LegacyFormat::Trie,
    LegacyFormat::Folded,
    LegacyFormat::Lines,
    LegacyFormat::Speedscope,
    LegacyFormat::Jfr,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let format = FORMATS[usize::from(pick) % FORMATS.len()];
    let params = IngestParams::from_query(&[
        ("name".to_string(), "fuzz.app.cpu{env=fuzz}".to_string()),
        ("from".to_string(), "1795000000".to_string()),
        (
            "spyName".to_string(),
            if pick & 0x80 != 0 { "rbspy" } else { "gospy" }.to_string(),
        ),
    ]);
    let _ = decode_legacy(
        &params,
        format,
        IngestBody::Raw(body.to_vec()),
        &Limits::default(),
        1_795_000_000_000_000_000,
    );
});
