//! Series label sets: sorted, unique by name, with a stable fingerprint.

use std::fmt;

use crate::proto::types::v1::LabelPair;

/// Well-known label names, as Pyroscope spells them.
pub mod names {
    /// The metric (profile kind) name, e.g. `process_cpu`.
    pub const METRIC_NAME: &str = "__name__";
    /// The service the profile belongs to.
    pub const SERVICE_NAME: &str = "service_name";
    /// A private copy of `service_name`.
    pub const PRIVATE_SERVICE_NAME: &str = "__service_name__";
    /// The 5-part profile type id.
    pub const PROFILE_TYPE: &str = "__profile_type__";
    /// The sample type of the series.
    pub const TYPE: &str = "__type__";
    /// The sample unit of the series.
    pub const UNIT: &str = "__unit__";
    /// The period type of the profile.
    pub const PERIOD_TYPE: &str = "__period_type__";
    /// The period unit of the profile.
    pub const PERIOD_UNIT: &str = "__period_unit__";
    /// Whether the client already sent deltas.
    pub const DELTA: &str = "__delta__";
    /// Per-process session id set by some SDKs.
    pub const SESSION_ID: &str = "__session_id__";
    /// The profiler that produced the data.
    pub const SPY_NAME: &str = "pyroscope_spy";
}

/// A set of labels, kept sorted by name with unique names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// An empty label set.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Builds a label set; on duplicate names the last value wins.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut labels = Self::new();
        for (k, v) in pairs {
            labels.insert(k, v);
        }
        labels
    }

    /// Builds a label set from proto label pairs; the first of duplicate names is reported.
    pub fn from_proto(pairs: &[LabelPair]) -> Result<Self, String> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = v.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(w[0].0.clone());
        }
        Ok(Self(v))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Sets `name` to `value`, replacing any previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(&name)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// Sets `name` only if it is absent.
    pub fn insert_if_absent(&mut self, name: &str, value: impl Into<String>) {
        if let Err(i) = self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            self.0.insert(i, (name.to_string(), value.into()));
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.0.remove(i).1)
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    /// Iterates `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A stable 64-bit hash of the label set, used to identify a series.
    pub fn fingerprint(&self) -> u64 {
        // xxh3 of `k 0xff v 0xff` for every pair, in one shot over one
        // buffer (the same hash as streaming it, without the streaming
        // state); on the stack unless the labels are long.
        let len: usize = self.0.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut stack = [0u8; 512];
        let mut heap = Vec::new();
        let buf: &mut [u8] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap
        };
        let mut at = 0;
        for (k, v) in &self.0 {
            for part in [k.as_bytes(), &[0xff], v.as_bytes(), &[0xff]] {
                buf[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
        }
        xxhash_rust::xxh3::xxh3_64(buf)
    }

    /// Converts to proto label pairs.
    pub fn to_proto(&self) -> Vec<LabelPair> {
        self.0
            .iter()
            .map(|(k, v)| LabelPair {
                name: k.clone(),
                value: v.clone(),
            })
            .collect()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_stable_fingerprint() {
        let a = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3")]);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "3")]);
        let b = Labels::from_pairs([("a", "1"), ("b", "3")]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(
            Labels::from_pairs([("ab", "c")]).fingerprint(),
            Labels::from_pairs([("a", "bc")]).fingerprint()
        );
        assert_eq!(a.to_string(), r#"{a="1", b="3"}"#);
    }

    /// The fingerprint is stored (series ids in blocks): short and long
    /// label sets hash exactly as the streamed `k 0xff v 0xff` pairs do.
    #[test]
    fn fingerprint_is_the_streamed_xxh3_of_the_pairs() {
        let streamed = |l: &Labels| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for (k, v) in l.iter() {
                h.update(k.as_bytes());
                h.update(&[0xff]);
                h.update(v.as_bytes());
                h.update(&[0xff]);
            }
            h.digest()
        };
        let long = "x".repeat(600);
        for l in [
            Labels::from_pairs([("service_name", "api"), ("pod", "api-7")]),
            Labels::from_pairs([("a", long.as_str())]),
            Labels::default(),
        ] {
            assert_eq!(l.fingerprint(), streamed(&l));
        }
        // A value known before this change: the hash never moves.
        assert_eq!(
            Labels::from_pairs([("a", "1")]).fingerprint(),
            xxhash_rust::xxh3::xxh3_64(b"a\xff1\xff")
        );
    }

    #[test]
    fn duplicate_proto_names_are_reported() {
        let pairs = vec![
            LabelPair {
                name: "x".into(),
                value: "1".into(),
            },
            LabelPair {
                name: "x".into(),
                value: "2".into(),
            },
        ];
        assert_eq!(Labels::from_proto(&pairs), Err("x".to_string()));
    }
}
