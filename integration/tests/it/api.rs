//! API details clients rely on: the JSON codec, sample labels as series
//! labels, grouping, truncation, tree bytes and the legacy endpoints.

use std::io::Read;

use anyhow::{Result, ensure};
use ignis_integration::client::{Client, as_i64, fg_total};
use ignis_integration::fixtures::{load_captures, read_fixture, read_json};
use ignis_integration::node::TestNode;
use ignis_storage::ProfileId;
use ignis_storage::proto::querier::v1 as q;
use prost::Message;
use serde_json::{Value, json};

use crate::common::{total_of, urlencode};

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const WIDE: (i64, i64) = (1, 4_000_000_000_000);

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Calls a querier method with a protobuf body.
async fn post_proto(
    client: &Client,
    method: &str,
    req: &impl Message,
) -> Result<reqwest::Response> {
    client
        .post(
            &format!("/querier.v1.QuerierService/{method}"),
            &[("content-type", "application/proto")],
            req.encode_to_vec(),
        )
        .await
}

/// Pushes the Go CPU fixture for `service` over JSON, under a new id as
/// SDKs send one (a UUID per profile).
async fn push_json(client: &Client, service: &str) -> Result<()> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    push_json_with_id(
        client,
        service,
        &format!("734FD599-6865-419E-9475-{n:012X}"),
    )
    .await
}

/// [`push_json`] under the profile id `id`.
async fn push_json_with_id(client: &Client, service: &str, id: &str) -> Result<()> {
    let body = json!({"series": [{
        "labels": [{"name": "__name__", "value": "process_cpu"}, {"name": "service_name", "value": service}],
        "samples": [{"ID": id, "rawProfile": base64(&read_fixture("go/cpu.pb.gz")?)}]
    }]});
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/json")],
            serde_json::to_vec(&body)?,
        )
        .await?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(status.is_success(), "JSON push: {status}: {text}");
    ensure!(text == "{}", "JSON push response {text:?}");
    Ok(())
}

#[tokio::test]
async fn json_codec_grouping_truncation_and_tree() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let go_total = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    push_json(&client, "json.a").await?;
    push_json(&client, "json.b").await?;
    push_json(&client, "json.b").await?;
    ensure!(total_of(&client, CPU, "json.a").await? == go_total);
    ensure!(total_of(&client, CPU, "json.b").await? == 2 * go_total);

    // int64 as strings, ProfileType keeps its `ID` name.
    let fg = client.flamegraph(CPU, "{}", WIDE.0, WIDE.1).await?;
    ensure!(
        fg["flamegraph"]["total"] == json!((3 * go_total).to_string()),
        "total is not a string: {}",
        fg["flamegraph"]["total"]
    );
    let pt = client
        .connect_json("ProfileTypes", json!({"start": WIDE.0, "end": WIDE.1}))
        .await?;
    ensure!(
        pt["profileTypes"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["ID"] == CPU)),
        "{pt}"
    );

    // Regex and negative matchers.
    let fg = client
        .flamegraph(
            CPU,
            r#"{service_name=~"json\\..*", service_name!="json.a"}"#,
            WIDE.0,
            WIDE.1,
        )
        .await?;
    ensure!(
        fg_total(&fg) == 2 * go_total,
        "regex selector total {}",
        fg_total(&fg)
    );
    let fg = client
        .flamegraph(CPU, r#"{service_name!~"json.*"}"#, WIDE.0, WIDE.1)
        .await?;
    ensure!(fg_total(&fg) == 0);

    // SelectSeries grouped by service, summed and averaged.
    for (agg, want_b) in [
        ("TIME_SERIES_AGGREGATION_TYPE_SUM", 2 * go_total),
        ("TIME_SERIES_AGGREGATION_TYPE_AVERAGE", go_total),
    ] {
        let s = client
            .connect_json(
                "SelectSeries",
                json!({"profileTypeID": CPU, "labelSelector": "{}", "start": WIDE.0, "end": WIDE.1,
                       "step": 3.6e9, "groupBy": ["service_name"], "aggregation": agg}),
            )
            .await?;
        let series = s["series"].as_array().cloned().unwrap_or_default();
        ensure!(series.len() == 2, "{agg}: {s}");
        let b = &series[1];
        ensure!(
            b["labels"][0]["value"] == "json.b",
            "{agg}: series order {s}"
        );
        let v: f64 = b["points"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["value"].as_f64().unwrap_or(0.0))
            .sum();
        ensure!(v == want_b as f64, "{agg}: {v} != {want_b}");
    }

    // max_nodes truncation keeps the total and adds `other`.
    let small = client
        .connect_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{}", "start": WIDE.0, "end": WIDE.1, "maxNodes": 5}),
        )
        .await?;
    ensure!(fg_total(&small) == 3 * go_total);
    let names = small["flamegraph"]["names"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        names.iter().any(|n| n == "other") && names.len() <= 7,
        "{names:?}"
    );
    let r = client
        .connect_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{}", "start": WIDE.0, "end": WIDE.1, "maxNodes": -1}),
        )
        .await;
    ensure!(r.is_err(), "negative maxNodes accepted");

    // Tree bytes over the proto codec: root with an empty name.
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{}".into(),
        start: WIDE.0,
        end: WIDE.1,
        format: q::ProfileFormat::Tree as i32,
        ..Default::default()
    };
    let r = post_proto(&client, "SelectMergeStacktraces", &req).await?;
    ensure!(
        r.headers()
            .get("content-type")
            .is_some_and(|v| v == "application/proto")
    );
    let resp = q::SelectMergeStacktracesResponse::decode(r.bytes().await?)?;
    ensure!(
        resp.tree.len() > 100 && resp.tree[0] == 0,
        "tree bytes {:?}",
        &resp.tree[..resp.tree.len().min(8)]
    );

    // Legacy render with groupBy, and label-values for profile types.
    let query = urlencode(&format!("{CPU}{{}}"));
    let v: Value = client
        .get(&format!(
            "/pyroscope/render?query={query}&from={}&until={}&groupBy=service_name",
            WIDE.0, WIDE.1
        ))
        .await?
        .json()
        .await?;
    ensure!(as_i64(&v["flamebearer"]["numTicks"]) == 3 * go_total);
    ensure!(
        v["metadata"]["units"] == "samples" && v["metadata"]["name"] == "cpu",
        "{}",
        v["metadata"]
    );
    let groups = v["groups"].as_object().cloned().unwrap_or_default();
    ensure!(groups.len() == 2, "groups {groups:?}");
    let tl_sum: i64 = v["timeline"]["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .sum();
    ensure!(tl_sum == 3 * go_total, "timeline sum {tl_sum}");
    let names: Value = client
        .get(&format!(
            "/pyroscope/label-values?label=__name__&from={}&until={}",
            WIDE.0, WIDE.1
        ))
        .await?
        .json()
        .await?;
    ensure!(
        names.as_array().is_some_and(|a| a.iter().any(|n| n == CPU)),
        "{names}"
    );
    let r = client.get("/pyroscope/label-values").await?;
    ensure!(r.status() == 400);
    Ok(())
}

