//! `SelectHeatmap`: how individual profiles' totals (or, for a span
//! heatmap, each span's share of a profile) are distributed over time and
//! value. Each time slot is right-closed, `(t − step, t]`, aligned
//! as `SelectSeries` buckets are; values fall into logarithmic buckets, four
//! per doubling (bucket `k` holds `[2^(k/4), 2^((k+1)/4))`, values ≤ 0 one
//! bucket of their own at 0), so slots built over parts of a range add up
//! ([`HeatmapBuilder::absorb`]) and every slot shares the same bounds.

use std::collections::BTreeMap;

use ignis_storage::Labels;
use ignis_storage::proto::types::v1 as types;

use crate::source::{ProfileTotal, SpanTotal};
use crate::timeseries::{Exemplar, bucket_end, group_key};

/// Value buckets per doubling.
const PER_DOUBLING: f64 = 4.0;

/// The bucket of values ≤ 0.
const NON_POSITIVE: i32 = i32::MIN;

/// The value bucket of `v`: the largest `k` with `2^(k/4) ≤ v`.
pub fn value_bucket(v: i64) -> i32 {
    if v <= 0 {
        return NON_POSITIVE;
    }
    let v = v as f64;
    let mut k = (v.log2() * PER_DOUBLING).floor() as i32;
    // Correct the float estimate at exact bounds, either way.
    while lower_bound(k + 1) <= v {
        k += 1;
    }
    while lower_bound(k) > v {
        k -= 1;
    }
    k
}

/// The smallest value of bucket `k`.
pub fn lower_bound(k: i32) -> f64 {
    if k == NON_POSITIVE {
        0.0
    } else {
        (f64::from(k) / PER_DOUBLING).exp2()
    }
}

/// One cell of a heatmap: how many profiles, and the exemplar.
#[derive(Debug, Default)]
struct Cell {
    count: u64,
    exemplar: Option<Exemplar>,
}

/// One series of a heatmap: its cells by (slot end ms, value bucket), and
/// the sum of its profiles' totals (for `limit`; exact, so parts add up to
/// the sum of one pass).
#[derive(Debug, Default)]
struct Group {
    cells: BTreeMap<(i64, i32), Cell>,
    sum: i128,
}

/// Builds the heatmap series of one query.
pub struct HeatmapBuilder {
    group_by: Vec<String>,
    start_ms: i64,
    step_ms: i64,
    exemplars: bool,
    groups: BTreeMap<Labels, Group>,
}

impl HeatmapBuilder {
    /// Slots of `step_ms` aligned to `start_ms − step_ms`; profiles grouped by `group_by`.
    pub fn new(group_by: Vec<String>, start_ms: i64, step_ms: i64, exemplars: bool) -> Self {
        Self {
            group_by,
            start_ms,
            step_ms: step_ms.max(1),
            exemplars,
            groups: BTreeMap::new(),
        }
    }

    /// Adds one profile.
    pub fn add(&mut self, labels: &Labels, t: ProfileTotal) {
        self.add_span(labels, t.into());
    }

    /// Adds one span of a profile (a span heatmap; span 0: a whole profile).
    pub fn add_span(&mut self, labels: &Labels, t: SpanTotal) {
        let key = group_key(&self.group_by, labels);
        let slot = bucket_end(t.timestamp_ns, self.start_ms, self.step_ms);
        let group = self.groups.entry(key).or_default();
        group.sum += i128::from(t.value);
        let cell = group
            .cells
            .entry((slot, value_bucket(t.value)))
            .or_default();
        cell.count += 1;
        if self.exemplars {
            Exemplar::offer_span(&mut cell.exemplar, t, labels);
        }
    }

    /// Adds the profiles `other` counted (another part of the range, with
    /// the same slots): counts add up, each cell keeps the better exemplar.
    pub fn absorb(&mut self, other: HeatmapBuilder) {
        for (labels, theirs) in other.groups {
            let group = self.groups.entry(labels).or_default();
            group.sum += theirs.sum;
            for (at, cell) in theirs.cells {
                let mine = group.cells.entry(at).or_default();
                mine.count += cell.count;
                if let Some(e) = cell.exemplar
                    && mine.exemplar.as_ref().is_none_or(|m| e.better(m))
                {
                    mine.exemplar = Some(e);
                }
            }
        }
    }

