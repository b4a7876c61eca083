//! Legacy text-like formats: py-spy folded and speedscope files against their
//! ground truth, `tree` bytes from the query API ingested back, and a JDK
//! Flight Recorder file uploaded as the Java agent does.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result, ensure};
use ignis_integration::client::{Client, fg_total, self_by_name};
use ignis_integration::fixtures::{ExpectedProfile, read_fixture, read_json};
use ignis_integration::node::TestNode;
use ignis_storage::proto::querier::v1 as q;
use prost::Message;

use crate::common::verify;

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

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data)?;
    Ok(e.finish()?)
}

/// A `multipart/form-data` body of file parts `(name, filename, bytes)`.
fn multipart(boundary: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn top(v: &serde_json::Value, scale: i64) -> Vec<(String, i64)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e[0].as_str()?.to_string(), e[1].as_i64()? * scale)))
        .collect()
}

#[tokio::test]
async fn java_jfr_upload_matches_the_jfr_tool_ground_truth() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let jfr = read_fixture("java/demo.jfr")?;
    let truth = read_json("java/demo.expected.json")?;
    let query = |app: &str| {
        format!(
            "/ingest?name={app}&from={FROM}&until={}&format=jfr&spyName=javaspy&sampleRate=100&units=samples&aggregationType=sum",
            FROM + 10
        )
    };

    // As the Java agent sends it: multipart with a gzip `jfr` part.
    let boundary = "------------------------ignisjfr";
    let body = multipart(boundary, &[("jfr", "jfr", &gzip(&jfr)?)]);
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let r = client
        .post(
            &query("java.multipart"),
            &[("content-type", &content_type)],
            body,
        )
        .await?;
    ensure!(r.status().is_success(), "multipart: {}", r.status());
    // And as a raw, uncompressed body.
    let r = client
        .post(
            &query("java.raw"),
            &[("content-type", "application/octet-stream")],
            jfr.clone(),
        )
        .await?;
    ensure!(r.status().is_success(), "raw: {}", r.status());

    let ex = &truth["execution_sample"];
    let oas = &truth["object_allocation_sample"];
    let jme = &truth["java_monitor_enter"];
    let int = |v: &serde_json::Value| v.as_i64().context("ground truth number");
    let cpu_top = top(&ex["top_self"], TICK_NS);
    ensure!(cpu_top.len() == 5 && cpu_top[0] == ("JfrDemo.lockWaiter".into(), 400 * TICK_NS));
    // The leaf frames of alloc and lock events are not in demo.expected.json;
    // these come from `jfr print --json --stack-depth 64 --events
    // jdk.ObjectAllocationSample,jdk.JavaMonitorEnter demo.jfr` (JDK 17).
    let mut types = BTreeMap::new();
    types.insert(CPU.to_string(), (int(&ex["events"])? * TICK_NS, cpu_top));
    types.insert(
        "memory:alloc_sample_objects:count:space:bytes".to_string(),
        (
            int(&oas["events"])?,
            vec![("JfrDemo.allocWork".into(), 5072)],
        ),
    );
    types.insert(
        "memory:alloc_sample_bytes:bytes:space:bytes".to_string(),
        (
            int(&oas["weight_sum_bytes"])?,
            vec![("JfrDemo.allocWork".into(), 186_462_540_904)],
        ),
    );
    types.insert(
        "mutex:contentions:count:mutex:count".to_string(),
        (
            int(&jme["events"])?,
            vec![
                ("JfrDemo.lockWaiter".into(), 1577),
                ("JfrDemo.lockHolder".into(), 178),
            ],
        ),
    );
    types.insert(
        "mutex:delay:nanoseconds:mutex:count".to_string(),
        (
            int(&jme["duration_sum_ns"])?,
            vec![
                ("JfrDemo.lockWaiter".into(), 26_044_549_050),
                ("JfrDemo.lockHolder".into(), 4_062_745_452),
            ],
        ),
    );
    // The exact figures, so a changed fixture cannot pass silently.
    let sums: Vec<i64> = types.values().map(|(sum, _)| *sum).collect();
    ensure!(
        sums == [192_603_969_136, 5614, 1755, 30_107_294_502, 15_010_000_000],
        "ground truth sums {sums:?}"
    );
    for service in ["java.multipart", "java.raw"] {
        let exp = ExpectedProfile {
            source: format!("java/demo.jfr as {service}"),
            service: service.into(),
            metric: "process_cpu".into(),
            selector: format!("{{service_name=\"{service}\"}}"),
            time_ns: FROM * 1_000_000_000,
            types: types.clone(),
        };
        verify(&client, &exp).await?;
    }

    // Exactly these profile types, with the agent's labels on every series.
    let pts = client
        .connect_json(
            "ProfileTypes",
            serde_json::json!({"start": FROM * 1000, "end": FROM * 1000}),
        )
        .await?;
    let mut ids: Vec<&str> = pts["profileTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["ID"].as_str())
        .collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = types.keys().map(String::as_str).collect();
    want.sort_unstable();
    ensure!(ids == want, "profile types {ids:?}");
    let spies = client
        .connect_json(
            "LabelValues",
            serde_json::json!({"name": "pyroscope_spy", "start": FROM * 1000, "end": FROM * 1000}),
        )
        .await?;
    ensure!(
        spies["names"] == serde_json::json!(["javaspy"]),
        "spy: {spies}"
    );

    // A corrupted recording is refused with 422 and the server keeps serving.
    let mut bad = jfr;
    bad[0] ^= 0xff;
    let r = client.post(&query("java.bad"), &[], bad).await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    ensure!(
        status == 422 && text.contains("JFR"),
        "corrupted: {status} {text}"
    );
    let r = client
        .post(
            &query("java.bad"),
            &[("content-type", &content_type)],
            multipart(boundary, &[]),
        )
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    ensure!(
        status == 422 && text.contains("jfr field is required"),
        "no jfr part: {status} {text}"
    );
    Ok(())
}