#[tokio::test]
async fn sample_labels_become_series_labels() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    for c in load_captures("python-sdk/push-1.4.0")? {
        ensure!(client.replay(&c).await?.status().is_success());
    }
    let names = client
        .connect_json("LabelNames", json!({"matchers": ["{service_name=\"fixture.python.app\"}"], "start": WIDE.0, "end": WIDE.1}))
        .await?;
    let names: Vec<&str> = names["names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "__name__",
        "__profile_type__",
        "__type__",
        "__unit__",
        "service_name",
        "handler",
        "region",
        "env",
    ] {
        ensure!(names.contains(&want), "LabelNames lacks {want}: {names:?}");
    }
    let values = client
        .connect_json(
            "LabelValues",
            json!({"name": "handler", "start": WIDE.0, "end": WIDE.1}),
        )
        .await?;
    // py-spy tags part of the samples with handler=b; the rest carry no handler.
    ensure!(values["names"] == json!(["b"]), "handler values {values}");
    // Per-handler totals add up to the service total.
    let all = total_of(&client, CPU, "fixture.python.app").await?;
    let mut sum = 0;
    for h in values["names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let fg = client
            .flamegraph(
                CPU,
                &format!("{{service_name=\"fixture.python.app\",handler=\"{h}\"}}"),
                WIDE.0,
                WIDE.1,
            )
            .await?;
        sum += fg_total(&fg);
    }
    let no_handler = client
        .flamegraph(
            CPU,
            "{service_name=\"fixture.python.app\",handler=\"\"}",
            WIDE.0,
            WIDE.1,
        )
        .await?;
    ensure!(
        sum + fg_total(&no_handler) == all,
        "{sum} + {} != {all}",
        fg_total(&no_handler)
    );
    // Series projection.
    let s = client
        .connect_json(
            "Series",
            json!({"matchers": ["{}"], "labelNames": ["service_name", "__profile_type__"], "start": WIDE.0, "end": WIDE.1}),
        )
        .await?;
    ensure!(
        s["labelsSet"].as_array().is_some_and(|a| a.len() == 1),
        "{s}"
    );
    Ok(())
}

#[tokio::test]
async fn diff_and_render_diff_compare_two_selections() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let go_total = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    push_json(&client, "diff.left").await?;
    push_json(&client, "diff.right").await?;
    push_json(&client, "diff.right").await?;
    let side = |svc: &str| json!({"profileTypeID": CPU, "labelSelector": format!("{{service_name=\"{svc}\"}}"), "start": WIDE.0, "end": WIDE.1});
    let d = client
        .connect_json(
            "Diff",
            json!({"left": side("diff.left"), "right": side("diff.right")}),
        )
        .await?;
    let fg = &d["flamegraph"];
    ensure!(
        as_i64(&fg["leftTicks"]) == go_total && as_i64(&fg["rightTicks"]) == 2 * go_total,
        "{}",
        fg["leftTicks"]
    );
    ensure!(as_i64(&fg["total"]) == 3 * go_total);
    // Every node on the right is exactly twice the left.
    for level in fg["levels"].as_array().into_iter().flatten() {
        let v: Vec<i64> = level["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(as_i64)
            .collect();
        for t in v.chunks(7) {
            ensure!(
                t[4] == 2 * t[1] && t[5] == 2 * t[2],
                "node {t:?} is not doubled"
            );
        }
    }
    let q = |svc: &str| urlencode(&format!("{CPU}{{service_name=\"{svc}\"}}"));
    let v: Value = client
        .get(&format!(
            "/pyroscope/render-diff?leftQuery={}&leftFrom={}&leftUntil={}&rightQuery={}&rightFrom={}&rightUntil={}",
            q("diff.left"), WIDE.0, WIDE.1, q("diff.right"), WIDE.0, WIDE.1
        ))
        .await?
        .json()
        .await?;
    ensure!(
        v["metadata"]["format"] == "double" && as_i64(&v["leftTicks"]) == go_total,
        "{}",
        v["metadata"]
    );
    ensure!(as_i64(&v["flamebearer"]["numTicks"]) == 3 * go_total);
    let stats = client.connect_json("GetProfileStats", json!({})).await?;
    let t_ms = read_json("go/cpu.expected.json")?["time_nanos"]
        .as_i64()
        .unwrap_or(0)
        / 1_000_000;
    ensure!(stats["dataIngested"] == true, "{stats}");
    ensure!(
        as_i64(&stats["oldestProfileTime"]) == t_ms && as_i64(&stats["newestProfileTime"]) == t_ms,
        "{stats}"
    );
    let empty = client
        .with_tenant("nobody")
        .connect_json("GetProfileStats", json!({}))
        .await?;
    ensure!(empty.get("dataIngested").is_none(), "{empty}");
    let r = client
        .connect_json("Diff", json!({"left": side("diff.left"), "right": {"profileTypeID": "memory:alloc_space:bytes:space:bytes", "labelSelector": "{}", "start": 1, "end": 2}}))
        .await;
    ensure!(r.is_err_and(|e| e.to_string().contains("profile types must match")));
    Ok(())
}

