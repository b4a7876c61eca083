//! The read path across roles, in one process: a query-frontend splits a
//! query into sub-queries, its query-scheduler queues them and querier
//! nodes pull and run them over the ingesters and store-gateways; the
//! answer equals a single node's, byte for byte, on the Go CPU fixture.

use std::time::Duration;

use ignis_cluster::roles::{
    DISTRIBUTOR, INGESTER, QUERIER, QUERY_FRONTEND, QUERY_SCHEDULER, STORE_GATEWAY,
};
use ignis_query::{Engine, QueryError, QueryLimits};
use ignis_storage::SplitProfile;
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::proto::types::v1 as types;
use prost::Message;

use super::{Sandbox, fixtures, metric};
use crate::{BlockSettings, Metrics, Tenants};

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const TENANT: &str = "t";
const START_MS: i64 = 1_795_000_000_000;
const HOUR_MS: i64 = 3_600_000;

/// Node 0: frontend and scheduler; 1 and 2: queriers; 3 and 4: write path
/// and storage.
fn roles(i: usize) -> Vec<&'static str> {
    match i {
        0 => vec![QUERY_FRONTEND, QUERY_SCHEDULER],
        1 | 2 => vec![QUERIER],
        _ => vec![DISTRIBUTOR, INGESTER, STORE_GATEWAY],
    }
}

/// The flame graph of `selector` over six hours, encoded.
fn flamegraph(e: &Engine<'_>, selector: &str) -> Result<Vec<u8>, QueryError> {
    e.select_merge_stacktraces(&q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: selector.into(),
        start: START_MS,
        end: START_MS + 6 * HOUR_MS,
        max_nodes: Some(1024),
        ..Default::default()
    })
    .map(|r| r.encode_to_vec())
}

/// Four services, one profile each in each of five hours.
fn profiles() -> Vec<Vec<SplitProfile>> {
    let mut all = Vec::new();
    for h in 0..5 {
        for s in 0..4 {
            all.push(fixtures::split(
                "go/cpu",
                &format!("svc-{s}"),
                START_MS + h * HOUR_MS + s * 1000,
            ));
        }
    }
    all
}

/// The series of every service over six hours, 5-minute steps.
fn series(
    e: &Engine<'_>,
    group_by: &[&str],
    aggregation: types::TimeSeriesAggregationType,
    limit: Option<i64>,
) -> Result<Vec<u8>, QueryError> {
    e.select_series(&q::SelectSeriesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{}".into(),
        start: START_MS + 1234,
        end: START_MS + 6 * HOUR_MS,
        step: 300.0,
        group_by: group_by.iter().map(|g| g.to_string()).collect(),
        aggregation: Some(aggregation as i32),
        limit,
        ..Default::default()
    })
    .map(|r| r.encode_to_vec())
}

async fn standalone(selector: &'static str) -> Vec<u8> {
    standalone_answer(move |e| flamegraph(e, selector)).await
}

