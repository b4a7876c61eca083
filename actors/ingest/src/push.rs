//! `push.v1.PusherService/Push`: decoding a `PushRequest` into split profiles.

use ignis_storage::proto::push::v1::PushRequest;
use ignis_storage::{Labels, ProfileId, SplitProfile};

use super::error::{IngestError, Reason};
use super::legacy::decode_flat;
use super::limits::Limits;
use super::split::{SplitInput, split_profile};

/// Decodes every sample of every series. Fails on the first bad one: a push is
/// accepted whole or not at all, so a client retry never duplicates data. A
/// sample keeps the `ID` its client sent when it is a UUID. The profiles'
/// uncompressed sizes together may not pass `ingestion_body_limit_bytes`
/// (as upstream): each is bounded by `max_profile_size_bytes`, but a small
/// body can hold many small gzips of large profiles.
pub fn decode_push(
    req: PushRequest,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SplitProfile>, IngestError> {
    if req.series.is_empty() {
        return Err(IngestError::invalid("no profiles received"));
    }
    let mut out = Vec::new();
    let mut plain_bytes = 0usize;
    for series in req.series {
        let labels = Labels::from_proto(&series.labels).map_err(|name| {
            IngestError::new(
                Reason::DuplicateLabelNames,
                format!("profile has duplicate label name: '{name}'"),
            )
        })?;
        for sample in series.samples {
            let p = decode_flat(sample.raw_profile.into(), limits).map_err(|e| IngestError {
                message: if sample.id.is_empty() {
                    e.message
                } else {
                    format!("profile {}: {}", sample.id, e.message)
                },
                ..e
            })?;
            plain_bytes = plain_bytes.saturating_add(p.plain_len());
            check_batch_size(plain_bytes, limits)?;
            let input = SplitInput {
                labels: labels.clone(),
                fallback_time_ns: now_ns,
                now_ns,
            };
            let client_id = ProfileId::from_client(&sample.id);
            out.extend(split_profile(p, input, limits)?.map(|mut split| {
                if let Some(id) = client_id {
                    split.profile_id = id;
                }
                split
            }));
        }
    }
    Ok(out)
}

/// Refuses a push whose profiles, uncompressed, add up to more than
/// `ingestion_body_limit_bytes` (0: no limit).
fn check_batch_size(plain_bytes: usize, limits: &Limits) -> Result<(), IngestError> {
    let limit = limits.ingestion_body_limit_bytes;
    if limit > 0 && plain_bytes > limit {
        return Err(IngestError::new(
            Reason::BodySizeLimit,
            format!(
                "uncompressed batched profile payload size exceeds limit of {limit} bytes (ingestion_body_limit_bytes)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ignis_storage::proto::push::v1::{RawProfileSeries, RawSample};
    use ignis_storage::proto::types::v1::LabelPair;

    use super::*;

    /// A push of `n` copies of the gzipped Go CPU fixture in one series.
    fn push_of(n: usize, raw: &[u8]) -> PushRequest {
        PushRequest {
            series: vec![RawProfileSeries {
                labels: vec![LabelPair {
                    name: "__name__".into(),
                    value: "process_cpu".into(),
                }],
                samples: (0..n)
                    .map(|_| RawSample {
                        raw_profile: raw.to_vec(),
                        id: String::new(),
                    })
                    .collect(),
                annotations: vec![],
            }],
        }
    }

    #[test]
    fn a_push_whose_profiles_inflate_past_the_body_limit_is_refused() {
        let raw = std::fs::read(crate::fixtures::fixtures_dir().join("go/cpu.pb.gz"))
            .expect("the shared fixtures are beside the repository");
        let plain = crate::gzip::maybe_gunzip(&raw, usize::MAX, "profile")
            .expect("the fixture inflates")
            .len();
        assert!(plain > raw.len());
        // Three profiles fit exactly; a fourth passes the limit, though
        // the body (four gzips) is far below it.
        let limits = Limits {
            ingestion_body_limit_bytes: 3 * plain,
            ..Limits::default()
        };
        // An hour and a half after the fixture's time.
        let now = 1_795_500_000_000_000_000;
        let ok = decode_push(push_of(3, &raw), &limits, now).expect("three fit");
        assert_eq!(ok.len(), 3);
        assert!(4 * raw.len() < limits.ingestion_body_limit_bytes);
        let err = decode_push(push_of(4, &raw), &limits, now).expect_err("four do not");
        assert_eq!(err.reason, Reason::BodySizeLimit);
        assert!(
            err.message.contains("ingestion_body_limit_bytes"),
            "{}",
            err.message
        );
        // 0 is no limit.
        let unlimited = Limits {
            ingestion_body_limit_bytes: 0,
            ..Limits::default()
        };
        assert_eq!(
            decode_push(push_of(4, &raw), &unlimited, now)
                .map(|v| v.len())
                .ok(),
            Some(4)
        );
    }
}
