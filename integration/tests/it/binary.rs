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
        metrics.contains("ignis_ingested_profiles_total"),
        "metrics: {metrics}"
    );
    ensure!(
        metrics.contains("ignis_request_duration_seconds"),
        "no latency histogram"
    );
    Ok(())
}