#[tokio::test]
async fn connect_json_ignores_fields_and_enum_names_it_does_not_know() -> Result<()> {
    // As connect-go does (protojson with DiscardUnknown): Grafana's
    // Profiles Drilldown sends fields and enum values newer than Ignis's
    // protos, and must get its answer, not a 400.
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let go_total = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    push_json(&client, "lenient").await?;
    let v = client
        .connect_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"lenient\"}",
                   "start": WIDE.0, "end": WIDE.1, "maxNodes": 16,
                   "format": "PROFILE_FORMAT_FUNCTIONS",
                   "stackTraceSelector": {"frameFilter": {"include": ["main"]}},
                   "aFieldFromTheFuture": {"nested": [1, 2, 3]}}),
        )
        .await?;
    ensure!(
        fg_total(&v) == go_total,
        "total {} != {go_total}",
        fg_total(&v)
    );
    let v = client
        .connect_json(
            "LabelNames",
            json!({"matchers": ["{service_name=\"lenient\"}"], "start": WIDE.0, "end": WIDE.1,
                   "unknownOption": "x"}),
        )
        .await?;
    ensure!(
        v["names"]
            .as_array()
            .is_some_and(|n| n.contains(&json!("service_name"))),
        "label names: {v}"
    );
    Ok(())
}

#[tokio::test]
async fn known_unimplemented_procedures_are_501_and_unknown_ones_404() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let json = [("content-type", "application/json")];
    for path in [
        "/settings.v1.RecordingRulesService/ListRecordingRules",
        "/capabilities.v1.FeatureFlagsService/GetFeatureFlags",
        "/debuginfo.v1alpha1.DebuginfoService/Upload/abc123",
    ] {
        let r = client.post(path, &json, b"{}".to_vec()).await?;
        let status = r.status().as_u16();
        let body: Value = serde_json::from_str(&r.text().await?)?;
        ensure!(status == 501, "{path}: {status} {body}");
        ensure!(body["code"] == "unimplemented", "{path}: {body}");
        ensure!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(&path[1..])),
            "{path}: {body}"
        );
    }
    let r = client
        .post(
            "/querier.v1.QuerierService/NoSuchMethod",
            &json,
            b"{}".to_vec(),
        )
        .await?;
    ensure!(
        r.status().as_u16() == 404,
        "unknown procedure: {}",
        r.status()
    );
    Ok(())
}

#[tokio::test]
async fn connect_get_form_answers_as_post() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let go_total = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    push_json(&client, "getter").await?;
    let path = "/querier.v1.QuerierService/SelectMergeStacktraces";
    let req = json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"getter\"}",
                     "start": WIDE.0, "end": WIDE.1, "maxNodes": 16});
    // JSON, percent-encoded.
    let url = format!(
        "{path}?connect=v1&encoding=json&message={}",
        urlencode(&req.to_string())
    );
    let r = client.get(&url).await?;
    ensure!(r.status().is_success(), "GET json: {}", r.status());
    let v: Value = serde_json::from_str(&r.text().await?)?;
    ensure!(fg_total(&v) == go_total, "GET json total {}", fg_total(&v));
    // Binary, base64url without padding.
    let msg = q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{service_name=\"getter\"}".into(),
        start: WIDE.0,
        end: WIDE.1,
        max_nodes: Some(16),
        ..Default::default()
    }
    .encode_to_vec();
    let b64 = base64(&msg)
        .replace('+', "-")
        .replace('/', "_")
        .replace('=', "");
    let r = client
        .get(&format!(
            "{path}?connect=v1&encoding=proto&base64=1&message={b64}"
        ))
        .await?;
    ensure!(r.status().is_success(), "GET proto: {}", r.status());
    let resp = q::SelectMergeStacktracesResponse::decode(r.bytes().await?)?;
    let total = resp.flamegraph.map_or(-1, |f| f.total);
    ensure!(total == go_total, "GET proto total {total}");
    // A GET without an encoding is a clear 400.
    let r = client.get(&format!("{path}?message=%7B%7D")).await?;
    ensure!(r.status().as_u16() == 400, "no encoding: {}", r.status());
    Ok(())
}

#[tokio::test]
async fn connect_timeout_ms_is_honoured() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    push_json(&client, "deadline").await?;
    let path = "/querier.v1.QuerierService/SelectMergeStacktraces";
    let body = serde_json::to_vec(&json!({"profileTypeID": CPU,
        "labelSelector": "{service_name=\"deadline\"}", "start": WIDE.0, "end": WIDE.1}))?;
    let json = ("content-type", "application/json");
    // A generous deadline answers; a malformed one is a 400.
    let r = client
        .post(path, &[json, ("connect-timeout-ms", "60000")], body.clone())
        .await?;
    ensure!(r.status().is_success(), "60 s deadline: {}", r.status());
    let r = client
        .post(path, &[json, ("connect-timeout-ms", "soon")], body.clone())
        .await?;
    ensure!(r.status().as_u16() == 400, "bad deadline: {}", r.status());
    // A deadline of 0 ms has passed before the query runs.
    let r = client
        .post(path, &[json, ("connect-timeout-ms", "0")], body)
        .await?;
    let status = r.status().as_u16();
    let v: Value = serde_json::from_str(&r.text().await?)?;
    ensure!(
        status == 504 && v["code"] == "deadline_exceeded",
        "{status} {v}"
    );
    Ok(())
}

#[tokio::test]
async fn buildinfo_has_pyroscope_shape() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let r = client.get("/api/v1/status/buildinfo").await?;
    ensure!(r.status().is_success(), "buildinfo: {}", r.status());
    let v: Value = serde_json::from_str(&r.text().await?)?;
    ensure!(v["status"] == "success", "{v}");
    ensure!(v["data"]["version"] == env!("CARGO_PKG_VERSION"), "{v}");
    for k in [
        "revision",
        "branch",
        "build_user",
        "build_date",
        "go_version",
    ] {
        ensure!(v["data"][k].is_string(), "{k} missing: {v}");
    }
    Ok(())
}

