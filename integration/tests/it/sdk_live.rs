//! The official SDKs run live against a node: the Python SDK
//! (`pyroscope-io` from PyPI, installed by `.ci/run`) profiling a busy
//! Python program, and the Rust crate `pyroscope` (a dev-dependency, built
//! into the `rust_sdk_app` example) profiling a busy Rust function. They push
//! through a recording proxy, so the test knows exactly what each SDK sent:
//! what Ignis stored under its `service_name` must equal that, with the busy
//! function on top, and be close to the CPU time the program reports (the
//! Rust SDK samples CPU time with SIGPROF; the Python SDK samples a thread
//! whenever it is runnable, so on a loaded machine it may count up to the
//! wall time).

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use ignis_integration::client::{Client, fg_total, self_by_name};
use ignis_integration::node::TestNode;
use ignis_integration::proxy::{Record, RecordingProxy};
use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::push::v1::PushRequest;
use prost::Message;
use serde_json::Value;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const SECONDS: &str = "12";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs an SDK program to completion and returns the CPU seconds it reports.
fn run_app(mut cmd: Command) -> Result<f64> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("cpu_seconds"))
        .with_context(|| format!("no cpu_seconds line in {stdout:?}"))?;
    let v: Value = serde_json::from_str(line)?;
    v["cpu_seconds"]
        .as_f64()
        .context("cpu_seconds is not a number")
}

