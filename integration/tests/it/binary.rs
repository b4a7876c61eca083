//! The real `ignis` binary, started as a child process with Pyroscope-style flags.

use anyhow::{Context, Result, ensure};
use ignis_integration::client::Client;
use ignis_integration::fixtures::{expectations, load_captures};
use ignis_integration::node::ChildNode;

use crate::common::verify;

#[tokio::test]
async fn binary_serves_replayed_sdk_requests() -> Result<()> {
    let node = ChildNode::start(&["-target=all"]).await?;
    let client = Client::new(&node.url);
    for (dir, metric) in [
        ("python-sdk/push-1.4.0", ""),
        ("go-sdk/ingest-multipart-1.2.8", ""),
    ] {
        let captures = load_captures(dir)?;
        let metrics = ignis_integration::fixtures::sdk_captures()
            .into_iter()
            .find(|(d, _)| *d == dir)
            .map(|(_, m)| m)
            .unwrap_or_default();
        for (i, c) in captures.iter().enumerate() {
            let r = client.replay(c).await?;
            ensure!(r.status().is_success(), "{}: {}", c.name, r.status());
            let metric = metrics.get(i).copied().unwrap_or(metric);
            for exp in expectations(c, metric).with_context(|| c.name.clone())? {
                verify(&client, &exp).await?;
            }
        }
    }
    let metrics = client.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("ignis_ingest_profiles_total"),
        "metrics: {metrics}"
    );
    ensure!(
        metrics.contains("ignis_request_duration_seconds"),
        "no latency histogram"
    );
    Ok(())
}

#[tokio::test]
async fn binary_config_errors_name_the_key_and_env_overrides_apply() -> Result<()> {
    use std::process::Command;
    let bin = ignis_integration::node::ignis_binary()?;
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nhttp_listen_adress = \"127.0.0.1:1\"\n")?;
    let out = Command::new(&bin)
        .args(["server", "--config"])
        .arg(&bad)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "a bad config started the server");
    ensure!(
        err.contains("http_listen_adress"),
        "error does not name the key: {err}"
    );

    let out = Command::new(&bin)
        .args(["-config.file=/nonexistent.toml"])
        .output()?;
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("does not exist")
    );

    // Roles split across nodes need a cluster: refused clearly without one.
    let out = Command::new(&bin)
        .arg("config")
        .env("IGNIS_TARGET", "distributor,querier")
        .output()?;
    ensure!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("needs cluster.enabled = true"),
        "split roles without a cluster: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(&bin)
        .arg("config")
        .env("IGNIS_QUERY__MAX_FLAMEGRAPH_NODES_MAX", "10")
        .env("IGNIS_TARGET", "distributor,querier")
        .env("IGNIS_CLUSTER__ENABLED", "true")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "ignis config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        text.contains("max_flamegraph_nodes_max = 10"),
        "env override missing: {text}"
    );
    ensure!(
        text.contains("target = \"distributor,querier\""),
        "IGNIS_TARGET missing: {text}"
    );

    let out = Command::new(&bin).arg("--help").output()?;
    ensure!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--target"));
    Ok(())
}
