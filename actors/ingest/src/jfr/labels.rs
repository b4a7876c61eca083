//! The optional `labels` part of a JFR upload: a `LabelsSnapshot` protobuf
//! (grafana/jfr-parser `pprof/jfr_labels.proto`) mapping the `contextId` of
//! events to label sets.

use std::collections::HashMap;

use prost::Message;

use crate::error::{IngestError, Reason};
use crate::gzip::maybe_gunzip;

/// One context: label key string id → value string id.
#[derive(Clone, PartialEq, Message)]
pub struct Context {
    /// Key string id → value string id.
    #[prost(map = "int64, int64", tag = "1")]
    pub labels: HashMap<i64, i64>,
}

/// All contexts of a recording and the strings they use.
#[derive(Clone, PartialEq, Message)]
pub struct LabelsSnapshot {
    /// Context id → labels.
    #[prost(map = "int64, message", tag = "1")]
    pub contexts: HashMap<i64, Context>,
    /// String id → string.
    #[prost(map = "int64, string", tag = "2")]
    pub strings: HashMap<i64, String>,
}

impl LabelsSnapshot {
    /// Decodes a snapshot (gzip or plain), bounded by `limit` bytes once inflated.
    pub fn decode_part(data: &[u8], limit: usize) -> Result<Self, IngestError> {
        let data = maybe_gunzip(data, limit, "labels")?;
        Self::decode(&*data)
            .map_err(|e| IngestError::malformed(format!("failed to parse JFR labels: {e}")))
    }

    /// Refuses contexts with more labels than a sample may carry (0: no limit),
    /// before any of them is copied onto samples.
    pub fn check_labels_limit(&self, limit: usize) -> Result<(), IngestError> {
        match self.contexts.values().map(|c| c.labels.len()).max() {
            Some(n) if limit > 0 && n > limit => Err(IngestError::new(
                Reason::SampleLabelsLimit,
                format!(
                    "a JFR label context exceeds the sample labels limit (max_profile_stacktrace_sample_labels, actual: {n}, limit: {limit})"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The string with this id (empty when unknown).
    pub fn string(&self, id: i64) -> &str {
        self.strings.get(&id).map_or("", String::as_str)
    }

    /// The labels of context `id`, as `(key, value)` strings.
    pub fn context(&self, id: i64) -> Vec<(&str, &str)> {
        let Some(c) = self.contexts.get(&id) else {
            return Vec::new();
        };
        c.labels
            .iter()
            .map(|(&k, &v)| (self.string(k), self.string(v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jfr_labels_snapshot_round_trips() {
        let snap = LabelsSnapshot {
            contexts: [(
                7,
                Context {
                    labels: [(1, 2)].into(),
                },
            )]
            .into(),
            strings: [(1, "thread_name".to_string()), (2, "pool-1".to_string())].into(),
        };
        let back = LabelsSnapshot::decode_part(&snap.encode_to_vec(), 1 << 20).unwrap();
        assert_eq!(back.context(7), vec![("thread_name", "pool-1")]);
        assert!(back.context(8).is_empty());
        assert!(LabelsSnapshot::decode_part(&[0xff, 0xff], 1 << 20).is_err());
        assert!(back.check_labels_limit(1).is_ok());
        assert!(back.check_labels_limit(0).is_ok());
        let e = LabelsSnapshot {
            contexts: [(
                1,
                Context {
                    labels: [(1, 2), (2, 1)].into(),
                },
            )]
            .into(),
            ..back
        }
        .check_labels_limit(1)
        .unwrap_err();
        assert_eq!(e.reason, Reason::SampleLabelsLimit);
    }
}
