//! Span profiles: samples of the Go CPU fixture labelled with span ids (as
//! the Go SDK's span profiler and, with `profile_id`, JFR and older SDKs
//! send them) and trace ids are found again by `SelectMergeSpanProfile`,
//! `span_selector` and `trace_id_selector`, from memory, after a crash (WAL
//! replay) and from a block, without adding series or changing the
//! profile's totals.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result, ensure};
use ignis_integration::client::{Client, fg_total};
use ignis_integration::fixtures::{push_request, read_fixture, read_json};
use ignis_integration::node::{ChildNode, TestNode};
use ignis_storage::head::parse_span_id;
use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::querier::v1 as q;
use prost::Message;
use serde_json::{Value, json};

use crate::common::{metric, window};

pub(crate) const SERVICE: &str = "spans.app";
pub(crate) const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const SAMPLES: &str = "process_cpu:samples:count:cpu:nanoseconds";
/// Both read as little-endian u64 below `i64::MAX`, so SQL literals stay integers.
pub(crate) const SPAN_A: &str = "3a5f1c2b9d8e7f60";
pub(crate) const SPAN_B: &str = "0123456789abcd1f";
/// Trace ids: the first holds span A's samples and one without a span, the
/// second span B's and one whose span id does not parse.
pub(crate) const TRACE_1: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub(crate) const TRACE_2: &str = "0af7651916cd43dd8448eb211c80319c";

/// The fixture with span labels on known samples, and per span the exact
/// sums of those samples' values (by sample type index).
pub(crate) struct Labelled {
    pub(crate) body: Vec<u8>,
    pub(crate) sums: BTreeMap<&'static str, [i64; 2]>,
    /// The same per trace id.
    pub(crate) trace_sums: BTreeMap<&'static str, [i64; 2]>,
    pub(crate) time_ns: i64,
}