/// What one node holding every profile answers to `f`.
async fn standalone_answer<F>(f: F) -> Vec<u8>
where
    F: Fn(&Engine<'_>) -> Result<Vec<u8>, QueryError> + Send + Sync + 'static,
{
    let node = Tenants::new(
        vec![actix::Arbiter::current()],
        None,
        BlockSettings::default(),
        Metrics::new(),
        QueryLimits::default(),
        2,
    );
    let d = node.get_or_start(TENANT).distributor.expect("distributor");
    for p in profiles() {
        d.send(crate::distributor::Distribute {
            profiles: p,
            record: None,
            endpoint: "test",
        })
        .await
        .expect("sent")
        .expect("stored");
    }
    node.query_direct(TENANT, i64::MIN, i64::MAX, f)
        .await
        .expect("standalone answer")
}

#[actix::test]
async fn sub_queries_run_on_querier_nodes_and_answer_as_one_node() {
    let sb = Sandbox::start_with_roles(5, 2, roles)
        .await
        .expect("sandbox");
    for (i, p) in profiles().into_iter().enumerate() {
        sb.push(3 + i % 2, TENANT, p).await.expect("push");
    }
    let frontend = &sb.nodes[0];
    let ran = |sb: &Sandbox| {
        (1..3)
            .map(|i| metric(&sb.nodes[i].metrics, "ignis_querier_sub_queries_total"))
            .sum::<f64>()
    };
    for selector in ["{}", "{service_name=\"svc-2\"}"] {
        let expected = standalone(selector).await;
        for stage in ["heads", "blocks"] {
            if stage == "blocks" && selector == "{}" {
                sb.flush_to_blocks().await.expect("blocks");
            }
            let before = ran(&sb);
            let answer = sb
                .query(0, TENANT, move |e| flamegraph(e, selector))
                .await
                .expect("answer");
            assert_eq!(answer, expected, "{selector} from {stage}");
            // Five hours of data, four sub-queries, all run by the queriers.
            assert_eq!(ran(&sb) - before, 4.0, "{selector} from {stage}");
        }
    }
    let done = frontend
        .metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("ignis_query_scheduler_sub_queries_total{outcome=\"done\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(done, Some(16.0));
    assert_eq!(frontend.tenants.scheduler().map(|s| s.queued()), Some(0));
}

#[actix::test]
async fn series_are_bucketed_in_parts_by_queriers_and_answer_as_one_node() {
    use types::TimeSeriesAggregationType::{Average, Sum};
    let sb = Sandbox::start_with_roles(5, 2, roles)
        .await
        .expect("sandbox");
    for (i, p) in profiles().into_iter().enumerate() {
        sb.push(3 + i % 2, TENANT, p).await.expect("push");
    }
    let ran = |sb: &Sandbox| {
        (1..3)
            .map(|i| metric(&sb.nodes[i].metrics, "ignis_querier_sub_queries_total"))
            .sum::<f64>()
    };
    let cases: [(&[&str], types::TimeSeriesAggregationType, Option<i64>); 4] = [
        (&[], Sum, None),
        (&["service_name"], Sum, None),
        (&["service_name"], Average, None),
        (&["service_name"], Sum, Some(2)),
    ];
    for stage in ["heads", "blocks"] {
        if stage == "blocks" {
            sb.flush_to_blocks().await.expect("blocks");
        }
        for (group_by, aggregation, limit) in cases {
            let expected =
                standalone_answer(move |e| series(e, group_by, aggregation, limit)).await;
            let before = ran(&sb);
            let answer = sb
                .query(0, TENANT, move |e| series(e, group_by, aggregation, limit))
                .await
                .expect("answer");
            assert_eq!(
                answer, expected,
                "{group_by:?} {aggregation:?} {limit:?} from {stage}"
            );
            assert_eq!(ran(&sb) - before, 4.0, "{group_by:?} from {stage}");
        }
    }
}

#[actix::test]
async fn without_a_querier_the_frontend_merges_itself() {
    // The scheduler's node runs no querier and none joined: no sub-query
    // may wait for a worker that never comes.
    let sb = Sandbox::start_with_roles(2, 1, |i| match i {
        0 => vec![QUERY_FRONTEND, QUERY_SCHEDULER],
        _ => vec![DISTRIBUTOR, INGESTER, STORE_GATEWAY],
    })
    .await
    .expect("sandbox");
    for p in profiles() {
        sb.push(1, TENANT, p).await.expect("push");
    }
    let answer = sb
        .query(0, TENANT, |e| flamegraph(e, "{}"))
        .await
        .expect("answer");
    assert_eq!(answer, standalone("{}").await);
    assert_eq!(
        metric(
            &sb.nodes[0].metrics,
            "ignis_query_scheduler_sub_queries_total"
        ),
        0.0
    );
}

#[actix::test]
async fn a_query_whose_client_went_away_stops_on_the_queriers() {
    let sb = Sandbox::start_with_roles(5, 2, roles)
        .await
        .expect("sandbox");
    for (i, p) in profiles().into_iter().enumerate() {
        sb.push(3 + i % 2, TENANT, p).await.expect("push");
    }
    // The storage nodes hang: the queriers' reads wait for their deadline.
    sb.set_hung(3, true);
    sb.set_hung(4, true);
    let frontend = sb.nodes[0].tenants.clone();
    let scheduler = frontend.scheduler().expect("a scheduler").clone();
    let client = actix::spawn(async move {
        frontend
            .query(TENANT, |e| flamegraph(e, "{}"))
            .await
            .map(|_| ())
    });
    let started = std::time::Instant::now();
    while !(scheduler.queued() == 0 && scheduler.outstanding(TENANT) == 4) {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "queriers took no job"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The client goes away: its four running sub-queries stop, well before
    // the reads they wait on would give up.
    client.abort();
    let stopped = |sb: &Sandbox| {
        (1..3)
            .map(|i| {
                metric(
                    &sb.nodes[i].metrics,
                    "ignis_querier_sub_queries_cancelled_total",
                )
            })
            .sum::<f64>()
    };
    while stopped(&sb) < 4.0 {
        assert!(
            started.elapsed() < super::CALL_DEADLINE - Duration::from_secs(1),
            "the queriers ran on"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(scheduler.outstanding(TENANT), 0);
    let ran: f64 = (1..3)
        .map(|i| metric(&sb.nodes[i].metrics, "ignis_querier_sub_queries_total"))
        .sum();
    assert_eq!(ran, 0.0);
}

#[actix::test]
async fn the_jobs_of_a_querier_that_died_run_on_another() {
    let mut sb = Sandbox::start_with_roles(5, 2, roles)
        .await
        .expect("sandbox");
    for (i, p) in profiles().into_iter().enumerate() {
        sb.push(3 + i % 2, TENANT, p).await.expect("push");
    }
    let expected = standalone("{}").await;
    // Only node 1 takes work; the storage nodes hang, so its jobs wait.
    sb.stop_workers(2);
    sb.set_hung(3, true);
    sb.set_hung(4, true);
    let frontend = sb.nodes[0].tenants.clone();
    let scheduler = frontend.scheduler().expect("a scheduler").clone();
    let client = actix::spawn(async move { frontend.query(TENANT, |e| flamegraph(e, "{}")).await });
    let started = std::time::Instant::now();
    // Node 1's four workers: the tenant runs on three, the last is kept
    // for another tenant.
    while !(scheduler.queued() == 1 && scheduler.outstanding(TENANT) == 4) {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "node 1 took no job"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Node 1 dies with three jobs; its peers notice; node 2 comes (back) up.
    sb.stop_workers(1);
    sb.set_failed(1, true);
    sb.set_hung(3, false);
    sb.set_hung(4, false);
    sb.start_workers(2);
    let answer = tokio::time::timeout(Duration::from_secs(30), client)
        .await
        .expect("answered")
        .expect("joined")
        .expect("the query succeeds");
    assert_eq!(answer, expected);
    assert_eq!(
        metric(&sb.nodes[2].metrics, "ignis_querier_sub_queries_total"),
        4.0
    );
}

#[actix::test]
async fn heatmaps_over_days_of_blocks_are_read_a_day_at_a_time_and_add_up() {
    // Profiles of four services every six hours over four days, in blocks:
    // the heatmap read in parts (a day each) equals the one-pass heatmap
    // for every grouping, limit and exemplar setting, through every node.
    let sb = Sandbox::start(3, 2).await.expect("sandbox");
    let day_ms = 24 * HOUR_MS;
    for h in (0..4 * 24).step_by(6) {
        for s in 0..4 {
            let p = fixtures::split("go/cpu", &format!("svc-{s}"), START_MS + h * HOUR_MS + s);
            sb.push(h as usize % 3, TENANT, p).await.expect("push");
        }
    }
    sb.flush_to_blocks().await.expect("blocks");
    let (start, end) = (START_MS - 5, START_MS + 4 * day_ms);
    let request =
        |group_by: &[&str], limit: Option<i64>, exemplars: bool| q::SelectHeatmapRequest {
            start,
            end,
            profile_type_id: CPU.into(),
            label_selector: "{}".into(),
            step: 3600.0 * 5.0,
            group_by: group_by.iter().map(|g| g.to_string()).collect(),
            limit,
            query_type: q::HeatmapQueryType::Individual as i32,
            exemplar_type: if exemplars {
                types::ExemplarType::Individual as i32
            } else {
                types::ExemplarType::None as i32
            },
        };
    let range = (start * 1_000_000, end * 1_000_000);
    for node in 0..3 {
        let parts =
            crate::frontend::profile_parts(&sb.nodes[node].tenants, TENANT, range.0, range.1);
        assert!(parts.len() >= 4, "a part per day: {parts:?}");
        for (group_by, limit, exemplars) in [
            (&[][..], None, false),
            (&["service_name"][..], None, true),
            (&["service_name"][..], Some(2), true),
        ] {
            let req = request(group_by, limit, exemplars);
            let one = req.clone();
            let expected = sb
                .query(node, TENANT, move |e| e.select_heatmap(&one))
                .await
                .expect("one pass");
            let counted: i32 = expected
                .series
                .iter()
                .flat_map(|s| &s.slots)
                .flat_map(|s| &s.counts)
                .sum();
            assert_eq!(
                counted,
                if limit.is_some() { 32 } else { 64 },
                "{group_by:?}"
            );
            let parted =
                crate::frontend::query_heatmap(&sb.nodes[node].tenants, TENANT, req, range)
                    .await
                    .expect("in parts");
            assert_eq!(parted, expected, "node {node} {group_by:?} {limit:?}");
        }
    }
}