/// The first root function of a flame graph, its total and the whole total
/// (level 1 holds the roots as `[x, total, self, name]` tuples).
fn first_root(whole: &Value) -> (String, i64, i64) {
    let fg = &whole["flamegraph"];
    let level1 = &fg["levels"][1]["values"];
    let root = fg["names"][as_i64(&level1[3]) as usize]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (root, as_i64(&level1[1]), fg_total(whole))
}

#[tokio::test]
async fn a_call_site_selects_the_same_stacks_in_the_flame_graph_and_the_pprof() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    push_json(&client, "callsite").await?;
    let sel = "{service_name=\"callsite\"}";
    let whole = client.flamegraph(CPU, sel, WIDE.0, WIDE.1).await?;
    let (root, root_total, total) = first_root(&whole);
    ensure!(
        root_total > 0 && root_total < total,
        "root {root}: {root_total} of {total}"
    );
    let selector = json!({"callSite": [{"name": root}]});
    let v = client
        .connect_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": sel, "start": WIDE.0, "end": WIDE.1,
                   "stackTraceSelector": selector}),
        )
        .await?;
    ensure!(
        fg_total(&v) == root_total,
        "flame graph under {root}: {}",
        fg_total(&v)
    );
    let r = client
        .post(
            "/querier.v1.QuerierService/SelectMergeProfile",
            &[("content-type", "application/json")],
            serde_json::to_vec(&json!({"profileTypeID": CPU, "labelSelector": sel,
                "start": WIDE.0, "end": WIDE.1, "stackTraceSelector": selector}))?,
        )
        .await?;
    ensure!(r.status().is_success(), "pprof: {}", r.status());
    let p: ignis_storage::proto::google::v1::Profile = serde_json::from_slice(&r.bytes().await?)?;
    let pprof_total: i64 = p.sample.iter().filter_map(|s| s.value.first()).sum();
    ensure!(
        pprof_total == root_total,
        "pprof under {root}: {pprof_total}, want {root_total}"
    );
    // SelectMergeStacktraces' pprof format obeys it too.
    let v = client
        .connect_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": sel, "start": WIDE.0, "end": WIDE.1,
                   "format": "PROFILE_FORMAT_PPROF", "stackTraceSelector": selector}),
        )
        .await?;
    let samples = v["pprof"]["profile"]["sample"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pprof_total: i64 = samples.iter().map(|s| as_i64(&s["value"][0])).sum();
    ensure!(
        pprof_total == root_total,
        "pprof format under {root}: {pprof_total}, want {root_total}"
    );
    Ok(())
}

#[tokio::test]
async fn select_series_applies_the_call_site() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    push_json(&client, "series-callsite").await?;
    let sel = "{service_name=\"series-callsite\"}";
    let whole = client.flamegraph(CPU, sel, WIDE.0, WIDE.1).await?;
    let (root, root_total, total) = first_root(&whole);
    let points_sum = |v: &Value| -> f64 {
        v["series"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["points"].as_array().cloned().unwrap_or_default())
            .map(|p| p["value"].as_f64().unwrap_or(0.0))
            .sum()
    };
    let req = |selector: Value| {
        json!({"profileTypeID": CPU, "labelSelector": sel, "start": WIDE.0, "end": WIDE.1,
               "step": 3600.0, "stackTraceSelector": selector})
    };
    let all = client.connect_json("SelectSeries", req(json!({}))).await?;
    ensure!(points_sum(&all) as i64 == total, "all: {all}");
    let under = client
        .connect_json("SelectSeries", req(json!({"callSite": [{"name": root}]})))
        .await?;
    ensure!(
        points_sum(&under) as i64 == root_total && root_total < total,
        "under {root}: {} want {root_total}",
        points_sum(&under)
    );
    Ok(())
}

#[tokio::test]
async fn unapplied_selectors_are_refused_not_ignored() -> Result<()> {
    // Go PGO shapes a pprof only: a 501 says so, where answering over every
    // profile would be silently wrong.
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    push_json(&client, "ids").await?;
    let base = json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"ids\"}",
                      "start": WIDE.0, "end": WIDE.1});
    let pgo = ("stackTraceSelector", json!({"goPgo": {"keepLocations": 5}}));
    let cases = [("SelectMergeStacktraces", &pgo), ("SelectSeries", &pgo)];
    for (method, (field, value)) in cases {
        let mut req = base.clone();
        req[*field] = value.clone();
        if method == "SelectSeries" {
            req["step"] = json!(60.0);
        }
        let r = client
            .post(
                &format!("/querier.v1.QuerierService/{method}"),
                &[("content-type", "application/json")],
                serde_json::to_vec(&req)?,
            )
            .await?;
        let status = r.status().as_u16();
        let v: Value = serde_json::from_str(&r.text().await?)?;
        ensure!(
            status == 501 && v["code"] == "unimplemented",
            "{method} {field}: {status} {v}"
        );
    }
    // A format newer than Ignis's protos, sent in protobuf, is refused,
    // not answered as a flame graph.
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{service_name=\"ids\"}".into(),
        start: WIDE.0,
        end: WIDE.1,
        format: 9,
        ..Default::default()
    };
    let r = post_proto(&client, "SelectMergeStacktraces", &req).await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    ensure!(
        status == 501 && text.contains("profile format 9"),
        "format 9: {status} {text}"
    );
    Ok(())
}

