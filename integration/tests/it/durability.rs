//! Acknowledged means durable: a node killed with SIGKILL mid-stream comes
//! back with every acknowledged profile, exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use ignis_integration::client::Client;
use ignis_integration::fixtures::{read_fixture, read_json};
use ignis_integration::node::ChildNode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const WRITERS: usize = 4;
const KILL_AFTER_ACKS: usize = 150;

fn push_body(service: &str, raw: &[u8]) -> Vec<u8> {
    ignis_integration::fixtures::push_request(service, raw.to_vec())
}

/// Per-service totals of the Go CPU type, from one grouped SelectSeries.
async fn totals_by_service(client: &Client) -> Result<Vec<(String, f64)>> {
    let s = client
        .connect_json(
            "SelectSeries",
            json!({"profileTypeID": CPU, "labelSelector": "{service_name=~\"dur-.*\"}",
                   "start": 1, "end": 4_000_000_000_000i64, "step": 4.0e9, "groupBy": ["service_name"]}),
        )
        .await?;
    Ok(s["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s: &Value| {
            let name = s["labels"][0]["value"].as_str().unwrap_or("").to_string();
            let sum = s["points"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["value"].as_f64().unwrap_or(0.0))
                .sum();
            (name, sum)
        })
        .collect())
}

#[tokio::test]
async fn kill_9_mid_stream_loses_no_acknowledged_profile() -> Result<()> {
    kill_9_and_restart([None, None, None]).await
}

/// A tenant's series spread over 3 ingesters (3 WAL streams), killed, then
/// started with 1 ingester per tenant (the other streams replayed into
/// ingesters that take no new profiles), stopped, started with 2: the
/// same exact answers, and nothing replayed twice.
#[tokio::test]
async fn kill_9_then_restart_with_fewer_ingester_shards() -> Result<()> {
    kill_9_and_restart([Some(3), Some(1), Some(2)]).await
}

/// Kills a node mid-stream and starts it twice on the same data, each
/// start with its `server.ingester_shards` (None: the default).
async fn kill_9_and_restart(shards: [Option<usize>; 3]) -> Result<()> {
    let env = |i: usize| -> Vec<(String, String)> {
        shards[i]
            .map(|n| ("IGNIS_SERVER__INGESTER_SHARDS".to_string(), n.to_string()))
            .into_iter()
            .collect()
    };
    let data = tempfile::tempdir()?;
    let mut node = ChildNode::start_with(data.path(), &[], &env(0)).await?;
    let client = Client::new(&node.url);
    let raw = read_fixture("go/cpu.pb.gz")?;
    let per_profile = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1) as f64;

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, raw, acked) = (client.clone(), raw.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..100_000 {
                let service = format!("dur-{w}-{i}");
                let r = client
                    .post(
                        "/push.v1.PusherService/Push",
                        &[("content-type", "application/proto")],
                        push_body(&service, &raw),
                    )
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => acked.lock().await.push(service),
                    Ok(r) => return Err(anyhow::anyhow!("{service}: unexpected {}", r.status())),
                    Err(_) => return Ok(()), // the node is gone
                }
            }
            Ok(())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().await.len() < KILL_AFTER_ACKS {
        if Instant::now() > deadline {
            bail!(
                "only {} pushes acknowledged in time",
                acked.lock().await.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill()?;
    for w in writers {
        w.await??;
    }
    let acked = acked.lock().await.clone();

    let mut node = ChildNode::start_with(data.path(), &[], &env(1)).await?;
    let client = Client::new(&node.url);
    let totals = totals_by_service(&client).await?;
    for (service, total) in &totals {
        ensure!(
            *total == per_profile,
            "{service}: total {total}, want exactly {per_profile} (duplicated or partial)"
        );
    }
    let stored: std::collections::HashSet<&str> = totals.iter().map(|(s, _)| s.as_str()).collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|s| !stored.contains(s.as_str()))
        .collect();
    ensure!(
        lost.is_empty(),
        "{} acknowledged profiles lost after kill -9, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    ensure!(stored.len() >= acked.len() && acked.len() >= KILL_AFTER_ACKS);
    let metrics = client.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("ignis_wal_replayed_records_total"),
        "no replay metric"
    );

    // A clean stop cuts the replayed head into a block that records its WAL
    // position, so the WAL is truncated behind it: the next start replays
    // nothing and answers the same from the block.
    ensure!(node.terminate()?.success(), "SIGTERM stop failed");
    let node = ChildNode::start_with(data.path(), &[], &env(2)).await?;
    let client = Client::new(&node.url);
    let metrics = client.get("/metrics").await?.text().await?;
    let replayed: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ignis_wal_replayed_records_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    ensure!(
        replayed == 0.0,
        "{replayed} WAL records replayed again after they were cut into a block"
    );
    ensure!(
        totals_by_service(&client).await? == totals,
        "answers changed once the data moved from the WAL into a block"
    );
    Ok(())
}
