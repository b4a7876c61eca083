//! Builds one pprof per profile kind: interned strings, one function per
//! frame name, one location per (function, line), interned stacks, and one
//! sample per distinct (stack, labels) whose values add up. Adding to a
//! sample costs O(labels), whatever the stack depth.

use std::collections::HashMap;

use ignis_storage::proto::google::v1 as pprof;

use super::mapping::Kind;

/// A sample's identity: its interned stack and its label string ids.
type SampleKey = (u32, Vec<(i64, i64)>);

/// More distinct samples than the profile may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManySamples(pub usize);

/// A pprof under construction.
#[derive(Debug)]
pub struct ProfileBuilder {
    profile: pprof::Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<i64, u64>,
    locations: HashMap<(u64, i64), u64>,
    stacks: HashMap<Vec<u64>, u32>,
    stack_list: Vec<Vec<u64>>,
    samples: HashMap<SampleKey, usize>,
    max_samples: usize,
}

impl ProfileBuilder {
    /// An empty profile of `kind` at `time_ns`, lasting `duration_ns`, with
    /// at most `max_samples` distinct samples (0: no limit).
    pub fn new(
        kind: Kind,
        time_ns: i64,
        duration_ns: i64,
        period: i64,
        max_samples: usize,
    ) -> Self {
        let mut b = Self {
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
            stacks: HashMap::new(),
            stack_list: Vec::new(),
            samples: HashMap::new(),
            max_samples,
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

    /// Interns a stack of location ids (leaf first).
    pub fn stack(&mut self, locations: Vec<u64>) -> u32 {
        if let Some(&id) = self.stacks.get(&locations) {
            return id;
        }
        let id = self.stack_list.len() as u32;
        self.stack_list.push(locations.clone());
        self.stacks.insert(locations, id);
        id
    }

    /// Adds `values` to the sample of this interned stack and labels.
    pub fn add<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        stack: u32,
        labels: &[(K, V)],
        values: &[i64],
    ) -> Result<(), TooManySamples> {
        let mut label_ids: Vec<(i64, i64)> = labels
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .map(|(k, v)| (self.string(k), self.string(v)))
            .collect();
        label_ids.sort_unstable();
        let n = self.profile.sample_type.len();
        let key = (stack, label_ids);
        let index = match self.samples.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.profile.sample.len();
                if self.max_samples > 0 && i >= self.max_samples {
                    return Err(TooManySamples(self.max_samples));
                }
                self.profile.sample.push(pprof::Sample {
                    location_id: self
                        .stack_list
                        .get(stack as usize)
                        .cloned()
                        .unwrap_or_default(),
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
        Ok(())
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
        let mut b = ProfileBuilder::new(Kind::Lock, 5, 7, 10, 3);
        let a = b.location("A.a", 3);
        let a2 = b.location("A.a", 4);
        let c = b.location("C.c", 0);
        assert_eq!((a, a2, c, b.location("A.a", 3)), (1, 2, 3, 1));
        let (s1, s2) = (b.stack(vec![a, c]), b.stack(vec![a2, c]));
        assert_eq!((s1, s2, b.stack(vec![a, c])), (0, 1, 0));
        let none: &[(&str, &str)] = &[];
        b.add(s1, none, &[1, 100]).unwrap();
        b.add(s1, none, &[1, 50]).unwrap();
        b.add(s1, &[("k", "v")], &[1, 5]).unwrap();
        b.add(s2, &[("k", "")], &[1, 1]).unwrap();
        assert_eq!(b.add(s2, &[("k", "w")], &[1, 1]), Err(TooManySamples(3)));
        b.add(s1, &[("k", "v")], &[1, 5]).unwrap();
        let p = b.finish();
        assert_eq!(p.sample[1].value, vec![2, 10]);
        assert_eq!(p.sample[2].location_id, vec![a2, c]);
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
