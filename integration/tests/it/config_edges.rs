//! Every numeric setting at its extremes (0, and the largest value its type
//! takes): the configuration is refused with a reason, or the node starts,
//! stores a profile exactly and answers it. No setting may panic a node
//! (a zero interval, an overflowing deadline) or hang it (a billion threads).

use anyhow::{Context, Result, ensure};
use ignis::Config;
use ignis_integration::client::Client;
use ignis_integration::node::TestNode;
use serde_json::{Number, Value};

use crate::tenants::{go_cpu_total, push_go_cpu};

/// Paths (`a.b.c`) of the numeric settings under `v`.
fn numeric_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                numeric_paths(v, &p, out);
            }
        }
        Value::Number(_) => out.push(prefix.to_string()),
        _ => {}
    }
}

fn set(v: &mut Value, path: &str, n: Value) {
    let mut at = v;
    for part in path.split('.') {
        at = &mut at[part];
    }
    *at = n;
}

/// `v` with `path` set to the first of `candidates` its type takes and
/// the configuration validates with; `None` when none does.
fn with_extreme(v: &Value, path: &str, candidates: &[Value]) -> Option<(Value, Config)> {
    candidates.iter().find_map(|n| {
        let mut t = v.clone();
        set(&mut t, path, n.clone());
        let config: Config = serde_json::from_value(t.clone()).ok()?;
        config.validate().ok()?;
        Some((t, config))
    })
}

async fn serves(config: Config, what: &str) -> Result<()> {
    let node = TestNode::start(move |c| {
        let (listen, data) = (
            c.server.http_listen_address.clone(),
            c.storage.data_dir.clone(),
        );
        *c = config;
        c.server.http_listen_address = listen;
        c.storage.data_dir = data;
    })
    .with_context(|| format!("starting with {what}"))?;
    let client = Client::new(&node.url);
    let r = client.get("/ready").await?;
    ensure!(r.status().is_success(), "{what}: /ready {}", r.status());
    let r = client
        .post(
            "/push.v1.PusherService/Push",
            &[("content-type", "application/proto")],
            push_go_cpu("edges")?,
        )
        .await?;
    ensure!(r.status().is_success(), "{what}: push {}", r.status());
    let total = crate::common::total_of(
        &client,
        "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        "edges",
    )
    .await?;
    ensure!(total == go_cpu_total()?, "{what}: total {total}");
    Ok(())
}

#[tokio::test]
async fn numeric_settings_at_their_extremes_are_refused_or_served() -> Result<()> {
    let defaults = serde_json::to_value(Config::default())?;
    let mut paths = Vec::new();
    numeric_paths(&defaults, "", &mut paths);
    ensure!(paths.len() > 40, "numeric settings: {paths:?}");
    let num = |n: u64| Value::Number(Number::from(n));
    let zero = [num(0), Value::from(0.0)];
    let max = [
        num(u64::MAX),
        num(i64::MAX as u64),
        num(u64::from(u32::MAX)),
        num(i32::MAX as u64),
        num(u64::from(u16::MAX)),
        num(u64::from(u8::MAX)),
        Value::from(1e308),
    ];
    for (name, candidates) in [("zero", &zero[..]), ("max", &max[..])] {
        // Each setting alone at the extreme, then all that validate at once.
        let mut all = defaults.clone();
        let mut applied = Vec::new();
        for p in &paths {
            if let Some((with, _)) = with_extreme(&all, p, candidates) {
                all = with;
                applied.push(p.clone());
            }
        }
        let config: Config = serde_json::from_value(all)?;
        config.validate()?;
        eprintln!(
            "{name}: {} of {} settings at the extreme",
            applied.len(),
            paths.len()
        );
        serves(
            config,
            &format!("every setting that validates at {name}: {applied:?}"),
        )
        .await?;
    }
    Ok(())
}
