//! The parts of a multipart `/ingest` upload: a pprof with a
//! `sample_type_config`, or a JFR with its `labels` part. The input is cut
//! in two at its first `0xff 0x00` (part one, part two).
#![no_main]

use ignis_ingest::{IngestBody, IngestParams, LegacyFormat, Limits, MultipartParts, decode_legacy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (first, second) = match data.windows(2).position(|w| w == [0xff, 0x00]) {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let params = IngestParams::from_query(&[
        ("name".to_string(), "fuzz.app".to_string()),
        ("from".to_string(), "1795000000".to_string()),
    ]);
    let limits = Limits::default();
    let now = 1_795_000_000_000_000_000;
    let pprof = MultipartParts {
        profile: Some(first.to_vec()),
        sample_type_config: Some(second.to_vec()),
        ..Default::default()
    };
    let _ = decode_legacy(
        &params,
        LegacyFormat::PprofMultipart,
        IngestBody::Multipart(pprof),
        &limits,
        now,
    );
    let jfr = MultipartParts {
        jfr: Some(first.to_vec()),
        labels: Some(second.to_vec()),
        ..Default::default()
    };
    let _ = decode_legacy(
        &params,
        LegacyFormat::Jfr,
        IngestBody::Multipart(jfr),
        &limits,
        now,
    );
});
