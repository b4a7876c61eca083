//! Multi-node logic in one process, on the real Go CPU fixture: quorum
//! writes, hinted handoff, fan-out tolerance, replica dedup and scoped
//! reads, each with exact totals against the fixture's ground truth.

use std::sync::Arc;

use ignis_query::{Engine, QueryLimits, Scope, Source};
use ignis_storage::SplitProfile;
use ignis_storage::proto::querier::v1 as q;
use prost::Message;

use super::{Sandbox, fixtures};
use crate::peer::SelectRequest;
use crate::querier::QueryFailure;
use crate::{BlockSettings, Metrics, Tenants};

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const TENANT: &str = "t";
/// Profiles are stamped 10 s apart from here (ms).
const START_MS: i64 = 1_795_000_000_000;

/// CPU nanoseconds of one Go CPU fixture profile (its ground truth).
fn truth() -> i64 {
    fixtures::truth("go/cpu")["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .expect("cpu truth")
}

/// The Go CPU fixture of `service`, stamped as the `n`-th profile.
fn cpu(service: &str, n: i64) -> Vec<SplitProfile> {
    fixtures::split("go/cpu", service, START_MS + n * 10_000)
}

/// The CPU total of `selector` over all time, through node `via`.
async fn total(sb: &Sandbox, via: usize, selector: &'static str) -> Result<i64, QueryFailure> {
    sb.query(via, TENANT, move |e| {
        let (_, sel) = e.typed_selection(CPU, selector, 1, i64::MAX / 1_000_000)?;
        Ok(e.merge(&sel).total())
    })
    .await
}

/// The flame graph of `selector`, encoded (to compare answers byte for byte).
fn flamegraph(e: &Engine<'_>, selector: &str) -> Result<Vec<u8>, ignis_query::QueryError> {
    e.select_merge_stacktraces(&q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: selector.into(),
        start: START_MS,
        end: START_MS + 3_600_000,
        max_nodes: Some(1024),
        ..Default::default()
    })
    .map(|r| r.encode_to_vec())
}

/// The CPU total node `i` holds itself (head and sealed heads).
async fn held_by(sb: &Sandbox, i: usize) -> i64 {
    let Some(local) = sb.nodes[i]
        .tenants
        .snapshot(TENANT)
        .await
        .expect("snapshot")
    else {
        return 0;
    };
    let sources: Vec<&dyn Source> = local.sources().collect();
    let limits = QueryLimits::default();
    let e = Engine::new(&sources, &limits);
    let (_, sel) = e
        .typed_selection(CPU, "{}", 1, i64::MAX / 1_000_000)
        .expect("selection");
    e.merge(&sel).total()
}

#[actix::test]
async fn a_quorum_write_is_acknowledged_with_one_replica_down_and_refused_with_two() {
    let sb = Sandbox::start(3, 3).await.expect("sandbox");
    sb.set_up(2, false);
    sb.push(0, TENANT, cpu("svc", 0))
        .await
        .expect("one replica down: acknowledged on quorum");
    assert_eq!(held_by(&sb, 2).await, 0, "the down replica got nothing");
    assert_eq!(held_by(&sb, 0).await, truth());
    assert_eq!(held_by(&sb, 1).await, truth());

    sb.set_up(1, false);
    let err = sb
        .push(0, TENANT, cpu("svc", 1))
        .await
        .expect_err("two replicas down: refused");
    assert!(err.to_string().contains("quorum not reached"), "{err}");
    assert!(
        sb.nodes[0]
            .metrics
            .encode()
            .contains("ignis_quorum_failures_total 1"),
        "the refusal is counted"
    );
}

