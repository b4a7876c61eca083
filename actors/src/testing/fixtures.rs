//! The shared fixtures (`../shared/fixtures`, or `IGNIS_FIXTURES`) as this
//! crate's tests read them. Panics on a missing fixture: tests only.

use std::path::{Path, PathBuf};

use ignis_storage::SplitProfile;

use crate::ingest::{IngestBody, IngestParams, LegacyFormat, Limits, decode_legacy};

/// Where the shared fixtures are.
pub fn fixtures_dir() -> PathBuf {
    std::env::var("IGNIS_FIXTURES").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
        Into::into,
    )
}

/// The ground truth of `fixture` (e.g. `go/cpu`): its `.expected.json`.
pub fn truth(fixture: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures_dir().join(format!("{fixture}.expected.json")))
        .expect("the shared fixtures are beside the repository");
    serde_json::from_str(&text).expect("ground truth is JSON")
}

/// A fixture's pprof as `/ingest?name=<service>&format=pprof` decodes it,
/// re-stamped at `ms`.
pub fn split(fixture: &str, service: &str, ms: i64) -> Vec<SplitProfile> {
    let raw = std::fs::read(fixtures_dir().join(format!("{fixture}.pb.gz"))).expect("fixture");
    let params = IngestParams {
        name: service.into(),
        format: Some("pprof".into()),
        ..Default::default()
    };
    let mut out = decode_legacy(
        &params,
        LegacyFormat::Pprof,
        IngestBody::Raw(raw),
        &Limits::default(),
        0,
    )
    .expect("fixture decodes");
    for p in &mut out {
        p.timestamp_ns = ms * 1_000_000;
    }
    out
}
