//! Every captured SDK request and every Go pprof fixture, replayed into an
//! in-process node, then queried against its ground truth.

use anyhow::{Context, Result, ensure};
use ignis_integration::client::Client;
use ignis_integration::fixtures::{
    expectations, from_pprof_truth, go_pprof_fixtures, load_captures, read_fixture, read_json,
    sdk_captures,
};
use ignis_integration::node::TestNode;

use crate::common::verify;

#[tokio::test]
async fn sdk_requests_replayed_exactly_answer_exact_totals() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let mut expected = Vec::new();
    for (dir, metrics) in sdk_captures() {
        for (i, c) in load_captures(dir)?.iter().enumerate() {
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
    for exp in &expected {
        verify(&client, exp).await?;
    }
    Ok(())
}

#[tokio::test]
async fn go_pprof_fixtures_answer_exact_totals() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    for (name, metric) in go_pprof_fixtures() {
        let service = format!("fixture.go.{name}");
        let body = read_fixture(&format!("go/{name}.pb.gz"))?;
        // Raw pprof through /ingest, and the same bytes through Push.
        let r = client
            .post(
                &format!("/ingest?name={service}&format=pprof&spyName=gospy"),
                &[("content-type", "application/octet-stream")],
                body,
            )
            .await?;
        ensure!(r.status().is_success(), "go/{name}: {}", r.status());
        let truth = read_json(&format!("go/{name}.expected.json"))?;
        verify(
            &client,
            &from_pprof_truth(&format!("go/{name}"), &service, metric, &truth, 0)?,
        )
        .await?;
    }
    Ok(())
}