/// The exemplars of a `SelectSeries` over all time in one step, as
/// `(profile id, value, labels)`.
async fn exemplars(client: &Client, selector: &str) -> Result<Vec<(String, i64, Value)>> {
    let v = client
        .connect_json(
            "SelectSeries",
            json!({"profileTypeID": CPU, "labelSelector": selector, "start": WIDE.0,
                   "end": WIDE.1, "step": 4_000_000_000.0,
                   "exemplarType": "EXEMPLAR_TYPE_INDIVIDUAL"}),
        )
        .await?;
    let points: Vec<Value> = v["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["points"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut out = Vec::new();
    for p in &points {
        for e in p["exemplars"].as_array().into_iter().flatten() {
            let id = e["profileId"].as_str().unwrap_or_default().to_string();
            out.push((id, as_i64(&e["value"]), e["labels"].clone()));
        }
    }
    ensure!(out.len() == points.len(), "one exemplar per point: {v}");
    Ok(out)
}

/// What `profileIdSelector` = `ids` selects of `selector`, through the
/// flame graph, the merged pprof and both sides of a diff.
async fn totals_of_ids(client: &Client, selector: &str, ids: &[&str]) -> Result<i64> {
    let req = json!({"profileTypeID": CPU, "labelSelector": selector, "start": WIDE.0,
                     "end": WIDE.1, "maxNodes": 1_000_000, "profileIdSelector": ids});
    let flame = fg_total(
        &client
            .connect_json("SelectMergeStacktraces", req.clone())
            .await?,
    );
    let pprof = client
        .connect_json("SelectMergeProfile", req.clone())
        .await?;
    let pprof_total: i64 = pprof["sample"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            s["value"]
                .as_array()
                .and_then(|v| v.last())
                .map_or(0, as_i64)
        })
        .sum();
    let diff = client
        .connect_json("Diff", json!({"left": req, "right": req}))
        .await?;
    let left = as_i64(&diff["flamegraph"]["leftTicks"]);
    let right = as_i64(&diff["flamegraph"]["rightTicks"]);
    ensure!(
        flame == pprof_total && flame == left && flame == right,
        "flame graph {flame}, pprof {pprof_total}, diff {left}/{right}"
    );
    Ok(flame)
}

#[tokio::test]
async fn exemplars_name_stored_profiles_that_profile_ids_select_exactly() -> Result<()> {
    let data = tempfile::tempdir()?;
    let go_total = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    let sel = "{service_name=\"exemplars\"}";
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    // Three equal pushes: the same client id twice (a push re-sent: the
    // same profile, which counts once) and none (Ignis draws an id).
    let client_id = "3e9f2f79-962b-4e10-8e05-56ac5c5b25de";
    for id in [client_id, client_id, ""] {
        push_json_with_id(&client, "exemplars", id).await?;
    }
    push_json(&client, "exemplars-other").await?;
    ensure!(total_of(&client, CPU, "exemplars").await? == 2 * go_total);
    // Three equal profiles in one point: the exemplar is one of them, with
    // its own total, its id and its series' labels (not Ignis's private ones).
    let ex = exemplars(&client, sel).await?;
    ensure!(ex.len() == 1 && ex[0].1 == go_total, "{ex:?}");
    let (id, _, labels) = &ex[0];
    ensure!(
        ProfileId::parse(id).is_ok_and(|p| p.key() != 0),
        "exemplar id {id} is a UUID"
    );
    let names: Vec<&str> = labels
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["name"].as_str())
        .collect();
    ensure!(
        names.contains(&"service_name") && !names.iter().any(|n| n.starts_with("__")),
        "exemplar labels {labels}"
    );
    // Its id selects exactly that profile, on every output; ids of
    // profiles Ignis does not hold select nothing; a bad id is a 400.
    ensure!(totals_of_ids(&client, sel, &[id]).await? == go_total);
    ensure!(totals_of_ids(&client, "{}", &[id]).await? == go_total);
    let stranger = "734fd599-6865-419e-9475-932762d8f469";
    ensure!(totals_of_ids(&client, sel, &[stranger]).await? == 0);
    ensure!(totals_of_ids(&client, sel, &[id, stranger]).await? == go_total);
    // Ids are read in either case; the id a client sent names its profile
    // (once, however often it was sent), the drawn one the other.
    let upper = id.to_uppercase();
    ensure!(totals_of_ids(&client, sel, &[upper.as_str()]).await? == go_total);
    ensure!(totals_of_ids(&client, sel, &[client_id]).await? == go_total);
    let both = if id == client_id {
        go_total
    } else {
        2 * go_total
    };
    ensure!(totals_of_ids(&client, sel, &[client_id, id.as_str()]).await? == both);
    let r = client
        .post(
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            &[("content-type", "application/json")],
            serde_json::to_vec(&json!({"profileTypeID": CPU, "labelSelector": sel,
                "start": WIDE.0, "end": WIDE.1, "profileIdSelector": ["nope"]}))?,
        )
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    ensure!(
        status == 400 && text.contains("profile_id_selector"),
        "{status} {text}"
    );
    // The other service's profile has an id of its own.
    let other = exemplars(&client, "{service_name=\"exemplars-other\"}").await?;
    ensure!(other.len() == 1 && other[0].0 != *id, "{other:?}");

    // After a restart (the head cut into a block), the same exemplar and
    // the same selection.
    node.stop()?;
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    let after = exemplars(&client, sel).await?;
    ensure!(after == ex, "exemplars kept: {after:?} vs {ex:?}");
    ensure!(totals_of_ids(&client, sel, &[id]).await? == go_total);
    Ok(())
}

