//! The binary record of one push: a tenant and its split profiles, encoded
//! with rkyv behind a versioned magic. The WAL stores it and nodes send it to
//! replicated ingesters, so both speak exactly one format.
//!
//! Each profile is kept as the client sent it (its pprof bytes, gzip or
//! not), with what the node decided about it: its id, time, the bounds it
//! was truncated to and its series. Decoding inflates and decodes the bytes
//! again in place ([`FlatProfile`]) and applies the same bounds, so a
//! replayed or replicated profile is the one that was acknowledged.

use std::io::Read;

use bytes::Bytes;
use rkyv::rancor;

use crate::flat::{FlatProfile, Truncation};
use crate::head::{SeriesSplit, SplitProfile};
use crate::labels::Labels;
use crate::profile_id::ProfileId;

/// Leading bytes of every record: the format and its version.
/// 04: a profile's whole id (128 bits), not only its key.
pub const RECORD_MAGIC: &[u8; 8] = b"IGNREC04";

/// The previous format (ids of 64 bits), still read so a WAL written by
/// an older Ignis replays.
const RECORD_MAGIC_V3: &[u8; 8] = b"IGNREC03";

/// The format before (the pprof re-encoded by prost), still read.
const RECORD_MAGIC_V2: &[u8; 8] = b"IGNREC02";

