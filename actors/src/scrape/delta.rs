//! Cumulative → delta: Go's `net/http/pprof` allocation, mutex and block
//! profiles count from process start; stored profiles must cover one scrape
//! interval each, so each is diffed against the previous scrape of its target.

use std::collections::HashMap;

use ignis_storage::proto::google::v1 as pprof;
use xxhash_rust::xxh3::Xxh3;

/// What [`DeltaState::apply`] made of a scraped profile.
#[derive(Debug)]
pub enum DeltaOutcome {
    /// The first profile of the target: kept as the baseline, nothing to store.
    Baseline,
    /// A counter went backwards (the process restarted): the profile became
    /// the new baseline and nothing is stored.
    Reset,
    /// The difference to the previous scrape (gauge columns as scraped).
    Delta(Box<pprof::Profile>),
}

/// The last cumulative values of one target's profile, per stack.
#[derive(Debug, Default)]
pub struct DeltaState {
    baseline: Option<HashMap<u64, Vec<i64>>>,
}

impl DeltaState {
    /// Forgets the baseline (the next profile starts a new one).
    pub fn clear(&mut self) {
        self.baseline = None;
    }

    /// Diffs the columns flagged in `cumulative` against the previous profile
    /// and replaces the baseline. Samples whose output values are all zero are
    /// dropped; samples of the same stack and labels are merged.
    pub fn apply(&mut self, mut p: pprof::Profile, cumulative: &[bool]) -> DeltaOutcome {
        let width = p.sample_type.len();
        let keys: Vec<u64> = p.sample.iter().map(|s| sample_key(&p, s)).collect();
        // Current cumulative values per key, and the first sample of each key.
        let mut current: HashMap<u64, (usize, Vec<i64>)> = HashMap::with_capacity(keys.len());
        for (i, (s, &key)) in p.sample.iter().zip(&keys).enumerate() {
            let entry = current.entry(key).or_insert_with(|| (i, vec![0; width]));
            for (acc, v) in entry.1.iter_mut().zip(&s.value) {
                *acc = acc.saturating_add(*v);
            }
        }
        let values: HashMap<u64, Vec<i64>> =
            current.iter().map(|(k, (_, v))| (*k, v.clone())).collect();
        let Some(previous) = self.baseline.replace(values) else {
            return DeltaOutcome::Baseline;
        };
        let is_cumulative = |c: usize| cumulative.get(c).copied().unwrap_or(false);
        let mut out_values: HashMap<u64, Vec<i64>> = HashMap::with_capacity(current.len());
        for (key, (_, cur)) in &current {
            let prev = previous.get(key);
            let mut out = Vec::with_capacity(width);
            for (c, &v) in cur.iter().enumerate() {
                if !is_cumulative(c) {
                    out.push(v);
                    continue;
                }
                let before = prev.and_then(|p| p.get(c)).copied().unwrap_or(0);
                let d = v.saturating_sub(before);
                if d < 0 {
                    return DeltaOutcome::Reset;
                }
                out.push(d);
            }
            out_values.insert(*key, out);
        }
        let samples = std::mem::take(&mut p.sample);
        p.sample = samples
            .into_iter()
            .enumerate()
            .filter_map(|(i, mut s)| {
                let key = keys[i];
                // Only the first sample of a key carries the merged values.
                if current.get(&key).map(|(first, _)| *first) != Some(i) {
                    return None;
                }
                let v = out_values.remove(&key)?;
                if v.iter().all(|&x| x == 0) {
                    return None;
                }
                s.value = v;
                Some(s)
            })
            .collect();
        DeltaOutcome::Delta(Box::new(p))
    }
}

/// A key for a sample that is stable across scrapes of the same process:
/// its frames (by address, or by function name, file and line when
/// symbolized without addresses) and its string labels. Location ids are
/// not stable between two profiles and are not used.
fn sample_key(p: &pprof::Profile, s: &pprof::Sample) -> u64 {
    let string = |i: i64| {
        p.string_table
            .get(usize::try_from(i).unwrap_or(usize::MAX))
            .map_or("", String::as_str)
    };
    let mut h = Xxh3::new();
    for id in &s.location_id {
        let Some(loc) = location(p, *id) else {
            h.update(&id.to_le_bytes());
            continue;
        };
        h.update(&loc.address.to_le_bytes());
        for line in &loc.line {
            if let Some(f) = function(p, line.function_id) {
                h.update(string(f.name).as_bytes());
                h.update(&[0]);
                h.update(string(f.filename).as_bytes());
            }
            h.update(&line.line.to_le_bytes());
        }
        h.update(&[0xff]);
    }
    h.update(&[0xfe]);
    for l in &s.label {
        if l.str != 0 {
            h.update(string(l.key).as_bytes());
            h.update(&[0]);
            h.update(string(l.str).as_bytes());
            h.update(&[0]);
        }
    }
    h.digest()
}