#[actix::test]
async fn hinted_handoff_delivers_the_missed_writes_to_a_replica_that_is_back() {
    let sb = Sandbox::start(3, 3).await.expect("sandbox");
    sb.set_up(2, false);
    for n in 0..4 {
        sb.push((n % 2) as usize, TENANT, cpu("svc", n))
            .await
            .expect("acknowledged on quorum");
    }
    assert_eq!(held_by(&sb, 2).await, 0);
    // Delivery while it is still down keeps the hints.
    sb.nodes[0].cluster.deliver_hints().await;
    assert_eq!(held_by(&sb, 2).await, 0);
    assert!(
        sb.nodes[0]
            .cluster
            .hints
            .nodes()
            .contains(&"node-2".to_string())
    );

    sb.set_up(2, true);
    for node in &sb.nodes {
        node.cluster.deliver_hints().await;
    }
    assert_eq!(
        held_by(&sb, 2).await,
        4 * truth(),
        "every missed write arrived once"
    );
    assert!(sb.nodes[0].cluster.hints.nodes().is_empty());
    assert!(sb.nodes[1].cluster.hints.nodes().is_empty());
    // The others can now be down: node 2 alone answers in full... as long
    // as the replication factor tolerates it, which one of three does.
    sb.set_up(0, false);
    assert_eq!(total(&sb, 2, "{}").await.expect("answers"), 4 * truth());
}

