//! Several profiles in one series add up; tenants see only their own data.

use anyhow::{Result, ensure};
use ignis_integration::client::Client;
use ignis_integration::fixtures::{read_fixture, read_json};
use ignis_integration::node::TestNode;
use ignis_storage::proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
use ignis_storage::proto::types::v1::LabelPair;
use prost::Message;

use crate::common::total_of;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// A Push request carrying the Go CPU fixture for `service`.
pub fn push_go_cpu(service: &str) -> Result<Vec<u8>> {
    let label = |n: &str, v: &str| LabelPair {
        name: n.into(),
        value: v.into(),
    };
    Ok(PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![
                label("__name__", "process_cpu"),
                label("service_name", service),
            ],
            samples: vec![RawSample {
                raw_profile: read_fixture("go/cpu.pb.gz")?,
                id: "0001".into(),
            }],
            annotations: vec![],
        }],
    }
    .encode_to_vec())
}

/// CPU nanoseconds of one Go CPU fixture profile (its ground truth).
pub fn go_cpu_total() -> Result<i64> {
    Ok(
        read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
            .as_i64()
            .unwrap_or(-1),
    )
}

#[tokio::test]
async fn pushes_into_one_series_add_up_exactly() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let body = push_go_cpu("sum.app")?;
    for _ in 0..3 {
        let r = client
            .post(
                "/push.v1.PusherService/Push",
                &[("content-type", "application/proto")],
                body.clone(),
            )
            .await?;
        ensure!(r.status().is_success(), "push: {}", r.status());
    }
    // The same profile through the legacy endpoint lands in the same series
    // only if its labels match; it does not here (pyroscope_spy differs).
    let want = go_cpu_total()? * 3;
    ensure!(
        total_of(&client, CPU, "sum.app").await? == want,
        "three pushes do not add up to {want}"
    );
    let series = client
        .connect_json("Series", serde_json::json!({"matchers": ["{service_name=\"sum.app\"}"], "start": 1, "end": 4_000_000_000_000i64}))
        .await?;
    ensure!(
        series["labelsSet"].as_array().map_or(0, Vec::len) == 2,
        "one series per sample type: {series}"
    );
    Ok(())
}

#[tokio::test]
async fn tenants_are_isolated() -> Result<()> {
    let node = TestNode::start(|_| {})?;
    let base = Client::new(&node.url);
    let (a, b) = (base.with_tenant("team-a"), base.with_tenant("team-b"));
    let r = a
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_go_cpu("iso.app")?,
        )
        .await?;
    ensure!(r.status().is_success(), "push: {}", r.status());
    ensure!(
        total_of(&a, CPU, "iso.app").await? == go_cpu_total()?,
        "tenant a lost its data"
    );
    // Tenant b, the default tenant and an unknown tenant see nothing.
    for other in [&b, &base, &base.with_tenant("nobody")] {
        ensure!(
            total_of(other, CPU, "iso.app").await? == 0,
            "data leaked across tenants"
        );
        let lv = other
            .connect_json("LabelValues", serde_json::json!({"name": "service_name", "start": 1, "end": 4_000_000_000_000i64}))
            .await?;
        ensure!(
            lv["names"].as_array().is_none_or(Vec::is_empty),
            "labels leaked: {lv}"
        );
    }
    // An invalid tenant id is refused.
    let r = base
        .with_tenant("../etc")
        .get("/pyroscope/label-values?label=service_name")
        .await?;
    ensure!(r.status() == 400, "invalid tenant id: {}", r.status());
    Ok(())
}

#[tokio::test]
async fn a_federated_read_merges_the_named_tenants() -> Result<()> {
    // `X-Scope-OrgID: a|b` reads both tenants as one, as Pyroscope's
    // federated queries do; writes and GetProfileStats take one tenant.
    let node = TestNode::start(|_| {})?;
    let base = Client::new(&node.url);
    let proto = [("content-type", "application/proto")];
    for (tenant, copies) in [("fed-a", 1), ("fed-b", 2), ("fed-c", 4)] {
        for _ in 0..copies {
            let r = base
                .with_tenant(tenant)
                .post(
                    "/push.v1.PusherService/Push",
                    &proto,
                    push_go_cpu("fed.app")?,
                )
                .await?;
            ensure!(r.status().is_success(), "push to {tenant}: {}", r.status());
        }
    }
    let one = go_cpu_total()?;
    for (spec, copies) in [("fed-a", 1), ("fed-a|fed-b", 3), ("fed-b | fed-c|fed-b", 6)] {
        let total = total_of(&base.with_tenant(spec), CPU, "fed.app").await?;
        ensure!(
            total == copies * one,
            "{spec}: {total}, want {}",
            copies * one
        );
    }
    let fed = base.with_tenant("fed-a|fed-b");
    let r = fed
        .post(
            "/push.v1.PusherService/Push",
            &proto,
            push_go_cpu("fed.app")?,
        )
        .await?;
    ensure!(r.status() == 400, "federated write: {}", r.status());
    let r = fed
        .post(
            "/querier.v1.QuerierService/GetProfileStats",
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await?;
    ensure!(
        r.status() == 400,
        "federated GetProfileStats: {}",
        r.status()
    );
    let r = base
        .with_tenant("fed-a|../x")
        .post(
            "/querier.v1.QuerierService/LabelNames",
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await?;
    ensure!(
        r.status() == 400,
        "an invalid tenant among several: {}",
        r.status()
    );
    Ok(())
}
