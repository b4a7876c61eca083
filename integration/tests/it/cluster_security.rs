//! Node-to-node security of in-process clusters: a node without the
//! cluster secret never joins the ring, and with TLS on the HTTP listener
//! replica writes and reads between nodes go over HTTPS.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use ignis::Config;
use ignis_integration::client::{Client, fg_total};
use ignis_integration::node::TestNode;

use crate::tenants::{go_cpu_total, push_go_cpu};

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Cluster settings for node `id` gossiping on `port`, seeded by `seed`.
fn member(c: &mut Config, id: &str, port: u16, seed: u16, secret: &str) {
    c.cluster.enabled = true;
    c.cluster.node_id = id.into();
    c.cluster.gossip_listen_address = format!("127.0.0.1:{port}");
    c.cluster.seeds = vec![format!("127.0.0.1:{seed}")];
    c.cluster.gossip_interval_ms = 100;
    c.cluster.replication_factor = 2;
    c.cluster.rpc_timeout_ms = 2000;
    c.cluster.rpc_retries = 0;
    c.cluster.secret = secret.into();
}

/// The node ids `client`'s node sees alive and ready.
async fn alive(client: &Client) -> Result<Vec<String>> {
    let v: serde_json::Value = client.get("/cluster?format=json").await?.json().await?;
    let mut ids: Vec<String> = v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["state"] == "alive" && m["ready"] == true)
        .filter_map(|m| m["node_id"].as_str().map(String::from))
        .collect();
    ids.sort();
    Ok(ids)
}

async fn wait_for(client: &Client, want: &[&str]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids = alive(client).await?;
        if ids == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("members {ids:?}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cpu_total(client: &Client, service: &str) -> Result<i64> {
    let fg = client
        .flamegraph(
            CPU,
            &format!("{{service_name=\"{service}\"}}"),
            1,
            4_000_000_000_000,
        )
        .await?;
    Ok(fg_total(&fg))
}

#[tokio::test]
async fn a_node_with_another_secret_never_joins_the_ring() -> Result<()> {
    let (p0, p1, p2) = (free_udp_port()?, free_udp_port()?, free_udp_port()?);
    let a0 = TestNode::start(|c| member(c, "a0", p0, p0, "s1"))?;
    let a1 = TestNode::start(|c| member(c, "a1", p1, p0, "s1"))?;
    let b = TestNode::start(|c| member(c, "b", p2, p0, "s2"))?;
    let (a0c, a1c, bc) = (
        Client::new(&a0.url),
        Client::new(&a1.url),
        Client::new(&b.url),
    );
    wait_for(&a0c, &["a0", "a1"]).await?;
    wait_for(&a1c, &["a0", "a1"]).await?;
    // Many gossip rounds later b still sees only itself, and a0, a1 never b.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(alive(&bc).await? == ["b"], "b: {:?}", alive(&bc).await?);
    ensure!(alive(&a0c).await? == ["a0", "a1"]);
    let r = a0c
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_go_cpu("secret.app")?,
        )
        .await?;
    ensure!(r.status().is_success(), "push to a0: {}", r.status());
    ensure!(cpu_total(&a1c, "secret.app").await? == go_cpu_total()?);
    ensure!(
        cpu_total(&bc, "secret.app").await? == 0,
        "b reads nothing of the ring"
    );
    Ok(())
}

#[tokio::test]
async fn internal_calls_go_over_https_when_the_listener_serves_tls() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, pem) = crate::auth::self_signed(dir.path(), "cluster")?;
    let key = dir.path().join("key.pem").to_string_lossy().to_string();
    let (p0, p1) = (free_udp_port()?, free_udp_port()?);
    let tls = |c: &mut Config| {
        c.server.tls_cert_file = cert.clone();
        c.server.tls_key_file = key.clone();
    };
    let n0 = TestNode::start(|c| {
        member(c, "t0", p0, p0, "s");
        tls(c);
    })?;
    let n1 = TestNode::start(|c| {
        member(c, "t1", p1, p0, "s");
        tls(c);
    })?;
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem)?])
        .build()?;
    let client =
        |url: &str| Client::new(&url.replacen("http://", "https://", 1)).with_client(https.clone());
    let (c0, c1) = (client(&n0.url), client(&n1.url));
    wait_for(&c0, &["t0", "t1"]).await?;
    wait_for(&c1, &["t0", "t1"]).await?;
    // Replication factor 2 with a quorum of 2: the push is acknowledged
    // only once t1 stored its replica, over HTTPS.
    let r = c0
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_go_cpu("tls.cluster")?,
        )
        .await?;
    ensure!(r.status().is_success(), "push: {}", r.status());
    ensure!(cpu_total(&c1, "tls.cluster").await? == go_cpu_total()?);
    // The internal routes are not served in plain HTTP.
    let plain = reqwest::Client::new()
        .post(format!("{}/internal/v1/Push", n1.url))
        .send()
        .await;
    ensure!(
        plain.is_err() || !plain?.status().is_success(),
        "plain HTTP answered"
    );
    Ok(())
}
