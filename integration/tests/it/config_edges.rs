//! Every numeric setting at its extremes (0, and the largest value its type
//! takes): the configuration is refused with a reason, or the node starts,
//! stores a profile exactly and answers it. No setting may panic a node
//! (a zero interval, an overflowing deadline) or hang it (a billion threads).

use anyhow::{Context, Result, bail, ensure};
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

/// The repository's `config.toml` and an overrides file damaged thousands
/// of ways (lines dropped, doubled or cut, values swapped for hostile ones,
/// bytes changed): each parses or is refused with a reason, never a panic.
#[test]
fn damaged_configuration_files_are_refused_or_read_never_panic() -> Result<()> {
    let config = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.toml"),
    )?;
    let overrides = "[overrides.acme]\ningestion_rate_mb = 8.0\nmax_query_length_secs = 3600\n\n[[overrides.acme.ingestion_relabeling_rules]]\nsource_labels = [\"pod\"]\nregex = \"(.*)-x\"\ntarget_label = \"d\"\n";
    let hostile = [
        "-1",
        "0",
        "1e309",
        "-1e309",
        "nan",
        "inf",
        "18446744073709551616",
        "9223372036854775807",
        "\"\"",
        "\"\\u0000\"",
        "[]",
        "{}",
        "[[]]",
        "true",
        "\"(\"",
        "1979-05-27T07:32:00Z",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let limits = ignis_actors::overrides::TenantLimits::new(
        ignis_ingest::Limits::default(),
        ignis_query::QueryLimits::default(),
    );
    let (mut parsed, mut refused) = (0, 0);
    for case in 0..4000 {
        let base = if case % 4 == 3 {
            overrides
        } else {
            config.as_str()
        };
        let mut lines: Vec<String> = base.lines().map(String::from).collect();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() % lines.len() as u64) as usize;
            match next() % 5 {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                2 => {
                    let cut = lines[i].floor_char_boundary((next() % 40) as usize);
                    lines[i].truncate(cut);
                }
                3 => {
                    if let Some((k, _)) = lines[i].split_once('=') {
                        let v = hostile[(next() % hostile.len() as u64) as usize];
                        lines[i] = format!("{k}= {v}");
                    }
                }
                _ => {
                    let mut b = lines[i].clone().into_bytes();
                    if !b.is_empty() {
                        let at = (next() % b.len() as u64) as usize;
                        b[at] = b"=[]{}\"'#.\\\n0aZ"[(next() % 14) as usize];
                    }
                    lines[i] = String::from_utf8_lossy(&b).into_owned();
                }
            }
            if lines.is_empty() {
                break;
            }
        }
        let text = lines.join("\n");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if case % 4 == 3 {
                limits.parse(&text).is_ok()
            } else {
                Config::from_toml(&text).is_ok()
            }
        }));
        match outcome {
            Ok(true) => parsed += 1,
            Ok(false) => refused += 1,
            Err(_) => bail!("a panic on:\n{text}"),
        }
    }
    ensure!(
        parsed > 100 && refused > 100,
        "{parsed} parsed, {refused} refused"
    );
    Ok(())
}
