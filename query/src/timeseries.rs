//! Time series of profile totals: `SelectSeries` points and the legacy timeline.

use std::collections::BTreeMap;

use ignis_storage::proto::types::v1 as types;
use ignis_storage::{Labels, ProfileId};

use crate::block_slice::SliceWindow;
use crate::source::{ProfileTotal, SpanTotal};
use ignis_storage::head::{TraceId, format_span_id, format_trace_id};

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
    /// True when each point names its exemplar (`EXEMPLAR_TYPE_INDIVIDUAL`).
    pub exemplars: bool,
}

/// The profile a point shows as its exemplar: the one with the highest
/// total in the bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The profile's timestamp, nanoseconds.
    pub timestamp_ns: i64,
    /// Its id.
    pub profile_id: ProfileId,
    /// Its total (what the point counted of it).
    pub value: i64,
    /// Its series' labels.
    pub labels: Labels,
    /// The span it stands for in a span heatmap (0: the whole profile).
    pub span_id: u64,
    /// The trace of that span's samples (all zero: none).
    pub trace_id: TraceId,
}

impl Exemplar {
    /// The exemplar a bucket keeps of two: the higher value, then the
    /// earlier, then the smaller id and labels (a total order, so buckets
    /// built in parts keep the one a single pass keeps).
    pub(crate) fn better(&self, other: &Exemplar) -> bool {
        beats(
            (self.value, self.timestamp_ns, self.profile_id, self.span_id),
            &self.labels,
            other,
        )
    }

    /// Keeps the profile `t` of series `labels` in `slot` if it beats the
    /// exemplar there (its labels are copied only then).
    pub(crate) fn offer(slot: &mut Option<Exemplar>, t: ProfileTotal, labels: &Labels) {
        Self::offer_span(slot, t.into(), labels);
    }

    /// Keeps the span `t` (span 0: a whole profile) of series `labels` in
    /// `slot` if it beats the exemplar there.
    pub(crate) fn offer_span(slot: &mut Option<Exemplar>, t: SpanTotal, labels: &Labels) {
        let wins = slot.as_ref().is_none_or(|cur| {
            beats(
                (t.value, t.timestamp_ns, t.profile_id, t.span_id),
                labels,
                cur,
            )
        });
        if wins {
            *slot = Some(Exemplar {
                timestamp_ns: t.timestamp_ns,
                profile_id: t.profile_id,
                value: t.value,
                labels: labels.clone(),
                span_id: t.span_id,
                trace_id: t.trace_id,
            });
        }
    }

    /// Its protobuf form; labels private to Ignis (`__…__`) are left out.
    pub fn to_proto(&self) -> types::Exemplar {
        types::Exemplar {
            timestamp: self.timestamp_ns.div_euclid(1_000_000),
            profile_id: self.profile_id.to_string(),
            span_id: if self.span_id == 0 {
                String::new()
            } else {
                format_span_id(self.span_id)
            },
            value: self.value,
            labels: self
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| types::LabelPair {
                    name: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            trace_id: if self.trace_id == TraceId::default() {
                String::new()
            } else {
                format_trace_id(&self.trace_id)
            },
        }
    }
}

/// True when a profile `(value, timestamp_ns, profile_id, labels)` is a
/// better exemplar than `cur` ([`Exemplar::better`]'s order).
fn beats(
    (value, timestamp_ns, profile_id, span_id): (i64, i64, ProfileId, u64),
    labels: &Labels,
    cur: &Exemplar,
) -> bool {
    (cur.value, timestamp_ns, profile_id, span_id, labels)
        < (
            value,
            cur.timestamp_ns,
            cur.profile_id,
            cur.span_id,
            &cur.labels,
        )
}

/// One bucket of a series: the sum of the profile totals in it, how many
/// profiles, and (when asked for) its exemplar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Sum of the totals.
    pub sum: f64,
    /// Number of profiles.
    pub count: u64,
    /// The profile with the highest total, when exemplars are asked for.
    pub exemplar: Option<Exemplar>,
}

impl Bucket {
    /// Adds another bucket's profiles (of other sources or parts of the range).
    pub fn absorb(&mut self, other: Bucket) {
        self.sum += other.sum;
        self.count += other.count;
        if let Some(e) = other.exemplar
            && self.exemplar.as_ref().is_none_or(|cur| e.better(cur))
        {
            self.exemplar = Some(e);
        }
    }
}

/// Bucketed totals by group: per label set, per bucket end (ms), the
/// bucket.
pub type SeriesGroups = BTreeMap<Labels, BTreeMap<i64, Bucket>>;

