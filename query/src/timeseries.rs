//! Time series of profile totals: `SelectSeries` points and the legacy timeline.

use std::collections::BTreeMap;

use ignis_storage::Labels;
use ignis_storage::proto::types::v1 as types;

/// How points in one step are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Sum of profile totals.
    Sum,
    /// Mean of profile totals.
    Average,
}

/// What one `SelectSeries` reads: its selection, grouping, buckets and
/// call site, known before any data is read ([`crate::Scope::series`]), so
/// the query-frontend can have parts of its range bucketed apart.
#[derive(Debug, Clone)]
pub struct SeriesPlan {
    /// The selection whose profiles are counted.
    pub sel: crate::source::Selection,
    /// Labels the series are grouped by.
    pub group_by: Vec<String>,
    /// The query's start (ms): buckets align to `start − step`.
    pub start_ms: i64,
    /// Bucket length (ms).
    pub step_ms: i64,
    /// Root-first frames a stack must start with to count (empty: all).
    pub call_site: Vec<String>,
}

/// Bucketed totals by group: per label set, per bucket end (ms), the sum
/// of the profile totals in it and how many profiles.
pub type SeriesGroups = BTreeMap<Labels, BTreeMap<i64, (f64, u64)>>;

/// Buckets profile totals into series grouped by `group_by` labels.
pub struct SeriesBuilder {
    group_by: Vec<String>,
    start_ms: i64,
    step_ms: i64,
    aggregation: Aggregation,
    groups: BTreeMap<Labels, BTreeMap<i64, (f64, u64)>>,
}

impl SeriesBuilder {
    /// Buckets are right-closed, `(t − step, t]`, aligned to `start − step`,
    /// and each point carries its bucket's end.
    pub fn new(
        group_by: Vec<String>,
        start_ms: i64,
        step_ms: i64,
        aggregation: Aggregation,
    ) -> Self {
        Self {
            group_by,
            start_ms,
            step_ms: step_ms.max(1),
            aggregation,
            groups: BTreeMap::new(),
        }
    }

    /// A builder bucketing as `plan` says.
    pub fn of(plan: &SeriesPlan, aggregation: Aggregation) -> Self {
        Self::new(
            plan.group_by.clone(),
            plan.start_ms,
            plan.step_ms,
            aggregation,
        )
    }

    /// Adds bucketed totals built apart (over other profiles, with the same
    /// grouping and buckets): sums and counts add up, so the series equal
    /// those built from all the profiles at once.
    pub fn absorb(&mut self, groups: SeriesGroups) {
        for (labels, points) in groups {
            let into = self.groups.entry(labels).or_default();
            for (ts, (sum, n)) in points {
                let slot = into.entry(ts).or_insert((0.0, 0));
                slot.0 += sum;
                slot.1 += n;
            }
        }
    }

    /// The bucketed totals so far.
    pub fn into_groups(self) -> SeriesGroups {
        self.groups
    }

    /// Adds one profile's total.
    pub fn add(&mut self, labels: &Labels, timestamp_ns: i64, value: i64) {
        let key = Labels::from_pairs(
            self.group_by
                .iter()
                .filter_map(|g| labels.get(g).map(|v| (g.clone(), v.to_string()))),
        );
        let ts_ms = timestamp_ns.div_euclid(1_000_000);
        // Saturating: a start near the ends of time must not wrap.
        let origin = self.start_ms.saturating_sub(self.step_ms);
        let k = ts_ms
            .saturating_sub(origin)
            .saturating_add(self.step_ms - 1)
            .div_euclid(self.step_ms);
        let bucket_end = origin.saturating_add(k.saturating_mul(self.step_ms));
        let slot = self
            .groups
            .entry(key)
            .or_default()
            .entry(bucket_end)
            .or_insert((0.0, 0));
        slot.0 += value as f64;
        slot.1 += 1;
    }

    /// The series, sorted by labels; with `limit`, the top-N by total.
    pub fn finish(self, limit: Option<usize>) -> Vec<types::Series> {
        let mut series: Vec<(f64, types::Series)> = self
            .groups
            .into_iter()
            .map(|(labels, points)| {
                let mut total = 0.0;
                let points = points
                    .into_iter()
                    .map(|(ts, (sum, n))| {
                        total += sum;
                        let value = match self.aggregation {
                            Aggregation::Sum => sum,
                            Aggregation::Average => sum / n as f64,
                        };
                        types::Point {
                            value,
                            timestamp: ts,
                            annotations: vec![],
                            exemplars: vec![],
                        }
                    })
                    .collect();
                (
                    total,
                    types::Series {
                        labels: labels.to_proto(),
                        points,
                    },
                )
            })
            .collect();
        if let Some(limit) = limit.filter(|&l| l > 0 && l < series.len()) {
            series.sort_by(|a, b| b.0.total_cmp(&a.0));
            series.truncate(limit);
            series.sort_by(|a, b| {
                a.1.labels
                    .iter()
                    .map(|l| (&l.name, &l.value))
                    .cmp(b.1.labels.iter().map(|l| (&l.name, &l.value)))
            });
        }
        series.into_iter().map(|(_, s)| s).collect()
    }
}

