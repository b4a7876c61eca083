//! Span and trace ids of samples: how pprof sample labels name them, how they
//! parse, and [`SpanSample`], the span- or trace-attributed part of a profile
//! row that `span_selector` and `trace_id_selector` read.

use crate::flat::FlatProfile;

/// The pprof sample label that attributes a sample to a trace span.
pub const SPAN_ID_LABEL: &str = "span_id";
/// The older spelling of [`SPAN_ID_LABEL`] (JFR, older SDKs); read as a span id.
pub const PROFILE_ID_LABEL: &str = "profile_id";
/// The pprof sample label that attributes a sample to a trace (32 hex
/// characters; OTLP links become it at ingest).
pub const TRACE_ID_LABEL: &str = "trace_id";

/// A trace id: its 16 bytes in the order their hex is written; all zero is no trace.
pub type TraceId = [u8; 16];

/// A span or trace id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanIdError {
    /// Not 16 characters long.
    #[error("span id {0:?} is not 16 hex characters")]
    Length(String),
    /// A character is not a hex digit.
    #[error("span id {0:?} is not hexadecimal")]
    NotHex(String),
    /// A trace id that is not 32 hex characters.
    #[error("trace id {0:?} is not 32 hex characters")]
    TraceId(String),
}

/// The bytes of `s`, two hex digits each; `None` when a character is not a
/// hex digit or the length is not `N * 2`.
fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *slot = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// Parses a span id as Pyroscope does: 16 hex characters, decoded to 8 bytes
/// and read as a little-endian `u64` (the same at ingest and in `span_selector`).
pub fn parse_span_id(s: &str) -> Result<u64, SpanIdError> {
    if s.len() != 16 {
        return Err(SpanIdError::Length(s.to_string()));
    }
    hex_bytes::<8>(s)
        .map(u64::from_le_bytes)
        .ok_or_else(|| SpanIdError::NotHex(s.to_string()))
}

/// The 16 lowercase hex characters of a span id ([`parse_span_id`]'s inverse).
pub fn format_span_id(id: u64) -> String {
    id.to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses a trace id: 32 hex characters (either case), as the pprof
/// `trace_id` label and `trace_id_selector` write it.
pub fn parse_trace_id(s: &str) -> Result<TraceId, SpanIdError> {
    hex_bytes::<16>(s).ok_or_else(|| SpanIdError::TraceId(s.to_string()))
}

/// The 32 lowercase hex characters of a trace id ([`parse_trace_id`]'s inverse).
pub fn format_trace_id(id: &TraceId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The span and trace of every sample of `p` (`0` and all-zero: none), or
/// `None` when no sample carries either. `span_id` wins over `profile_id`;
/// unparsable ids count as none.
pub fn sample_span_refs(p: &FlatProfile) -> Option<Vec<(u64, TraceId)>> {
    if p.samples().all(|s| s.labels.is_empty()) {
        return None;
    }
    let mut out = vec![(0u64, TraceId::default()); p.sample_count()];
    let mut any = false;
    for ((span, trace), sample) in out.iter_mut().zip(p.samples()) {
        let mut fallback = 0;
        for l in sample.labels {
            match p.str(l.key) {
                SPAN_ID_LABEL => {
                    if let Ok(id) = parse_span_id(p.str(l.str)) {
                        *span = id;
                    }
                }
                PROFILE_ID_LABEL => fallback = parse_span_id(p.str(l.str)).unwrap_or(0),
                TRACE_ID_LABEL => {
                    if let Ok(id) = parse_trace_id(p.str(l.str)) {
                        *trace = id;
                    }
                }
                _ => {}
            }
        }
        if *span == 0 {
            *span = fallback;
        }
        any |= *span != 0 || *trace != TraceId::default();
    }
    any.then_some(out)
}

/// One span- or trace-attributed sample of a profile row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanSample {
    /// The span ([`parse_span_id`]), 0 when the sample names only a trace.
    pub span_id: u64,
    /// Stack id (into the head's symbol table).
    pub stack: u32,
    /// Value of the span's samples with this stack.
    pub value: i64,
    /// The trace ([`parse_trace_id`]), all zero when the sample names only a span.
    pub trace_id: TraceId,
}

impl SpanSample {
    /// True when it names a span or a trace (a stored span sample always does).
    pub fn is_attributed(&self) -> bool {
        self.span_id != 0 || self.trace_id != TraceId::default()
    }
}

/// Sorts span samples by `(span, trace, stack)` and sums duplicates; `None`
/// when empty.
pub fn merge_span_samples(mut v: Vec<SpanSample>) -> Option<Box<[SpanSample]>> {
    if v.is_empty() {
        return None;
    }
    let key = |s: &SpanSample| (s.span_id, s.trace_id, s.stack);
    v.sort_unstable_by_key(key);
    let mut out: Vec<SpanSample> = Vec::with_capacity(v.len());
    for s in v {
        match out.last_mut() {
            Some(last) if key(last) == key(&s) => {
                last.value = last.value.saturating_add(s.value);
            }
            _ => out.push(s),
        }
    }
    Some(out.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_parse_little_endian_and_refuse_garbage() {
        assert_eq!(parse_span_id("0100000000000000"), Ok(1));
        assert_eq!(parse_span_id("00000000000000ff"), Ok(0xff << 56));
        assert_eq!(format_span_id(0xff << 56), "00000000000000ff");
        assert_eq!(
            parse_span_id("01"),
            Err(SpanIdError::Length("01".to_string()))
        );
        assert!(matches!(
            parse_span_id("zz00000000000000"),
            Err(SpanIdError::NotHex(_))
        ));
        assert!(matches!(
            parse_span_id("é000000000000000"),
            Err(SpanIdError::Length(_) | SpanIdError::NotHex(_))
        ));
    }

    #[test]
    fn trace_ids_parse_as_written_and_refuse_garbage() {
        let hex = "0102030405060708090a0b0c0d0e0F10";
        let id = parse_trace_id(hex).unwrap();
        assert_eq!(id, std::array::from_fn(|i| i as u8 + 1));
        assert_eq!(format_trace_id(&id), hex.to_lowercase());
        for bad in ["", "01", &"0".repeat(31), &"0".repeat(33), &"g".repeat(32)] {
            assert_eq!(
                parse_trace_id(bad),
                Err(SpanIdError::TraceId(bad.to_string()))
            );
        }
        assert!(parse_trace_id(&"é".repeat(16)).is_err());
    }

    #[test]
    fn merging_keeps_spans_and_traces_apart() {
        let s = |span_id, t: u8, stack, value| SpanSample {
            span_id,
            stack,
            value,
            trace_id: [t; 16],
        };
        let merged = merge_span_samples(vec![
            s(1, 0, 5, 2),
            s(0, 9, 5, 3),
            s(1, 0, 5, 4),
            s(1, 9, 5, 1),
        ])
        .unwrap();
        assert_eq!(
            merged.to_vec(),
            vec![s(0, 9, 5, 3), s(1, 0, 5, 6), s(1, 9, 5, 1)]
        );
        assert!(merge_span_samples(vec![]).is_none());
    }
}