pub(crate) fn labelled_fixture() -> Result<Labelled> {
    let gz = read_fixture("go/cpu.pb.gz")?;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut raw)?;
    let mut p = pprof::Profile::decode(raw.as_slice())?;
    ensure!(p.sample.len() > 20, "fixture too small");
    let mut string = |s: &str| {
        p.string_table.push(s.to_string());
        (p.string_table.len() - 1) as i64
    };
    let (span_id, profile_id, trace_id) =
        (string("span_id"), string("profile_id"), string("trace_id"));
    let (a, b, bad, t1, t2, bad_trace) = (
        string(SPAN_A),
        string(SPAN_B),
        string("not-a-span-id"),
        string(TRACE_1),
        string(TRACE_2),
        string("not-a-trace-id"),
    );
    let label = |key, str| pprof::Label {
        key,
        str,
        ..Default::default()
    };
    // (sample, span label, trace label, span it counts for, trace it counts for)
    let plan = [
        (0, Some((span_id, a)), Some(t1), Some(SPAN_A), Some(TRACE_1)),
        (3, Some((span_id, a)), Some(t1), Some(SPAN_A), Some(TRACE_1)),
        (5, Some((span_id, a)), Some(t1), Some(SPAN_A), Some(TRACE_1)),
        // JFR and older SDKs spell it profile_id.
        (
            11,
            Some((profile_id, a)),
            Some(t1),
            Some(SPAN_A),
            Some(TRACE_1),
        ),
        (7, Some((span_id, b)), Some(t2), Some(SPAN_B), Some(TRACE_2)),
        (8, Some((span_id, b)), Some(t2), Some(SPAN_B), Some(TRACE_2)),
        // Unparsable: stored, but in no span; in its trace still.
        (13, Some((span_id, bad)), Some(t2), None, Some(TRACE_2)),
        // A trace without a span, and an unparsable trace id.
        (17, None, Some(t1), None, Some(TRACE_1)),
        (19, None, Some(bad_trace), None, None),
    ];
    let mut sums: BTreeMap<&'static str, [i64; 2]> = BTreeMap::new();
    let mut trace_sums: BTreeMap<&'static str, [i64; 2]> = BTreeMap::new();
    for (i, span_label, trace_label, span, trace) in plan {
        let s = &mut p.sample[i];
        s.label
            .extend(span_label.map(|(key, value)| label(key, value)));
        s.label
            .extend(trace_label.map(|value| label(trace_id, value)));
        for (id, sums) in [(span, &mut sums), (trace, &mut trace_sums)] {
            if let Some(id) = id {
                let e = sums.entry(id).or_default();
                e[0] += s.value[0];
                e[1] += s.value[1];
            }
        }
    }
    ensure!(p.string_table[p.sample_type[1].r#type as usize] == "cpu");
    Ok(Labelled {
        body: push_request(SERVICE, p.encode_to_vec()),
        sums,
        trace_sums,
        time_ns: p.time_nanos,
    })
}

pub(crate) async fn span_profile_json(
    client: &Client,
    pt: &str,
    spans: &[&str],
    win: (i64, i64),
) -> Result<Value> {
    client
        .connect_json(
            "SelectMergeSpanProfile",
            json!({"profileTypeID": pt, "labelSelector": format!("{{service_name=\"{SERVICE}\"}}"),
                   "spanSelector": spans, "start": win.0, "end": win.1, "maxNodes": 1_000_000}),
        )
        .await
}

async fn status_of(client: &Client, method: &str, body: Value) -> Result<(u16, String)> {
    let r = client
        .post(
            &format!("/querier.v1.QuerierService/{method}"),
            &[("content-type", "application/json")],
            serde_json::to_vec(&body)?,
        )
        .await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// The `spans` view's total of CPU samples that `condition` keeps.
async fn sql_span_total(client: &Client, condition: &str, win: (i64, i64)) -> Result<i64> {
    let query = format!(
        "SELECT sum(value) AS total FROM spans WHERE service_name = '{SERVICE}' \
         AND profile_type = '{CPU}' AND {condition}"
    );
    let r = client
        .post(
            "/api/v1/sql",
            &[("content-type", "application/json")],
            serde_json::to_vec(&json!({"query": query, "start": win.0, "end": win.1}))?,
        )
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    ensure!(status.is_success(), "SQL: {status}: {v}");
    v["rows"][0]["total"]
        .as_i64()
        .with_context(|| format!("SQL answer {v}"))
}

/// Checks every span answer against the plan and returns the answers, so
/// later phases can be compared with this one.
async fn check(client: &Client, l: &Labelled, phase: &str) -> Result<Vec<Value>> {
    let truth = read_json("go/cpu.expected.json")?;
    let win = window(l.time_ns);
    let selector = format!("{{service_name=\"{SERVICE}\"}}");
    let mut answers = Vec::new();
    // The profile's totals are unchanged by its span labels.
    for (pt, key) in [(CPU, "cpu/nanoseconds"), (SAMPLES, "samples/count")] {
        let fg = client.flamegraph(pt, &selector, win.0, win.1).await?;
        let want = truth["value_sums"][key].as_i64().context("truth")?;
        ensure!(
            fg_total(&fg) == want,
            "{phase} {pt}: total {} != {want}",
            fg_total(&fg)
        );
        answers.push(fg);
    }
    // Each span alone, both spans, by SelectMergeSpanProfile and span_selector.
    for (pt, col) in [(CPU, 1), (SAMPLES, 0)] {
        for span in [SPAN_A, SPAN_B] {
            let want = l.sums[span][col];
            let fg = span_profile_json(client, pt, &[span], win).await?;
            ensure!(
                fg_total(&fg) == want,
                "{phase} {pt} span {span}: {} != {want}",
                fg_total(&fg)
            );
            answers.push(fg);
        }
        let both = l.sums[SPAN_A][col] + l.sums[SPAN_B][col];
        let fg = client
            .connect_json(
                "SelectMergeStacktraces",
                json!({"profileTypeID": pt, "labelSelector": selector, "start": win.0, "end": win.1,
                       "maxNodes": 1_000_000, "spanSelector": [SPAN_A, SPAN_B]}),
            )
            .await?;
        ensure!(
            fg_total(&fg) == both,
            "{phase} {pt} both spans: {} != {both}",
            fg_total(&fg)
        );
        answers.push(fg);
    }
    // The binary codec: a tree and a flame graph.
    let req = |format: q::ProfileFormat| q::SelectMergeSpanProfileRequest {
        profile_type_id: CPU.into(),
        label_selector: selector.clone(),
        span_selector: vec![SPAN_A.into()],
        start: win.0,
        end: win.1,
        max_nodes: Some(1_000_000),
        format: format as i32,
    };
    for format in [q::ProfileFormat::Flamegraph, q::ProfileFormat::Tree] {
        let r = client
            .post(
                "/querier.v1.QuerierService/SelectMergeSpanProfile",
                &[("content-type", "application/proto")],
                req(format).encode_to_vec(),
            )
            .await?;
        ensure!(
            r.status().is_success(),
            "{phase} proto {format:?}: {}",
            r.status()
        );
        let resp = q::SelectMergeSpanProfileResponse::decode(r.bytes().await?.as_ref())?;
        match format {
            q::ProfileFormat::Tree => ensure!(
                resp.flamegraph.is_none() && !resp.tree.is_empty(),
                "{phase}: tree format answered no tree"
            ),
            _ => ensure!(
                resp.flamegraph.as_ref().map(|f| f.total) == Some(l.sums[SPAN_A][1]),
                "{phase}: proto flame graph total {:?}",
                resp.flamegraph.map(|f| f.total)
            ),
        }
    }
    // A span nobody sent: nothing.
    let none = span_profile_json(client, CPU, &["ffffffffffffffff"], win).await?;
    ensure!(fg_total(&none) == 0, "{phase}: unknown span has data");
    // SQL's spans view agrees.
    let span_a = format!("span_id = {}", parse_span_id(SPAN_A)?);
    let sql = sql_span_total(client, &span_a, win).await?;
    ensure!(sql == l.sums[SPAN_A][1], "{phase}: SQL span total {sql}");
    let trace_2 = format!("trace_id = '{TRACE_2}'");
    let sql = sql_span_total(client, &trace_2, win).await?;
    ensure!(
        sql == l.trace_sums[TRACE_2][1],
        "{phase}: SQL trace total {sql}"
    );
    // A span heatmap: one point per span of the profile, valued at its
    // samples' sum, with the span (and its trace) as the cell's exemplar.
    let v = client
        .connect_json(
            "SelectHeatmap",
            json!({"profileTypeID": CPU, "labelSelector": selector, "start": win.0,
                   "end": win.1 + 1, "step": 60.0, "queryType": "HEATMAP_QUERY_TYPE_SPAN",
                   "exemplarType": "EXEMPLAR_TYPE_SPAN"}),
        )
        .await?;
    let mut cells: Vec<(String, String, i64, i64)> = Vec::new();
    for series in v["series"].as_array().into_iter().flatten() {
        for slot in series["slots"].as_array().into_iter().flatten() {
            let counts = slot["counts"].as_array().cloned().unwrap_or_default();
            let exemplars = slot["exemplars"].as_array().cloned().unwrap_or_default();
            ensure!(counts.len() == exemplars.len(), "{phase}: heatmap {v}");
            for (count, e) in counts.iter().zip(&exemplars) {
                cells.push((
                    e["spanId"].as_str().unwrap_or_default().to_string(),
                    e["traceId"].as_str().unwrap_or_default().to_string(),
                    e["value"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(-1),
                    count.as_i64().unwrap_or(-1),
                ));
            }
        }
    }
    cells.sort();
    let mut want = vec![
        (
            SPAN_A.to_string(),
            TRACE_1.to_string(),
            l.sums[SPAN_A][1],
            1,
        ),
        (
            SPAN_B.to_string(),
            TRACE_2.to_string(),
            l.sums[SPAN_B][1],
            1,
        ),
    ];
    want.sort();
    ensure!(
        cells == want,
        "{phase}: span heatmap cells {cells:?}, want {want:?}"
    );
    // (Not the exemplars' profile ids: each phase pushes the profile anew,
    // and Ignis draws ids for profiles sent without one.)
    answers.push(json!(format!("{cells:?}")));
    // Each trace by trace_id_selector: a flame graph and a pprof.
    for (pt, col) in [(CPU, 1), (SAMPLES, 0)] {
        for trace in [TRACE_1, TRACE_2] {
            let want = l.trace_sums[trace][col];
            let body = json!({"profileTypeID": pt, "labelSelector": selector, "start": win.0,
                              "end": win.1, "maxNodes": 1_000_000, "traceIdSelector": [trace]});
            let fg = client.connect_json("SelectMergeStacktraces", body).await?;
            ensure!(
                fg_total(&fg) == want,
                "{phase} {pt} trace {trace}: {} != {want}",
                fg_total(&fg)
            );
            answers.push(fg);
            let req = q::SelectMergeProfileRequest {
                profile_type_id: pt.into(),
                label_selector: selector.clone(),
                start: win.0,
                end: win.1,
                trace_id_selector: vec![trace.into()],
                ..Default::default()
            };
            let r = client
                .post(
                    "/querier.v1.QuerierService/SelectMergeProfile",
                    &[("content-type", "application/proto")],
                    req.encode_to_vec(),
                )
                .await?;
            ensure!(r.status().is_success(), "{phase} pprof: {}", r.status());
            let p = pprof::Profile::decode(r.bytes().await?.as_ref())?;
            let sum: i64 = p.sample.iter().map(|s| s.value[0]).sum();
            ensure!(
                sum == want,
                "{phase} {pt} trace {trace} pprof: {sum} != {want}"
            );
        }
    }
    // The span labels made no series of their own.
    let series = client
        .connect_json(
            "Series",
            json!({"matchers": [selector], "start": win.0, "end": win.1}),
        )
        .await?;
    let sets = series["labelsSet"].as_array().cloned().unwrap_or_default();
    ensure!(
        sets.len() == 2,
        "{phase}: {} series, want one per sample type",
        sets.len()
    );
    let names = client
        .connect_json(
            "LabelNames",
            json!({"matchers": [selector], "start": win.0, "end": win.1}),
        )
        .await?;
    for n in ["span_id", "profile_id", "trace_id"] {
        ensure!(
            !names["names"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v == n),
            "{phase}: {n} became a series label"
        );
    }
    Ok(answers)
}

pub(crate) async fn push(client: &Client, l: &Labelled) -> Result<()> {
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            l.body.clone(),
        )
        .await?;
    ensure!(r.status().is_success(), "push: {}", r.status());
    Ok(())
}

#[tokio::test]
async fn span_profiles_survive_a_block_cut_and_a_crash() -> Result<()> {
    let l = labelled_fixture()?;
    ensure!(l.sums[SPAN_A][1] > 0 && l.sums[SPAN_B][1] > 0);

    // From memory, then from the block a clean stop (SIGTERM) cuts.
    let data = tempfile::tempdir()?;
    let mut node = ChildNode::start_in(data.path(), &[]).await?;
    let client = Client::new(&node.url);
    push(&client, &l).await?;
    let from_head = check(&client, &l, "head").await?;
    ensure!(node.terminate()?.success(), "unclean exit");
    let blocks = data.path().join("bucket/anonymous/blocks");
    let with_spans = std::fs::read_dir(&blocks)?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|d| d.join("meta.json").exists() && d.join("spans.parquet").exists())
        .count();
    ensure!(
        with_spans >= 1,
        "no block with spans.parquet in {}",
        blocks.display()
    );
    let node = ChildNode::start_in(data.path(), &[]).await?;
    let client = Client::new(&node.url);
    ensure!(
        metric(&client, "ignis_wal_replayed_records_total").await? == 0.0,
        "the WAL was not truncated behind the block, so the answers may not come from it"
    );
    let from_block = check(&client, &l, "block").await?;
    ensure!(
        metric(&client, "ignis_blocks_loaded_total").await? >= 1.0,
        "no block loaded"
    );
    ensure!(
        from_block == from_head,
        "answers differ between head and block"
    );
    drop(node);

    // A crash (SIGKILL) before any block: the restarted node rebuilds the
    // spans from its WAL.
    let data = tempfile::tempdir()?;
    let mut node = ChildNode::start_in(data.path(), &[]).await?;
    push(&Client::new(&node.url), &l).await?;
    node.kill()?;
    let node = ChildNode::start_in(data.path(), &[]).await?;
    let client = Client::new(&node.url);
    ensure!(
        metric(&client, "ignis_wal_replayed_records_total").await? >= 1.0,
        "no WAL replay"
    );
    let from_wal = check(&client, &l, "WAL").await?;
    ensure!(from_wal == from_head, "answers differ after WAL replay");
    Ok(())
}

#[tokio::test]
async fn bad_span_selectors_are_refused() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let base = |spans: Value| json!({"profileTypeID": CPU, "labelSelector": "{}", "start": 1, "end": 2, "spanSelector": spans});
    for (method, body, reason) in [
        ("SelectMergeSpanProfile", base(json!(["abc"])), "16 hex"),
        (
            "SelectMergeSpanProfile",
            base(json!(["zz5f1c2b9d8e7f60"])),
            "not hexadecimal",
        ),
        (
            "SelectMergeStacktraces",
            base(json!(["3a5f1c2b9d8e7f6"])),
            "16 hex",
        ),
        (
            "SelectMergeStacktraces",
            {
                let mut b = base(json!([SPAN_A]));
                b["traceIdSelector"] = json!(["4bf92f3577b34da6a3ce929d0e0e4736"]);
                b
            },
            "span_selector and trace_id_selector cannot be combined",
        ),
    ] {
        let (status, text) = status_of(&client, method, body).await?;
        ensure!(status == 400, "{method}: {status} {text}");
        ensure!(text.contains(reason), "{method}: {text} lacks {reason:?}");
    }
    Ok(())
}
