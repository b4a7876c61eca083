//! A pprof decoded in place ([`FlatProfile`]): strings are ranges of the
//! received bytes, every sample's locations, values and labels are ranges of
//! three shared arrays, so decoding allocates per profile, not per sample.
//!
//! The ingest path decodes every pushed pprof this way, splits it, writes the
//! client's own bytes to the WAL ([`FlatProfile::wire`]) and inserts it into
//! the head; [`FlatProfile::to_proto`] builds prost's `Profile` where one is
//! needed (tests, exports).

mod decode;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use prost::Message;

use crate::id_map::IdMap;
use crate::proto::google::v1 as pprof;

/// A pprof that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlatError {
    /// The protobuf is malformed at byte `at` of the uncompressed profile.
    #[error("invalid pprof protobuf at byte {at}: {what}")]
    Malformed {
        /// Offset into the uncompressed bytes.
        at: usize,
        /// What is wrong there.
        what: &'static str,
    },
    /// The uncompressed profile is 4 GiB or more.
    #[error("pprof of {0} bytes is too large (4 GiB at most)")]
    TooLarge(usize),
}

/// A half-open range `start..end` of one of the profile's arrays or bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Self {
        // Every range lies within the profile's bytes (< 4 GiB, checked) or
        // within an array with at most one element per byte.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

/// One sample: ranges of the profile's location id, value and label arrays.
#[derive(Debug, Clone, Copy, Default)]
struct FlatSample {
    locations: Span,
    values: Span,
    labels: Span,
}

/// One location; its lines are a range of the profile's line array.
#[derive(Debug, Clone, Copy, Default)]
struct FlatLocation {
    id: u64,
    mapping_id: u64,
    address: u64,
    is_folded: bool,
    lines: Span,
}

/// A sample of a [`FlatProfile`], borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'a> {
    /// Location ids, leaf first (after any stack depth truncation).
    pub location_ids: &'a [u64],
    /// One value per sample type (when well formed).
    pub values: &'a [i64],
    /// The sample's labels.
    pub labels: &'a [pprof::Label],
}

/// A location of a [`FlatProfile`], borrowed.
#[derive(Debug, Clone, Copy)]
pub struct LocationRef<'a> {
    /// The location's id (non-zero when well formed).
    pub id: u64,
    /// The mapping it belongs to (0: none).
    pub mapping_id: u64,
    /// Its address.
    pub address: u64,
    /// pprof's `is_folded`.
    pub is_folded: bool,
    /// Its lines, innermost first.
    pub lines: &'a [pprof::Line],
}

/// The bounds applied to a profile after decoding, recorded so that a
/// profile decoded again from its bytes (WAL replay, a replica) is the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truncation {
    /// Each stack keeps at most this many root-side locations (0: all).
    pub stack_depth: u32,
    /// Each string keeps at most its last this many bytes (0: all).
    pub symbol_bytes: u32,
}

/// A pprof decoded in place (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct FlatProfile {
    /// The bytes as the client sent them (gzip or not).
    wire: Bytes,
    /// The uncompressed protobuf (the same bytes as `wire` when not gzip).
    plain: Bytes,
    truncation: Truncation,
    strings: Vec<Span>,
    sample_types: Vec<pprof::ValueType>,
    samples: Vec<FlatSample>,
    location_ids: Vec<u64>,
    values: Vec<i64>,
    labels: Vec<pprof::Label>,
    mappings: Vec<pprof::Mapping>,
    locations: Vec<FlatLocation>,
    lines: Vec<pprof::Line>,
    functions: Vec<pprof::Function>,
    drop_frames: i64,
    keep_frames: i64,
    time_nanos: i64,
    duration_nanos: i64,
    period_type: Option<pprof::ValueType>,
    period: i64,
    comment: Vec<i64>,
    default_sample_type: i64,
}

impl FlatProfile {
    /// Decodes `plain`, the uncompressed protobuf of `wire` (the same bytes
    /// when the client sent them uncompressed).
    pub fn decode(wire: Bytes, plain: Bytes) -> Result<Self, FlatError> {
        let mut p = FlatProfile::default();
        decode::decode_into(&plain, &mut p)?;
        p.wire = wire;
        p.plain = plain;
        Ok(p)
    }

    /// Decodes uncompressed bytes (its own wire bytes).
    pub fn decode_plain(plain: Bytes) -> Result<Self, FlatError> {
        Self::decode(plain.clone(), plain)
    }

    /// A prost profile, encoded and decoded in place: for profiles that
    /// arrive in other formats (JFR, OTLP, folded text, …).
    pub fn from_proto(p: &pprof::Profile) -> Result<Self, FlatError> {
        Self::decode_plain(Bytes::from(p.encode_to_vec()))
    }

    fn clear_decoded(&mut self) {
        let keep = (self.wire.clone(), self.plain.clone());
        *self = FlatProfile::default();
        (self.wire, self.plain) = keep;
    }

    /// The bytes as received: what the WAL and replicas store.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// Length of the uncompressed protobuf.
    pub fn plain_len(&self) -> usize {
        self.plain.len()
    }

    /// The bounds applied since decoding.
    pub fn truncation(&self) -> Truncation {
        self.truncation
    }

