//! [`PreSeries`]: a `SelectSeries` bucketed in parts before the query runs
//! (by querier workers, each over part of its range), handed to the query
//! as a source that adds the parts up instead of reading profiles.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ignis_storage::Labels;

use crate::premerged::same_selection;
use crate::source::{MergedStacks, ProfileTotal, Seen, Selection, Source};
use crate::timeseries::{SeriesBuilder, SeriesGroups, SeriesPlan};

/// Bucketed totals by series plan, taken in the order the query asks.
#[derive(Default)]
pub struct PreSeries {
    queue: Mutex<VecDeque<(SeriesPlan, SeriesGroups)>>,
    /// Set when the query asked for anything not prepared.
    missed: AtomicBool,
}

impl PreSeries {
    /// The totals of `plans`, in the order the query makes them.
    pub fn new(plans: Vec<(SeriesPlan, SeriesGroups)>) -> Self {
        Self {
            queue: Mutex::new(plans.into()),
            missed: AtomicBool::new(false),
        }
    }

    /// True when the query took every prepared plan and asked for nothing
    /// else: its answer rests on them alone.
    pub fn complete(&self) -> bool {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.is_empty() && !self.missed.load(Ordering::Relaxed)
    }

    fn miss(&self) {
        self.missed.store(true, Ordering::Relaxed);
    }
}

/// True when `a` and `b` bucket the same profiles the same way.
fn same_plan(a: &SeriesPlan, b: &SeriesPlan) -> bool {
    same_selection(&a.sel, &b.sel)
        && a.group_by == b.group_by
        && a.start_ms == b.start_ms
        && a.step_ms == b.step_ms
        && a.call_site == b.call_site
        && a.exemplars == b.exemplars
}

impl Source for PreSeries {
    fn series(&self, _sel: &Selection) -> Vec<Labels> {
        self.miss();
        Vec::new()
    }

    fn merge_stacks(&self, _sel: &Selection, _seen: &mut Seen, _into: &mut MergedStacks) {
        self.miss();
    }

    fn profile_totals(
        &self,
        _sel: &Selection,
        _seen: &mut Seen,
        _f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        self.miss();
    }

    fn profile_call_site_totals(
        &self,
        _sel: &Selection,
        _call_site: &[String],
        _seen: &mut Seen,
        _f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        self.miss();
    }

    fn series_totals(&self, plan: &SeriesPlan, _seen: &mut Seen, into: &mut SeriesBuilder) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.front().is_some_and(|(p, _)| same_plan(p, plan)) {
            if let Some((_, groups)) = q.pop_front() {
                into.absorb(groups);
            }
        } else {
            self.miss();
        }
    }

    fn time_bounds(&self) -> Option<(i64, i64)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, QueryLimits};
    use crate::scope::Scope;
    use ignis_storage::proto::google::v1 as pprof;
    use ignis_storage::proto::querier::v1 as q;
    use ignis_storage::{Head, SeriesSplit, SplitProfile, names};

    const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

    /// Three pods, fifty profiles each at their own pace, main;f with
    /// values 100, 101, ….
    fn head() -> Head {
        let mut head = Head::new();
        let mut id = 1;
        for (pod, every) in [("a", 7_000i64), ("b", 11_000), ("c", 13_000)] {
            for i in 0..50 {
                let profile = pprof::Profile {
                    string_table: ["", "main", "f"].map(String::from).to_vec(),
                    function: (1..=2)
                        .map(|i| pprof::Function {
                            id: i,
                            name: i as i64,
                            ..Default::default()
                        })
                        .collect(),
                    location: (1..=2)
                        .map(|i| pprof::Location {
                            id: i,
                            line: vec![pprof::Line {
                                function_id: i,
                                line: 1,
                            }],
                            ..Default::default()
                        })
                        .collect(),
                    sample: vec![pprof::Sample {
                        location_id: vec![2, 1],
                        value: vec![100 + i],
                        label: vec![],
                    }],
                    ..Default::default()
                };
                head.insert(&SplitProfile {
                    profile_id: ignis_storage::ProfileId::from_key(id),
                    profile: ignis_storage::FlatProfile::from_proto(&profile).unwrap(),
                    timestamp_ns: (1_000_000_000 + i * every) * 1_000_000,
                    series: vec![SeriesSplit {
                        labels: Labels::from_pairs([
                            ("service_name", "svc"),
                            ("pod", pod),
                            (names::PROFILE_TYPE, CPU),
                        ]),
                        value_index: 0,
                        samples: vec![0],
                    }],
                })
                .expect("insert");
                id += 1;
            }
        }
        head
    }

    #[test]
    fn series_bucketed_in_parts_add_up_to_the_whole() {
        let head = head();
        let limits = QueryLimits::default();
        let individual = ignis_storage::proto::types::v1::ExemplarType::Individual as i32;
        for (group_by, aggregation, limit, exemplar_type) in [
            (vec![], 1, None, 0),
            (vec!["pod".to_string()], 2, None, 0),
            (vec!["pod".to_string()], 1, Some(2), 0),
            (vec![], 0, None, individual),
            (vec!["pod".to_string()], 1, Some(2), individual),
        ] {
            let req = q::SelectSeriesRequest {
                profile_type_id: CPU.into(),
                label_selector: "{}".into(),
                start: 1_000_000_000,
                end: 1_000_700_000,
                step: 60.0,
                group_by,
                aggregation: Some(aggregation),
                limit,
                exemplar_type,
                ..Default::default()
            };
            let sources: [&dyn Source; 1] = [&head];
            let whole = Engine::new(&sources, &limits).select_series(&req).unwrap();
            let run = |e: &Engine<'_>| e.select_series(&req);
            let scope = Scope::record(&limits, run).unwrap();
            let plans = scope.series_only().expect("series only").to_vec();
            assert_eq!(plans.len(), 1);
            // Three parts cut mid-bucket: sums and counts still add up.
            let cuts = [
                (i64::MIN, 1_000_123_456_789_000i64),
                (1_000_123_456_789_001, 1_000_400_000_000_000),
                (1_000_400_000_000_001, i64::MAX),
            ];
            let mut groups = SeriesBuilder::of(&plans[0], crate::timeseries::Aggregation::Sum);
            for (lo, hi) in cuts {
                let mut part = plans[0].clone();
                part.sel.start_ns = part.sel.start_ns.max(lo);
                part.sel.end_ns = part.sel.end_ns.min(hi);
                groups.absorb(Engine::new(&sources, &limits).series_groups(&part));
            }
            let pre = PreSeries::new(vec![(plans[0].clone(), groups.into_groups())]);
            let pre_sources: [&dyn Source; 1] = [&pre];
            let parts = Engine::new(&pre_sources, &limits)
                .select_series(&req)
                .unwrap();
            assert!(pre.complete());
            assert_eq!(parts, whole);
            assert!(!whole.series.is_empty());
            // With exemplars, every point names one profile of its bucket.
            let want = usize::from(exemplar_type == individual);
            let points = whole.series.iter().flat_map(|s| &s.points);
            assert!(points.clone().all(|p| p.exemplars.len() == want));
            // A summed point is at least its exemplar's total.
            if want == 1 && aggregation == 0 {
                assert!(
                    points
                        .clone()
                        .all(|p| p.exemplars[0].value as f64 <= p.value)
                );
            }
        }
    }
}