#[actix::test]
async fn a_query_answers_with_one_ingester_unreachable_and_fails_with_two() {
    let sb = Sandbox::start(3, 3).await.expect("sandbox");
    for n in 0..3 {
        sb.push(n as usize, TENANT, cpu("svc", n))
            .await
            .expect("push");
    }
    sb.set_up(2, false);
    assert_eq!(total(&sb, 0, "{}").await.expect("answers"), 3 * truth());
    sb.set_up(1, false);
    match total(&sb, 0, "{}").await {
        Err(QueryFailure::Unavailable(m)) => {
            assert!(m.contains("2 of 3") && m.contains("unreachable"), "{m}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

/// Tests that pause tokio's clock: they need feature `testing` (on in
/// `cargo test --workspace`), which turns on tokio's test clock.
#[cfg(feature = "testing")]
mod deadlines {
    use std::time::Duration;

    use super::*;
    use crate::testing::CALL_DEADLINE;

    /// Virtual time since `t0` (tests that pause the clock).
    fn since(t0: tokio::time::Instant) -> Duration {
        tokio::time::Instant::now() - t0
    }

    /// Whether `t0` was a call deadline ago (timers tick by the millisecond).
    fn a_deadline_since(t0: tokio::time::Instant) -> bool {
        let d = since(t0);
        d >= CALL_DEADLINE && d < CALL_DEADLINE + Duration::from_millis(10)
    }

    #[actix::test]
    async fn a_hung_replica_does_not_delay_the_ack_and_gets_the_write_as_a_hint() {
        tokio::time::pause();
        let sb = Sandbox::start(3, 3).await.expect("sandbox");
        sb.set_hung(2, true);
        let t0 = tokio::time::Instant::now();
        sb.push(0, TENANT, cpu("svc", 0))
            .await
            .expect("acknowledged on quorum");
        assert!(
            since(t0) < CALL_DEADLINE,
            "the ack does not wait for the hung replica: {:?}",
            since(t0)
        );
        assert!(
            sb.nodes[0].cluster.hints.nodes().is_empty(),
            "not yet given up"
        );
        // At its deadline the write to the hung replica gives up: a hint.
        tokio::time::sleep(CALL_DEADLINE + Duration::from_secs(1)).await;
        assert_eq!(
            sb.nodes[0].cluster.hints.nodes(),
            vec!["node-2".to_string()]
        );
        assert_eq!(held_by(&sb, 2).await, 0);

        sb.set_hung(2, false);
        sb.nodes[0].cluster.deliver_hints().await;
        assert_eq!(held_by(&sb, 2).await, truth(), "the hint arrived once");
    }

    #[actix::test]
    async fn two_hung_replicas_refuse_a_write_and_fail_a_query_at_the_deadline() {
        tokio::time::pause();
        let sb = Sandbox::start(3, 3).await.expect("sandbox");
        sb.push(0, TENANT, cpu("svc", 0)).await.expect("push");
        sb.set_hung(2, true);
        // One hung ingester: the query waits for it until the deadline, then
        // answers in full from the replicas.
        let t0 = tokio::time::Instant::now();
        assert_eq!(total(&sb, 0, "{}").await.expect("answers"), truth());
        assert!(
            a_deadline_since(t0),
            "gave up at the deadline: {:?}",
            since(t0)
        );

        sb.set_hung(1, true);
        let t0 = tokio::time::Instant::now();
        let err = sb
            .push(0, TENANT, cpu("svc", 1))
            .await
            .expect_err("two replicas hung: refused");
        assert!(err.to_string().contains("within 5s"), "{err}");
        assert!(a_deadline_since(t0), "{:?}", since(t0));
        let t0 = tokio::time::Instant::now();
        match total(&sb, 0, "{}").await {
            Err(QueryFailure::Unavailable(m)) => assert!(m.contains("2 of 3"), "{m}"),
            other => panic!("expected unavailable, got {other:?}"),
        }
        assert!(a_deadline_since(t0), "{:?}", since(t0));
        // The hung replicas never stored the refused write; the one before is whole.
        sb.set_hung(1, false);
        sb.set_hung(2, false);
        assert_eq!(held_by(&sb, 1).await, truth());
    }

    #[actix::test]
    async fn replicas_are_counted_once_from_heads_and_from_blocks() {
        let sb = Sandbox::start(3, 3).await.expect("sandbox");
        for n in 0..6 {
            sb.push((n % 3) as usize, TENANT, cpu("svc", n))
                .await
                .expect("push");
        }
        for via in 0..3 {
            assert_eq!(total(&sb, via, "{}").await.unwrap(), 6 * truth());
            assert_eq!(
                held_by(&sb, via).await,
                6 * truth(),
                "RF 3 puts a copy on each"
            );
        }
        sb.flush_to_blocks().await.expect("blocks");
        for via in 0..3 {
            assert_eq!(
                total(&sb, via, "{}").await.unwrap(),
                6 * truth(),
                "three replica blocks, served by three store-gateways, count once"
            );
        }
    }
}

#[actix::test]
async fn a_block_held_by_several_store_gateways_is_read_once_per_query() {
    // RF 3 on three nodes: every node uploads a replica block and every
    // store-gateway serves all three. The querying node reads them itself,
    // so its peers send none of them again.
    let sb = Sandbox::start(3, 3).await.expect("sandbox");
    for n in 0..6 {
        sb.push((n % 3) as usize, TENANT, cpu("svc", n))
            .await
            .expect("push");
    }
    sb.flush_to_blocks().await.expect("blocks");
    let before = sb.transport.bytes_moved();
    assert_eq!(total(&sb, 0, "{}").await.expect("answers"), 6 * truth());
    let moved = sb.transport.bytes_moved() - before;
    assert!(
        moved < 2_048,
        "{moved} bytes moved for blocks node 0 reads itself"
    );
}

/// [`cpu`] of a service built from its own code: its function names carry
/// the service's name, as different programs' symbols differ.
fn cpu_of_own_program(service: &str, n: i64) -> Vec<SplitProfile> {
    let mut out = cpu(service, n);
    for p in &mut out {
        let mut proto = p.profile.to_proto();
        let names: std::collections::HashSet<i64> = proto.function.iter().map(|f| f.name).collect();
        for i in names {
            if let Some(s) = proto.string_table.get_mut(i as usize) {
                s.push_str(&format!(" [{service}]"));
            }
        }
        p.profile = ignis_storage::FlatProfile::from_proto(&proto).expect("encodes");
    }
    out
}

/// Twenty services, three profiles each.
async fn twenty_services(sb: &Sandbox) -> Vec<SplitProfile> {
    let mut all = Vec::new();
    for s in 0..20 {
        for n in 0..3 {
            let p = cpu_of_own_program(&format!("svc-{s}"), n);
            all.extend(p.iter().cloned());
            sb.push(s % sb.nodes.len(), TENANT, p).await.expect("push");
        }
    }
    all
}

/// What a standalone node answers for the same profiles.
async fn standalone_answer(profiles: Vec<SplitProfile>, selector: &'static str) -> Vec<u8> {
    standalone(profiles, move |e| flamegraph(e, selector)).await
}

/// What a standalone node holding `profiles` answers to `query`.
async fn standalone<F>(profiles: Vec<SplitProfile>, query: F) -> Vec<u8>
where
    F: Fn(&Engine<'_>) -> Result<Vec<u8>, ignis_query::QueryError> + Send + Sync + 'static,
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
    d.send(crate::distributor::Distribute {
        profiles,
        record: None,
        endpoint: "test",
    })
    .await
    .expect("sent")
    .expect("stored");
    node.query(TENANT, query).await.expect("standalone answer")
}

#[actix::test]
async fn peers_answer_only_the_query_scope_and_the_answer_equals_a_single_node() {
    // RF 1: each profile lives on one node, so the answer needs the peers.
    let sb = Sandbox::start(3, 1).await.expect("sandbox");
    let profiles = twenty_services(&sb).await;
    let selector = "{service_name=\"svc-7\"}";
    let expected = standalone_answer(profiles, selector).await;

    for stage in ["heads", "blocks"] {
        if stage == "blocks" {
            sb.flush_to_blocks().await.expect("blocks");
        }
        let before = sb.transport.bytes_moved();
        let started = std::time::Instant::now();
        let answer = sb
            .query(0, TENANT, move |e| flamegraph(e, selector))
            .await
            .expect("cluster answer");
        let scoped = sb.transport.bytes_moved() - before;
        let scoped_time = started.elapsed();
        assert_eq!(answer, expected, "{stage}: the cluster answers as one node");
        assert_eq!(total(&sb, 1, selector).await.unwrap(), 3 * truth());

        // What the unscoped fetch of protocol 2 moved: everything in range.
        let before = sb.transport.bytes_moved();
        let started = std::time::Instant::now();
        let everything = Scope::everything(i64::MIN, i64::MAX);
        for i in 1..3 {
            let peer = sb.nodes[0]
                .cluster
                .peer(sb.nodes[0].cluster.membership.members()[i].clone());
            peer.select(&SelectRequest::new(TENANT, &everything, i64::MIN, i64::MAX))
                .await
                .expect("select");
        }
        let unscoped = sb.transport.bytes_moved() - before;
        let unscoped_time = started.elapsed();
        eprintln!(
            "{stage}: one-service flame graph moved {scoped} bytes between nodes in \
             {scoped_time:?} (whole query); the unscoped selects alone {unscoped} bytes in \
             {unscoped_time:?}"
        );
        assert!(
            scoped * 10 <= unscoped,
            "{stage}: scoped {scoped} bytes, unscoped {unscoped}"
        );
    }
}

/// Label values, label names and series lists from peers: each peer sends
/// the label sets its data holds for the query's one selection (not rows),
/// and the answer equals a single node's, from heads and from blocks.
#[actix::test]
async fn a_listing_from_peers_moves_label_sets_and_equals_a_single_node() {
    use ignis_storage::proto::types::v1 as types;
    let sb = Sandbox::start(3, 1).await.expect("sandbox");
    let mut profiles = twenty_services(&sb).await;
    // One service seen only later: parts of a range list different series.
    let late = cpu_of_own_program("svc-late", 100);
    profiles.extend(late.iter().cloned());
    sb.push(2, TENANT, late).await.expect("push");
    // A listing in three parts (as the query-frontend asks for the parts
    // its cache misses): one query, a selection per part.
    let parts = |e: &Engine<'_>| {
        let part =
            |a: i64, b: i64| ignis_query::Selection::new(vec![], a * 1_000_000, b * 1_000_000 - 1);
        let lists = [
            e.series_labels(&part(START_MS, START_MS + 30_000)),
            e.series_labels(&part(START_MS + 30_000, START_MS + 990_000)),
            e.series_labels(&part(START_MS + 990_000, START_MS + 1_100_000)),
        ];
        Ok(format!("{:?}", lists.map(|l| (l.len(), l))).into_bytes())
    };
    let values = |e: &Engine<'_>| {
        e.label_values(&types::LabelValuesRequest {
            name: "service_name".into(),
            matchers: vec!["{service_name=~\"svc-1.*\"}".into()],
            start: 1,
            end: i64::MAX / 2_000_000,
        })
        .map(|r| r.encode_to_vec())
    };
    let names = |e: &Engine<'_>| {
        e.label_names(&types::LabelNamesRequest {
            matchers: vec![],
            start: 1,
            end: i64::MAX / 2_000_000,
        })
        .map(|r| r.encode_to_vec())
    };
    let series = |e: &Engine<'_>| {
        e.series(&q::SeriesRequest {
            matchers: vec!["{service_name=\"svc-3\"}".into()],
            start: 1,
            end: i64::MAX / 2_000_000,
            ..Default::default()
        })
        .map(|r| r.encode_to_vec())
    };
    let want = [
        standalone(profiles.clone(), values).await,
        standalone(profiles.clone(), names).await,
        standalone(profiles.clone(), series).await,
        standalone(profiles, parts).await,
    ];
    let listed = String::from_utf8_lossy(&want[3]);
    assert!(
        listed.starts_with("[(40, ")
            && listed.contains("(0, []), (2, [")
            && listed.contains("svc-late"),
        "{listed}"
    );
    let decoded = types::LabelValuesResponse::decode(want[0].as_slice()).expect("values");
    assert_eq!(decoded.names.len(), 11, "svc-1 and svc-10 … svc-19");
    for stage in ["heads", "blocks"] {
        if stage == "blocks" {
            sb.flush_to_blocks().await.expect("blocks");
        }
        for via in 0..3 {
            let got = [
                sb.query(via, TENANT, values).await.expect("values"),
                sb.query(via, TENANT, names).await.expect("names"),
                sb.query(via, TENANT, series).await.expect("series"),
                sb.query(via, TENANT, parts).await.expect("parts"),
            ];
            assert_eq!(got, want, "{stage} via node {via}");
        }
    }
    // A peer asked for the listing sends its label sets, however many
    // profiles they hold; asked for rows, it sends every profile in range.
    let scope = Scope::record(&QueryLimits::default(), |e| parts(e).map(|_| ())).expect("scope");
    assert_eq!(scope.selections.len(), 3);
    assert!(SelectRequest::new(TENANT, &scope, i64::MIN, i64::MAX).listing);
    let scope = Scope::record(&QueryLimits::default(), |e| values(e).map(|_| ())).expect("scope");
    let listing = SelectRequest::new(TENANT, &scope, i64::MIN, i64::MAX);
    assert!(listing.listing);
    let rows = SelectRequest {
        listing: false,
        ..listing.clone()
    };
    let peer = sb.nodes[0]
        .cluster
        .peer(sb.nodes[0].cluster.membership.members()[1].clone());
    let mut moved = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // Twice the profiles, the same series.
            twenty_services(&sb).await;
        }
        let before = sb.transport.bytes_moved();
        let listed = peer.select(&listing).await.expect("select");
        let listed_bytes = sb.transport.bytes_moved() - before;
        let before = sb.transport.bytes_moved();
        let with_rows = peer.select(&rows).await.expect("select");
        let row_bytes = sb.transport.bytes_moved() - before;
        assert!(!listed.listed.is_empty() && listed.head.is_empty());
        assert!(with_rows.listed.is_empty() && !with_rows.head.is_empty());
        moved.push((listed_bytes, row_bytes));
    }
    let [(listed, rows), (listed_again, rows_again)] = moved[..] else {
        unreachable!()
    };
    assert_eq!(listed, listed_again, "label sets do not grow with profiles");
    assert!(
        rows_again > rows && listed < rows,
        "rows grow with profiles: {rows} -> {rows_again} (listing {listed})"
    );
}