    /// Keeps the root-side `depth` frames of every stack (a location is as
    /// many frames as it has lines, inlined calls; at least one) and the
    /// last `symbol_bytes` bytes (at a character boundary) of every string;
    /// 0 keeps all. Applied once, after decoding.
    pub fn truncate(&mut self, t: Truncation) {
        self.truncation = t;
        let depth = t.stack_depth as usize;
        if depth > 0 {
            self.truncate_stacks(depth);
        }
        let max = t.symbol_bytes as usize;
        if max > 0 {
            for span in &mut self.strings {
                if span.len() <= max {
                    continue;
                }
                let Ok(s) = std::str::from_utf8(&self.plain[span.range()]) else {
                    continue;
                };
                let cut = s.ceil_char_boundary(s.len() - max);
                span.start += cut as u32;
            }
        }
    }

    fn truncate_stacks(&mut self, depth: usize) {
        let most_lines = self
            .locations
            .iter()
            .map(|l| l.lines.len())
            .max()
            .unwrap_or(0);
        // Frames by location id, built only when some stack may be too deep.
        let mut frames: Option<IdMap> = None;
        for s in &mut self.samples {
            if s.locations.len().saturating_mul(most_lines.max(1)) <= depth {
                continue;
            }
            if most_lines <= 1 {
                // A frame per location. Location ids are leaf first: drop
                // the leaf side.
                s.locations.start = s.locations.end - depth as u32;
                continue;
            }
            let frames = frames.get_or_insert_with(|| {
                let mut m = IdMap::sized_for(self.locations.iter().map(|l| l.id));
                for l in &self.locations {
                    m.insert(l.id, l.lines.len().max(1) as u32);
                }
                m
            });
            let (mut kept, mut start) = (0usize, s.locations.end);
            for &id in self.location_ids[s.locations.range()].iter().rev() {
                let f = frames.get(id).unwrap_or(1) as usize;
                if kept + f > depth {
                    break;
                }
                kept += f;
                start -= 1;
            }
            s.locations.start = start;
        }
    }

    /// Number of strings in the string table.
    pub fn string_count(&self) -> usize {
        self.strings.len()
    }

    /// String `i` of the string table, if there is one.
    pub fn string(&self, i: i64) -> Option<&str> {
        let span = *self.strings.get(usize::try_from(i).ok()?)?;
        // Checked to be UTF-8 when decoded; truncation cuts at boundaries.
        std::str::from_utf8(&self.plain[span.range()]).ok()
    }

    /// String `i`, or `""` when out of range.
    pub fn str(&self, i: i64) -> &str {
        self.string(i).unwrap_or("")
    }

    /// The sample types.
    pub fn sample_types(&self) -> &[pprof::ValueType] {
        &self.sample_types
    }

    /// Number of samples.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Sample `i`.
    pub fn sample(&self, i: usize) -> Option<SampleRef<'_>> {
        self.samples.get(i).map(|s| self.sample_ref(s))
    }

    fn sample_ref(&self, s: &FlatSample) -> SampleRef<'_> {
        SampleRef {
            location_ids: &self.location_ids[s.locations.range()],
            values: &self.values[s.values.range()],
            labels: &self.labels[s.labels.range()],
        }
    }

    /// Every sample, in order.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = SampleRef<'_>> + '_ {
        self.samples.iter().map(|s| self.sample_ref(s))
    }

    /// Every location, in order.
    pub fn locations(&self) -> impl ExactSizeIterator<Item = LocationRef<'_>> + '_ {
        self.locations.iter().map(|l| LocationRef {
            id: l.id,
            mapping_id: l.mapping_id,
            address: l.address,
            is_folded: l.is_folded,
            lines: &self.lines[l.lines.range()],
        })
    }

    /// Number of locations.
    pub fn location_count(&self) -> usize {
        self.locations.len()
    }

    /// The functions.
    pub fn functions(&self) -> &[pprof::Function] {
        &self.functions
    }

    /// The mappings.
    pub fn mappings(&self) -> &[pprof::Mapping] {
        &self.mappings
    }

    /// The period type, if set.
    pub fn period_type(&self) -> Option<&pprof::ValueType> {
        self.period_type.as_ref()
    }

    /// The sampling period.
    pub fn period(&self) -> i64 {
        self.period
    }

    /// The profile's time (ns since the epoch; 0: none).
    pub fn time_nanos(&self) -> i64 {
        self.time_nanos
    }

    /// Sets the profile's time (the split fills in a missing one).
    pub fn set_time_nanos(&mut self, t: i64) {
        self.time_nanos = t;
    }

    /// The profile's duration (ns).
    pub fn duration_nanos(&self) -> i64 {
        self.duration_nanos
    }

    /// prost's `Profile` with the same content (truncation and time applied).
    pub fn to_proto(&self) -> pprof::Profile {
        pprof::Profile {
            sample_type: self.sample_types.clone(),
            sample: self
                .samples()
                .map(|s| pprof::Sample {
                    location_id: s.location_ids.to_vec(),
                    value: s.values.to_vec(),
                    label: s.labels.to_vec(),
                })
                .collect(),
            mapping: self.mappings.clone(),
            location: self
                .locations()
                .map(|l| pprof::Location {
                    id: l.id,
                    mapping_id: l.mapping_id,
                    address: l.address,
                    line: l.lines.to_vec(),
                    is_folded: l.is_folded,
                })
                .collect(),
            function: self.functions.clone(),
            string_table: (0..self.strings.len() as i64)
                .map(|i| self.str(i).to_string())
                .collect(),
            drop_frames: self.drop_frames,
            keep_frames: self.keep_frames,
            time_nanos: self.time_nanos,
            duration_nanos: self.duration_nanos,
            period_type: self.period_type,
            period: self.period,
            comment: self.comment.clone(),
            default_sample_type: self.default_sample_type,
        }
    }
}
