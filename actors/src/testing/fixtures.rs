//! The shared fixtures (`../shared/fixtures`, or `IGNIS_FIXTURES`) as this
//! crate's tests read them: [`ignis_ingest::fixtures`], and profiles split
//! as the distributor stores them. Panics on a missing fixture: tests only.

use ignis_ingest::{IngestBody, IngestParams, LegacyFormat, Limits, decode_legacy};
use ignis_storage::SplitProfile;

pub use ignis_ingest::fixtures::{fixtures_dir, truth};

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
