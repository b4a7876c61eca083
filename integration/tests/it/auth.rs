//! Built-in auth: every route but `/ready` needs a credential; a
//! credential reaches only its tenants (`X-Scope-OrgID` cannot escape them)
//! with only its scopes, on every ingest and query endpoint.

use anyhow::{Result, ensure};
use base64::Engine;
use ignis::auth::{AuthConfig, Credential, Scope};
use ignis_integration::client::Client;
use ignis_integration::node::TestNode;
use serde_json::json;

use crate::attack_corpus::{CPU, otlp_json};
use crate::common::total_of;
use crate::tenants::{go_cpu_total, push_go_cpu};

const PROTO: (&str, &str) = ("content-type", "application/proto");
const JSON: (&str, &str) = ("content-type", "application/json");

pub(crate) fn credential(
    name: &str,
    tenants: &[&str],
    scopes: &[Scope],
    secret: &str,
) -> Credential {
    Credential::new(name, tenants, scopes, name, secret)
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The status of every write route for `client` (push, /ingest, OTLP).
async fn writes(client: &Client, service: &str) -> Result<Vec<u16>> {
    let folded = format!("/ingest?name={service}.cpu&format=folded&from=1795000000");
    let mut otlp = otlp_json(service);
    otlp["resourceProfiles"][0]["resource"]["attributes"][0]["value"]["stringValue"] =
        json!(service);
    Ok(vec![
        client
            .post(
                "/push.v1.PusherService/Push",
                &[PROTO],
                push_go_cpu(service)?,
            )
            .await?
            .status()
            .as_u16(),
        client
            .post(&folded, &[], b"main;work 3\n".to_vec())
            .await?
            .status()
            .as_u16(),
        client
            .post(
                "/v1development/profiles",
                &[JSON],
                serde_json::to_vec(&otlp)?,
            )
            .await?
            .status()
            .as_u16(),
    ])
}

/// The status of every read route for `client`.
async fn reads(client: &Client) -> Result<Vec<u16>> {
    let fg = json!({"profileTypeID": CPU, "labelSelector": "{}", "start": 1, "end": 4_000_000_000_000i64});
    let sql = json!({"query": "SELECT count(*) AS n FROM profiles", "start": 1, "end": 4_000_000_000_000i64});
    let mut out = vec![
        client
            .post(
                "/querier.v1.QuerierService/SelectMergeStacktraces",
                &[JSON],
                serde_json::to_vec(&fg)?,
            )
            .await?
            .status()
            .as_u16(),
        client
            .post("/api/v1/sql", &[JSON], serde_json::to_vec(&sql)?)
            .await?
            .status()
            .as_u16(),
    ];
    for path in [
        "/pyroscope/render?query=process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds%7B%7D&from=1&until=4000000000",
        "/pyroscope/label-values?label=service_name",
        "/api/v1/tenant_limits",
    ] {
        out.push(client.get(path).await?.status().as_u16());
    }
    Ok(out)
}

#[tokio::test]
async fn credentials_reach_only_their_tenants_and_scopes() -> Result<()> {
    let node = TestNode::start(|c| {
        c.auth = AuthConfig {
            enabled: true,
            credentials: vec![
                credential("writer-a", &["a"], &[Scope::Write], "wa"),
                credential("reader-a", &["a"], &[Scope::Read], "ra"),
                credential("writer-b", &["b"], &[Scope::Write], "wb"),
                credential("reader-b", &["b"], &[Scope::Read], "rb"),
                credential("admin", &["*"], &[Scope::Admin], "adm"),
            ],
        };
    })?;
    let anon = Client::new(&node.url);
    let as_ = |user: &str, secret: &str| anon.with_authorization(&basic(user, secret));
    let bearer = |secret: &str| anon.with_authorization(&format!("Bearer {secret}"));

    // Without credentials: 401 (asking for Basic) everywhere but /ready.
    ensure!(anon.get("/ready").await?.status() == 200);
    let r = anon.get("/pyroscope/label-values?label=x").await?;
    ensure!(r.status() == 401, "{}", r.status());
    ensure!(
        r.headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Basic")),
        "no Basic challenge"
    );
    ensure!(writes(&anon, "x").await?.iter().all(|&s| s == 401));
    ensure!(reads(&anon).await?.iter().all(|&s| s == 401));
    ensure!(
        writes(&as_("writer-a", "nope"), "x")
            .await?
            .iter()
            .all(|&s| s == 401)
    );

    // Writers write their own tenant (Basic or Bearer), not another's.
    let writer_a = as_("writer-a", "wa");
    ensure!(writes(&writer_a, "svc.a").await? == [200, 200, 200]);
    ensure!(writes(&bearer("wb"), "svc.b").await? == [200, 200, 200]);
    let escaped = writes(&writer_a.with_tenant("b"), "svc.escape").await?;
    ensure!(escaped == [403, 403, 403], "writer-a as b: {escaped:?}");
    ensure!(
        writes(&bearer("ra"), "svc.ro").await? == [403, 403, 403],
        "reader wrote"
    );

    // Readers read their own tenant only; writers cannot read.
    let reader_a = bearer("ra");
    let r = reads(&reader_a).await?;
    ensure!(r.iter().all(|&s| s == 200), "reader-a reads: {r:?}");
    // What `writes` stores per service: the Go CPU profile, 3 folded
    // samples and 5 OTLP samples of 10 ms.
    let written = go_cpu_total()? + 30_000_000 + 50_000_000;
    ensure!(total_of(&reader_a, CPU, "svc.a").await? == written);
    ensure!(
        total_of(&reader_a, CPU, "svc.b").await? == 0,
        "a sees b's data"
    );
    ensure!(total_of(&bearer("rb"), CPU, "svc.b").await? == written);
    for tenant in ["b", "a|b"] {
        let r = reads(&reader_a.with_tenant(tenant)).await?;
        ensure!(r.iter().all(|&s| s == 403), "reader-a as {tenant}: {r:?}");
    }
    ensure!(reads(&writer_a).await?.iter().all(|&s| s == 403));
    // The web UI's page and code hold no data: they load for anyone and
    // the page asks for a credential in its own form. Its calls (sent with
    // X-Requested-With) get no WWW-Authenticate, so browsers show no
    // dialog; other clients get the challenge.
    ensure!(anon.get("/").await?.status() == 200);
    ensure!(anon.get("/ui/app.js").await?.status() == 200);
    let types = "/querier.v1.QuerierService/ProfileTypes";
    let r = anon.post(types, &[JSON], b"{}".to_vec()).await?;
    ensure!(r.status() == 401 && r.headers().contains_key("www-authenticate"));
    let r = anon
        .post(
            types,
            &[JSON, ("x-requested-with", "XMLHttpRequest")],
            b"{}".to_vec(),
        )
        .await?;
    ensure!(r.status() == 401 && !r.headers().contains_key("www-authenticate"));

    // The node's own state is for admins; an admin may use any tenant.
    ensure!(reader_a.get("/metrics").await?.status() == 403);
    let admin = bearer("adm");
    ensure!(admin.get("/metrics").await?.status() == 200);
    ensure!(admin.get("/api/v1/status/config").await?.status() == 200);
    ensure!(total_of(&admin.with_tenant("a|b"), CPU, "svc.b").await? == written);
    Ok(())
}

#[tokio::test]
async fn internal_calls_need_the_cluster_secret() -> Result<()> {
    let node = TestNode::start(|c| c.cluster.secret = "s3cret".into())?;
    let http = reqwest::Client::new();
    let call = |secret: Option<&'static str>| {
        let mut r = http
            .post(format!("{}/internal/v1/select", node.url))
            .header(
                ignis_cluster::rpc::VERSION_HEADER,
                ignis_actors::peer::PROTOCOL_VERSION.to_string(),
            )
            .body(Vec::new());
        if let Some(s) = secret {
            r = r.header(ignis_cluster::rpc::SECRET_HEADER, s);
        }
        r.send()
    };
    ensure!(call(None).await?.status() == 401, "no secret");
    ensure!(call(Some("wrong")).await?.status() == 401, "wrong secret");
    // With the secret the call reaches the peer protocol (an empty message
    // does not decode).
    let r = call(Some("s3cret")).await?;
    ensure!(r.status() == 400, "with the secret: {}", r.status());
    Ok(())
}