/// Buckets profile totals into series grouped by `group_by` labels.
pub struct SeriesBuilder {
    group_by: Vec<String>,
    start_ms: i64,
    step_ms: i64,
    aggregation: Aggregation,
    exemplars: bool,
    groups: SeriesGroups,
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
            exemplars: false,
            groups: BTreeMap::new(),
        }
    }

    /// The same builder, keeping an exemplar per point.
    pub fn with_exemplars(mut self, exemplars: bool) -> Self {
        self.exemplars = exemplars;
        self
    }

    /// A builder bucketing as `plan` says.
    pub fn of(plan: &SeriesPlan, aggregation: Aggregation) -> Self {
        Self::new(
            plan.group_by.clone(),
            plan.start_ms,
            plan.step_ms,
            aggregation,
        )
        .with_exemplars(plan.exemplars)
    }

    /// Adds bucketed totals built apart (over other profiles, with the same
    /// grouping and buckets): sums and counts add up, so the series equal
    /// those built from all the profiles at once.
    pub fn absorb(&mut self, groups: SeriesGroups) {
        for (labels, points) in groups {
            let into = self.groups.entry(labels).or_default();
            for (ts, bucket) in points {
                into.entry(ts).or_default().absorb(bucket);
            }
        }
    }

    /// The bucketed totals so far.
    pub fn into_groups(self) -> SeriesGroups {
        self.groups
    }

    /// Adds one profile's total.
    pub fn add(&mut self, labels: &Labels, total: ProfileTotal) {
        let ProfileTotal {
            timestamp_ns,
            value,
            ..
        } = total;
        let exemplars = self.exemplars;
        let slot = self.slot(labels, timestamp_ns);
        slot.sum += value as f64;
        slot.count += 1;
        if exemplars {
            Exemplar::offer(&mut slot.exemplar, total, labels);
        }
    }

    /// The bucket of series `labels` (grouped) holding `timestamp_ns`.
    fn slot(&mut self, labels: &Labels, timestamp_ns: i64) -> &mut Bucket {
        let key = group_key(&self.group_by, labels);
        let end = bucket_end(timestamp_ns, self.start_ms, self.step_ms);
        self.groups.entry(key).or_default().entry(end).or_default()
    }

    /// Adds the totals of a block's window of series `labels` (a window
    /// that lies wholly inside one bucket): the bucket gains them as if
    /// each profile were added, and the window's exemplar (the best of its
    /// profiles by [`Exemplar::better`]'s order, which a plan with
    /// exemplars needs).
    pub fn add_window(&mut self, labels: &Labels, w: &SliceWindow) {
        let exemplars = self.exemplars;
        let slot = self.slot(labels, w.start_ns);
        slot.sum += w.total as f64;
        slot.count += w.profiles;
        if let Some(b) = w.best.filter(|_| exemplars) {
            let t = ProfileTotal {
                timestamp_ns: b.timestamp_ns,
                profile_id: b.profile_id,
                value: b.total,
            };
            Exemplar::offer(&mut slot.exemplar, t, labels);
        }
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
                    .map(|(ts, b)| {
                        total += b.sum;
                        let value = match self.aggregation {
                            Aggregation::Sum => b.sum,
                            Aggregation::Average => b.sum / b.count as f64,
                        };
                        types::Point {
                            value,
                            timestamp: ts,
                            annotations: vec![],
                            exemplars: b.exemplar.iter().map(Exemplar::to_proto).collect(),
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

/// The labels of `labels` a grouping by `group_by` keeps: the key of the
/// series (or heatmap) a profile of that series adds to.
pub fn group_key(group_by: &[String], labels: &Labels) -> Labels {
    Labels::from_pairs(
        group_by
            .iter()
            .filter_map(|g| labels.get(g).map(|v| (g.clone(), v.to_string()))),
    )
}

/// The end (ms) of the right-closed bucket `(t − step, t]` holding
/// `timestamp_ns`, buckets aligned to `start_ms − step_ms` (`step_ms` ≥ 1).
pub fn bucket_end(timestamp_ns: i64, start_ms: i64, step_ms: i64) -> i64 {
    // i128: exact for a start at the ends of time (saturating i64
    // arithmetic put a profile of now at -1 for a start of i64::MIN).
    let ts_ms = i128::from(timestamp_ns.div_euclid(1_000_000));
    let step = i128::from(step_ms.max(1));
    let origin = i128::from(start_ms) - step;
    let end = origin + (ts_ms - origin + step - 1).div_euclid(step) * step;
    i64::try_from(end).unwrap_or(if end < 0 { i64::MIN } else { i64::MAX })
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
        self.add_slot(i, value.max(0) as u64);
    }

    /// Adds a value to the `i`-th step; outside the range it is dropped.
    pub fn add_slot(&mut self, i: i64, value: u64) {
        if let Some(slot) = usize::try_from(i)
            .ok()
            .and_then(|i| self.samples.get_mut(i))
        {
            *slot = slot.saturating_add(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(timestamp_ns: i64, value: i64) -> ProfileTotal {
        ProfileTotal {
            timestamp_ns,
            profile_id: ProfileId::from_key(value as u64),
            value,
        }
    }

    #[test]
    fn buckets_are_exact_for_a_start_at_the_ends_of_time() {
        let now_ns = 1_796_576_640_000_000_000;
        let now_ms = now_ns / 1_000_000;
        assert_eq!(bucket_end(now_ns, 1, 60_000), 1_796_576_640_001);
        for (start, step) in [
            (i64::MIN, 60_000),
            (i64::MIN, 1),
            (i64::MIN, 1_000_000_000_000),
        ] {
            let end = bucket_end(now_ns, start, step);
            // Right-closed `(end − step, end]`, aligned to `start − step`.
            assert!(
                end - step < now_ms && now_ms <= end,
                "{start} {step}: {end}"
            );
            let aligned =
                (i128::from(end) - (i128::from(start) - i128::from(step))) % i128::from(step);
            assert_eq!(aligned, 0, "{start} {step}: {end}");
        }
        assert_eq!(bucket_end(i64::MAX, i64::MAX, 1), i64::MAX / 1_000_000);
    }

    #[test]
    fn each_point_names_its_highest_profile_and_parts_agree_with_one_pass() {
        let (a, b) = (
            Labels::from_pairs([("pod", "a"), ("__type__", "cpu")]),
            Labels::from_pairs([("pod", "b")]),
        );
        // (labels, timestamp ms, id, value); ties on value go to the earlier.
        let profiles = [
            (&a, 1_000, 11, 5),
            (&b, 2_000, 12, 9),
            (&a, 3_000, 13, 9),
            (&b, 12_000, 14, 4),
            (&a, 15_000, 15, 6),
        ];
        let builder = || SeriesBuilder::new(Vec::new(), 0, 10_000, Aggregation::Sum);
        let add = |b: &mut SeriesBuilder, (l, ms, id, v): (&Labels, i64, u64, i64)| {
            b.add(
                l,
                ProfileTotal {
                    timestamp_ns: ms * 1_000_000,
                    profile_id: ProfileId::from_key(id),
                    value: v,
                },
            )
        };
        let mut one = builder().with_exemplars(true);
        for p in profiles {
            add(&mut one, p);
        }
        // The same profiles bucketed in two parts (in another order).
        let (mut x, mut y) = (
            builder().with_exemplars(true),
            builder().with_exemplars(true),
        );
        for (i, p) in profiles.into_iter().rev().enumerate() {
            add(if i % 2 == 0 { &mut x } else { &mut y }, p);
        }
        x.absorb(y.into_groups());
        let series = one.finish(None);
        assert_eq!(series, x.finish(None));
        let points = &series[0].points;
        let ex: Vec<(i64, &str, i64)> = points
            .iter()
            .map(|p| {
                (
                    p.exemplars[0].timestamp,
                    p.exemplars[0].profile_id.as_str(),
                    p.exemplars[0].value,
                )
            })
            .collect();
        assert_eq!(
            ex,
            vec![
                (2_000, "00000000-0000-0000-0000-00000000000c", 9),
                (15_000, "00000000-0000-0000-0000-00000000000f", 6),
            ]
        );
        // An exemplar has its profile's labels, without those private to Ignis.
        let names = |p: &types::Point| -> Vec<(String, String)> {
            p.exemplars[0]
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect()
        };
        assert_eq!(
            names(&points[0]),
            vec![("pod".to_string(), "b".to_string())]
        );
        assert_eq!(
            names(&points[1]),
            vec![("pod".to_string(), "a".to_string())]
        );
        let mut none = builder();
        for p in profiles {
            add(&mut none, p);
        }
        let plain = none.finish(None);
        assert!(plain[0].points.iter().all(|p| p.exemplars.is_empty()));
        assert_eq!(
            plain[0].points.iter().map(|p| p.value).collect::<Vec<_>>(),
            points.iter().map(|p| p.value).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_step_longer_than_time_gives_a_point_at_or_after_the_start() {
        for start_ms in [1, 1_700_000_000_000, i64::MAX / 2] {
            let mut b = SeriesBuilder::new(Vec::new(), start_ms, i64::MAX, Aggregation::Sum);
            b.add(&Labels::new(), total(start_ms.saturating_mul(1_000_000), 5));
            b.add(
                &Labels::new(),
                total((start_ms + 1).saturating_mul(1_000_000), 7),
            );
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
        b.add(&l, total(10_000_000_000, 1)); // exactly start: bucket (0, 10000]
        b.add(&l, total(10_001_000_000, 2)); // bucket (10000, 20000]
        b.add(&l, total(20_000_000_000, 3));
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
