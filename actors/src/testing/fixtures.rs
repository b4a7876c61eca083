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
        // A clock far ahead: every fixture's time is in the past.
        i64::MAX / 2,
    )
    .expect("fixture decodes");
    for p in &mut out {
        p.timestamp_ns = ms * 1_000_000;
    }
    out
}

/// A head of the Go CPU fixture for `services` services (`svc-0`, …), one
/// profile each every `every_ms` from `start_ms`, for the profile numbers
/// `profiles`. Profile ids derive from (number, service): the same profile
/// in two heads is a replica.
pub fn go_cpu_history(
    profiles: std::ops::Range<i64>,
    services: usize,
    start_ms: i64,
    every_ms: i64,
) -> ignis_storage::Head {
    go_cpu_history_shaped(profiles, services, (start_ms, every_ms), |_, _| {})
}

/// [`go_cpu_history`] with each profile shaped by `shape(number, profile)`
/// before it is inserted (to give profiles different totals).
pub fn go_cpu_history_shaped(
    profiles: std::ops::Range<i64>,
    services: usize,
    (start_ms, every_ms): (i64, i64),
    shape: impl Fn(i64, &mut ignis_storage::SplitProfile),
) -> ignis_storage::Head {
    let template = split("go/cpu", "svc", start_ms);
    let mut head = ignis_storage::Head::new();
    for i in profiles {
        for s in 0..services {
            for p in &template {
                let mut p = p.clone();
                p.profile_id =
                    ignis_storage::ProfileId::from_key(((i as u64) << 8) | s as u64 | (1 << 40));
                p.timestamp_ns = (start_ms + i * every_ms) * 1_000_000;
                for series in &mut p.series {
                    series
                        .labels
                        .insert(ignis_storage::names::SERVICE_NAME, format!("svc-{s}"));
                }
                shape(i, &mut p);
                head.insert(&p).expect("insert");
            }
        }
    }
    head
}