/// A self-signed certificate for 127.0.0.1 made by the openssl command.
pub(crate) fn self_signed(dir: &std::path::Path, name: &str) -> Result<(String, Vec<u8>)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (tmp_cert, tmp_key) = (dir.join("new-cert.pem"), dir.join("new-key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&tmp_key)
        .arg("-out")
        .arg(&tmp_cert)
        .stderr(std::process::Stdio::null())
        .status()?
        .success();
    ensure!(ok, "openssl could not make a certificate");
    // Key first, then the certificate, each replaced whole.
    std::fs::rename(&tmp_key, &key)?;
    std::fs::rename(&tmp_cert, &cert)?;
    Ok((cert.to_string_lossy().to_string(), std::fs::read(&cert)?))
}

/// A client trusting only `pem`.
fn trusting(pem: &[u8]) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem)?])
        .build()?)
}

#[tokio::test]
async fn tls_serves_the_api_and_a_rotated_certificate_without_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, first) = self_signed(dir.path(), "first")?;
    let key = dir.path().join("key.pem").to_string_lossy().to_string();
    let node = TestNode::start(|c| {
        c.server.tls_cert_file = cert;
        c.server.tls_key_file = key;
        c.server.tls_reload_secs = 1;
    })?;
    let https = node.url.replacen("http://", "https://", 1);
    let client = trusting(&first)?;
    ensure!(client.get(format!("{https}/ready")).send().await?.status() == 200);
    let r = client
        .post(format!("{https}/push.v1.PusherService/Push"))
        .header("content-type", "application/proto")
        .body(push_go_cpu("tls.app")?)
        .send()
        .await?;
    ensure!(r.status() == 200, "push over TLS: {}", r.status());
    // Plain HTTP is not served on a TLS listener.
    ensure!(
        reqwest::get(format!("{}/ready", node.url)).await.is_err() || {
            let r = reqwest::get(format!("{}/ready", node.url)).await?;
            !r.status().is_success()
        }
    );
    // Rotate: a client trusting only the new certificate connects once the
    // node re-read the files.
    let (_, second) = self_signed(dir.path(), "second")?;
    let new_client = trusting(&second)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Ok(r) = new_client.get(format!("{https}/ready")).send().await
            && r.status() == 200
        {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the new certificate is not served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A new connection trusting only the old certificate fails (a pooled
    // one keeps its session).
    ensure!(
        trusting(&first)?
            .get(format!("{https}/ready"))
            .send()
            .await
            .is_err(),
        "the old certificate is still served"
    );
    Ok(())
}
