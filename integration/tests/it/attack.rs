//! The attack corpus against a running binary: every hostile request gets a
//! 4xx (or, where it is valid after all, is stored), never a 5xx or a
//! crash; peak RSS stays under a stated bound; data stored before is
//! unchanged, also after a restart that cuts it into blocks. Slow-loris
//! connections do not stop others from being served.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use ignis_integration::client::Client;
use ignis_integration::node::ChildNode;
use tokio::io::AsyncWriteExt;

use crate::attack_corpus::{CPU, Expect, LINES, SATURATED, corpus};
use crate::common::total_of;
use crate::tenants::{go_cpu_total, push_go_cpu};

/// The most resident memory the node may reach while it takes the corpus.
const MAX_PEAK_RSS: u64 = 768 << 20;

const PUSH: &str = "/push.v1.PusherService/Push";
const PROTO: (&str, &str) = ("content-type", "application/proto");

/// What is stored before the attack, and must read back the same after.
async fn reference(client: &Client) -> Result<(i64, i64)> {
    Ok((
        total_of(client, CPU, "before.app").await?,
        total_of(client, "process_cpu:samples:count::", "before.text").await?,
    ))
}

#[tokio::test]
async fn attack_corpus_is_refused_and_leaves_stored_data_unchanged() -> Result<()> {
    let data = tempfile::tempdir()?;
    let node = ChildNode::start_in(data.path(), &[]).await?;
    let client = Client::new(&node.url);
    let r = client
        .post(PUSH, &[PROTO], push_go_cpu("before.app")?)
        .await?;
    ensure!(r.status().is_success(), "reference push: {}", r.status());
    let r = client
        .post(
            "/ingest?name=before.text.cpu&format=folded&sampleRate=0&from=1795000000",
            &[],
            b"main;work 3\nmain;idle 4\n".to_vec(),
        )
        .await?;
    ensure!(r.status().is_success(), "reference folded: {}", r.status());
    let before = reference(&client).await?;
    ensure!(
        before == (go_cpu_total()?, 7),
        "reference totals {before:?}"
    );

    let attacks = corpus()?;
    ensure!(attacks.len() >= 200, "only {} attacks", attacks.len());
    // A fresh connection per attack: a server that closes a connection
    // after refusing an attack (as it should for a body it did not read)
    // must not turn the next attack into a reused-connection race.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(0)
        .build()?;
    let mut failures = Vec::new();
    // The attacks that raised the peak RSS most, reported at the end.
    let mut jumps: Vec<(u64, &str)> = Vec::new();
    let mut peak = node.peak_rss_bytes()?;
    for a in &attacks {
        let url = format!("{}{}", node.url, a.path);
        let mut req = match a.method {
            "GET" => http.get(&url),
            _ => http.post(&url).body(a.body.clone()),
        };
        for (k, v) in &a.headers {
            req = req.header(*k, v.as_str());
        }
        let (status, body) = match req.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, format!("transport error: {e}")),
        };
        let ok = match a.expect {
            Expect::Refused => (400..500).contains(&status),
            Expect::NotFailed => (200..300).contains(&status) || (400..500).contains(&status),
            Expect::Stored => (200..300).contains(&status),
            Expect::GrpcRefused => {
                (400..500).contains(&status)
                    || (status == 200
                        && body.contains("grpc-status: ")
                        && !body.contains("grpc-status: 0\r\n"))
            }
        };
        if !ok {
            let body: String = body.chars().take(300).collect();
            failures.push(format!("{}: {status} ({:?}): {body}", a.name, a.expect));
        }
        if (400..500).contains(&status) && body.len() > 16 << 10 {
            failures.push(format!("{}: a {} byte error body", a.name, body.len()));
        }
        // On a fresh connection too: a kept-alive one the server closed
        // while the attack ran would fail for that reason alone.
        match http.get(format!("{}/ready", node.url)).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => bail!(
                "the node stopped serving after {:?}: {}",
                a.name,
                r.status()
            ),
            Err(e) => bail!("the node stopped serving after {:?}: {e}", a.name),
        }
        let now = node.peak_rss_bytes()?;
        // Saturating: the kernel's RSS counters are approximate per thread.
        jumps.push((now.saturating_sub(peak), &a.name));
        peak = peak.max(now);
    }
    jumps.sort_unstable_by(|a, b| b.cmp(a));
    for (grew, name) in jumps.iter().take(5).filter(|j| j.0 > 0) {
        eprintln!("peak RSS +{} MiB after {name}", grew >> 20);
    }
    ensure!(
        failures.is_empty(),
        "{} of {} attacks answered wrongly:\n{}",
        failures.len(),
        attacks.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} attacks; peak RSS {} MiB (bound {} MiB)",
        attacks.len(),
        peak >> 20,
        MAX_PEAK_RSS >> 20
    );
    ensure!(peak < MAX_PEAK_RSS, "peak RSS {} MiB", peak >> 20);

    // Sums saturate instead of wrapping; equal lines are one stack.
    let saturated = total_of(&client, CPU, SATURATED).await?;
    ensure!(
        saturated == i64::MAX,
        "two i64::MAX stacks sum to {saturated}"
    );
    let lines = total_of(&client, CPU, LINES).await?;
    ensure!(lines == 20_000 * 10_000_000, "20 000 lines total {lines}");
    ensure!(
        reference(&client).await? == before,
        "reference data changed"
    );

    // Slow-loris: connections that never finish their request do not keep
    // others from being served.
    let addr = node.url.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for i in 0..64 {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        let head = if i % 2 == 0 {
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Length: 1000000\r\n\r\nab".to_string()
        } else {
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_string()
        };
        s.write_all(head.as_bytes()).await?;
        slow.push(s);
    }
    let r = client
        .post(PUSH, &[PROTO], push_go_cpu("during.slow")?)
        .await?;
    ensure!(
        r.status().is_success(),
        "push beside slow clients: {}",
        r.status()
    );
    ensure!(total_of(&client, CPU, "during.slow").await? == go_cpu_total()?);
    drop(slow);

    // A clean restart cuts everything (absurd timestamps included) into
    // blocks; the reference data reads back the same from them.
    let mut node = node;
    let status = node.terminate()?;
    ensure!(status.success(), "shutdown after the attack: {status}");
    let node = ChildNode::start_in(data.path(), &[]).await?;
    let client = Client::new(&node.url);
    ensure!(
        reference(&client).await? == before,
        "reference data changed across the restart"
    );
    ensure!(total_of(&client, CPU, SATURATED).await? == i64::MAX);
    // SQL's sum saturates too, over blocks and over the head.
    let r = client
        .post(
            "/api/v1/sql",
            &[("content-type", "application/json")],
            serde_json::to_vec(&serde_json::json!({
                "query": format!("SELECT sum(value) AS v FROM samples WHERE service_name = '{SATURATED}' AND profile_type = '{CPU}'"),
                "start": 1_794_999_000_000i64,
                "end": 1_795_001_000_000i64,
            }))?,
        )
        .await?;
    let status = r.status();
    let v: serde_json::Value = r.json().await?;
    ensure!(status.is_success(), "SQL: {status} {v}");
    ensure!(v["rows"][0]["v"] == i64::MAX, "SQL sum {v}");
    Ok(())
}
