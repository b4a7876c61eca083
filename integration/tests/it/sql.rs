//! SQL over profiles (`POST /api/v1/sql`): DataFusion reads the Parquet
//! blocks through opendal and the data still in memory with one plan, and
//! finds the fixture's ground truth.

use anyhow::{Context, Result, ensure};
use ignis_integration::client::Client;
use ignis_integration::fixtures::read_json;
use ignis_integration::node::TestNode;
use serde_json::{Value, json};

use crate::blocks::push_at;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const T1: i64 = 1_700_000_000_000_000_000;
const T2: i64 = 1_700_000_600_000_000_000;

async fn sql(client: &Client, query: &str, start_ms: i64, end_ms: i64) -> Result<(u16, Value)> {
    let r = client
        .post(
            "/api/v1/sql",
            &[("content-type", "application/json")],
            serde_json::to_vec(&json!({"query": query, "start": start_ms, "end": end_ms}))?,
        )
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    Ok((status, v))
}

async fn push(client: &Client, t: i64) -> Result<()> {
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_at("sql.app", t)?,
        )
        .await?;
    ensure!(r.status().is_success(), "push: {}", r.status());
    Ok(())
}

#[tokio::test]
async fn sql_reads_blocks_and_memory_with_one_plan() -> Result<()> {
    let truth = read_json("go/cpu.expected.json")?;
    let per = truth["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .context("truth")?;
    let top = &truth["top_self"]["cpu/nanoseconds"][0];
    let (top_name, top_self) = (
        top[0].as_str().context("name")?,
        top[1].as_i64().context("v")?,
    );
    let data = tempfile::tempdir()?;
    // The first profile becomes a block ...
    {
        let node = TestNode::start_in(data.path(), |c| {
            c.storage.max_head_samples = 1;
            c.storage.block_check_interval_secs = 1;
        })?;
        push(&Client::new(&node.url), T1).await?;
        let bucket = data.path().join("bucket/anonymous/blocks");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::read_dir(&bucket).map_or(0, |d| d.count()) == 0 {
            ensure!(std::time::Instant::now() < deadline, "no block shipped");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        node.stop()?;
    }
    // ... the second stays in memory.
    let node = TestNode::start_in(data.path(), |_| {})?;
    let client = Client::new(&node.url);
    push(&client, T2).await?;
    let all = (T1 / 1_000_000 - 1000, T2 / 1_000_000 + 1000);

    let (status, v) = sql(
        &client,
        &format!(
            "SELECT block = 'memory' AS in_memory, count(*) AS n, sum(total) AS total \
             FROM profiles WHERE service_name = 'sql.app' AND profile_type = '{CPU}' \
             GROUP BY 1 ORDER BY 1"
        ),
        all.0,
        all.1,
    )
    .await?;
    ensure!(status == 200, "{v}");
    ensure!(v["blocks"] == 1, "blocks read: {v}");
    ensure!(
        v["rows"]
            == json!([
                {"in_memory": false, "n": 1, "total": per},
                {"in_memory": true, "n": 1, "total": per}
            ]),
        "profiles: {v}"
    );
    ensure!(v["columns"] == json!(["in_memory", "n", "total"]));

    // Self time by leaf function over both sources equals the ground truth.
    let (status, v) = sql(
        &client,
        &format!(
            "SELECT leaf_function, sum(value) AS self FROM samples \
             WHERE profile_type = '{CPU}' GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        ),
        all.0,
        all.1,
    )
    .await?;
    ensure!(status == 200, "{v}");
    ensure!(
        v["rows"] == json!([{"leaf_function": top_name, "self": 2 * top_self}]),
        "top self: {v}"
    );
    // Every sample is kept, with or without a function name.
    let (_, v) = sql(
        &client,
        &format!("SELECT sum(value) AS total FROM samples WHERE profile_type = '{CPU}'"),
        all.0,
        all.1,
    )
    .await?;
    ensure!(
        v["rows"] == json!([{"total": 2 * per}]),
        "samples total: {v}"
    );

    // The range picks blocks by their time: the second profile's range reads none.
    let (_, v) = sql(
        &client,
        "SELECT count(*) AS n FROM profiles",
        T2 / 1_000_000 - 1000,
        T2 / 1_000_000 + 1000,
    )
    .await?;
    ensure!(v["blocks"] == 0, "pruning by time: {v}");

    // Read-only, and errors say why.
    for bad in [
        "DROP VIEW profiles",
        "CREATE TABLE x AS SELECT 1",
        "SELECT nope FROM profiles",
        "SELEC 1",
    ] {
        let (status, v) = sql(&client, bad, all.0, all.1).await?;
        ensure!(
            status == 400 && v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{bad}: {status} {v}"
        );
    }
    let r = client
        .post(
            "/api/v1/sql",
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await?;
    ensure!(r.status() == 400, "missing query: {}", r.status());
    Ok(())
}