/// The root function of the first sample of `p` (a call site to select).
fn root_function(p: &SplitProfile) -> String {
    let pp = p.profile.to_proto();
    let loc = pp.sample[0].location_id.last().copied().expect("a stack");
    let function = pp
        .location
        .iter()
        .find(|l| l.id == loc)
        .and_then(|l| l.line.first())
        .map(|l| l.function_id)
        .expect("a line");
    let name = pp
        .function
        .iter()
        .find(|f| f.id == function)
        .map(|f| f.name)
        .expect("a function");
    pp.string_table[name as usize].clone()
}

#[actix::test]
async fn a_call_site_series_from_peers_equals_a_single_node() {
    // SelectSeries under a call site needs each profile's stacks: peers
    // must ship them (the scope says so) and answer from their rows.
    let sb = Sandbox::start(3, 1).await.expect("sandbox");
    let mut all = Vec::new();
    for n in 0..6 {
        let p = cpu(&format!("svc-{}", n % 3), n);
        all.extend(p.clone());
        sb.push((n % 3) as usize, TENANT, p).await.expect("push");
    }
    let root = root_function(&all[0]);
    let query = move |e: &Engine<'_>| {
        e.select_series(&q::SelectSeriesRequest {
            profile_type_id: CPU.into(),
            label_selector: "{}".into(),
            start: START_MS,
            end: START_MS + 3_600_000,
            step: 60.0,
            group_by: vec!["service_name".into()],
            stack_trace_selector: Some(ignis_storage::proto::types::v1::StackTraceSelector {
                call_site: vec![ignis_storage::proto::types::v1::Location { name: root.clone() }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .map(|r| r.encode_to_vec())
    };
    let single = Tenants::new(
        vec![actix::Arbiter::current()],
        None,
        BlockSettings::default(),
        Metrics::new(),
        QueryLimits::default(),
        2,
    );
    let d = single
        .get_or_start(TENANT)
        .distributor
        .expect("distributor");
    d.send(crate::distributor::Distribute {
        profiles: all,
        record: None,
        endpoint: "test",
    })
    .await
    .expect("sent")
    .expect("stored");
    let expected = single.query(TENANT, query.clone()).await.expect("single");
    let whole = q::SelectSeriesResponse::decode(expected.as_slice()).expect("decode");
    assert_eq!(whole.series.len(), 3, "three services");
    for stage in ["heads", "blocks"] {
        if stage == "blocks" {
            sb.flush_to_blocks().await.expect("blocks");
        }
        let answer = sb.query(0, TENANT, query.clone()).await.expect("cluster");
        assert_eq!(answer, expected, "{stage}: the cluster answers as one node");
    }
}

#[actix::test]
async fn a_standalone_node_is_a_ring_of_one() {
    let node = Arc::new(Tenants::new(
        vec![actix::Arbiter::current()],
        None,
        BlockSettings::default(),
        Metrics::new(),
        QueryLimits::default(),
        2,
    ));
    let view = node.cluster().ring();
    assert_eq!(view.members.len(), 1);
    assert_eq!((view.replication_factor, view.quorum()), (1, 1));
    let d = node.get_or_start(TENANT).distributor.expect("distributor");
    d.send(crate::distributor::Distribute {
        profiles: cpu("svc", 0),
        record: None,
        endpoint: "test",
    })
    .await
    .expect("sent")
    .expect("stored");
    let t = node
        .query(TENANT, |e| {
            let (_, sel) = e.typed_selection(CPU, "{}", 1, i64::MAX / 1_000_000)?;
            Ok(e.merge(&sel).total())
        })
        .await
        .expect("answers");
    assert_eq!(t, truth());
}