#[tokio::test]
async fn heatmap_counts_every_profile_in_its_value_bucket() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let expected = read_json("go/cpu.expected.json")?;
    for _ in 0..3 {
        push_json(&client, "heat").await?;
    }
    push_json(&client, "heat-other").await?;
    for (profile_type, unit) in [
        (CPU, "cpu/nanoseconds"),
        ("process_cpu:samples:count:cpu:nanoseconds", "samples/count"),
    ] {
        let total = as_i64(&expected["value_sums"][unit]);
        let v = client
            .connect_json(
                "SelectHeatmap",
                json!({"profileTypeID": profile_type, "labelSelector": "{service_name=~\"heat.*\"}",
                       "start": WIDE.0, "end": WIDE.1, "step": 4_000_000_000.0,
                       "groupBy": ["service_name"], "queryType": "HEATMAP_QUERY_TYPE_INDIVIDUAL",
                       "exemplarType": "EXEMPLAR_TYPE_INDIVIDUAL"}),
            )
            .await?;
        let series = v["series"].as_array().cloned().unwrap_or_default();
        ensure!(series.len() == 2, "{unit}: two services: {v}");
        for (s, want) in series.iter().zip([3, 1]) {
            // One slot, one cell: every profile has the fixture's total.
            let slots = s["slots"].as_array().cloned().unwrap_or_default();
            ensure!(slots.len() == 1, "{unit}: {s}");
            let counts = slots[0]["counts"].as_array().cloned().unwrap_or_default();
            ensure!(counts == vec![json!(want)], "{unit}: counts {s}");
            let y_min = slots[0]["yMin"][0].as_f64().unwrap_or(-1.0);
            ensure!(
                y_min <= total as f64 && (total as f64) < y_min * 2f64.powf(0.25),
                "{unit}: {total} outside the bucket from {y_min}"
            );
            // The cell's exemplar is a stored profile with that total.
            let e = &slots[0]["exemplars"][0];
            ensure!(as_i64(&e["value"]) == total, "{unit}: exemplar {s}");
            let id = e["profileId"].as_str().unwrap_or_default();
            let service = s["labels"][0]["value"].as_str().unwrap_or_default();
            let fg = client
                .connect_json(
                    "SelectMergeStacktraces",
                    json!({"profileTypeID": profile_type,
                           "labelSelector": format!("{{service_name=\"{service}\"}}"),
                           "start": WIDE.0, "end": WIDE.1, "profileIdSelector": [id]}),
                )
                .await?;
            ensure!(fg_total(&fg) == total, "{unit}: profile {id}: {fg}");
        }
    }
    // A span heatmap counts spans: these profiles have none (the span test
    // checks one of labelled samples).
    let v = client
        .connect_json(
            "SelectHeatmap",
            json!({"profileTypeID": CPU, "labelSelector": "{}",
                "start": WIDE.0, "end": WIDE.1, "step": 60.0,
                "queryType": "HEATMAP_QUERY_TYPE_SPAN"}),
        )
        .await?;
    ensure!(
        v["series"].as_array().is_none_or(|s| s.is_empty()),
        "span heatmap of profiles without spans: {v}"
    );
    Ok(())
}

/// Calls `settings.v1.SettingsService/{method}` with a JSON body: status and body.
async fn settings_call(client: &Client, method: &str, body: Value) -> Result<(u16, Value)> {
    let r = client
        .post(
            &format!("/settings.v1.SettingsService/{method}"),
            &[("content-type", "application/json")],
            serde_json::to_vec(&body)?,
        )
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((status, serde_json::from_str(&text)?))
}

