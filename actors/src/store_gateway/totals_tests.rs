//! Time series from blocks' window totals against the real Go CPU fixture:
//! every range, step, grouping and aggregation answers byte-identically to
//! the whole decoded block, reading a fraction of the profiles, and
//! profiles another source also holds count once.

use std::sync::Arc;

use ignis_query::Source;
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::proto::types::v1 as types;
use prost::Message;

use super::rollup_tests::{
    CPU, EVERY_MS, Fixture, HOUR_MS, PROFILES, Query, SERVICES, START_MS, answer, answer_beside,
    answer_unclaimed, fixture, head_of, ranges, scope_of,
};
use crate::testing::fixtures::{go_cpu_history_shaped, truth};
use crate::testing::metric;
use ignis_storage::block::BlockMeta;

/// How a series query asks: step (s), grouping, aggregation, exemplars,
/// call site.
#[derive(Clone)]
struct Ask {
    step: f64,
    group_by: Vec<String>,
    average: bool,
    exemplars: bool,
    call_site: Vec<String>,
}

impl Ask {
    fn plain(step: f64) -> Self {
        Self {
            step,
            group_by: Vec::new(),
            average: false,
            exemplars: false,
            call_site: Vec::new(),
        }
    }
}

fn series(selector: &'static str, start: i64, end: i64, ask: Ask) -> Query {
    Arc::new(move |e| {
        let aggregation = if ask.average {
            types::TimeSeriesAggregationType::Average
        } else {
            types::TimeSeriesAggregationType::Sum
        };
        let exemplar_type = if ask.exemplars {
            types::ExemplarType::Individual
        } else {
            types::ExemplarType::Unspecified
        };
        let stack_trace_selector = (!ask.call_site.is_empty()).then(|| types::StackTraceSelector {
            call_site: ask
                .call_site
                .iter()
                .map(|name| types::Location { name: name.clone() })
                .collect(),
            ..Default::default()
        });
        e.select_series(&q::SelectSeriesRequest {
            profile_type_id: CPU.into(),
            label_selector: selector.into(),
            start,
            end,
            step: ask.step,
            group_by: ask.group_by.clone(),
            aggregation: Some(aggregation as i32),
            exemplar_type: exemplar_type as i32,
            stack_trace_selector,
            ..Default::default()
        })
        .expect("query")
        .encode_to_vec()
    })
}

/// `query` from the fixture's store-gateway: (answer, rows read, blocks
/// read from window totals).
async fn read(f: &Fixture, query: &Query) -> (Vec<u8>, f64, f64) {
    read_blocks(f, f.metas.clone(), query).await
}

/// [`read`] of the blocks `metas` describes.
async fn read_blocks(f: &Fixture, metas: Vec<BlockMeta>, query: &Query) -> (Vec<u8>, f64, f64) {
    let rows = || metric(&f.metrics, "ignis_store_gateway_pruned_rows_read_total");
    let totals = || metric(&f.metrics, "ignis_store_gateway_totals_reads_total");
    let (rows_before, totals_before) = (rows(), totals());
    let sources = f.sg.sources(metas, &scope_of(query)).await.expect("read");
    let got: Vec<&dyn Source> = sources.iter().map(|s| s.as_ref()).collect();
    (
        answer(&got, query),
        rows() - rows_before,
        totals() - totals_before,
    )
}

/// Every ask over every range, of all series and of one, answers from the
/// store-gateway as from the whole decoded block.
async fn answers_as_the_whole_block(f: &Fixture, asks: &[Ask]) {
    for (start, end) in ranges() {
        for ask in asks {
            for selector in ["{}", "{service_name=\"svc-1\"}"] {
                let query = series(selector, start, end, ask.clone());
                let (got, _, _) = read(f, &query).await;
                assert_eq!(
                    got,
                    answer(&[&f.whole], &query),
                    "{selector} over {start}..{end} step {}",
                    ask.step
                );
            }
        }
    }
}