fn location(p: &pprof::Profile, id: u64) -> Option<&pprof::Location> {
    // Go writes locations with ids 1..=n in order; fall back to a search.
    let by_index = usize::try_from(id)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| p.location.get(i))
        .filter(|l| l.id == id);
    by_index.or_else(|| p.location.iter().find(|l| l.id == id))
}

fn function(p: &pprof::Profile, id: u64) -> Option<&pprof::Function> {
    let by_index = usize::try_from(id)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| p.function.get(i))
        .filter(|f| f.id == id);
    by_index.or_else(|| p.function.iter().find(|f| f.id == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile with stacks `[1]`, `[1, 2]` (addresses 0x10, 0x20) and the
    /// given values, location ids shuffled by `offset` to show they do not matter.
    fn profile(values: &[(Vec<u64>, [i64; 2])], offset: u64) -> pprof::Profile {
        let loc = |addr: u64| pprof::Location {
            id: addr / 0x10 + offset,
            address: addr,
            ..Default::default()
        };
        pprof::Profile {
            sample_type: vec![Default::default(), Default::default()],
            location: vec![loc(0x10), loc(0x20)],
            sample: values
                .iter()
                .map(|(addrs, v)| pprof::Sample {
                    location_id: addrs.iter().map(|a| a / 0x10 + offset).collect(),
                    value: v.to_vec(),
                    label: vec![],
                })
                .collect(),
            string_table: vec![String::new()],
            ..Default::default()
        }
    }

    fn values(p: &pprof::Profile) -> Vec<Vec<i64>> {
        let mut v: Vec<_> = p.sample.iter().map(|s| s.value.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn first_profile_is_the_baseline_then_deltas_follow() {
        let mut d = DeltaState::default();
        let both = [true, true];
        let p1 = profile(&[(vec![0x10], [1, 100]), (vec![0x10, 0x20], [2, 200])], 0);
        assert!(matches!(d.apply(p1, &both), DeltaOutcome::Baseline));
        // Same stacks, different location ids; one unchanged, one grown, one new.
        let p2 = profile(
            &[
                (vec![0x10], [1, 100]),
                (vec![0x10, 0x20], [5, 260]),
                (vec![0x20], [3, 30]),
            ],
            7,
        );
        let DeltaOutcome::Delta(out) = d.apply(p2, &both) else {
            panic!("expected a delta");
        };
        assert_eq!(values(&out), vec![vec![3, 30], vec![3, 60]]);
    }

    #[test]
    fn gauge_columns_pass_through_and_keep_their_samples() {
        let mut d = DeltaState::default();
        let first_only = [true, false];
        d.apply(profile(&[(vec![0x10], [4, 50])], 0), &first_only);
        let DeltaOutcome::Delta(out) = d.apply(profile(&[(vec![0x10], [4, 70])], 0), &first_only)
        else {
            panic!("expected a delta");
        };
        assert_eq!(values(&out), vec![vec![0, 70]]);
    }

    #[test]
    fn a_counter_going_backwards_resets_the_baseline() {
        let mut d = DeltaState::default();
        let both = [true, true];
        d.apply(profile(&[(vec![0x10], [10, 100])], 0), &both);
        assert!(matches!(
            d.apply(profile(&[(vec![0x10], [2, 20])], 0), &both),
            DeltaOutcome::Reset
        ));
        let DeltaOutcome::Delta(out) = d.apply(profile(&[(vec![0x10], [3, 25])], 0), &both) else {
            panic!("expected a delta");
        };
        assert_eq!(values(&out), vec![vec![1, 5]]);
    }

    #[test]
    fn duplicate_stacks_are_merged() {
        let mut d = DeltaState::default();
        let both = [true, true];
        d.apply(profile(&[(vec![0x10], [1, 1])], 0), &both);
        let p = profile(&[(vec![0x10], [2, 2]), (vec![0x10], [3, 3])], 0);
        let DeltaOutcome::Delta(out) = d.apply(p, &both) else {
            panic!("expected a delta");
        };
        assert_eq!(values(&out), vec![vec![4, 4]]);
    }
}
