//! The binary record of one push: a tenant and its split profiles, encoded
//! with rkyv behind a versioned magic. The WAL stores it and nodes send it to
//! replicated ingesters, so both speak exactly one format.

use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use rkyv::rancor;

use crate::head::{SeriesSplit, SplitProfile};
use crate::labels::Labels;
use crate::proto::google::v1 as pprof;

/// Leading bytes of every record: the format and its version.
pub const RECORD_MAGIC: &[u8; 8] = b"IGNREC02";

/// A record that cannot be encoded or decoded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// rkyv refused to encode.
    #[error("record encoding failed: {0}")]
    Encode(String),
    /// The bytes are not a record of this version.
    #[error("record is not in format IGNREC02: {0}")]
    Version(String),
    /// The bytes are damaged.
    #[error("record is corrupt: {0}")]
    Corrupt(String),
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Record {
    tenant: String,
    profiles: Vec<RecordProfile>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RecordProfile {
    profile_id: u64,
    timestamp_ns: i64,
    pprof: Vec<u8>,
    series: Vec<RecordSeries>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RecordSeries {
    labels: Vec<(String, String)>,
    value_index: u32,
    samples: Vec<u32>,
}

/// Encodes one push of `tenant`.
pub fn encode_record<'a>(
    tenant: &str,
    profiles: impl IntoIterator<Item = &'a SplitProfile>,
) -> Result<Vec<u8>, RecordError> {
    let record = Record {
        tenant: tenant.to_string(),
        profiles: profiles
            .into_iter()
            .map(|p| RecordProfile {
                profile_id: p.profile_id,
                timestamp_ns: p.timestamp_ns,
                pprof: p.profile.encode_to_vec(),
                series: p
                    .series
                    .iter()
                    .map(|s| RecordSeries {
                        labels: s
                            .labels
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        value_index: s.value_index as u32,
                        samples: s.samples.clone(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let body =
        rkyv::to_bytes::<rancor::Error>(&record).map_err(|e| RecordError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(RECORD_MAGIC.len() + body.len());
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a record: its tenant and profiles. Never panics on bad bytes.
pub fn decode_record(bytes: &[u8]) -> Result<(String, Vec<SplitProfile>), RecordError> {
    let Some(body) = bytes.strip_prefix(RECORD_MAGIC.as_slice()) else {
        let head = &bytes[..bytes.len().min(8)];
        return Err(RecordError::Version(format!(
            "it starts with {:?} (written by an older or newer Ignis?)",
            String::from_utf8_lossy(head)
        )));
    };
    let mut buf = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    buf.extend_from_slice(body);
    let record = rkyv::from_bytes::<Record, rancor::Error>(&buf)
        .map_err(|e| RecordError::Corrupt(e.to_string()))?;
    let mut profiles = Vec::with_capacity(record.profiles.len());
    for p in record.profiles {
        let profile = pprof::Profile::decode(p.pprof.as_slice())
            .map_err(|e| RecordError::Corrupt(format!("pprof: {e}")))?;
        profiles.push(SplitProfile {
            profile_id: p.profile_id,
            profile,
            timestamp_ns: p.timestamp_ns,
            series: p
                .series
                .into_iter()
                .map(|s| SeriesSplit {
                    labels: Labels::from_pairs(s.labels),
                    value_index: s.value_index as usize,
                    samples: s.samples,
                })
                .collect(),
        });
    }
    Ok((record.tenant, profiles))
}

/// A new profile id: unique across nodes and restarts with overwhelming
/// probability (a per-process random seed, the clock and a counter, hashed).
/// Replicas of one profile share it, so queries count each profile once.
pub fn new_profile_id() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let stack = 0u8;
        let entropy = format!(
            "{now}/{}/{:p}/{:?}",
            std::process::id(),
            &stack,
            std::thread::current().id()
        );
        xxhash_rust::xxh3::xxh3_64(entropy.as_bytes())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = xxhash_rust::xxh3::xxh3_64_with_seed(&n.to_le_bytes(), seed);
    // 0 means "no id" (profiles from format-1 blocks).
    id.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = SplitProfile {
            profile_id: 42,
            profile: pprof::Profile {
                string_table: vec!["".into(), "f".into()],
                ..Default::default()
            },
            timestamp_ns: 7,
            series: vec![SeriesSplit {
                labels: Labels::from_pairs([("a", "b")]),
                value_index: 1,
                samples: vec![0, 2],
            }],
        };
        let bytes = encode_record("t", std::slice::from_ref(&p)).unwrap();
        let (tenant, back) = decode_record(&bytes).unwrap();
        assert_eq!(tenant, "t");
        assert_eq!(back[0].profile_id, 42);
        assert_eq!(back[0].series[0].samples, vec![0, 2]);
        assert_eq!(back[0].profile, p.profile);
        assert!(matches!(
            decode_record(b"garbage"),
            Err(RecordError::Version(_))
        ));
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        assert!(matches!(decode_record(&cut), Err(RecordError::Corrupt(_))));
        let a = new_profile_id();
        assert_ne!(a, new_profile_id());
    }
}
