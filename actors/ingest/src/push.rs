//! `push.v1.PusherService/Push`: decoding a `PushRequest` into split profiles.

use ignis_storage::proto::push::v1::PushRequest;
use ignis_storage::{Labels, ProfileId, SplitProfile};

use super::error::{IngestError, Reason};
use super::legacy::decode_flat;
use super::limits::Limits;
use super::split::{SplitInput, split_profile};

/// Decodes every sample of every series. Fails on the first bad one: a push is
/// accepted whole or not at all, so a client retry never duplicates data. A
/// sample keeps the `ID` its client sent when it is a UUID.
pub fn decode_push(
    req: PushRequest,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SplitProfile>, IngestError> {
    if req.series.is_empty() {
        return Err(IngestError::invalid("no profiles received"));
    }
    let mut out = Vec::new();
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
