//! gRPC and gRPC-Web on the main port, as Pyroscope serves them on :4040:
//! every Connect route (push, querier, settings) answers a real gRPC client
//! (Python's grpcio: HTTP/2 with prior knowledge, gzip, trailers) and a
//! gRPC-Web client with exactly the message its Connect call answers, and
//! errors as gRPC statuses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use ignis::auth::{AuthConfig, Scope};
use ignis_integration::client::Client;
use ignis_integration::fixtures::{push_request, read_fixture, read_json};
use ignis_integration::node::TestNode;
use ignis_storage::proto::querier::v1 as q;
use ignis_storage::proto::settings::v1 as s;
use ignis_storage::proto::types::v1 as types;
use prost::Message;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const WIDE: (i64, i64) = (1, 4_000_000_000_000);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/grpc_call.py")
}

/// A gRPC error: its status code and details.
#[derive(Debug)]
struct GrpcError {
    code: i32,
    details: String,
}

/// One unary call with grpcio: the answer's bytes, or its status.
fn grpcio(
    addr: &str,
    method: &str,
    request: &[u8],
    gzip: bool,
    meta: &[(&str, &str)],
) -> Result<std::result::Result<Vec<u8>, GrpcError>> {
    grpcio_with(addr, method, request, gzip, meta, None)
}

/// [`grpcio`], over TLS trusting `ca` when given.
fn grpcio_with(
    addr: &str,
    method: &str,
    request: &[u8],
    gzip: bool,
    meta: &[(&str, &str)],
    ca: Option<&str>,
) -> Result<std::result::Result<Vec<u8>, GrpcError>> {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).arg(addr).arg(method);
    if gzip {
        cmd.arg("--gzip");
    }
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    for (k, v) in meta {
        cmd.arg("--meta").arg(format!("{k}={v}"));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("python3")?;
    child.stdin.take().context("stdin")?.write_all(request)?;
    let out = child.wait_with_output()?;
    let details = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Ok(match out.status.code() {
        Some(0) => Ok(out.stdout),
        Some(code) if (1..=16).contains(&code) => Err(GrpcError { code, details }),
        other => bail!("grpc_call.py failed ({other:?}): {details}"),
    })
}

