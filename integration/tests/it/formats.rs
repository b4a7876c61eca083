//! Legacy text-like formats: py-spy folded and speedscope files against their
//! ground truth, and `tree` bytes from the query API ingested back.

use anyhow::{Result, ensure};
use ignis_integration::client::{Client, fg_total, self_by_name};
use ignis_integration::fixtures::{read_fixture, read_json};
use ignis_integration::node::TestNode;
use ignis_storage::proto::querier::v1 as q;
use prost::Message;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const FROM: i64 = 1_795_000_000;
const TICK_NS: i64 = 10_000_000; // 100 Hz

async fn flame(client: &Client, pt: &str, service: &str) -> Result<serde_json::Value> {
    client
        .flamegraph(
            pt,
            &format!("{{service_name=\"{service}\"}}"),
            FROM * 1000,
            FROM * 1000,
        )
        .await
}

#[tokio::test]
async fn pyspy_folded_and_speedscope_match_their_ground_truth() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let base = "other-producers/py-spy";

    let r = client
        .post(
            &format!("/ingest?name=pyspy.folded.cpu&format=folded&sampleRate=100&spyName=pyspy&from={FROM}"),
            &[("content-type", "text/plain")],
            read_fixture(&format!("{base}/pyspy.folded.txt"))?,
        )
        .await?;
    ensure!(r.status().is_success(), "folded: {}", r.status());
    let truth = read_json(&format!("{base}/pyspy.folded.expected.json"))?;
    let fg = flame(&client, CPU, "pyspy.folded").await?;
    ensure!(
        fg_total(&fg) == truth["total"].as_i64().unwrap_or(-1) * TICK_NS,
        "folded total {}",
        fg_total(&fg)
    );
    let selfs = self_by_name(&fg);
    for t in truth["top_self"].as_array().into_iter().flatten() {
        let (name, n) = (t[0].as_str().unwrap_or(""), t[1].as_i64().unwrap_or(-1));
        ensure!(
            selfs.get(name) == Some(&(n * TICK_NS)),
            "folded self of {name}: {:?}",
            selfs.get(name)
        );
    }

    let r = client
        .post(
            &format!("/ingest?name=pyspy.speedscope.cpu&format=speedscope&from={FROM}"),
            &[("content-type", "application/json")],
            read_fixture(&format!("{base}/pyspy.speedscope.json"))?,
        )
        .await?;
    ensure!(r.status().is_success(), "speedscope: {}", r.status());
    let truth = read_json(&format!("{base}/pyspy.speedscope.expected.json"))?;
    let p = &truth["profiles"][0];
    let fg = flame(&client, CPU, "pyspy.speedscope").await?;
    let want = (p["sum_weights"].as_f64().unwrap_or(-1.0) * 1e9).round() as i64;
    ensure!(
        fg_total(&fg) == want,
        "speedscope total {} != {want}",
        fg_total(&fg)
    );
    let selfs = self_by_name(&fg);
    for t in p["top_self_by_samples"].as_array().into_iter().flatten() {
        let (name, n) = (t[0].as_str().unwrap_or(""), t[1].as_i64().unwrap_or(-1));
        ensure!(
            selfs.get(name) == Some(&(n * TICK_NS)),
            "speedscope self of {name}: {:?}",
            selfs.get(name)
        );
    }
    let series = client
        .connect_json(
            "LabelValues",
            serde_json::json!({"name": "profile_name", "start": FROM * 1000, "end": FROM * 1000}),
        )
        .await?;
    ensure!(
        series["names"][0] == "Thread 3829 \"\"",
        "profile_name label: {series}"
    );
    Ok(())
}

#[tokio::test]
async fn tree_bytes_from_a_query_ingest_back_to_the_same_flame_graph() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let r = client
        .post(
            "/ingest?name=tree.src&format=pprof",
            &[],
            read_fixture("go/cpu.pb.gz")?,
        )
        .await?;
    ensure!(r.status().is_success());
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{service_name=\"tree.src\"}".into(),
        start: 1,
        end: 4_000_000_000_000,
        format: q::ProfileFormat::Tree as i32,
        ..Default::default()
    };
    let resp = client
        .post(
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            &[("content-type", "application/proto")],
            req.encode_to_vec(),
        )
        .await?
        .bytes()
        .await?;
    let tree = q::SelectMergeStacktracesResponse::decode(resp)?.tree;
    // sampleRate=0 keeps the values as they are (samples:count).
    let r = client
        .post(
            &format!("/ingest?name=tree.dst.cpu&format=tree&sampleRate=0&from={FROM}"),
            &[],
            tree,
        )
        .await?;
    ensure!(r.status().is_success(), "tree ingest: {}", r.status());
    let original = client
        .flamegraph(CPU, "{service_name=\"tree.src\"}", 1, 4_000_000_000_000)
        .await?;
    let back = flame(&client, "process_cpu:samples:count::", "tree.dst").await?;
    ensure!(
        fg_total(&back) == fg_total(&original),
        "{} != {}",
        fg_total(&back),
        fg_total(&original)
    );
    ensure!(
        self_by_name(&back) == self_by_name(&original),
        "self values differ after the round trip"
    );
    Ok(())
}