/// The legacy timeline step in seconds for a range (reference §7.4): range/1500,
/// at least 15 s, rounded to a Grafana-style interval.
pub fn timeline_step_secs(from_ms: i64, until_ms: i64) -> i64 {
    let raw = ((until_ms - from_ms) / 1500).max(15_000);
    const TABLE: [(i64, i64); 25] = [
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (24_300_000, 21_600_000),
        (54_000_000, 43_200_000),
    ];
    let ms = TABLE
        .iter()
        .find(|(limit, _)| raw < *limit)
        .map(|&(_, v)| v)
        .unwrap_or(if raw < 129_600_000 {
            86_400_000
        } else if raw < 864_000_000 {
            604_800_000
        } else {
            2_592_000_000
        });
    (ms / 1000).max(1)
}

/// A legacy flamebearer timeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// Floored start, seconds.
    pub start_time: i64,
    /// One value per step.
    pub samples: Vec<u64>,
    /// Step, seconds.
    pub duration_delta: i64,
    /// Always null.
    pub watermarks: Option<()>,
}

impl Timeline {
    /// An all-zero timeline over `[from, until)`.
    pub fn new(from_ms: i64, until_ms: i64, step_secs: i64) -> Self {
        let step_ms = step_secs * 1000;
        let start = from_ms.div_euclid(step_ms) * step_ms;
        let end = until_ms.div_euclid(step_ms) * step_ms;
        let n = ((end - start) / step_ms).max(0) as usize;
        Self {
            start_time: start / 1000,
            samples: vec![0; n],
            duration_delta: step_secs,
            watermarks: None,
        }
    }

    /// Adds a value at a timestamp; values outside the range are dropped.
    pub fn add(&mut self, timestamp_ns: i64, value: i64) {
        let t = timestamp_ns.div_euclid(1_000_000_000);
        let i = (t - self.start_time).div_euclid(self.duration_delta);
        if i >= 0
            && let Some(slot) = self.samples.get_mut(i as usize)
        {
            *slot = slot.saturating_add(value.max(0) as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_longer_than_time_gives_a_point_at_or_after_the_start() {
        for start_ms in [1, 1_700_000_000_000, i64::MAX / 2] {
            let mut b = SeriesBuilder::new(Vec::new(), start_ms, i64::MAX, Aggregation::Sum);
            b.add(&Labels::new(), start_ms.saturating_mul(1_000_000), 5);
            b.add(&Labels::new(), (start_ms + 1).saturating_mul(1_000_000), 7);
            let series = b.finish(None);
            let points = &series[0].points;
            assert!(points.iter().all(|p| p.timestamp >= start_ms), "{points:?}");
            assert_eq!(points.iter().map(|p| p.value).sum::<f64>(), 12.0);
        }
    }

    #[test]
    fn steps_match_reference_examples() {
        let h = 3_600_000;
        assert_eq!(timeline_step_secs(0, h), 15);
        assert_eq!(timeline_step_secs(0, 7 * 24 * h), 300);
        assert_eq!(timeline_step_secs(0, 30 * 24 * h), 1800);
        assert_eq!(timeline_step_secs(0, 365 * 24 * h), 21_600);
        assert_eq!(timeline_step_secs(0, 5 * 365 * 24 * h), 86_400);
    }

    #[test]
    fn series_buckets_are_right_closed() {
        let mut b = SeriesBuilder::new(vec!["a".into()], 10_000, 10_000, Aggregation::Sum);
        let l = Labels::from_pairs([("a", "x"), ("b", "y")]);
        b.add(&l, 10_000_000_000, 1); // exactly start: bucket (0, 10000]
        b.add(&l, 10_001_000_000, 2); // bucket (10000, 20000]
        b.add(&l, 20_000_000_000, 3);
        let s = b.finish(None);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels.len(), 1);
        let pts: Vec<(i64, f64)> = s[0].points.iter().map(|p| (p.timestamp, p.value)).collect();
        assert_eq!(pts, vec![(10_000, 1.0), (20_000, 5.0)]);
    }

    #[test]
    fn timeline_layout() {
        let mut t = Timeline::new(1_692_397_017_190, 1_692_397_137_190, 10);
        t.add(1_692_397_077_190_000_000, 99);
        assert_eq!(t.start_time, 1_692_397_010);
        assert_eq!(t.samples.len(), 12);
        assert_eq!(t.samples[6], 99);
    }
}