/// The Connect answer (protobuf codec) to `body` at `path`.
async fn connect(client: &Client, path: &str, body: Vec<u8>) -> Result<Vec<u8>> {
    let r = client
        .post(path, &[("content-type", "application/proto")], body)
        .await?;
    let status = r.status();
    let bytes = r.bytes().await?;
    ensure!(
        status.is_success(),
        "{path}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(bytes.to_vec())
}

fn frame(flag: u8, msg: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

/// A gRPC-Web answer: the message (if any) and the trailers.
fn parse_web(body: &[u8]) -> Result<(Option<Vec<u8>>, String)> {
    let mut message = None;
    let mut rest = body;
    while !rest.is_empty() {
        ensure!(rest.len() >= 5, "truncated gRPC-Web frame");
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        ensure!(rest.len() >= 5 + len, "truncated gRPC-Web frame");
        let payload = &rest[5..5 + len];
        if rest[0] & 0x80 != 0 {
            ensure!(rest.len() == 5 + len, "bytes after the trailers");
            return Ok((message, String::from_utf8(payload.to_vec())?));
        }
        message = Some(payload.to_vec());
        rest = &rest[5 + len..];
    }
    bail!("no trailers frame")
}

/// A gRPC-Web call over `http` (HTTP/1.1 or h2c).
async fn grpc_web(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    msg: &[u8],
    headers: &[(&str, &str)],
) -> Result<(Option<Vec<u8>>, String)> {
    let mut req = http
        .post(format!("{url}{path}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame(0, msg));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await?;
    ensure!(r.status() == 200, "gRPC-Web {path}: HTTP {}", r.status());
    ensure!(
        r.headers()
            .get("content-type")
            .is_some_and(|v| v == "application/grpc-web+proto"),
        "{:?}",
        r.headers()
    );
    parse_web(&r.bytes().await?)
}

#[tokio::test]
async fn grpc_and_grpc_web_on_the_main_port_answer_as_connect() -> Result<()> {
    crate::otlp::python_packages()?;
    let node = TestNode::start(|_| {})?;
    let client = Client::new(&node.url);
    let addr = node.url.trim_start_matches("http://").to_string();
    let go_total = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .context("go total")?;

    // The same profile pushed over gRPC (gzip-compressed message) and Connect.
    let profile = read_fixture("go/cpu.pb.gz")?;
    let pushed = grpcio(
        &addr,
        "/push.v1.PusherService/Push",
        &push_request("over.grpc", profile.clone()),
        true,
        &[],
    )?
    .map_err(|e| anyhow::anyhow!("push over gRPC: {e:?}"))?;
    ensure!(pushed.is_empty(), "PushResponse is empty: {pushed:?}");
    connect(
        &client,
        "/push.v1.PusherService/Push",
        push_request("over.connect", profile),
    )
    .await?;

    let flame = |service: &str| q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: format!("{{service_name=\"{service}\"}}"),
        start: WIDE.0,
        end: WIDE.1,
        max_nodes: Some(1_000_000),
        ..Default::default()
    };
    let calls: Vec<(&str, Vec<u8>)> = vec![
        ("SelectMergeStacktraces", flame("over.grpc").encode_to_vec()),
        (
            "SelectMergeProfile",
            q::SelectMergeProfileRequest {
                profile_type_id: CPU.into(),
                label_selector: "{service_name=\"over.grpc\"}".into(),
                start: WIDE.0,
                end: WIDE.1,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "SelectSeries",
            q::SelectSeriesRequest {
                profile_type_id: CPU.into(),
                label_selector: "{}".into(),
                start: WIDE.0,
                end: WIDE.1,
                step: 60.0,
                group_by: vec!["service_name".into()],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "LabelValues",
            types::LabelValuesRequest {
                name: "service_name".into(),
                matchers: vec![],
                start: WIDE.0,
                end: WIDE.1,
            }
            .encode_to_vec(),
        ),
        (
            "ProfileTypes",
            q::ProfileTypesRequest {
                start: WIDE.0,
                end: WIDE.1,
            }
            .encode_to_vec(),
        ),
    ];
    let h1 = reqwest::Client::new();
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build()?;
    for (method, body) in &calls {
        let path = format!("/querier.v1.QuerierService/{method}");
        let want = connect(&client, &path, body.clone()).await?;
        for gzip in [false, true] {
            let got = grpcio(&addr, &path, body, gzip, &[])?
                .map_err(|e| anyhow::anyhow!("{method} over gRPC: {e:?}"))?;
            ensure!(
                got == want,
                "{method} over gRPC (gzip {gzip}) differs from Connect"
            );
        }
        for (name, http) in [("HTTP/1.1", &h1), ("h2c", &h2c)] {
            let (msg, trailers) = grpc_web(http, &node.url, &path, body, &[]).await?;
            ensure!(
                trailers == "grpc-status: 0\r\n",
                "{method} gRPC-Web {name}: {trailers:?}"
            );
            ensure!(
                msg.as_deref() == Some(&want[..]),
                "{method} over gRPC-Web ({name}) differs from Connect"
            );
        }
        // Plain Connect over h2c (the bridge passes it through) too.
        let r = h2c
            .post(format!("{}{path}", node.url))
            .header("content-type", "application/proto")
            .body(body.clone())
            .send()
            .await?;
        ensure!(r.version() == reqwest::Version::HTTP_2, "{:?}", r.version());
        ensure!(
            r.status() == 200,
            "{method} Connect over h2c: {}",
            r.status()
        );
        ensure!(
            r.bytes().await?.as_ref() == &want[..],
            "{method} Connect over h2c differs"
        );
    }

    // What was pushed over gRPC is stored exactly: the fixture's total, and
    // the same flame graph as the Connect push.
    let over = |service: &str| {
        connect(
            &client,
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            flame(service).encode_to_vec(),
        )
    };
    let grpc_fg = q::SelectMergeStacktracesResponse::decode(&over("over.grpc").await?[..])?;
    let connect_fg = q::SelectMergeStacktracesResponse::decode(&over("over.connect").await?[..])?;
    let total = grpc_fg.flamegraph.as_ref().map_or(-1, |f| f.total);
    ensure!(
        total == go_total,
        "pushed over gRPC: total {total}, want {go_total}"
    );
    ensure!(grpc_fg == connect_fg, "gRPC and Connect pushes differ");

    // Settings over gRPC: set, then read back over gRPC-Web.
    let set = s::SetSettingsRequest {
        setting: Some(s::Setting {
            name: "pluginSettings".into(),
            value: "{\"x\":1}".into(),
            modified_at: 0,
        }),
    };
    grpcio(
        &addr,
        "/settings.v1.SettingsService/Set",
        &set.encode_to_vec(),
        false,
        &[],
    )?
    .map_err(|e| anyhow::anyhow!("Set over gRPC: {e:?}"))?;
    let (msg, _) = grpc_web(&h1, &node.url, "/settings.v1.SettingsService/Get", &[], &[]).await?;
    let got = s::GetSettingsResponse::decode(msg.as_deref().unwrap_or_default())?;
    ensure!(
        got.settings.len() == 1 && got.settings[0].value == "{\"x\":1}",
        "{got:?}"
    );
    Ok(())
}

/// A raw gRPC call over h2c: the HTTP status and `grpc-status`/`grpc-message`
/// of a trailers-only answer.
pub(crate) async fn raw(
    h2c: &reqwest::Client,
    url: &str,
    path: &str,
    headers: Vec<(&str, &str)>,
    body: Vec<u8>,
) -> Result<(u16, String, String)> {
    let mut req = h2c.post(format!("{url}{path}")).header("te", "trailers");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.body(body).send().await?;
    let header = |k: &str| {
        r.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    Ok((
        r.status().as_u16(),
        header("grpc-status"),
        header("grpc-message"),
    ))
}

#[tokio::test]
async fn grpc_errors_are_statuses_and_credentials_are_metadata() -> Result<()> {
    crate::otlp::python_packages()?;
    let node = TestNode::start(|c| {
        c.auth = AuthConfig {
            enabled: true,
            credentials: vec![
                crate::auth::credential("writer", &["a"], &[Scope::Write], "w"),
                crate::auth::credential("reader", &["a"], &[Scope::Read], "r"),
            ],
        };
    })?;
    let addr = node.url.trim_start_matches("http://").to_string();
    let push = push_request("grpc.auth", read_fixture("go/cpu.pb.gz")?);
    let types_req = q::ProfileTypesRequest {
        start: WIDE.0,
        end: WIDE.1,
    }
    .encode_to_vec();
    let call =
        |method: &str, body: &[u8], meta: &[(&str, &str)]| grpcio(&addr, method, body, false, meta);

    // Credentials travel as `authorization` metadata.
    let e = call("/push.v1.PusherService/Push", &push, &[])?.unwrap_err();
    ensure!(e.code == 16, "no credential: {e:?}");
    let e = call(
        "/push.v1.PusherService/Push",
        &push,
        &[("authorization", "Bearer r")],
    )?
    .unwrap_err();
    ensure!(e.code == 7, "a reader pushing: {e:?}");
    call(
        "/push.v1.PusherService/Push",
        &push,
        &[("authorization", "Bearer w"), ("x-scope-orgid", "a")],
    )?
    .map_err(|e| anyhow::anyhow!("a writer pushing: {e:?}"))?;
    let answer = call(
        "/querier.v1.QuerierService/ProfileTypes",
        &types_req,
        &[("authorization", "Bearer r"), ("x-scope-orgid", "a")],
    )?
    .map_err(|e| anyhow::anyhow!("a reader querying: {e:?}"))?;
    let types = q::ProfileTypesResponse::decode(&answer[..])?;
    ensure!(types.profile_types.iter().any(|t| t.id == CPU), "{types:?}");

    // Statuses a real client sees.
    let reader = [("authorization", "Bearer r"), ("x-scope-orgid", "a")];
    for (method, body, code, text) in [
        (
            "/querier.v1.QuerierService/NoSuchMethod",
            &types_req[..],
            12,
            "NoSuchMethod",
        ),
        (
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            &b"\xff\xff"[..],
            3,
            "invalid protobuf",
        ),
        (
            "/version.v1.Version/Version",
            &[][..],
            12,
            "not implemented",
        ),
        ("/no.such.Service/Method", &[][..], 12, "unknown method"),
    ] {
        let e = call(method, body, &reader)?.unwrap_err();
        ensure!(
            e.code == code && e.details.contains(text),
            "{method}: {e:?}, want {code} {text:?}"
        );
    }
    let e = call(
        "/querier.v1.QuerierService/ProfileTypes",
        &types_req,
        &[
            ("authorization", "Bearer r"),
            ("x-scope-orgid", "bad tenant!"),
        ],
    )?
    .unwrap_err();
    ensure!(e.code == 3 || e.code == 7, "bad tenant: {e:?}");

    // Framing errors, over raw HTTP/2.
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build()?;
    let path = "/querier.v1.QuerierService/ProfileTypes";
    let grpc = ("content-type", "application/grpc");
    let auth = ("authorization", "Bearer r");
    let tenant = ("x-scope-orgid", "a");
    for (headers, body, want, text) in [
        (
            vec![grpc, auth, tenant],
            vec![0, 0, 0],
            "3",
            "shorter than a gRPC message header",
        ),
        (
            vec![grpc, auth, tenant],
            frame(7, &types_req),
            "3",
            "compressed flag 7",
        ),
        (
            vec![grpc, auth, tenant],
            frame(1, &types_req),
            "12",
            "grpc-encoding",
        ),
        (
            vec![grpc, auth, tenant],
            {
                let mut f = frame(0, &types_req);
                f.extend_from_slice(b"extra");
                f
            },
            "3",
            "one message",
        ),
        (
            vec![grpc, auth, tenant, ("grpc-timeout", "0m")],
            frame(0, &types_req),
            "4",
            "timed out",
        ),
        (
            vec![grpc, auth, tenant, ("grpc-timeout", "soon")],
            frame(0, &types_req),
            "3",
            "grpc-timeout",
        ),
    ] {
        let (status, code, message) = raw(&h2c, &node.url, path, headers, body).await?;
        ensure!(status == 200, "{text}: HTTP {status}");
        ensure!(
            code == want && message.contains(text),
            "{text}: grpc-status {code:?} ({message}), want {want}"
        );
    }

    // A gRPC codec other than protobuf is refused as gRPC servers refuse one.
    for ct in [
        "application/grpc+json",
        "application/grpc-web+json",
        "application/grpc-web-text",
    ] {
        let (status, _, _) = raw(
            &h2c,
            &node.url,
            path,
            vec![("content-type", ct), auth, tenant],
            frame(0, b"{}"),
        )
        .await?;
        ensure!(status == 415, "{ct}: HTTP {status}");
    }

    // gRPC-Web statuses ride in the trailers frame, auth errors included.
    let h1 = reqwest::Client::new();
    let (msg, trailers) = grpc_web(&h1, &node.url, path, &types_req, &[]).await?;
    ensure!(
        msg.is_none() && trailers.starts_with("grpc-status: 16\r\n"),
        "{trailers:?}"
    );
    let (msg, trailers) = grpc_web(&h1, &node.url, path, &types_req, &[auth, tenant]).await?;
    ensure!(
        msg.is_some() && trailers == "grpc-status: 0\r\n",
        "{trailers:?}"
    );

    // gRPC needs HTTP/2: over HTTP/1.1 it is refused with the reason.
    let r = h1
        .post(format!("{}{path}", node.url))
        .header("content-type", "application/grpc")
        .header("authorization", "Bearer r")
        .body(frame(0, &types_req))
        .send()
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    ensure!(status == 415 && text.contains("HTTP/2"), "{status} {text}");
    Ok(())
}

#[tokio::test]
async fn grpc_over_tls_on_the_main_port() -> Result<()> {
    crate::otlp::python_packages()?;
    let dir = tempfile::tempdir()?;
    let (cert, pem) = crate::auth::self_signed(dir.path(), "grpc-main")?;
    let key = dir.path().join("key.pem").to_string_lossy().to_string();
    let cert_file = cert.clone();
    let node = TestNode::start(|c| {
        c.server.tls_cert_file = cert_file;
        c.server.tls_key_file = key;
    })?;
    let addr = node.url.trim_start_matches("http://").to_string();
    let https = node.url.replacen("http://", "https://", 1);
    let push = push_request("grpc.tls", read_fixture("go/cpu.pb.gz")?);
    grpcio_with(
        &addr,
        "/push.v1.PusherService/Push",
        &push,
        true,
        &[],
        Some(&cert),
    )?
    .map_err(|e| anyhow::anyhow!("push over gRPC and TLS: {e:?}"))?;
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{service_name=\"grpc.tls\"}".into(),
        start: WIDE.0,
        end: WIDE.1,
        ..Default::default()
    }
    .encode_to_vec();
    let path = "/querier.v1.QuerierService/SelectMergeStacktraces";
    let got = grpcio_with(&addr, path, &req, false, &[], Some(&cert))?
        .map_err(|e| anyhow::anyhow!("query over gRPC and TLS: {e:?}"))?;
    // Connect over HTTPS, HTTP/2 by ALPN and HTTP/1.1, answers the same.
    for http2 in [true, false] {
        let mut builder =
            reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&pem)?]);
        if !http2 {
            builder = builder.http1_only();
        }
        let r = builder
            .build()?
            .post(format!("{https}{path}"))
            .header("content-type", "application/proto")
            .body(req.clone())
            .send()
            .await?;
        let version = r.version();
        ensure!(
            (version == reqwest::Version::HTTP_2) == http2,
            "HTTP version {version:?}"
        );
        ensure!(r.status() == 200, "{version:?}: {}", r.status());
        ensure!(
            r.bytes().await?.as_ref() == &got[..],
            "{version:?} differs from gRPC"
        );
    }
    let fg = q::SelectMergeStacktracesResponse::decode(&got[..])?;
    let want = read_json("go/cpu.expected.json")?["value_sums"]["cpu/nanoseconds"]
        .as_i64()
        .context("go total")?;
    ensure!(fg.flamegraph.is_some_and(|f| f.total == want), "total");
    Ok(())
}
