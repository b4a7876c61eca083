//! What the benches share: the Go CPU fixture, raw and decoded.

#![allow(dead_code)] // each bench uses a subset

use std::path::Path;

use ignis_ingest::{IngestBody, IngestParams, LegacyFormat, Limits, decode_legacy};
use ignis_storage::SplitProfile;

/// The bytes of `go/cpu.pb.gz` from the shared fixtures (`IGNIS_FIXTURES`
/// overrides where they are).
pub fn go_cpu_fixture() -> Vec<u8> {
    let dir = std::env::var("IGNIS_FIXTURES").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
        Into::into,
    );
    std::fs::read(dir.join("go/cpu.pb.gz")).expect("the shared fixtures are beside the repository")
}

/// The Go CPU fixture decoded as `/ingest?name=bench.app&format=pprof` would.
pub fn go_cpu_split() -> Vec<SplitProfile> {
    let params = IngestParams {
        name: "bench.app".into(),
        format: Some("pprof".into()),
        ..Default::default()
    };
    decode_legacy(
        &params,
        LegacyFormat::Pprof,
        IngestBody::Raw(go_cpu_fixture()),
        &Limits::default(),
        // A clock far ahead: every fixture's time is in the past.
        i64::MAX / 2,
    )
    .expect("fixture decodes")
}
