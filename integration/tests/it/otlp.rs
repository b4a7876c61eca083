//! OTLP profiles: an export built from the Go CPU fixture with the official
//! `opentelemetry-proto` Python package (`integration/scripts/otlp_export.py`)
//! sent over HTTP protobuf, HTTP JSON and gRPC (grpcio, gzip) reads back as
//! the same profile as the pprof sent directly, and equals the fixture's
//! ground truth; samples linked to traces are selected by trace and span id;
//! bad input gets a 4xx (or a gRPC error status).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use ignis_integration::client::{Client, fg_total};
use ignis_integration::fixtures::{fixtures_dir, read_fixture, read_json};
use ignis_integration::node::TestNode;
use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::opentelemetry::proto::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use prost::Message;

use crate::common::check_top_self;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
/// The fixture's `cpu/nanoseconds` profile: Pyroscope names it after its period type.
const CPU_BY_PERIOD: &str = "cpu:cpu:nanoseconds:cpu:nanoseconds";
const START_MS: i64 = 1;
const END_MS: i64 = 4_000_000_000_000;
const EXPORT: &str = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/otlp_export.py")
}

/// Installs the official OTLP protos and grpcio for Python when missing.
pub(crate) fn python_packages() -> Result<()> {
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    let check =
        "import opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2, grpc";
    if ok(Command::new("python3").args(["-c", check])) {
        return Ok(());
    }
    ensure!(
        ok(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "opentelemetry-proto",
            "grpcio"
        ])),
        "the OTLP test needs: python3 -m pip install opentelemetry-proto grpcio"
    );
    Ok(())
}