#[tokio::test]
async fn settings_are_per_tenant_shared_through_the_bucket_and_last_writer_wins() -> Result<()> {
    // Two nodes with their own data directories and one bucket, as a
    // cluster's nodes share one.
    let bucket = tempfile::tempdir()?;
    let (data_a, data_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let shared = |c: &mut ignis::Config| {
        c.storage.bucket.path = bucket.path().to_string_lossy().into_owned();
    };
    let a = TestNode::start_in(data_a.path(), shared)?;
    let b = TestNode::start_in(data_b.path(), shared)?;
    let (ca, cb) = (
        Client::new(&a.url).with_tenant("team-a"),
        Client::new(&b.url).with_tenant("team-a"),
    );
    let (status, v) = settings_call(&ca, "Get", json!({})).await?;
    ensure!(
        status == 200 && v["settings"].as_array().is_none_or(|s| s.is_empty()),
        "{status} {v}"
    );
    let set =
        json!({"setting": {"name": "pyroscope.ui.theme", "value": "dark", "modifiedAt": "1000"}});
    let (status, v) = settings_call(&ca, "Set", set).await?;
    ensure!(
        status == 200 && v["setting"]["value"] == "dark",
        "{status} {v}"
    );
    // modifiedAt 0 (absent) is now.
    let (status, v) = settings_call(
        &ca,
        "Set",
        json!({"setting": {"name": "drilldown", "value": "{}"}}),
    )
    .await?;
    ensure!(
        status == 200 && as_i64(&v["setting"]["modifiedAt"]) > 1_600_000_000_000,
        "{status} {v}"
    );
    // The other node reads them; another tenant sees none of them.
    let (_, v) = settings_call(&cb, "Get", json!({})).await?;
    let names: Vec<&str> = v["settings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    ensure!(names == ["drilldown", "pyroscope.ui.theme"], "{v}");
    let (_, other) =
        settings_call(&Client::new(&b.url).with_tenant("team-b"), "Get", json!({})).await?;
    ensure!(
        other["settings"].as_array().is_none_or(|s| s.is_empty()),
        "{other}"
    );
    // An update older than the stored one is refused (409) and changes nothing.
    let stale =
        json!({"setting": {"name": "pyroscope.ui.theme", "value": "light", "modifiedAt": "999"}});
    let (status, v) = settings_call(&cb, "Set", stale).await?;
    ensure!(status == 409 && v["code"] == "aborted", "{status} {v}");
    let (status, v) =
        settings_call(&cb, "Set", json!({"setting": {"name": "", "value": "x"}})).await?;
    ensure!(status == 400, "empty name: {status} {v}");
    let (_, v) = settings_call(&ca, "Get", json!({})).await?;
    ensure!(
        v.to_string().contains("dark") && !v.to_string().contains("light"),
        "{v}"
    );
    // Delete on one node, gone on the other.
    let (status, _) = settings_call(&cb, "Delete", json!({"name": "pyroscope.ui.theme"})).await?;
    ensure!(status == 200);
    let (_, v) = settings_call(&ca, "Get", json!({})).await?;
    ensure!(
        !v.to_string().contains("pyroscope.ui.theme") && v.to_string().contains("drilldown"),
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn analyze_query_counts_what_a_query_touches() -> Result<()> {
    let data = tempfile::tempdir()?;
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    for _ in 0..3 {
        push_json(&client, "analyze-a").await?;
    }
    push_json(&client, "analyze-b").await?;
    let req = json!({"start": WIDE.0, "end": WIDE.1, "query": "{service_name=\"analyze-a\"}"});
    let v = client.connect_json("AnalyzeQuery", req.clone()).await?;
    let scopes = v["queryScopes"].as_array().cloned().unwrap_or_default();
    ensure!(scopes.len() == 2, "two scopes: {v}");
    let (memory, blocks) = (&scopes[0], &scopes[1]);
    // The Go CPU fixture is two series (samples and cpu) per service: four
    // pushes are 8 profile rows in 4 series; the selector picks 2 series.
    ensure!(memory["componentType"] == "Short term storage", "{v}");
    ensure!(as_i64(&memory["profileCount"]) == 8, "memory profiles: {v}");
    ensure!(as_i64(&memory["seriesCount"]) == 4, "memory series: {v}");
    ensure!(as_i64(&memory["sampleCount"]) > 0, "memory samples: {v}");
    ensure!(as_i64(&blocks["blockCount"]) == 0, "no block yet: {v}");
    ensure!(
        as_i64(&v["queryImpact"]["totalQueriedSeries"]) == 2,
        "selected series: {v}"
    );
    ensure!(
        as_i64(&v["queryImpact"]["totalBytesInTimeRange"]) > 0,
        "bytes: {v}"
    );
    node.stop()?;

    // After a restart the head is a block: the same rows, now with its
    // file sizes.
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    let v = client.connect_json("AnalyzeQuery", req).await?;
    let scopes = v["queryScopes"].as_array().cloned().unwrap_or_default();
    let blocks = &scopes[1];
    ensure!(blocks["componentType"] == "Long term storage", "{v}");
    ensure!(as_i64(&blocks["blockCount"]) == 1, "one block: {v}");
    ensure!(as_i64(&blocks["profileCount"]) == 8, "block profiles: {v}");
    ensure!(as_i64(&blocks["seriesCount"]) == 4, "block series: {v}");
    for k in ["indexBytes", "profileBytes", "symbolBytes"] {
        ensure!(as_i64(&blocks[k]) > 0, "{k}: {v}");
    }
    let files: i64 = ["indexBytes", "profileBytes", "symbolBytes"]
        .iter()
        .map(|k| as_i64(&blocks[k]))
        .sum();
    ensure!(
        as_i64(&v["queryImpact"]["totalBytesInTimeRange"]) == files,
        "{v}"
    );
    ensure!(as_i64(&v["queryImpact"]["totalQueriedSeries"]) == 2, "{v}");
    // A range before the data touches nothing.
    let v = client
        .connect_json("AnalyzeQuery", json!({"start": 1, "end": 2, "query": "{}"}))
        .await?;
    ensure!(
        as_i64(&v["queryImpact"]["totalBytesInTimeRange"]) == 0,
        "{v}"
    );
    Ok(())
}

/// The nodes of a DOT graph: `(id, name, flat, cum)`.
fn dot_nodes(dot: &str) -> Vec<(String, String, i64, i64)> {
    dot.lines()
        .filter(|l| l.starts_with('N') && l.contains(" [label=\"") && !l.contains("->"))
        .filter_map(|l| {
            let (id, rest) = l.split_once(" [label=\"")?;
            let label = rest.split("\" id=").next()?;
            let parts: Vec<&str> = label.split("\\n").collect();
            let flat = parts.get(1)?.split(' ').next()?.parse().ok()?;
            let cum = parts
                .get(2)?
                .trim_start_matches("of ")
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            Some((id.to_string(), parts[0].to_string(), flat, cum))
        })
        .collect()
}

#[tokio::test]
async fn dot_format_draws_the_call_graph() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    push_json(&client, "dot").await?;
    let sel = "{service_name=\"dot\"}";
    let total = fg_total(&client.flamegraph(CPU, sel, WIDE.0, WIDE.1).await?);
    let dot_of = |max_nodes: i64| {
        json!({"profileTypeID": CPU, "labelSelector": sel, "start": WIDE.0, "end": WIDE.1,
               "format": "PROFILE_FORMAT_DOT", "maxNodes": max_nodes})
    };
    // Every function: the flat values add up to the total; a node's
    // cumulative value is at least its flat one and at most the total.
    let v = client
        .connect_json("SelectMergeStacktraces", dot_of(100_000))
        .await?;
    let dot = v["dot"].as_str().unwrap_or_default().to_string();
    ensure!(
        dot.starts_with("digraph \"unnamed\" {") && dot.trim_end().ends_with('}'),
        "{dot}"
    );
    let nodes = dot_nodes(&dot);
    ensure!(nodes.len() > 10, "{} nodes", nodes.len());
    ensure!(
        nodes.iter().map(|n| n.2).sum::<i64>() == total,
        "flat values add up to {total}"
    );
    ensure!(
        nodes.iter().all(|n| n.2 <= n.3 && n.3 <= total),
        "flat <= cum <= total"
    );
    ensure!(
        dot.contains(&format!("of {total} nanoseconds total")),
        "header"
    );
    // At most 10 nodes, the edges only between them.
    let v = client
        .connect_json("SelectMergeStacktraces", dot_of(10))
        .await?;
    let small = v["dot"].as_str().unwrap_or_default().to_string();
    let kept = dot_nodes(&small);
    ensure!(kept.len() == 10, "{} nodes", kept.len());
    let ids: std::collections::HashSet<&str> = kept.iter().map(|n| n.0.as_str()).collect();
    for l in small.lines().filter(|l| l.contains(" -> ")) {
        let (a, rest) = l.split_once(" -> ").unwrap_or_default();
        let b = rest.split(' ').next().unwrap_or_default();
        ensure!(
            ids.contains(a) && ids.contains(b),
            "edge to a dropped node: {l}"
        );
    }
    // The hottest functions are kept: the top node has the largest cum.
    let top = nodes.iter().map(|n| n.3).max().unwrap_or(0);
    ensure!(kept[0].3 == top, "top node cum {} != {top}", kept[0].3);
    // The legacy render answers the same graph as text.
    let query = urlencode(&format!("{CPU}{sel}"));
    let r = client
        .get(&format!(
            "/pyroscope/render?format=dot&maxNodes=10&from=1&until=4000000000&query={query}"
        ))
        .await?;
    ensure!(r.status().is_success(), "render dot: {}", r.status());
    let text = r.text().await?;
    ensure!(
        dot_nodes(&text) == kept,
        "render?format=dot differs from the Connect answer"
    );
    Ok(())
}

#[tokio::test]
async fn status_config_shows_the_effective_config_without_secrets() -> Result<()> {
    let node = TestNode::start(|c| {
        c.storage.bucket.secret_access_key = "hunter2".into();
        c.query.max_concurrent_queries = 7;
    })?;
    let client = Client::new(&node.url);
    let r = client.get("/api/v1/status/config").await?;
    ensure!(r.status().is_success(), "config: {}", r.status());
    let text = r.text().await?;
    ensure!(!text.contains("hunter2"), "a secret leaked: {text}");
    // JSON, which is YAML too.
    let v: Value = serde_json::from_str(&text)?;
    ensure!(v["query"]["max_concurrent_queries"] == 7, "{v}");
    ensure!(
        v["storage"]["bucket"]["secret_access_key"] == "********",
        "{v}"
    );
    ensure!(
        v["cluster"]["tokens_per_ingester"].is_number(),
        "not a secret: {v}"
    );
    Ok(())
}

#[tokio::test]
async fn go_pgo_profile_is_cut_to_its_leaf_frames_and_go_build_pgo_accepts_it() -> Result<()> {
    use ignis_storage::proto::google::v1 as pprof;
    use ignis_storage::proto::types::v1 as types;
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let ask = |service: &str, go_pgo: Option<(u32, bool)>| q::SelectMergeProfileRequest {
        profile_type_id: CPU.into(),
        label_selector: format!("{{service_name=\"{service}\"}}"),
        start: WIDE.0,
        end: WIDE.1,
        stack_trace_selector: go_pgo.map(|(keep, agg)| types::StackTraceSelector {
            // Ignored with go_pgo, as in Pyroscope.
            call_site: vec![types::Location {
                name: "no such frame".into(),
            }],
            go_pgo: Some(types::GoPgo {
                keep_locations: keep,
                aggregate_callees: agg,
            }),
        }),
        ..Default::default()
    };
    let fetch = |req: q::SelectMergeProfileRequest| {
        let client = &client;
        async move {
            let r = post_proto(client, "SelectMergeProfile", &req).await?;
            ensure!(r.status().is_success(), "{}", r.status());
            Ok::<_, anyhow::Error>(pprof::Profile::decode(r.bytes().await?)?)
        }
    };
    let sum = |p: &pprof::Profile| p.sample.iter().map(|s| s.value[0]).sum::<i64>();
    // The self value of every function (a cut keeps every leaf).
    let self_of = |p: &pprof::Profile| {
        let locs: std::collections::HashMap<u64, &pprof::Location> =
            p.location.iter().map(|l| (l.id, l)).collect();
        let funcs: std::collections::HashMap<u64, &str> = p
            .function
            .iter()
            .map(|f| (f.id, p.string_table[f.name as usize].as_str()))
            .collect();
        let mut out: std::collections::BTreeMap<String, i64> = Default::default();
        for s in &p.sample {
            let f = locs[&s.location_id[0]].line[0].function_id;
            *out.entry(funcs[&f].to_string()).or_default() += s.value[0];
        }
        out
    };

    // The shape, on the Go CPU fixture's ground truth.
    push_json(&client, "pgo").await?;
    let truth = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    let whole = fetch(ask("pgo", None)).await?;
    let cut = fetch(ask("pgo", Some((5, true)))).await?;
    ensure!(
        sum(&whole) == truth && sum(&cut) == truth,
        "totals {} {} want {truth}",
        sum(&whole),
        sum(&cut)
    );
    ensure!(
        cut.sample
            .iter()
            .all(|s| !s.location_id.is_empty() && s.location_id.len() <= 5)
    );
    ensure!(
        cut.sample.len() < whole.sample.len() && cut.location.len() < whole.location.len(),
        "cut {} samples / {} locations, whole {} / {}",
        cut.sample.len(),
        cut.location.len(),
        whole.sample.len(),
        whole.location.len()
    );
    let by_id: std::collections::HashMap<u64, &pprof::Location> =
        cut.location.iter().map(|l| (l.id, l)).collect();
    ensure!(
        cut.sample
            .iter()
            .all(|s| by_id[&s.location_id[0]].line[0].line == 0),
        "aggregate_callees drops the leaf's line"
    );
    ensure!(self_of(&cut) == self_of(&whole), "self values moved");
    ensure!(self_of(&cut).get("crypto/sha256.block") == Some(&5_640_000_000));

    // The toolchain: the fixture comes from Go 1.19, whose profiles lack
    // `Function.start_line`, which PGO needs (Go 1.20+ writes it). So
    // profile pprofdemo built by Go 1.22 for 3 s, push that, and build
    // the same program with what Ignis exports.
    let _alone = crate::common::CORE_HEAVY.lock().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pgo-test");
    std::fs::create_dir_all(&dir)?;
    let plain = ignis_integration::go::build_pprofdemo_module(&dir, "plain", None)?;
    let demo = ignis_integration::go::PprofDemo::spawn(&plain).await?;
    let live = reqwest::get(format!("{}/debug/pprof/profile?seconds=3", demo.url))
        .await?
        .bytes()
        .await?
        .to_vec();
    drop(demo);
    let mut plain_pprof = Vec::new();
    flate2::read::GzDecoder::new(&live[..]).read_to_end(&mut plain_pprof)?;
    let sent = pprof::Profile::decode(&plain_pprof[..])?;
    let cpu = sent
        .sample_type
        .iter()
        .position(|t| sent.string_table[t.r#type as usize] == "cpu")
        .unwrap_or(1);
    let sent_total: i64 = sent.sample.iter().map(|s| s.value[cpu]).sum();
    ensure!(sent_total > 0, "the live profile is empty");
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            ignis_integration::fixtures::push_request("pgo-live", live),
        )
        .await?;
    ensure!(r.status().is_success(), "push: {}", r.status());
    let pgo = fetch(ask("pgo-live", Some((5, true)))).await?;
    ensure!(sum(&pgo) == sent_total, "{} want {sent_total}", sum(&pgo));
    ensure!(
        pgo.function.iter().any(|f| f.start_line > 0),
        "start lines kept"
    );
    let file = dir.join("ignis.pgo.pprof");
    std::fs::write(&file, pgo.encode_to_vec())?;
    let bin = ignis_integration::go::build_pprofdemo_module(&dir, "with-pgo", Some(&file))?;
    let info = ignis_integration::go::build_info(&bin)?;
    ensure!(info.contains("-pgo="), "not a PGO build: {info}");
    Ok(())
}
