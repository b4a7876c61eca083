//! Real `ignis` processes joined by gossip: replicated writes, fan-out reads
//! with replicas counted once, role-split clusters, and ingesters killed with
//! SIGKILL under load. Run alone with `cargo test -p ignis-integration --test it cluster`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ignis_integration::client::{Client, fg_total};
use ignis_integration::cluster::Cluster;
use ignis_integration::fixtures::{
    expectations, load_captures, read_fixture, read_json, sdk_captures,
};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::common::verify;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// Replays every SDK capture through `writers` (round robin) and checks every
/// expectation through `readers` (round robin).
async fn replay_and_verify(cluster: &Cluster, writers: &[usize], readers: &[usize]) -> Result<()> {
    let mut expected = Vec::new();
    let mut n = 0;
    for (dir, metrics) in sdk_captures() {
        for (i, c) in load_captures(dir)?.iter().enumerate() {
            let client = Client::new(&cluster.url(writers[n % writers.len()])?);
            n += 1;
            let r = client.replay(c).await?;
            let status = r.status();
            ensure!(
                status.is_success(),
                "{}: {status}: {}",
                c.name,
                r.text().await?
            );
            let metric = metrics.get(i).copied().unwrap_or("");
            expected.extend(expectations(c, metric).with_context(|| c.name.clone())?);
        }
    }
    ensure!(expected.len() >= 21, "only {} expectations", expected.len());
    for (i, exp) in expected.iter().enumerate() {
        let client = Client::new(&cluster.url(readers[i % readers.len()])?);
        verify(&client, exp).await?;
    }
    Ok(())
}

#[tokio::test]
async fn cluster_of_three_answers_the_fixture_totals_a_single_node_does() -> Result<()> {
    let cluster = Cluster::start(&["all", "all", "all"]).await?;
    let status = cluster.status(0).await?;
    ensure!(status["ring"]["replication_factor"] == 3, "{status}");
    ensure!(status["ring"]["quorum"] == 2, "{status}");
    let share: f64 = status["ring"]["ownership"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["share"].as_f64())
        .sum();
    ensure!((share - 1.0).abs() < 1e-6, "ring shares sum to {share}");
    // Writes through one node are read back exactly through the others:
    // three replicas of every profile, counted once.
    replay_and_verify(&cluster, &[0, 1, 2], &[1, 2, 0]).await?;
    let metrics = reqwest::get(format!("{}/metrics", cluster.url(0)?))
        .await?
        .text()
        .await?;
    ensure!(
        metrics.contains("ignis_replica_writes_total{node=\"node-1\",outcome=\"ok\"}"),
        "no replica write metric"
    );
    ensure!(metrics.contains("ignis_cluster_members{state=\"alive\"} 3"));
    // A peer of another internal protocol version is refused clearly (a
    // rolling upgrade with mixed versions fails loudly, never misreads).
    let r = reqwest::Client::new()
        .post(format!("{}/internal/v1/push", cluster.url(1)?))
        .header("x-ignis-protocol", "1")
        .body(vec![1u8, 2, 3])
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(
        status == 409 && text.contains("protocol"),
        "mixed versions: {status} {text}"
    );
    // Garbage from a peer of the right version is a 400, not a crash.
    let r = reqwest::Client::new()
        .post(format!("{}/internal/v1/push", cluster.url(1)?))
        .header(
            "x-ignis-protocol",
            ignis_actors::peer::PROTOCOL_VERSION.to_string(),
        )
        .body(vec![1u8, 2, 3])
        .send()
        .await?;
    ensure!(r.status() == 400, "garbage record: {}", r.status());
    // The HTML page lists every member.
    let page = reqwest::get(format!("{}/cluster", cluster.url(2)?))
        .await?
        .text()
        .await?;
    for i in 0..3 {
        ensure!(
            page.contains(&format!("node-{i}")),
            "node-{i} missing from /cluster"
        );
    }
    Ok(())
}