#[tokio::test]
async fn every_series_answers_from_window_totals_as_from_the_profiles() {
    let head = head_of(0..PROFILES);
    let f = fixture(&[&head]).await;
    f.sg.set_totals_min_profiles(0);
    assert!(f.metas[0].has_totals(), "{:?}", f.metas[0]);
    let asks = [
        Ask::plain(60.0),
        Ask::plain(3600.0),
        Ask {
            group_by: vec!["service_name".into()],
            ..Ask::plain(300.0)
        },
        Ask {
            average: true,
            ..Ask::plain(600.0)
        },
        Ask {
            average: true,
            group_by: vec!["service_name".into()],
            ..Ask::plain(15.0)
        },
        Ask::plain(7.3),
        Ask::plain(86_400.0),
    ];
    answers_as_the_whole_block(&f, &asks).await;
    // A day of steps over the whole block: a few rows per series and hour,
    // not its 1 350 profiles.
    let all = ranges()[1];
    let (_, rows, totals) = read(&f, &series("{}", all.0, all.1, Ask::plain(3600.0))).await;
    assert_eq!(totals, 1.0);
    let profiles = f.metas[0].stats.profiles as f64;
    assert!(rows * 5.0 < profiles, "rows read {rows} of {profiles}");
    // Ground truth: every profile of the fixture, counted once.
    let per = truth("go/cpu")["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .expect("truth");
    let (got, _, _) = read(&f, &series("{}", all.0, all.1, Ask::plain(600.0))).await;
    let response = q::SelectSeriesResponse::decode(got.as_slice()).expect("response");
    let sum: f64 = response.series[0].points.iter().map(|p| p.value).sum();
    assert_eq!(sum as i64, PROFILES * SERVICES as i64 * per);
    // Series holding few profiles read them: the same answer.
    f.sg.set_totals_min_profiles(u64::MAX);
    let query = series("{}", all.0, all.1, Ask::plain(600.0));
    let (few, _, totals) = read(&f, &query).await;
    assert_eq!((few, totals), (got, 0.0));
}

/// Profiles `range` of the history with different totals: profile `i`
/// drops `(7 i) mod 11` of each series' samples, so totals vary, and
/// profiles 11 apart tie (the earlier is the exemplar). The services'
/// profiles of one time tie too: their ids decide, and the ids' high
/// halves order them opposite to their low halves (a read that dropped
/// the high half would pick another exemplar).
fn varied_head(range: std::ops::Range<i64>) -> ignis_storage::Head {
    go_cpu_history_shaped(range, SERVICES, (START_MS, EVERY_MS), |i, p| {
        p.profile_id.hi = 0x4000_0000 | (0xff - (p.profile_id.lo & 0xff));
        for s in &mut p.series {
            let drop = ((7 * i) % 11) as usize;
            let keep = s.samples.len().saturating_sub(drop).max(1);
            s.samples.truncate(keep);
        }
    })
}

/// Asks with exemplars: steps finer and coarser than the windows, not
/// aligned to them, grouped, averaged.
fn exemplar_asks() -> Vec<Ask> {
    let ex = |step: f64| Ask {
        exemplars: true,
        ..Ask::plain(step)
    };
    vec![
        ex(60.0),
        ex(600.0),
        ex(3600.0),
        ex(7.3),
        ex(86_400.0),
        Ask {
            group_by: vec!["service_name".into()],
            ..ex(300.0)
        },
        Ask {
            average: true,
            ..ex(900.0)
        },
    ]
}

#[tokio::test]
async fn series_with_exemplars_answer_from_window_exemplars_as_from_the_profiles() {
    let head = varied_head(0..PROFILES);
    let f = fixture(&[&head]).await;
    f.sg.set_totals_min_profiles(0);
    assert!(f.metas[0].has_window_exemplars(), "{:?}", f.metas[0]);
    // The exemplars are the profiles with the highest totals: over the
    // whole range in one bucket, the best of every profile.
    let all = ranges()[1];
    let ask = Ask {
        exemplars: true,
        ..Ask::plain(86_400.0 * 2.0)
    };
    let (got, rows, totals) = read(&f, &series("{}", all.0, all.1, ask)).await;
    assert_eq!(totals, 1.0, "read from window totals");
    let response = q::SelectSeriesResponse::decode(got.as_slice()).expect("response");
    let best: Vec<&types::Exemplar> = response.series[0]
        .points
        .iter()
        .flat_map(|p| &p.exemplars)
        .collect();
    assert_eq!(best.len(), response.series[0].points.len());
    let top = best.iter().map(|e| e.value).max().expect("an exemplar");
    let mut totals = std::collections::BTreeMap::<i64, i64>::new();
    // Every profile's total: one point per profile and service.
    let each_profile = Ask {
        group_by: vec!["service_name".into()],
        ..Ask::plain(EVERY_MS as f64 / 1000.0)
    };
    let query = series("{}", all.0, all.1, each_profile);
    let each =
        q::SelectSeriesResponse::decode(answer(&[&f.whole], &query).as_slice()).expect("response");
    for p in each.series.iter().flat_map(|s| &s.points) {
        *totals.entry(p.value as i64).or_default() += 1;
    }
    let (&most, _) = totals.last_key_value().expect("profiles");
    assert_eq!(
        top, most,
        "the exemplar is the profile with the highest total"
    );
    assert!(totals.len() > 5, "totals vary: {totals:?}");
    let profiles = f.metas[0].stats.profiles as f64;
    assert!(rows * 5.0 < profiles, "rows read {rows} of {profiles}");
    answers_as_the_whole_block(&f, &exemplar_asks()).await;
}

#[tokio::test]
async fn series_needing_each_profile_read_profiles() {
    let head = varied_head(0..PROFILES);
    let f = fixture(&[&head]).await;
    f.sg.set_totals_min_profiles(0);
    let (start, end) = ranges()[0];
    // Format 7 blocks have window totals (without exemplars).
    let mut old = f.metas.clone();
    old[0].format_version = 7;
    let plain = series("{}", start, end, Ask::plain(3600.0));
    let (_, _, totals) = read_blocks(&f, old.clone(), &plain).await;
    assert_eq!(totals, 1.0, "format 7 has window totals");
    let query = series(
        "{}",
        start,
        end,
        Ask {
            call_site: vec!["runtime.goexit".into()],
            ..Ask::plain(600.0)
        },
    );
    let (got, _, totals) = read(&f, &query).await;
    assert_eq!(totals, 0.0, "call sites need profiles");
    assert_eq!(got, answer(&[&f.whole], &query));
    // Blocks from before window exemplars (format 7) answer exemplars
    // from their profiles, and the same.
    assert!(old[0].has_totals() && !old[0].has_window_exemplars());
    for ask in exemplar_asks() {
        let query = series("{}", start, end, ask);
        let (got, _, totals) = read_blocks(&f, old.clone(), &query).await;
        assert_eq!(totals, 0.0, "format 7 has no window exemplars");
        assert_eq!(got, answer(&[&f.whole], &query));
    }
}

#[tokio::test]
async fn series_count_profiles_another_source_also_holds_once() {
    let head = head_of(0..PROFILES);
    let f = fixture(&[&head]).await;
    f.sg.set_totals_min_profiles(0);
    // An ingester still holding the last 40 minutes (replicas of the block's).
    let recent = head_of(PROFILES - 120..PROFILES);
    for (start, end) in ranges() {
        for (step, exemplars) in [(60.0, false), (900.0, false), (60.0, true), (900.0, true)] {
            let ask = Ask {
                exemplars,
                ..Ask::plain(step)
            };
            let query = series("{}", start, end, ask);
            assert_eq!(
                answer_beside(&f, &query, &recent).await,
                answer(&[&f.whole], &query),
                "{start}..{end} step {step}"
            );
        }
    }
    // Without the claims, the overlap would count twice.
    let (start, end) = ranges()[0];
    let query = series("{}", start, end, Ask::plain(HOUR_MS as f64 / 1000.0));
    assert_ne!(
        answer_unclaimed(&f, &query, &recent).await,
        answer(&[&f.whole], &query)
    );
}
