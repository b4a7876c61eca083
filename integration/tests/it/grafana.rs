//! Grafana's calls replayed: the requests the Pyroscope data source sends
//! (Connect, protobuf) and those the Profiles Drilldown app sends (Connect,
//! JSON, with fields and enum names newer than Ignis's protos), built from
//! the wire facts and answered exactly as the fixtures' ground truth says:
//! exemplars point at stored profiles, a profile id selects exactly its
//! profile, a trace id exactly its trace's samples, heatmap cells add up to
//! the series' totals.

use std::io::Read;

use anyhow::{Context, Result, ensure};
use ignis_integration::client::{Client, as_i64, fg_total};
use ignis_integration::fixtures::{push_request, read_fixture, read_json};
use ignis_integration::node::TestNode;
use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::proto::types::v1 as types;
use prost::Message;
use serde_json::{Value, json};

use crate::common::check_top_self;
use crate::spans::{CPU, SERVICE, TRACE_1, TRACE_2, labelled_fixture, push};

/// Seconds between the two profiles (two heatmap and series slots apart).
const APART_S: i64 = 120;

/// A Connect call in protobuf, as the data source makes it.
async fn proto_call<R: Message + Default>(
    client: &Client,
    method: &str,
    req: &impl Message,
) -> Result<R> {
    let r = client
        .post(
            &format!("/querier.v1.QuerierService/{method}"),
            &[("content-type", "application/proto")],
            req.encode_to_vec(),
        )
        .await?;
    let status = r.status();
    let body = r.bytes().await?;
    ensure!(status.is_success(), "{method}: {status}: {body:?}");
    Ok(R::decode(body.as_ref())?)
}

/// The Go CPU fixture, `APART_S` later than the labelled one, as a second
/// profile of the same series.
fn later_profile(time_ns: i64) -> Result<Vec<u8>> {
    let gz = read_fixture("go/cpu.pb.gz")?;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut raw)?;
    let mut p = pprof::Profile::decode(raw.as_slice())?;
    p.time_nanos = time_ns + APART_S * 1_000_000_000;
    Ok(push_request(SERVICE, p.encode_to_vec()))
}