#[tokio::test]
async fn split_roles_cluster_answers_the_fixture_totals() -> Result<()> {
    // 2 distributors, 3 ingesters, a querier, a query-frontend, 2
    // store-gateways, a query-scheduler.
    let cluster = Cluster::start(&[
        "distributor",
        "distributor",
        "ingester",
        "ingester",
        "ingester",
        "querier",
        "query-frontend",
        "store-gateway",
        "store-gateway",
        "query-scheduler",
    ])
    .await?;
    replay_and_verify(&cluster, &[0, 1], &[5, 6]).await?;
    // Flame graphs went frontend → scheduler → querier: the scheduler
    // relayed sub-queries, only the querier ran them.
    let relayed = metric(&cluster, 9, "ignis_query_scheduler_sub_queries_total").await?;
    let ran = metric(&cluster, 5, "ignis_querier_sub_queries_total").await?;
    ensure!(
        relayed > 0.0 && ran == relayed,
        "the scheduler relayed {relayed} sub-queries, the querier ran {ran}"
    );
    for i in [6, 9] {
        let ran = metric(&cluster, i, "ignis_querier_sub_queries_total").await?;
        ensure!(
            ran == 0.0,
            "node {i} is no querier but ran {ran} sub-queries"
        );
    }
    // Span profiles cross the cluster: pushed through a distributor, stored
    // on three ingesters, fetched by a querier with their span samples and
    // counted once.
    let spans = crate::spans::labelled_fixture()?;
    crate::spans::push(&Client::new(&cluster.url(0)?), &spans).await?;
    let ms = spans.time_ns / 1_000_000;
    for (span, sums) in &spans.sums {
        let fg = crate::spans::span_profile_json(
            &Client::new(&cluster.url(6)?),
            crate::spans::CPU,
            &[span],
            (ms, ms),
        )
        .await?;
        ensure!(
            fg_total(&fg) == sums[1],
            "span {span} through the cluster: {} != {}",
            fg_total(&fg),
            sums[1]
        );
    }
    // So do trace ids: the trace selector goes to the peers, the samples'
    // trace ids come back with their span samples.
    for (trace, sums) in &spans.trace_sums {
        let fg = Client::new(&cluster.url(6)?)
            .connect_json(
                "SelectMergeStacktraces",
                serde_json::json!({"profileTypeID": crate::spans::CPU,
                    "labelSelector": format!("{{service_name=\"{}\"}}", crate::spans::SERVICE),
                    "start": ms, "end": ms, "traceIdSelector": [trace]}),
            )
            .await?;
        ensure!(
            fg_total(&fg) == sums[1],
            "trace {trace} through the cluster: {} != {}",
            fg_total(&fg),
            sums[1]
        );
    }
    // And a span heatmap: one point per span, each span's sum as exemplar.
    let v = Client::new(&cluster.url(6)?)
        .connect_json(
            "SelectHeatmap",
            serde_json::json!({"profileTypeID": crate::spans::CPU,
                "labelSelector": format!("{{service_name=\"{}\"}}", crate::spans::SERVICE),
                "start": ms, "end": ms + 1, "step": 60.0,
                "queryType": "HEATMAP_QUERY_TYPE_SPAN", "exemplarType": "EXEMPLAR_TYPE_SPAN"}),
        )
        .await?;
    let mut got: Vec<(String, i64)> = v["series"][0]["slots"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["spanId"].as_str().unwrap_or_default().to_string(),
                e["value"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, i64)> = spans
        .sums
        .iter()
        .map(|(span, sums)| (span.to_string(), sums[1]))
        .collect();
    want.sort();
    ensure!(got == want, "span heatmap through the cluster: {v}");
    // Each node serves only its roles' routes.
    let http = reqwest::Client::new();
    let r = http
        .post(format!(
            "{}/querier.v1.QuerierService/ProfileTypes",
            cluster.url(0)?
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    ensure!(
        r.status() == 404,
        "a distributor answered a query: {}",
        r.status()
    );
    let r = http
        .post(format!("{}/ingest?name=x&format=folded", cluster.url(5)?))
        .body("a;b 1")
        .send()
        .await?;
    ensure!(
        r.status() == 404,
        "a querier accepted a write: {}",
        r.status()
    );
    // Ingesters hold the data, each profile on all three; the other roles
    // start no ingester (nor WAL) of their own.
    for i in 0..10 {
        let m = reqwest::get(format!("{}/metrics", cluster.url(i)?))
            .await?
            .text()
            .await?;
        let holds = m.contains("ignis_head_series{tenant=\"anonymous\"}");
        let has_wal = cluster.data_dir(i).join("wal").exists();
        let ingester = (2..5).contains(&i);
        ensure!(
            holds == ingester && has_wal == ingester,
            "node {i} ({}): holds data {holds}, has a WAL {has_wal}",
            cluster.specs[i].target
        );
    }
    Ok(())
}

fn push_body(service: &str, raw: &[u8]) -> Vec<u8> {
    ignis_integration::fixtures::push_request(service, raw.to_vec())
}

/// Sum of the CPU total of every series matching `selector`, through node `i`.
async fn total(cluster: &Cluster, i: usize, selector: &str) -> Result<f64> {
    let client = Client::new(&cluster.url(i)?);
    let s = client
        .connect_json(
            "SelectSeries",
            json!({"profileTypeID": CPU, "labelSelector": selector,
                   "start": 1, "end": 4_000_000_000_000i64, "step": 4.0e9}),
        )
        .await?;
    Ok(s["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s: &Value| s["points"].as_array().cloned().unwrap_or_default())
        .map(|p| p["value"].as_f64().unwrap_or(0.0))
        .sum())
}

/// A metric's value on node `i` (summed over its label sets).
async fn metric(cluster: &Cluster, i: usize, name: &str) -> Result<f64> {
    let m = reqwest::get(format!("{}/metrics", cluster.url(i)?))
        .await?
        .text()
        .await?;
    Ok(m.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Distinct profiles of services starting with `prefix` that node `i` holds
/// itself, asked through the internal fetch a querier uses.
async fn profiles_held_by(cluster: &Cluster, i: usize, prefix: &str) -> Result<usize> {
    use ignis_actors::peer::{PROTOCOL_VERSION, SelectRequest, protocol};
    let rpc = ignis_cluster::RpcClient::new(Duration::from_secs(10), 0, PROTOCOL_VERSION)?;
    let addr = cluster.url(i)?.trim_start_matches("http://").to_string();
    let scope = ignis_query::Scope::everything(i64::MIN, i64::MAX);
    let req = protocol::encode(&SelectRequest::new("anonymous", &scope, i64::MIN, i64::MAX))?;
    let bytes = rpc.call(&addr, protocol::SELECT, req.into()).await?;
    let head = protocol::decode_answer(&bytes)?.head;
    let ids: std::collections::HashSet<u64> = head
        .series()
        .iter()
        .filter(|s| {
            s.labels
                .get("service_name")
                .is_some_and(|v| v.starts_with(prefix))
        })
        .flat_map(|s| s.profiles.iter().map(|r| r.profile_id.key()))
        .collect();
    Ok(ids.len())
}

#[tokio::test]
async fn kill_9_of_an_ingester_loses_no_acknowledged_profile() -> Result<()> {
    let mut cluster = Cluster::start(&["all", "all", "all"]).await?;
    let raw = read_fixture("go/cpu.pb.gz")?;
    let per_profile = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_f64()
        .context("cpu truth")?;

    // Phase 1: four writers push through nodes 0 and 1 while node 2 is killed.
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(Mutex::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = Client::new(&cluster.url(w % 2)?);
        let (raw, acked, stop) = (raw.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0.. {
                if *stop.lock().await {
                    break;
                }
                let r = client
                    .post(
                        "/push.v1.PusherService/Push",
                        &[("content-type", "application/proto")],
                        push_body(&format!("kill-{w}-{i}"), &raw),
                    )
                    .await?;
                if r.status().is_success() {
                    acked.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.push(format!("{}: {}", r.status(), r.text().await?));
                }
            }
            anyhow::Ok(failures)
        }));
    }
    let wait_acks = |n: usize| {
        let acked = acked.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            while acked.load(Ordering::SeqCst) < n {
                if Instant::now() > deadline {
                    bail!("only {} pushes acknowledged", acked.load(Ordering::SeqCst));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        }
    };
    wait_acks(60).await?;
    cluster.kill(2)?;
    let at_kill = acked.load(Ordering::SeqCst);
    // Pushes keep succeeding on the two remaining replicas.
    wait_acks(at_kill + 60).await?;
    *stop.lock().await = true;
    let mut failures = Vec::new();
    for w in writers {
        failures.extend(w.await??);
    }
    ensure!(
        failures.is_empty(),
        "pushes failed with one ingester down: {:?}",
        &failures[..failures.len().min(3)]
    );
    let acked = acked.load(Ordering::SeqCst) as f64;
    // With one of three down, reads are complete; every profile counted once.
    for i in 0..2 {
        let t = total(&cluster, i, "{service_name=~\"kill-.*\"}").await?;
        ensure!(
            t == acked * per_profile,
            "node {i}: total {t}, want {} ({acked} acknowledged)",
            acked * per_profile
        );
    }
    // The killed ingester restarts, replays its WAL, rejoins, and catches up
    // on what it missed through the other nodes' hints: it alone then holds
    // every acknowledged profile again.
    cluster.start_node(2).await?;
    cluster.wait_converged(3).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut pending = 0.0;
        for i in 0..2 {
            pending += metric(&cluster, i, "ignis_hints_pending_bytes").await?;
        }
        if pending == 0.0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "hints never delivered ({pending} bytes left)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered = metric(&cluster, 0, "ignis_hints_delivered_total").await?
        + metric(&cluster, 1, "ignis_hints_delivered_total").await?;
    ensure!(
        delivered > 0.0,
        "no hint was delivered to the restarted ingester"
    );
    let own = profiles_held_by(&cluster, 2, "kill-").await?;
    ensure!(
        own == acked as usize,
        "the restarted ingester holds {own} of {acked} acknowledged profiles"
    );
    for i in 0..3 {
        let t = total(&cluster, i, "{service_name=~\"kill-.*\"}").await?;
        ensure!(
            t == acked * per_profile,
            "after rejoin, node {i}: total {t}, want {}",
            acked * per_profile
        );
    }

    // Phase 2: two of three ingesters down: no quorum, pushes get 503 with a
    // reason, and nothing acknowledged before is lost.
    cluster.kill(1)?;
    cluster.kill(2)?;
    let client = Client::new(&cluster.url(0)?);
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_body("after-two-down", &raw),
        )
        .await?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(
        status == 503,
        "push with two ingesters down: {status} {text}"
    );
    ensure!(text.contains("quorum"), "503 without a reason: {text}");
    cluster.start_node(1).await?;
    cluster.start_node(2).await?;
    cluster.wait_converged(3).await?;
    for i in 0..3 {
        let t = total(&cluster, i, "{service_name=~\"kill-.*\"}").await?;
        ensure!(
            t == acked * per_profile,
            "after two restarts, node {i}: total {t}, want {}",
            acked * per_profile
        );
    }
    Ok(())
}

#[tokio::test]
async fn cluster_answers_from_blocks_on_a_shared_bucket() -> Result<()> {
    // Every push becomes a block at once on a bucket all nodes share: the
    // ingesters let go of the data and the store-gateways serve it.
    let bucket = tempfile::tempdir()?;
    let path = bucket.path().display().to_string();
    let cluster = Cluster::start_with_env(
        &["all", "all", "all"],
        &[
            ("IGNIS_STORAGE__BUCKET__PATH", path.as_str()),
            ("IGNIS_STORAGE__MAX_HEAD_SAMPLES", "1"),
            ("IGNIS_STORAGE__BLOCK_CHECK_INTERVAL_SECS", "1"),
            ("IGNIS_STORAGE__BLOCK_SYNC_INTERVAL_SECS", "1"),
        ],
    )
    .await?;
    let raw = read_fixture("go/cpu.pb.gz")?;
    let per_profile = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_f64()
        .context("cpu truth")?;
    for i in 0..6 {
        let client = Client::new(&cluster.url(i % 3)?);
        let r = client
            .post(
                "/push.v1.PusherService/Push",
                &[("content-type", "application/proto")],
                push_body(&format!("blocks-{i}"), &raw),
            )
            .await?;
        ensure!(r.status().is_success(), "push {i}: {}", r.status());
    }
    // Wait until every replica is a block (3 copies of 6 profiles).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut uploaded = 0.0;
        for i in 0..3 {
            let m = reqwest::get(format!("{}/metrics", cluster.url(i)?))
                .await?
                .text()
                .await?;
            uploaded += m
                .lines()
                .filter(|l| l.starts_with("ignis_blocks_uploaded_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        if uploaded >= 3.0 {
            // Each ingester cuts and ships at least once; give the rest a round.
            tokio::time::sleep(Duration::from_secs(3)).await;
            break;
        }
        ensure!(Instant::now() < deadline, "no blocks uploaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..3 {
        let t = total(&cluster, i, "{service_name=~\"blocks-.*\"}").await?;
        ensure!(
            t == 6.0 * per_profile,
            "node {i}: total {t}, want {}",
            6.0 * per_profile
        );
        let m = reqwest::get(format!("{}/metrics", cluster.url(i)?))
            .await?
            .text()
            .await?;
        ensure!(
            m.lines()
                .any(|l| l.starts_with("ignis_indexed_blocks ") && !l.ends_with(" 0")),
            "node {i} indexed no block"
        );
    }
    Ok(())
}

async fn push_to(
    cluster: &Cluster,
    i: usize,
    service: &str,
    raw: &[u8],
) -> Result<reqwest::StatusCode> {
    let r = Client::new(&cluster.url(i)?)
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_body(service, raw),
        )
        .await?;
    Ok(r.status())
}

#[tokio::test]
async fn an_ingester_leaving_cleanly_flushes_and_leaves_the_ring() -> Result<()> {
    let bucket = tempfile::tempdir()?;
    let path = bucket.path().display().to_string();
    let mut cluster = Cluster::start_with_env(
        &["all", "all", "all"],
        &[
            ("IGNIS_STORAGE__BUCKET__PATH", path.as_str()),
            ("IGNIS_STORAGE__BLOCK_SYNC_INTERVAL_SECS", "1"),
        ],
    )
    .await?;
    let raw = read_fixture("go/cpu.pb.gz")?;
    let per_profile = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_f64()
        .context("cpu truth")?;
    for i in 0..4 {
        let s = push_to(&cluster, i % 2, &format!("leave-{i}"), &raw).await?;
        ensure!(s.is_success(), "push {i}: {s}");
    }
    // SIGTERM: the node leaves the ring, then cuts its head into a block.
    cluster.terminate(2)?;
    // It announced the leave before stopping; once its heartbeats stop it
    // is `left` (not `failed`).
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = cluster.status(0).await?;
        let node2 = status["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["node_id"] == "node-2")
            .cloned()
            .unwrap_or_default();
        ensure!(
            node2["leaving"] == true,
            "node-2 did not announce its leave: {status}"
        );
        if node2["state"] == "left" {
            break status;
        }
        ensure!(
            node2["state"] != "failed",
            "a clean leave seen as a failure: {status}"
        );
        ensure!(Instant::now() < deadline, "node-2 never left: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(
        status["ring"]["replication_factor"] == 2,
        "the ring still counts the departed ingester: {status}"
    );
    let blocks = std::fs::read_dir(bucket.path().join("anonymous/blocks"))?.count();
    ensure!(blocks >= 1, "the leaving ingester flushed no block");
    // Writes go on (quorum of the two remaining) and nothing is missing.
    for i in 4..6 {
        let s = push_to(&cluster, i % 2, &format!("leave-{i}"), &raw).await?;
        ensure!(s.is_success(), "push {i} after the leave: {s}");
    }
    for i in 0..2 {
        let t = total(&cluster, i, "{service_name=~\"leave-.*\"}").await?;
        ensure!(
            t == 6.0 * per_profile,
            "node {i}: total {t}, want {}",
            6.0 * per_profile
        );
    }
    Ok(())
}