/// A record that cannot be encoded or decoded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// rkyv refused to encode.
    #[error("record encoding failed: {0}")]
    Encode(String),
    /// The bytes are not a record of this version.
    #[error("record is not in format IGNREC04, IGNREC03 or IGNREC02: {0}")]
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
    /// The id's key (low 64 bits).
    profile_id: u64,
    /// The id's high 64 bits.
    profile_id_hi: u64,
    timestamp_ns: i64,
    /// The client's pprof bytes, gzip or not.
    pprof: Vec<u8>,
    /// Length of the uncompressed pprof.
    plain_len: u64,
    stack_depth: u32,
    symbol_bytes: u32,
    series: Vec<RecordSeries>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RecordV3 {
    tenant: String,
    profiles: Vec<RecordProfileV3>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RecordProfileV3 {
    profile_id: u64,
    timestamp_ns: i64,
    pprof: Vec<u8>,
    plain_len: u64,
    stack_depth: u32,
    symbol_bytes: u32,
    series: Vec<RecordSeries>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RecordV2 {
    tenant: String,
    profiles: Vec<RecordProfileV2>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RecordProfileV2 {
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
            .map(|p| {
                let t = p.profile.truncation();
                RecordProfile {
                    profile_id: p.profile_id.lo,
                    profile_id_hi: p.profile_id.hi,
                    timestamp_ns: p.timestamp_ns,
                    pprof: p.profile.wire().to_vec(),
                    plain_len: p.profile.plain_len() as u64,
                    stack_depth: t.stack_depth,
                    symbol_bytes: t.symbol_bytes,
                    series: p.series.iter().map(record_series).collect(),
                }
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

fn record_series(s: &SeriesSplit) -> RecordSeries {
    RecordSeries {
        labels: s
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value_index: s.value_index as u32,
        samples: s.samples.clone(),
    }
}

fn split_series(s: RecordSeries) -> SeriesSplit {
    SeriesSplit {
        labels: Labels::from_pairs(s.labels),
        value_index: s.value_index as usize,
        samples: s.samples,
    }
}

/// Decodes a record: its tenant and profiles. Never panics on bad bytes.
pub fn decode_record(bytes: &[u8]) -> Result<(String, Vec<SplitProfile>), RecordError> {
    if let Some(body) = bytes.strip_prefix(RECORD_MAGIC_V2.as_slice()) {
        return decode_v2(body);
    }
    let record: Record = if let Some(body) = bytes.strip_prefix(RECORD_MAGIC_V3.as_slice()) {
        let old: RecordV3 = from_rkyv(body)?;
        Record {
            tenant: old.tenant,
            profiles: old
                .profiles
                .into_iter()
                .map(|p| RecordProfile {
                    profile_id: p.profile_id,
                    profile_id_hi: 0,
                    timestamp_ns: p.timestamp_ns,
                    pprof: p.pprof,
                    plain_len: p.plain_len,
                    stack_depth: p.stack_depth,
                    symbol_bytes: p.symbol_bytes,
                    series: p.series,
                })
                .collect(),
        }
    } else if let Some(body) = bytes.strip_prefix(RECORD_MAGIC.as_slice()) {
        from_rkyv(body)?
    } else {
        let head = &bytes[..bytes.len().min(8)];
        return Err(RecordError::Version(format!(
            "it starts with {:?} (written by an older or newer Ignis?)",
            String::from_utf8_lossy(head)
        )));
    };
    let mut profiles = Vec::with_capacity(record.profiles.len());
    for p in record.profiles {
        let wire = Bytes::from(p.pprof);
        let plain = inflate(&wire, p.plain_len)?;
        let mut profile = FlatProfile::decode(wire, plain)
            .map_err(|e| RecordError::Corrupt(format!("pprof: {e}")))?;
        profile.truncate(Truncation {
            stack_depth: p.stack_depth,
            symbol_bytes: p.symbol_bytes,
        });
        profile.set_time_nanos(p.timestamp_ns);
        profiles.push(SplitProfile {
            profile_id: ProfileId {
                hi: p.profile_id_hi,
                lo: p.profile_id,
            },
            profile,
            timestamp_ns: p.timestamp_ns,
            series: p.series.into_iter().map(split_series).collect(),
        });
    }
    Ok((record.tenant, profiles))
}

fn from_rkyv<T>(body: &[u8]) -> Result<T, RecordError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    let mut buf = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    buf.extend_from_slice(body);
    rkyv::from_bytes::<T, rancor::Error>(&buf).map_err(|e| RecordError::Corrupt(e.to_string()))
}

/// The uncompressed bytes of `wire` (itself when not gzip), which must be
/// exactly `plain_len` long.
fn inflate(wire: &Bytes, plain_len: u64) -> Result<Bytes, RecordError> {
    if !wire.starts_with(&[0x1f, 0x8b]) {
        if wire.len() as u64 != plain_len {
            return Err(RecordError::Corrupt(format!(
                "pprof of {} bytes, {plain_len} expected",
                wire.len()
            )));
        }
        return Ok(wire.clone());
    }
    // The recorded length bounds the output: damaged bytes never inflate
    // past it.
    let mut plain = Vec::with_capacity(plain_len.min(wire.len() as u64 * 64) as usize);
    flate2::read::MultiGzDecoder::new(wire.as_ref())
        .take(plain_len.saturating_add(1))
        .read_to_end(&mut plain)
        .map_err(|e| RecordError::Corrupt(format!("pprof gzip: {e}")))?;
    if plain.len() as u64 != plain_len {
        return Err(RecordError::Corrupt(format!(
            "pprof inflates to {} bytes, {plain_len} expected",
            plain.len()
        )));
    }
    Ok(Bytes::from(plain))
}

/// A record of the previous format: prost's re-encoding of each profile.
fn decode_v2(body: &[u8]) -> Result<(String, Vec<SplitProfile>), RecordError> {
    let record: RecordV2 = from_rkyv(body)?;
    let mut profiles = Vec::with_capacity(record.profiles.len());
    for p in record.profiles {
        let profile = FlatProfile::decode_plain(Bytes::from(p.pprof))
            .map_err(|e| RecordError::Corrupt(format!("pprof: {e}")))?;
        profiles.push(SplitProfile {
            profile_id: ProfileId::from_key(p.profile_id),
            profile,
            timestamp_ns: p.timestamp_ns,
            series: p.series.into_iter().map(split_series).collect(),
        });
    }
    Ok((record.tenant, profiles))
}

#[cfg(test)]
mod tests {
    use crate::proto::google::v1 as pprof;
    use prost::Message;
    use std::io::Write;

    use super::*;

    fn tiny() -> pprof::Profile {
        pprof::Profile {
            sample_type: vec![pprof::ValueType { r#type: 1, unit: 1 }],
            sample: vec![pprof::Sample {
                location_id: vec![1, 1, 1],
                value: vec![3],
                label: vec![],
            }],
            location: vec![pprof::Location {
                id: 1,
                ..Default::default()
            }],
            string_table: vec!["".into(), "a_long_symbol".into()],
            ..Default::default()
        }
    }

    fn series() -> Vec<SeriesSplit> {
        vec![SeriesSplit {
            labels: Labels::from_pairs([("a", "b")]),
            value_index: 1,
            samples: vec![0, 2],
        }]
    }

    #[test]
    fn round_trip_and_refusals() {
        let id = ProfileId::parse("734fd599-6865-419e-9475-932762d8f469").unwrap();
        let p = SplitProfile {
            profile_id: id,
            profile: FlatProfile::from_proto(&tiny()).unwrap(),
            timestamp_ns: 7,
            series: series(),
        };
        let bytes = encode_record("t", std::slice::from_ref(&p)).unwrap();
        let (tenant, back) = decode_record(&bytes).unwrap();
        assert_eq!(tenant, "t");
        assert_eq!(back[0].profile_id, id);
        assert_eq!(back[0].series[0].samples, vec![0, 2]);
        let mut expected = tiny();
        expected.time_nanos = 7;
        assert_eq!(back[0].profile.to_proto(), expected);
        assert!(matches!(
            decode_record(b"garbage"),
            Err(RecordError::Version(_))
        ));
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        assert!(matches!(decode_record(&cut), Err(RecordError::Corrupt(_))));
    }

    /// The record keeps the client's gzipped bytes, not a re-encoding, and
    /// decodes to the same truncated profile.
    #[test]
    fn the_clients_gzip_bytes_are_the_record() {
        let plain = tiny().encode_to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let wire = Bytes::from(gz.finish().unwrap());
        let mut profile = FlatProfile::decode(wire.clone(), Bytes::from(plain)).unwrap();
        let t = Truncation {
            stack_depth: 2,
            symbol_bytes: 6,
        };
        profile.truncate(t);
        profile.set_time_nanos(9);
        let p = SplitProfile {
            profile_id: ProfileId::from_key(1),
            profile,
            timestamp_ns: 9,
            series: series(),
        };
        let bytes = encode_record("t", std::slice::from_ref(&p)).unwrap();
        assert!(
            bytes.windows(wire.len()).any(|w| w == wire.as_ref()),
            "the client's bytes are in the record"
        );
        let (_, back) = decode_record(&bytes).unwrap();
        assert_eq!(back[0].profile.wire(), &wire);
        assert_eq!(back[0].profile.truncation(), t);
        assert_eq!(back[0].profile.to_proto(), p.profile.to_proto());
        assert_eq!(back[0].profile.to_proto().string_table[1], "symbol");
    }

    /// A WAL written by the previous format still replays.
    #[test]
    fn records_of_the_previous_format_decode() {
        let mut expected = tiny();
        expected.time_nanos = 5;
        let old = RecordV2 {
            tenant: "t".into(),
            profiles: vec![RecordProfileV2 {
                profile_id: 3,
                timestamp_ns: 5,
                pprof: expected.encode_to_vec(),
                series: vec![record_series(&series()[0])],
            }],
        };
        let mut bytes = RECORD_MAGIC_V2.to_vec();
        bytes.extend_from_slice(&rkyv::to_bytes::<rancor::Error>(&old).unwrap());
        let (tenant, back) = decode_record(&bytes).unwrap();
        assert_eq!(tenant, "t");
        assert_eq!(back[0].profile.to_proto(), expected);
        assert_eq!(back[0].series[0].samples, vec![0, 2]);
        assert_eq!(back[0].profile_id, ProfileId::from_key(3));

        // IGNREC03: the client's bytes, an id of 64 bits.
        let plain = expected.encode_to_vec();
        let v3 = RecordV3 {
            tenant: "u".into(),
            profiles: vec![RecordProfileV3 {
                profile_id: 4,
                timestamp_ns: 5,
                plain_len: plain.len() as u64,
                pprof: plain,
                stack_depth: 0,
                symbol_bytes: 0,
                series: vec![record_series(&series()[0])],
            }],
        };
        let mut bytes = RECORD_MAGIC_V3.to_vec();
        bytes.extend_from_slice(&rkyv::to_bytes::<rancor::Error>(&v3).unwrap());
        let (tenant, back) = decode_record(&bytes).unwrap();
        assert_eq!(tenant, "u");
        assert_eq!(back[0].profile_id, ProfileId::from_key(4));
        assert_eq!(back[0].profile.to_proto(), expected);
    }
}