#[tokio::test]
async fn grafana_datasource_and_drilldown_requests_answer_the_fixture_truth() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let l = labelled_fixture()?;
    push(&client, &l).await?;
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            later_profile(l.time_ns)?,
        )
        .await?;
    ensure!(r.status().is_success(), "second push: {}", r.status());
    let truth = read_json("go/cpu.expected.json")?;
    let one = truth["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .context("truth")?;
    let t0 = l.time_ns / 1_000_000;
    let (start, end) = (t0 - 3_600_000, t0 + 3_600_000);
    let selector = format!("{{service_name=\"{SERVICE}\"}}");

    // The data source: profile types, label names and values, the series
    // list it builds its label browser from (answered from series labels).
    let types: q::ProfileTypesResponse = proto_call(
        &client,
        "ProfileTypes",
        &q::ProfileTypesRequest { start, end },
    )
    .await?;
    ensure!(
        types.profile_types.iter().any(|t| t.id == CPU),
        "profile types: {types:?}"
    );
    let names: types::LabelNamesResponse = proto_call(
        &client,
        "LabelNames",
        &types::LabelNamesRequest {
            matchers: vec![format!("{{__profile_type__=\"{CPU}\"}}")],
            start,
            end,
        },
    )
    .await?;
    ensure!(names.names.iter().any(|n| n == "service_name"), "{names:?}");
    let values: types::LabelValuesResponse = proto_call(
        &client,
        "LabelValues",
        &types::LabelValuesRequest {
            name: "service_name".into(),
            matchers: vec![],
            start,
            end,
        },
    )
    .await?;
    ensure!(values.names == [SERVICE], "{values:?}");
    let series: q::SeriesResponse = proto_call(
        &client,
        "Series",
        &q::SeriesRequest {
            matchers: vec![],
            label_names: vec!["__profile_type__".into(), "service_name".into()],
            start,
            end,
        },
    )
    .await?;
    let sets: Vec<Vec<(String, String)>> = series
        .labels_set
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect()
        })
        .collect();
    ensure!(
        sets.contains(&vec![
            ("__profile_type__".into(), CPU.into()),
            ("service_name".into(), SERVICE.into())
        ]),
        "series: {sets:?}"
    );

    // The data source's flame graph and time series, in protobuf.
    let fg: q::SelectMergeStacktracesResponse = proto_call(
        &client,
        "SelectMergeStacktraces",
        &q::SelectMergeStacktracesRequest {
            profile_type_id: CPU.into(),
            label_selector: selector.clone(),
            start,
            end,
            max_nodes: Some(16_384),
            ..Default::default()
        },
    )
    .await?;
    let flamegraph = fg.flamegraph.context("no flame graph")?;
    ensure!(
        flamegraph.total == 2 * one,
        "flame graph total {}",
        flamegraph.total
    );
    let ts: q::SelectSeriesResponse = proto_call(
        &client,
        "SelectSeries",
        &q::SelectSeriesRequest {
            profile_type_id: CPU.into(),
            label_selector: selector.clone(),
            start,
            end,
            step: 15.0,
            group_by: vec!["service_name".into()],
            ..Default::default()
        },
    )
    .await?;
    let points: Vec<f64> = ts
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.value))
        .collect();
    ensure!(
        points.len() == 2 && points.iter().all(|&v| v == one as f64),
        "series points {points:?}"
    );

    // Drilldown, in JSON with what Ignis's protos lack: a frame filter in the
    // stack trace selector, a format enum name, a field of its own.
    let drill = |extra: Value| {
        let mut body = json!({"profileTypeID": CPU, "labelSelector": selector,
            "start": start, "end": end, "maxNodes": 16384,
            "stackTraceSelector": {"frameFilter": {"include": ["main"]}},
            "drilldownOnlyField": {"x": 1}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    let fg = client
        .connect_json(
            "SelectMergeStacktraces",
            drill(json!({"format": "PROFILE_FORMAT_FUNCTIONS"})),
        )
        .await?;
    ensure!(
        fg_total(&fg) == 2 * one,
        "drilldown flame graph {}",
        fg_total(&fg)
    );
    check_top_self(&fg, &truth["top_self"]["cpu/nanoseconds"], 2, "drilldown")?;

    // Exemplars: one per profile, each naming a stored profile that its id
    // selects exactly.
    let v = client
        .connect_json(
            "SelectSeries",
            drill(
                json!({"step": 60.0, "exemplarType": "EXEMPLAR_TYPE_INDIVIDUAL",
                         "groupBy": ["service_name"]}),
            ),
        )
        .await?;
    let exemplars: Vec<(String, i64)> = v["series"][0]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["exemplars"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["profileId"].as_str().unwrap_or_default().to_string(),
                as_i64(&e["value"]),
            )
        })
        .collect();
    ensure!(
        exemplars.len() == 2 && exemplars.iter().all(|(id, v)| !id.is_empty() && *v == one),
        "exemplars {exemplars:?}"
    );
    for (id, value) in &exemplars {
        let fg = client
            .connect_json(
                "SelectMergeStacktraces",
                drill(json!({"profileIdSelector": [id]})),
            )
            .await?;
        ensure!(fg_total(&fg) == *value, "profile {id}: {}", fg_total(&fg));
    }

    // A trace id selects exactly its trace's samples (flame graph and diff).
    for trace in [TRACE_1, TRACE_2] {
        let fg = client
            .connect_json(
                "SelectMergeStacktraces",
                drill(json!({"traceIdSelector": [trace]})),
            )
            .await?;
        ensure!(
            fg_total(&fg) == l.trace_sums[trace][1],
            "trace {trace}: {} != {}",
            fg_total(&fg),
            l.trace_sums[trace][1]
        );
    }
    let diff = client
        .connect_json(
            "Diff",
            json!({"left": drill(json!({"traceIdSelector": [TRACE_1]})),
                   "right": drill(json!({}))}),
        )
        .await?;
    ensure!(
        as_i64(&diff["flamegraph"]["leftTicks"]) == l.trace_sums[TRACE_1][1]
            && as_i64(&diff["flamegraph"]["rightTicks"]) == 2 * one,
        "diff {}",
        diff["flamegraph"]["leftTicks"]
    );

    // Heatmaps: the cells count every profile (or span) once and their
    // exemplars add up to the series' totals.
    let heatmap = |query_type: &str| {
        drill(json!({"step": 60.0, "queryType": query_type,
                     "exemplarType": "EXEMPLAR_TYPE_INDIVIDUAL", "limit": 10}))
    };
    for (query_type, want_cells, want_sum) in [
        ("HEATMAP_QUERY_TYPE_INDIVIDUAL", 2, 2 * one),
        (
            "HEATMAP_QUERY_TYPE_SPAN",
            l.sums.len() as i64,
            l.sums.values().map(|s| s[1]).sum(),
        ),
    ] {
        let v = client
            .connect_json("SelectHeatmap", heatmap(query_type))
            .await?;
        let slots: Vec<&Value> = v["series"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["slots"].as_array().into_iter().flatten())
            .collect();
        let count: i64 = slots
            .iter()
            .flat_map(|s| s["counts"].as_array().into_iter().flatten())
            .map(as_i64)
            .sum();
        let sum: i64 = slots
            .iter()
            .flat_map(|s| s["exemplars"].as_array().into_iter().flatten())
            .map(|e| as_i64(&e["value"]))
            .sum();
        ensure!(
            count == want_cells && sum == want_sum,
            "{query_type}: {count} cells summing to {sum}, want {want_cells} and {want_sum}: {v}"
        );
    }
    Ok(())
}
