//! Builds one pprof per profile kind: interned strings, one function per
//! frame name, one location per (function, line), and one sample per
//! distinct (stack, labels) whose values add up.

use std::collections::HashMap;

use ignis_storage::proto::google::v1 as pprof;

use super::mapping::Kind;

/// A sample's identity: its location ids (leaf first) and label string ids.
type SampleKey = (Vec<u64>, Vec<(i64, i64)>);

/// A pprof under construction.
#[derive(Debug)]
pub struct ProfileBuilder {
    kind: Kind,
    profile: pprof::Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<i64, u64>,
    locations: HashMap<(u64, i64), u64>,
    samples: HashMap<SampleKey, usize>,
}

impl ProfileBuilder {
    /// An empty profile of `kind` at `time_ns`, lasting `duration_ns`.
    pub fn new(kind: Kind, time_ns: i64, duration_ns: i64, period: i64) -> Self {
        let mut b = Self {
            kind,
            profile: pprof::Profile {
                time_nanos: time_ns,
                duration_nanos: duration_ns,
                mapping: vec![pprof::Mapping {
                    id: 1,
                    has_functions: true,
                    ..Default::default()
                }],
                ..Default::default()
            },
            strings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
            samples: HashMap::new(),
        };
        b.string("");
        for (t, u) in kind.sample_types() {
            let vt = pprof::ValueType {
                r#type: b.string(t),
                unit: b.string(u),
            };
            b.profile.sample_type.push(vt);
        }
        if let Some((t, u)) = kind.period_type() {
            b.profile.period_type = Some(pprof::ValueType {
                r#type: b.string(t),
                unit: b.string(u),
            });
            b.profile.period = if matches!(kind, Kind::Cpu | Kind::Wall) {
                period
            } else {
                0
            };
        }
        b
    }

    /// The kind of profile being built.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Interns a string.
    pub fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    /// The location of frame `name` at `line`.
    pub fn location(&mut self, name: &str, line: i64) -> u64 {
        let name = self.string(name);
        let next_fn = self.profile.function.len() as u64 + 1;
        let function = *self.functions.entry(name).or_insert(next_fn);
        if function == next_fn {
            self.profile.function.push(pprof::Function {
                id: function,
                name,
                ..Default::default()
            });
        }
        let next_loc = self.profile.location.len() as u64 + 1;
        let location = *self.locations.entry((function, line)).or_insert(next_loc);
        if location == next_loc {
            self.profile.location.push(pprof::Location {
                id: location,
                mapping_id: 1,
                line: vec![pprof::Line {
                    function_id: function,
                    line,
                }],
                ..Default::default()
            });
        }
        location
    }

    /// Adds `values` to the sample of this stack (leaf first) and labels.
    pub fn add<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        stack: &[u64],
        labels: &[(K, V)],
        values: &[i64],
    ) {
        let mut label_ids: Vec<(i64, i64)> = labels
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .map(|(k, v)| (self.string(k), self.string(v)))
            .collect();
        label_ids.sort_unstable();
        let n = self.profile.sample_type.len();
        let key = (stack.to_vec(), label_ids);
        let index = match self.samples.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.profile.sample.len();
                self.profile.sample.push(pprof::Sample {
                    location_id: key.0.clone(),
                    value: vec![0; n],
                    label: key
                        .1
                        .iter()
                        .map(|&(key, str)| pprof::Label {
                            key,
                            str,
                            ..Default::default()
                        })
                        .collect(),
                });
                self.samples.insert(key, i);
                i
            }
        };
        if let Some(sample) = self.profile.sample.get_mut(index) {
            for (dst, v) in sample.value.iter_mut().zip(values) {
                *dst = dst.saturating_add(*v);
            }
        }
    }

    /// The finished pprof.
    pub fn finish(self) -> pprof::Profile {
        self.profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jfr_builder_merges_stacks_and_labels() {
        let mut b = ProfileBuilder::new(Kind::Lock, 5, 7, 10);
        let a = b.location("A.a", 3);
        let a2 = b.location("A.a", 4);
        let c = b.location("C.c", 0);
        assert_eq!((a, a2, c, b.location("A.a", 3)), (1, 2, 3, 1));
        b.add::<&str, &str>(&[a, c], &[], &[1, 100]);
        b.add::<&str, &str>(&[a, c], &[], &[1, 50]);
        b.add(&[a, c], &[("k", "v")], &[1, 5]);
        b.add(&[a2, c], &[("k", "")], &[1, 1]);
        let p = b.finish();
        assert_eq!(p.function.len(), 2);
        assert_eq!(p.sample.len(), 3);
        assert_eq!(p.sample[0].value, vec![2, 150]);
        assert_eq!(p.sample[1].label.len(), 1);
        assert!(p.sample[2].label.is_empty());
        assert_eq!(p.period, 0);
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(s(p.sample_type[1].r#type), "delay");
        assert_eq!(s(p.period_type.as_ref().map_or(0, |t| t.r#type)), "mutex");
        assert_eq!((p.time_nanos, p.duration_nanos), (5, 7));
    }
}