    /// The series, sorted by labels; with `limit`, the `limit` with the
    /// largest sum of profile totals.
    pub fn finish(self, limit: Option<usize>) -> Vec<types::HeatmapSeries> {
        let mut groups: Vec<(Labels, Group)> = self.groups.into_iter().collect();
        if let Some(limit) = limit.filter(|&l| l > 0 && l < groups.len()) {
            // Stable: equal sums keep label order.
            groups.sort_by_key(|g| std::cmp::Reverse(g.1.sum));
            groups.truncate(limit);
            groups.sort_by(|a, b| a.0.cmp(&b.0));
        }
        groups
            .into_iter()
            .map(|(labels, group)| {
                let mut slots: Vec<types::HeatmapSlot> = Vec::new();
                for ((ts, k), cell) in group.cells {
                    if slots.last().is_none_or(|s| s.timestamp != ts) {
                        slots.push(types::HeatmapSlot {
                            timestamp: ts,
                            ..Default::default()
                        });
                    }
                    let Some(slot) = slots.last_mut() else {
                        continue;
                    };
                    slot.y_min.push(lower_bound(k));
                    slot.counts
                        .push(i32::try_from(cell.count).unwrap_or(i32::MAX));
                    slot.exemplars
                        .extend(cell.exemplar.as_ref().map(Exemplar::to_proto));
                }
                types::HeatmapSeries {
                    labels: labels.to_proto(),
                    slots,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_into_log_buckets_exactly_at_their_bounds() {
        assert_eq!(value_bucket(0), NON_POSITIVE);
        assert_eq!(value_bucket(-5), NON_POSITIVE);
        assert_eq!(value_bucket(1), 0);
        assert_eq!(value_bucket(2), 4);
        assert_eq!(value_bucket(3), 6); // 2^(6/4) ≈ 2.83 ≤ 3 < 2^(7/4) ≈ 3.36
        assert_eq!(value_bucket(1 << 40), 160);
        assert_eq!(value_bucket((1 << 40) - 1), 159);
        for v in [1i64, 7, 1000, 8_710_000_000, i64::MAX] {
            let k = value_bucket(v);
            assert!(
                lower_bound(k) <= v as f64 && (v as f64) < lower_bound(k + 1),
                "{v}"
            );
        }
    }

    #[test]
    fn parts_absorbed_equal_one_pass() {
        let pods = [
            Labels::from_pairs([("pod", "a")]),
            Labels::from_pairs([("pod", "b")]),
            Labels::from_pairs([("pod", "c")]),
        ];
        let t = |ms: i64, id: u64, value: i64| ProfileTotal {
            timestamp_ns: ms * 1_000_000,
            profile_id: ignis_storage::ProfileId::from_key(id),
            value,
        };
        let profiles: Vec<(usize, ProfileTotal)> = (0..300u64)
            .map(|i| {
                let v = (i as i64 * 7919) % 1000 + if i % 3 == 0 { 10_000 } else { 1 };
                ((i % 3) as usize, t(i as i64 * 997, i + 1, v))
            })
            .collect();
        for limit in [None, Some(1), Some(2)] {
            let mut whole = HeatmapBuilder::new(vec!["pod".into()], 5, 20_000, true);
            for (p, total) in &profiles {
                whole.add(&pods[*p], *total);
            }
            // Three parts cut anywhere (not on slot bounds), absorbed in order.
            let mut parts: Vec<HeatmapBuilder> = (0..3)
                .map(|_| HeatmapBuilder::new(vec!["pod".into()], 5, 20_000, true))
                .collect();
            for (p, total) in &profiles {
                let part = match total.timestamp_ns / 1_000_000 {
                    ..=99_999 => 0,
                    100_000..=200_002 => 1,
                    _ => 2,
                };
                parts[part].add(&pods[*p], *total);
            }
            let mut merged = parts.remove(0);
            for part in parts {
                merged.absorb(part);
            }
            assert_eq!(merged.finish(limit), whole.finish(limit), "{limit:?}");
        }
    }

    #[test]
    fn cells_count_every_profile_once_with_the_highest_as_exemplar() {
        let a = Labels::from_pairs([("pod", "a")]);
        let b = Labels::from_pairs([("pod", "b")]);
        let mut h = HeatmapBuilder::new(vec!["pod".into()], 0, 10_000, true);
        let t = |ms: i64, id: u64, value: i64| ProfileTotal {
            timestamp_ns: ms * 1_000_000,
            profile_id: ignis_storage::ProfileId::from_key(id),
            value,
        };
        // pod a: two profiles in one cell, one in the next slot.
        h.add(&a, t(1_000, 1, 100));
        h.add(&a, t(2_000, 2, 105));
        h.add(&a, t(15_000, 3, 100));
        // pod b: far apart in value within one slot.
        h.add(&b, t(3_000, 4, 10));
        h.add(&b, t(4_000, 5, 10_000));
        let series = h.finish(None);
        assert_eq!(series.len(), 2);
        let sa = &series[0].slots;
        assert_eq!(
            sa.iter().map(|s| s.timestamp).collect::<Vec<_>>(),
            vec![10_000, 20_000]
        );
        assert_eq!(sa[0].counts, vec![2]);
        assert_eq!(sa[0].y_min, vec![lower_bound(value_bucket(100))]);
        assert_eq!(sa[0].exemplars[0].value, 105);
        let sb = &series[1].slots;
        assert_eq!(sb.len(), 1);
        assert_eq!(sb[0].counts, vec![1, 1]);
        assert!(sb[0].y_min[0] < sb[0].y_min[1]);
        assert_eq!(sb[0].exemplars.len(), 2);
        let total: i32 = series
            .iter()
            .flat_map(|s| &s.slots)
            .flat_map(|s| &s.counts)
            .sum();
        assert_eq!(total, 5);
        // limit keeps the series with the largest sum of totals.
        let mut h = HeatmapBuilder::new(vec!["pod".into()], 0, 10_000, false);
        h.add(&a, t(1_000, 1, 100));
        h.add(&b, t(1_000, 2, 1_000));
        let top = h.finish(Some(1));
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].labels[0].value, "b");
        assert!(top[0].slots[0].exemplars.is_empty());
    }
}