/// Runs the exporter script; returns its stdout.
fn export_script(args: &[&str]) -> Result<String> {
    let pprof = fixtures_dir().join("go/cpu.pb.gz");
    let out = Command::new("python3")
        .arg(script())
        .arg(&pprof)
        .args(args)
        .output()
        .context("running otlp_export.py")?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "otlp_export.py {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// A loopback port nobody listens on right now.
/// Exports the Go CPU fixture as `service` with grpcio to `addr`
/// (`otlp_export.py` with `extra` flags); its output.
fn grpc_export(addr: &str, service: &str, extra: &[&str]) -> Result<String> {
    let mut args = vec!["--service", service, "--grpc", addr];
    args.extend_from_slice(extra);
    let out = Command::new("python3")
        .arg(script())
        .arg(fixtures_dir().join("go/cpu.pb.gz"))
        .args(&args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Stack (function names, root first) → summed value, of a merged pprof.
fn stacks(p: &pprof::Profile) -> BTreeMap<Vec<String>, i64> {
    let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
    let mut out = BTreeMap::new();
    for sample in &p.sample {
        let mut names = Vec::new();
        for id in sample.location_id.iter().rev() {
            let Some(loc) = p.location.iter().find(|l| l.id == *id) else {
                continue;
            };
            for line in loc.line.iter().rev() {
                if let Some(f) = p.function.iter().find(|f| f.id == line.function_id) {
                    names.push(s(f.name));
                }
            }
        }
        *out.entry(names).or_insert(0) += sample.value.iter().sum::<i64>();
    }
    out
}

fn selector(service: &str) -> String {
    format!("{{service_name=\"{service}\"}}")
}

#[tokio::test]
async fn otlp_export_over_http_and_grpc_reads_back_as_the_pprof() -> Result<()> {
    python_packages()?;
    let grpc_port = free_port()?;
    let node = TestNode::start(|c| {
        c.server.otlp_grpc_listen_address = format!("127.0.0.1:{grpc_port}");
    })?;
    let client = Client::new(&node.url);
    let dir = tempfile::tempdir()?;
    let proto_path = dir.path().join("export.pb");
    let json_path = dir.path().join("export.json");

    // The same pprof straight to /ingest, as the reference.
    let r = client
        .post(
            "/ingest?name=direct&format=pprof",
            &[],
            read_fixture("go/cpu.pb.gz")?,
        )
        .await?;
    ensure!(r.status().is_success(), "pprof ingest: {}", r.status());

    // HTTP, protobuf.
    export_script(&[
        "--service",
        "otlp-proto",
        "--proto",
        &proto_path.to_string_lossy(),
    ])?;
    let r = client
        .post(
            "/v1development/profiles",
            &[("content-type", "application/x-protobuf")],
            std::fs::read(&proto_path)?,
        )
        .await?;
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.bytes().await?;
    ensure!(status.is_success(), "protobuf export: {status}: {body:?}");
    ensure!(
        ct == "application/x-protobuf",
        "protobuf response type {ct}"
    );
    ExportProfilesServiceResponse::decode(body.as_ref())?;

    // HTTP, OTLP/JSON (hex link ids, string integers), on the Export path, gzip.
    // Its samples link to two traces (sums per trace and span in `links`).
    let links_path = dir.path().join("links.json");
    export_script(&[
        "--service",
        "otlp-json",
        "--json",
        &json_path.to_string_lossy(),
        "--links",
        &links_path.to_string_lossy(),
    ])?;
    let r = client
        .post(
            EXPORT,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            gzip(&std::fs::read(&json_path)?)?,
        )
        .await?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(status.is_success(), "JSON export: {status}: {text}");
    ensure!(text == "{}", "JSON response {text}");

    // gRPC (grpcio, gzip-compressed message) as another tenant.
    let out = export_script(&[
        "--service",
        "otlp-grpc",
        "--grpc",
        &format!("127.0.0.1:{grpc_port}"),
        "--tenant",
        "otlp-tenant",
        "--gzip",
    ])?;
    ensure!(out.trim() == "{}", "gRPC response {out}");
    // The same over gRPC on the main port (h2c beside HTTP/1.1).
    let out = export_script(&[
        "--service",
        "otlp-grpc-main",
        "--grpc",
        node.url.trim_start_matches("http://"),
        "--tenant",
        "otlp-tenant",
        "--links",
        &links_path.to_string_lossy(),
    ])?;
    ensure!(out.trim() == "{}", "gRPC (main port) response {out}");

    let truth = read_json("go/cpu.expected.json")?;
    let total = truth["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .context("truth total")?;
    let direct = client
        .merged_pprof(CPU, &selector("direct"), START_MS, END_MS)
        .await?;
    let direct_stacks = stacks(&direct);
    ensure!(direct_stacks.values().sum::<i64>() == total);
    let tenant = client.with_tenant("otlp-tenant");
    for (c, service) in [
        (&client, "otlp-proto"),
        (&client, "otlp-json"),
        (&tenant, "otlp-grpc"),
        (&tenant, "otlp-grpc-main"),
    ] {
        for pt in [CPU, CPU_BY_PERIOD] {
            let merged = c
                .merged_pprof(pt, &selector(service), START_MS, END_MS)
                .await?;
            ensure!(
                stacks(&merged) == direct_stacks,
                "{service} {pt}: stacks differ from the pprof's"
            );
            let fg = c
                .flamegraph(pt, &selector(service), START_MS, END_MS)
                .await?;
            ensure!(
                fg_total(&fg) == total,
                "{service} {pt}: total {}",
                fg_total(&fg)
            );
            check_top_self(
                &fg,
                &truth["top_self"]["cpu/nanoseconds"],
                1,
                &format!("{service} {pt}"),
            )?;
        }
        // Pyroscope's OTLP labels.
        let fg = c
            .flamegraph(
                CPU,
                &format!("{{service_name=\"{service}\",__otel__=\"true\"}}"),
                START_MS,
                END_MS,
            )
            .await?;
        ensure!(fg_total(&fg) == total, "{service}: __otel__ series");
    }
    // A trace id (trace_id_selector) or span id (span_selector) of a link
    // selects exactly the samples linked to it.
    let links: serde_json::Value = serde_json::from_slice(&std::fs::read(&links_path)?)?;
    for (c, service) in [(&client, "otlp-json"), (&tenant, "otlp-grpc-main")] {
        // (Both OTLP profiles are CPU time: samples/count scaled by the period
        // and cpu/nanoseconds.)
        for pt in [CPU, CPU_BY_PERIOD] {
            for (kind, field) in [("traces", "traceIdSelector"), ("spans", "spanSelector")] {
                let ids = links[kind].as_object().context("links truth")?;
                ensure!(ids.len() == 2, "links truth {links}");
                for (id, sums) in ids {
                    let want = sums[1].as_i64().context("links truth")?;
                    let fg = c
                        .connect_json(
                            "SelectMergeStacktraces",
                            serde_json::json!({"profileTypeID": pt, "labelSelector": selector(service),
                                "start": START_MS, "end": END_MS, "maxNodes": 1_000_000,
                                field: [id]}),
                        )
                        .await?;
                    ensure!(
                        want > 0 && fg_total(&fg) == want,
                        "{service} {pt} {field} {id}: {} != {want}",
                        fg_total(&fg)
                    );
                }
            }
        }
    }
    // The gRPC export went to its tenant only.
    let fg = client
        .flamegraph(CPU, &selector("otlp-grpc"), START_MS, END_MS)
        .await?;
    ensure!(
        fg_total(&fg) == 0,
        "gRPC export leaked into the default tenant"
    );
    Ok(())
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data)?;
    Ok(e.finish()?)
}

/// A small valid export, built from the fixture by the Python script.
fn valid_export() -> Result<ExportProfilesServiceRequest> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("export.pb");
    export_script(&["--service", "bad", "--proto", &path.to_string_lossy()])?;
    Ok(ExportProfilesServiceRequest::decode(
        std::fs::read(&path)?.as_slice(),
    )?)
}

#[tokio::test]
async fn bad_otlp_input_is_refused() -> Result<()> {
    python_packages()?;
    let grpc_port = free_port()?;
    let node = TestNode::start(|c| {
        c.server.otlp_grpc_listen_address = format!("127.0.0.1:{grpc_port}");
        c.limits.ingestion_body_limit_bytes = 1 << 20;
    })?;
    let client = Client::new(&node.url);
    let mut bad_stack = valid_export()?;
    bad_stack.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 99_999;

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("text/plain", b"x".to_vec(), 415, "unsupported Content-Type"),
        (
            "application/grpc",
            b"x".to_vec(),
            415,
            "otlp_grpc_listen_address",
        ),
        (
            "application/x-protobuf",
            b"\xff\xff\xff".to_vec(),
            400,
            "invalid protobuf",
        ),
        (
            "application/json",
            b"{\"resourceProfiles\": 1}".to_vec(),
            400,
            "invalid JSON",
        ),
        (
            "application/json",
            b"{}".to_vec(),
            400,
            "missing resource profiles",
        ),
        (
            "application/protobuf",
            bad_stack.encode_to_vec(),
            400,
            "stack index 99999 out of range",
        ),
        ("application/x-protobuf", vec![0; 2 << 20], 413, "too large"),
    ];
    for (ct, body, want, msg) in cases {
        let r = client
            .post("/v1development/profiles", &[("content-type", ct)], body)
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        ensure!(status == want, "{ct} {msg}: {status} {text}");
        ensure!(text.contains(msg), "{ct}: {text}");
    }
    let r = client.get("/v1development/profiles").await?;
    ensure!(r.status().as_u16() == 405, "GET: {}", r.status());

    // gRPC errors are statuses (trailers-only responses).
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build()?;
    let url = format!("http://127.0.0.1:{grpc_port}");
    let grpc = |path: &'static str, ct: &'static str, body: Vec<u8>| {
        crate::grpc::raw(&h2, &url, path, vec![("content-type", ct)], body)
    };
    let framed = |msg: &[u8]| {
        let mut f = vec![0];
        f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f
    };
    for (path, body, want, msg) in [
        (EXPORT, framed(b"\xff\xff\xff"), "3", "invalid protobuf"),
        (
            EXPORT,
            framed(&bad_stack.encode_to_vec()),
            "3",
            "stack index 99999",
        ),
        (
            EXPORT,
            vec![0, 0, 0],
            "3",
            "shorter than a gRPC message header",
        ),
        // Over the body limit: 413 `invalid_argument` in Connect terms, as
        // Pyroscope maps it, so INVALID_ARGUMENT (a permanent error an
        // exporter does not retry), as on the main port.
        (EXPORT, framed(&vec![0; 2 << 20]), "3", "too large"),
        // Bytes past the one message its header announces: refused
        // without reading the rest.
        (
            EXPORT,
            vec![0; 2 << 20],
            "3",
            "more than its 0 bytes follow",
        ),
        ("/other.Service/Method", framed(b""), "12", "unknown method"),
    ] {
        let (status, code, message) = grpc(path, "application/grpc", body).await?;
        ensure!(status == 200, "gRPC {msg}: HTTP {status}");
        let header = |k: &str| if k == "grpc-status" { &code } else { &message };
        ensure!(
            header("grpc-status") == want,
            "gRPC {msg}: status {:?} ({})",
            header("grpc-status"),
            header("grpc-message")
        );
        ensure!(
            header("grpc-message").contains(msg),
            "gRPC: {}",
            header("grpc-message")
        );
    }
    // JSON on the method's path is OTLP/HTTP (the port serves both): an
    // empty body is refused with its reason.
    let r = h2
        .post(format!("{url}{EXPORT}"))
        .header("content-type", "application/json")
        .send()
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    ensure!(
        status == 400 && text.contains("JSON"),
        "HTTP/2 JSON: {status} {text}"
    );
    // The OTLP port serves the export alone: over HTTP/1.1 OTLP/HTTP is
    // stored, any other route is 404 with its reason.
    let otlp_http = Client::new(&url);
    let r = otlp_http.get("/ready").await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    ensure!(
        status == 404 && text.contains("not served on this port"),
        "/ready on the OTLP port: {status} {text}"
    );
    let r = otlp_http
        .post(
            "/v1development/profiles",
            &[("content-type", "application/x-protobuf")],
            valid_export()?.encode_to_vec(),
        )
        .await?;
    ensure!(
        r.status().is_success(),
        "OTLP/HTTP on the OTLP port: {}",
        r.status()
    );

    // A real client sees INVALID_ARGUMENT for a request the server refuses.
    let out = Command::new("python3")
        .arg(script())
        .arg(fixtures_dir().join("go/cpu.pb.gz"))
        .args([
            "--service",
            "x",
            "--grpc",
            &format!("127.0.0.1:{grpc_port}"),
            "--tenant",
            "bad tenant!",
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(3) || !stdout.contains("INVALID_ARGUMENT") {
        bail!("grpcio with a bad tenant: {} {stdout}", out.status);
    }
    Ok(())
}

#[tokio::test]
async fn otlp_grpc_checks_credentials_with_auth_on() -> Result<()> {
    use ignis::auth::{AuthConfig, Credential, Scope};
    python_packages()?;
    let grpc_port = free_port()?;
    let credential = |name: &str, tenants: &[&str], scopes: &[Scope], secret: &str| {
        Credential::new(name, tenants, scopes, "", secret)
    };
    let node = TestNode::start(|c| {
        c.server.otlp_grpc_listen_address = format!("127.0.0.1:{grpc_port}");
        c.auth = AuthConfig {
            enabled: true,
            credentials: vec![
                credential("collector", &["team"], &[Scope::Write], "w"),
                credential("reader", &["team"], &[Scope::Read], "r"),
            ],
        };
    })?;
    let addr = format!("127.0.0.1:{grpc_port}");
    let export = |service: &str, extra: &[&str]| grpc_export(&addr, service, extra);
    let ok = export("grpc.auth", &["--authorization", "Bearer w"])?;
    ensure!(ok.trim() == "{}", "with the collector's token: {ok}");
    for (what, extra, code) in [
        ("no credentials", vec![], "UNAUTHENTICATED"),
        (
            "a wrong token",
            vec!["--authorization", "Bearer nope"],
            "UNAUTHENTICATED",
        ),
        (
            "a read-only token",
            vec!["--authorization", "Bearer r"],
            "PERMISSION_DENIED",
        ),
        (
            "another tenant",
            vec!["--authorization", "Bearer w", "--tenant", "other"],
            "PERMISSION_DENIED",
        ),
    ] {
        let out = export("grpc.refused", &extra)?;
        ensure!(out.contains(code), "{what}: {out}");
    }
    let reader = Client::new(&node.url).with_authorization("Bearer r");
    let truth = read_json("go/cpu.expected.json")?;
    let total = truth["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    for (service, want) in [("grpc.auth", total), ("grpc.refused", 0)] {
        let fg = reader
            .flamegraph(CPU, &selector(service), START_MS, END_MS)
            .await?;
        ensure!(fg_total(&fg) == want, "{service}: {}", fg_total(&fg));
    }
    Ok(())
}

#[tokio::test]
async fn otlp_grpc_over_tls_with_the_http_listeners_certificate() -> Result<()> {
    python_packages()?;
    let grpc_port = free_port()?;
    let dir = tempfile::tempdir()?;
    let (cert, _) = crate::auth::self_signed(dir.path(), "grpc")?;
    let key = dir.path().join("key.pem").to_string_lossy().to_string();
    let cert_file = cert.clone();
    let node = TestNode::start(|c| {
        c.server.otlp_grpc_listen_address = format!("127.0.0.1:{grpc_port}");
        c.server.tls_cert_file = cert_file;
        c.server.tls_key_file = key;
    })?;
    let addr = format!("127.0.0.1:{grpc_port}");
    let export = |service: &str, extra: &[&str]| grpc_export(&addr, service, extra);
    let ok = export("grpc.tls", &["--ca", &cert])?;
    ensure!(ok.trim() == "{}", "over TLS: {ok}");
    // Plain h2c is not served on a TLS listener.
    let plain = export("grpc.plain", &[])?;
    ensure!(plain.contains("UNAVAILABLE"), "without TLS: {plain}");
    let https = node.url.replacen("http://", "https://", 1);
    let client = Client::new(&https).with_client(
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&cert)?)?])
            .build()?,
    );
    let truth = read_json("go/cpu.expected.json")?;
    let total = truth["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .unwrap_or(-1);
    for (service, want) in [("grpc.tls", total), ("grpc.plain", 0)] {
        let fg = client
            .flamegraph(CPU, &selector(service), START_MS, END_MS)
            .await?;
        ensure!(fg_total(&fg) == want, "{service}: {}", fg_total(&fg));
    }
    Ok(())
}