fn gunzip_if(data: &[u8], gzip: bool) -> Result<Vec<u8>> {
    if !gzip && !data.starts_with(&[0x1f, 0x8b]) {
        return Ok(data.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// Sum of the `cpu` sample type over every profile pushed for `service`.
fn sent_cpu_ns(records: &[Record], service: &str) -> Result<i64> {
    let mut total = 0;
    for r in records {
        let gzip = r
            .request_headers
            .iter()
            .any(|(k, v)| k == "content-encoding" && v.contains("gzip"));
        let req = PushRequest::decode(&gunzip_if(&r.request, gzip)?[..])?;
        for series in req.series {
            let ours = series
                .labels
                .iter()
                .any(|l| l.name == "service_name" && l.value == service);
            if !ours {
                continue;
            }
            for sample in series.samples {
                let p = pprof::Profile::decode(&gunzip_if(&sample.raw_profile, false)?[..])?;
                let col = p
                    .sample_type
                    .iter()
                    .position(|st| p.string_table[st.r#type as usize] == "cpu")
                    .context("pushed profile without a cpu sample type")?;
                total += p.sample.iter().map(|s| s.value[col]).sum::<i64>();
            }
        }
    }
    Ok(total)
}

/// Checks what the node stored for `service` against what the SDK sent
/// through `proxy` and the CPU time the program spent.
async fn check(
    client: &Client,
    proxy: &RecordingProxy,
    service: &str,
    start_ms: i64,
    cpu_seconds: f64,
    busy: &str,
) -> Result<()> {
    let pushes = proxy.records("/push.v1.PusherService/Push");
    ensure!(!pushes.is_empty(), "{service}: the SDK pushed nothing");
    let sent = sent_cpu_ns(&pushes, service)?;
    ensure!(
        sent > 0,
        "{service}: the SDK pushed no CPU for this service"
    );
    let selector = format!("{{service_name=\"{service}\",run=\"live\"}}");
    let fg = client
        .flamegraph(CPU, &selector, start_ms, now_ms() + 60_000)
        .await?;
    ensure!(
        fg_total(&fg) == sent,
        "{service}: stored {} ns, the SDK sent {sent} ns in {} pushes",
        fg_total(&fg),
        pushes.len()
    );
    let stored = fg_total(&fg) as f64 / 1e9;
    let wall: f64 = SECONDS.parse()?;
    eprintln!(
        "{service}: {} pushes, stored {stored:.2} s of CPU = sent; the program spent {cpu_seconds:.2} s of CPU in {wall} s",
        pushes.len()
    );
    ensure!(
        stored >= 0.75 * cpu_seconds && stored <= 1.25 * wall,
        "{service}: stored {stored:.2} s of CPU, the program spent {cpu_seconds:.2} s in {wall} s"
    );
    let selfs = self_by_name(&fg);
    let busy_self: i64 = selfs
        .iter()
        .filter(|(name, _)| name.contains(busy))
        .map(|(_, v)| *v)
        .sum();
    ensure!(
        busy_self as f64 >= 0.7 * fg_total(&fg) as f64,
        "{service}: {busy} holds {busy_self} of {} ns; top: {:?}",
        fg_total(&fg),
        {
            let mut top: Vec<_> = selfs.into_iter().collect();
            top.sort_by_key(|(_, v)| -*v);
            top.truncate(5);
            top
        }
    );
    Ok(())
}

#[tokio::test]
async fn python_sdk_live_profile_matches_its_cpu_time() -> Result<()> {
    let ok = Command::new("python3")
        .args(["-c", "import pyroscope"])
        .status()
        .is_ok_and(|s| s.success());
    ensure!(
        ok,
        "the Python SDK is missing: python3 -m pip install pyroscope-io (.ci/run does)"
    );
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let proxy = RecordingProxy::start(&node.url).await?;
    // SDKs stamp a profile with the start of its upload interval (aligned to 10 s).
    let start_ms = now_ms() - 120_000;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/python_sdk_app.py");
    let url = proxy.url.clone();
    let cpu = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("python3");
        cmd.arg(script).args([&url, "live.python", SECONDS]);
        run_app(cmd)
    })
    .await??;
    check(&client, &proxy, "live.python", start_ms, cpu, "busy_fib").await?;
    node.stop()
}

#[tokio::test]
async fn rust_sdk_live_profile_matches_its_cpu_time() -> Result<()> {
    let _alone = crate::common::CORE_HEAVY.lock().await;
    // `cargo test` builds the examples: target/<profile>/examples/rust_sdk_app.
    let exe = std::env::current_exe()?;
    let app = exe
        .parent()
        .and_then(|d| d.parent())
        .context("test executable location")?
        .join("examples/rust_sdk_app");
    ensure!(
        app.exists(),
        "{} is missing (cargo test builds it; or cargo build -p ignis-integration --examples)",
        app.display()
    );
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let proxy = RecordingProxy::start(&node.url).await?;
    // SDKs stamp a profile with the start of its upload interval (aligned to 10 s).
    let start_ms = now_ms() - 120_000;
    // pprof-rs samples on SIGPROF, and signals that arrive while one is
    // pending merge: on a CI machine running other tests on both cores the
    // SDK has been seen to send only 68 % of the program's CPU time (Ignis
    // stored exactly what it sent). So a second run, under a new service
    // name, gets a chance; a fault of Ignis's (a wrong unit, a lost push)
    // fails both.
    let mut last = None;
    for service in ["live.rust", "live.rust.again"] {
        let (url, app) = (proxy.url.clone(), app.clone());
        let cpu = tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(app);
            cmd.args([&url, service, SECONDS]);
            run_app(cmd)
        })
        .await??;
        match check(&client, &proxy, service, start_ms, cpu, "busy_fib").await {
            Ok(()) => return node.stop(),
            Err(e) => {
                eprintln!("{service}: {e:#}");
                last = Some(e);
            }
        }
    }
    Err(last.context("no run")?)
}

#[tokio::test]
async fn python_sdk_pushes_with_basic_auth_and_is_refused_with_a_wrong_password() -> Result<()> {
    use ignis::auth::{AuthConfig, Credential, Scope};
    let node = TestNode::start(|c| {
        c.auth = AuthConfig {
            enabled: true,
            credentials: vec![
                Credential::new("python-app", &["team"], &[Scope::Write], "python-app", "pw"),
                Credential::new("grafana", &["*"], &[Scope::Read], "", "tok"),
            ],
        };
    })?;
    let start_ms = now_ms() - 120_000;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/python_sdk_app.py");
    for (service, password) in [("live.auth", "pw"), ("live.badauth", "wrong")] {
        let (script, url) = (script.clone(), node.url.clone());
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("python3");
            cmd.arg(script)
                .args([&url, service, "3", "python-app", password, "team"]);
            run_app(cmd)
        })
        .await??;
    }
    // Grafana's data source reads with a bearer token, as the tenant.
    let grafana = Client::new(&node.url)
        .with_authorization("Bearer tok")
        .with_tenant("team");
    let stored = |service: &'static str| {
        let grafana = grafana.clone();
        async move {
            let selector = format!("{{service_name=\"{service}\"}}");
            let fg = grafana
                .flamegraph(CPU, &selector, start_ms, now_ms() + 60_000)
                .await?;
            Ok::<_, anyhow::Error>(fg_total(&fg))
        }
    };
    ensure!(
        stored("live.auth").await? > 0,
        "nothing stored with the right password"
    );
    ensure!(
        stored("live.badauth").await? == 0,
        "stored with a wrong password"
    );
    let metrics = Client::new(&node.url)
        .with_authorization("Bearer tok")
        .get("/metrics")
        .await?;
    ensure!(metrics.status() == 403, "a read credential read /metrics");
    node.stop()
}
