//! Traces: a node started with `log.otlp_traces_endpoint` exports its spans
//! over OTLP/HTTP to a collector (here a recording sink), with the request
//! spans and their children, under `service.name = ignis`.

use std::collections::HashMap;

use anyhow::{Result, ensure};
use ignis_integration::client::Client;
use ignis_integration::fixtures::{push_request, read_fixture};
use ignis_integration::node::ChildNode;
use ignis_integration::proxy::RecordingProxy;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// An exported span: its id, its parent's id and its string attributes.
type SpanInfo = (Vec<u8>, Vec<u8>, HashMap<String, String>);

// Multi-threaded: the collector must keep answering while the test thread
// blocks in `terminate` (the node flushes its spans as it stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_http() -> Result<()> {
    let collector = RecordingProxy::start_sink().await?;
    let data = tempfile::tempdir()?;
    let env = [(
        "IGNIS_LOG__OTLP_TRACES_ENDPOINT".to_string(),
        format!("{}/v1/traces", collector.url),
    )];
    let mut node = ChildNode::start_with(data.path(), &[], &env).await?;
    let client = Client::new(&node.url);
    let raw = read_fixture("go/cpu.pb.gz")?;
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_request("traced.app", raw),
        )
        .await?;
    ensure!(r.status().is_success(), "push: {}", r.status());
    client
        .connect_json(
            "SelectMergeStacktraces",
            serde_json::json!({"profileTypeID": "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
                "labelSelector": "{service_name=\"traced.app\"}", "start": 1, "end": 4_102_444_800_000_i64}),
        )
        .await?;
    // A clean stop flushes the batch of spans still queued.
    ensure!(node.terminate()?.success(), "SIGTERM stop failed");

    let exports = collector.records("/v1/traces");
    ensure!(!exports.is_empty(), "no OTLP export received");
    let mut spans: HashMap<String, Vec<SpanInfo>> = HashMap::new();
    for e in &exports {
        let ct = e
            .request_headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str());
        ensure!(
            ct == Some("application/x-protobuf"),
            "export content type {ct:?}"
        );
        let req = ExportTraceServiceRequest::decode(&e.request[..])?;
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            ensure!(
                matches!(&service, Some(AnyValue::StringValue(s)) if s == "ignis"),
                "service.name {service:?}"
            );
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                let attrs = span
                    .attributes
                    .iter()
                    .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        AnyValue::StringValue(s) => Some((kv.key.clone(), s.clone())),
                        _ => None,
                    })
                    .collect();
                spans.entry(span.name.clone()).or_default().push((
                    span.span_id,
                    span.parent_span_id,
                    attrs,
                ));
            }
        }
    }
    let http = spans.get("http").cloned().unwrap_or_default();
    let push = http
        .iter()
        .find(|(_, _, a)| {
            a.get("route")
                .is_some_and(|r| r == "/push.v1.PusherService/Push")
        })
        .ok_or_else(|| anyhow::anyhow!("no http span for the push: {:?}", spans.keys()))?;
    let distribute = spans
        .get("distribute")
        .and_then(|d| d.first())
        .ok_or_else(|| anyhow::anyhow!("no distribute span: {:?}", spans.keys()))?;
    ensure!(
        distribute.1 == push.0,
        "distribute is not a child of the push request span"
    );
    ensure!(
        spans.contains_key("merge") || spans.contains_key("read_blocks"),
        "no query spans: {:?}",
        spans.keys()
    );
    Ok(())
}
