//! Bad input gets a clear 4xx, the server keeps serving, stored data is unchanged.

use std::io::Write;

use anyhow::{Result, ensure};
use ignis_integration::client::Client;
use ignis_integration::fixtures::read_fixture;
use ignis_integration::node::TestNode;
use ignis_storage::proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
use ignis_storage::proto::types::v1::LabelPair;
use prost::Message;

use crate::common::total_of;
use crate::tenants::push_go_cpu;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const PROTO: (&str, &str) = ("content-type", "application/proto");

/// `data` gzipped (fast).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// A Push of one series with `labels` and one raw profile.
pub(crate) fn push_with(labels: Vec<(String, String)>, raw_profile: Vec<u8>) -> Vec<u8> {
    PushRequest {
        series: vec![RawProfileSeries {
            labels: labels
                .into_iter()
                .map(|(name, value)| LabelPair { name, value })
                .collect(),
            samples: vec![RawSample {
                raw_profile,
                id: String::new(),
            }],
            annotations: vec![],
        }],
    }
    .encode_to_vec()
}

async fn expect(
    client: &Client,
    what: &str,
    resp: reqwest::Response,
    status: u16,
    needle: &str,
) -> Result<()> {
    let got = resp.status().as_u16();
    let body = resp.text().await?;
    ensure!(got == status, "{what}: status {got}, want {status}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let msg = v["message"].as_str().unwrap_or(&body).to_lowercase();
    ensure!(
        msg.contains(&needle.to_lowercase()),
        "{what}: message {msg:?} does not mention {needle:?}"
    );
    let ready = client.get("/ready").await?;
    ensure!(
        ready.status().is_success(),
        "{what}: server stopped serving"
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_with_reasons() -> Result<()> {
    let node = TestNode::start(|c| {
        c.limits.ingestion_body_limit_bytes = 1 << 20;
    })?;
    let client = Client::new(&node.url);
    let good = push_go_cpu("bad.app")?;
    let r = client
        .post("/push.v1.PusherService/Push", &[PROTO], good.clone())
        .await?;
    ensure!(r.status().is_success());
    let before = total_of(&client, CPU, "bad.app").await?;
    ensure!(before > 0);

    let push = "/push.v1.PusherService/Push";
    let cpu = read_fixture("go/cpu.pb.gz")?;
    let labels = |extra: Option<(String, String)>| {
        let mut l = vec![
            ("__name__".to_string(), "process_cpu".to_string()),
            ("service_name".to_string(), "bad.app".to_string()),
        ];
        l.extend(extra);
        l
    };

    // Truncated protobuf, in the push message and inside raw_profile.
    expect(
        &client,
        "truncated push",
        client
            .post(push, &[PROTO], good[..good.len() / 2].to_vec())
            .await?,
        400,
        "invalid protobuf",
    )
    .await?;
    let plain_cpu = {
        let mut d = flate2::read::GzDecoder::new(cpu.as_slice());
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out)?;
        out
    };
    let truncated = push_with(labels(None), plain_cpu[..plain_cpu.len() - 7].to_vec());
    expect(
        &client,
        "truncated pprof",
        client.post(push, &[PROTO], truncated).await?,
        400,
        "pprof",
    )
    .await?;
    let r = client
        .post(
            "/ingest?name=bad.app&format=pprof",
            &[],
            plain_cpu[..plain_cpu.len() / 3].to_vec(),
        )
        .await?;
    expect(&client, "truncated pprof on /ingest", r, 422, "pprof").await?;

    // Invalid gzip, as Content-Encoding and inside raw_profile.
    let r = client
        .post(
            push,
            &[PROTO, ("content-encoding", "gzip")],
            vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5],
        )
        .await?;
    expect(&client, "invalid gzip body", r, 400, "gzip").await?;
    let r = client
        .post(
            push,
            &[PROTO],
            push_with(labels(None), vec![0x1f, 0x8b, 0, 0, 0]),
        )
        .await?;
    expect(&client, "invalid gzip profile", r, 400, "gzip").await?;

    // Empty bodies.
    expect(
        &client,
        "empty push",
        client.post(push, &[PROTO], vec![]).await?,
        400,
        "no profiles",
    )
    .await?;
    let r = client
        .post(push, &[("content-type", "application/json")], vec![])
        .await?;
    expect(&client, "empty JSON push", r, 400, "empty").await?;
    expect(
        &client,
        "empty pprof",
        client
            .post("/ingest?name=bad.app&format=pprof", &[], vec![])
            .await?,
        422,
        "empty",
    )
    .await?;

    // Malformed JFR, unknown formats and content types.
    let r = client
        .post("/ingest?name=bad.app&format=jfr", &[], b"x".to_vec())
        .await?;
    expect(&client, "malformed JFR", r, 422, "not a JFR recording").await?;
    let r = client
        .post("/ingest?name=bad.app&format=trie", &[], vec![5, b'a'])
        .await?;
    expect(&client, "truncated trie", r, 400, "truncated").await?;
    let r = client
        .post(
            "/ingest?name=bad.app&format=speedscope",
            &[],
            b"{\"a\":1}".to_vec(),
        )
        .await?;
    expect(&client, "bad speedscope", r, 422, "speedscope").await?;
    let r = client
        .post(push, &[("content-type", "text/plain")], good.clone())
        .await?;
    expect(&client, "wrong content type", r, 415, "content-type").await?;
    let r = client
        .post(
            "/ingest?name=bad.app.nosuchkind&format=folded",
            &[],
            b"a;b 1\n".to_vec(),
        )
        .await?;
    expect(
        &client,
        "unknown profile kind",
        r,
        400,
        "unknown profile type",
    )
    .await?;
    let r = client
        .post(
            "/ingest?name=bad.app.cpu&format=folded",
            &[],
            b"a;b many\n".to_vec(),
        )
        .await?;
    expect(&client, "bad folded count", r, 400, "not an integer").await?;

    // Size limits: a gzip bomb inside raw_profile, and an oversized body.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let r = client
        .post(push, &[PROTO], push_with(labels(None), bomb))
        .await?;
    expect(&client, "gzip bomb", r, 400, "size limit").await?;
    let r = client.post(push, &[PROTO], vec![0u8; 2 << 20]).await?;
    expect(&client, "oversized body", r, 413, "too large").await?;
    let bomb_body = gzip(&vec![b'a'; 8 << 20]);
    let r = client
        .post(push, &[PROTO, ("content-encoding", "gzip")], bomb_body)
        .await?;
    expect(&client, "gzip bomb body", r, 413, "size limit").await?;

    // Labels over the limits.
    let long_name = "n".repeat(2000);
    let r = client
        .post(
            push,
            &[PROTO],
            push_with(labels(Some((long_name, "v".into()))), cpu.clone()),
        )
        .await?;
    expect(&client, "long label name", r, 400, "label name too long").await?;
    let r = client
        .post(
            push,
            &[PROTO],
            push_with(labels(Some(("k".into(), "v".repeat(5000)))), cpu.clone()),
        )
        .await?;
    expect(&client, "long label value", r, 400, "label value too long").await?;
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("l{i}"), "v".to_string()))
        .collect();
    let mut l = labels(None);
    l.extend(many);
    expect(
        &client,
        "too many labels",
        client
            .post(push, &[PROTO], push_with(l, cpu.clone()))
            .await?,
        400,
        "label names",
    )
    .await?;
    let r = client
        .post(
            push,
            &[PROTO],
            push_with(vec![("service_name".into(), "bad.app".into())], cpu.clone()),
        )
        .await?;
    expect(&client, "missing __name__", r, 400, "metric name").await?;
    let r = client
        .post("/ingest?name=bad%20app&format=pprof", &[], cpu.clone())
        .await?;
    expect(&client, "bad app name", r, 400, "not allowed").await?;

    // Bad queries.
    let q = "/querier.v1.QuerierService/SelectMergeStacktraces";
    let j = ("content-type", "application/json");
    let r = client
        .post(
            q,
            &[j],
            br#"{"profileTypeID":"cpu","labelSelector":"{}","start":1,"end":2}"#.to_vec(),
        )
        .await?;
    expect(
        &client,
        "bad profile type",
        r,
        400,
        "profile-type selection",
    )
    .await?;
    let r = client
        .post(
            q,
            &[j],
            format!(r#"{{"profileTypeID":"{CPU}","labelSelector":"{{a=b}}","start":1,"end":2}}"#)
                .into_bytes(),
        )
        .await?;
    expect(&client, "bad selector", r, 400, "selector").await?;
    let r = client
        .post(
            q,
            &[j],
            format!(r#"{{"profileTypeID":"{CPU}","labelSelector":"{{}}"}}"#).into_bytes(),
        )
        .await?;
    expect(&client, "missing range", r, 400, "missing time range").await?;
    let r = client
        .post("/querier.v1.QuerierService/Nope", &[j], b"{}".to_vec())
        .await?;
    expect(&client, "unknown method", r, 404, "not implemented").await?;
    let r = client.get(push).await?;
    ensure!(r.status() == 405, "GET on push: {}", r.status());

    // Nothing above changed the stored data, and the refusals are counted.
    ensure!(
        total_of(&client, CPU, "bad.app").await? == before,
        "bad input changed stored data"
    );
    let metrics = client.get("/metrics").await?.text().await?;
    for reason in [
        "malformed_profile",
        "profile_size_limit",
        "label_name_too_long",
        "label_value_too_long",
        "body_size_limit_exceeded",
    ] {
        ensure!(
            metrics.contains(&format!("reason=\"{reason}\"")),
            "no rejection metric for {reason}"
        );
    }
    Ok(())
}

/// One pre-order node of a `tree` or `trie` upload.
fn tree_node(out: &mut Vec<u8>, name: &[u8], value: u64, children: u64) {
    prost::encoding::encode_varint(name.len() as u64, out);
    out.extend_from_slice(name);
    prost::encoding::encode_varint(value, out);
    prost::encoding::encode_varint(children, out);
}

/// A root, then `first` and `rest` `n - 1` times nested, each with value 1.
fn chain(n: usize, first: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    tree_node(&mut b, b"", 0, 1);
    for i in 0..n {
        let name = if i == 0 { first } else { rest };
        tree_node(&mut b, name, 1, u64::from(i + 1 < n));
    }
    b
}

#[tokio::test]
async fn uploads_that_name_deep_stacks_many_times_stay_bounded_in_memory() -> Result<()> {
    // A few kilobytes of tree, trie or speedscope can name deep stacks
    // thousands of times: an 8 000-node chain spelled out is 32 million
    // frames (+1.3 GB before this was bounded). Stacks are cut at the
    // depth limit with all their value kept, and an upload that still
    // expands too far is refused.
    let node = ignis_integration::node::ChildNode::start(&[]).await?;
    let client = Client::new(&node.url);
    let before = node.peak_rss_bytes()?;
    let ingest = |name: &str, format: &str| {
        format!("/ingest?name={name}.cpu&format={format}&sampleRate=0&from=1795000000")
    };
    for (service, format, body) in [
        ("chain.tree", "tree", chain(8_000, b"f", b"f")),
        ("chain.trie", "trie", chain(8_000, b"f", b";f")),
    ] {
        let r = client.post(&ingest(service, format), &[], body).await?;
        ensure!(r.status().is_success(), "{service}: {}", r.status());
        let total = total_of(&client, "process_cpu:samples:count::", service).await?;
        ensure!(total == 8_000, "{service}: total {total}, want 8000");
    }
    // 16 000 leaves under a chain 999 deep: 16 million frames from 100 KB.
    let mut fan = Vec::new();
    tree_node(&mut fan, b"", 0, 1);
    for i in 0..999 {
        tree_node(&mut fan, b"f", 0, if i < 998 { 1 } else { 16_000 });
    }
    for i in 0..16_000u32 {
        tree_node(&mut fan, format!("leaf{i}").as_bytes(), 1, 0);
    }
    let r = client.post(&ingest("fan", "tree"), &[], fan).await?;
    expect(&client, "tree fan", r, 400, "stack frames").await?;
    // One frame name growing by a byte per trie node: 200 MB of names.
    let r = client
        .post(&ingest("grow", "trie"), &[], chain(20_000, b"a", b"a"))
        .await?;
    expect(&client, "growing trie name", r, 400, "stack frames").await?;
    let grew = node.peak_rss_bytes()?.saturating_sub(before);
    ensure!(grew < 256 << 20, "peak RSS grew by {} MiB", grew >> 20);
    Ok(())
}

#[tokio::test]
async fn a_tenant_over_its_ingest_rate_gets_429_with_retry_after() -> Result<()> {
    // 20 KiB/s with a 100 KiB burst: two Go CPU profiles (about 40 KB
    // each once decompressed) pass at once, the third waits.
    let node = TestNode::start(|c| {
        c.limits.ingestion_rate_mb = 20.0 / 1024.0;
        c.limits.ingestion_burst_size_mb = 100.0 / 1024.0;
    })?;
    let client = Client::new(&node.url).with_tenant("rated");
    let push = "/push.v1.PusherService/Push";
    let body = push_go_cpu("rated.app")?;
    let mut limited = None;
    for i in 0..5 {
        let r = client.post(push, &[PROTO], body.clone()).await?;
        if r.status() == 429 {
            limited = Some((i, r));
            break;
        }
        ensure!(r.status().is_success(), "push {i}: {}", r.status());
    }
    let Some((n, r)) = limited else {
        anyhow::bail!("five pushes at once passed a 100 KiB burst");
    };
    ensure!(n >= 1, "the first push is within the burst");
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Retry-After"))?;
    ensure!((1..=10).contains(&retry), "Retry-After {retry}");
    expect(&client, "over the rate", r, 429, "push rate limit").await?;
    let metrics = client.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("rate_limited"),
        "no rate_limited rejection counted"
    );
    // Stored data is exactly what was accepted.
    let total = total_of(&client, CPU, "rated.app").await?;
    let one = crate::tenants::go_cpu_total()?;
    ensure!(
        total == n as i64 * one,
        "stored {total}, want {} profiles",
        n
    );
    // After Retry-After, the same push passes.
    tokio::time::sleep(std::time::Duration::from_millis(retry * 1000 + 200)).await;
    let r = client.post(push, &[PROTO], body.clone()).await?;
    ensure!(r.status().is_success(), "after Retry-After: {}", r.status());

    // A push larger than the burst can never pass, and says so.
    let tiny = TestNode::start(|c| {
        c.limits.ingestion_rate_mb = 1.0;
        c.limits.ingestion_burst_size_mb = 1.0 / 1024.0;
    })?;
    let client = Client::new(&tiny.url);
    let r = client.post(push, &[PROTO], body).await?;
    ensure!(
        r.headers().get("retry-after").is_none(),
        "never passes: no Retry-After"
    );
    expect(&client, "over the burst", r, 429, "never pass").await?;
    Ok(())
}

#[tokio::test]
async fn tenant_limit_overrides_apply_and_reload_without_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("overrides.toml");
    std::fs::write(
        &file,
        "[overrides.tiny]\nmax_global_series_per_tenant = 2\nmax_label_names_per_series = 2\nmax_query_length_secs = 3600\nmax_concurrent_queries_per_tenant = 3\n",
    )?;
    let path = file.to_string_lossy().to_string();
    let node = TestNode::start(|c| {
        c.overrides.file = path;
        c.overrides.reload_secs = 1;
    })?;
    let tiny = Client::new(&node.url).with_tenant("tiny");
    let other = Client::new(&node.url).with_tenant("other");
    let push = "/push.v1.PusherService/Push";
    let limits = |client: &Client| {
        let client = client.clone();
        async move {
            let v: serde_json::Value = client.get("/api/v1/tenant_limits").await?.json().await?;
            Ok::<_, anyhow::Error>(v)
        }
    };
    let v = limits(&tiny).await?;
    ensure!(
        v["overridden"] == true && v["limits"]["max_global_series_per_tenant"] == 2,
        "{v}"
    );
    ensure!(
        v["query"]["max_query_length_secs"] == 3600
            && v["query_slots"]["max_concurrent_queries_per_tenant"] == 3,
        "{v}"
    );
    let v = limits(&other).await?;
    ensure!(
        v["overridden"] == false
            && v["limits"]["max_global_series_per_tenant"] == 5000
            && v["query"]["max_query_length_secs"] == 0,
        "{v}"
    );
    // A Go CPU profile is two series (samples and cpu): one service's pass,
    // a second service's are over tiny's limit; other's are not.
    for (client, service, want) in [
        (&tiny, "a", 200),
        (&tiny, "b", 429),
        (&other, "a", 200),
        (&other, "b", 200),
    ] {
        let r = client.post(push, &[PROTO], push_go_cpu(service)?).await?;
        if want == 429 {
            expect(
                client,
                "second series of tiny",
                r,
                429,
                "active series limit",
            )
            .await?;
        } else {
            ensure!(r.status() == want, "{service}: {}", r.status());
        }
    }
    let cpu = read_fixture("go/cpu.pb.gz")?;
    let three = vec![
        ("__name__".to_string(), "process_cpu".to_string()),
        ("service_name".to_string(), "a".to_string()),
        ("k".to_string(), "v".to_string()),
    ];
    let r = tiny
        .post(push, &[PROTO], push_with(three.clone(), cpu.clone()))
        .await?;
    expect(&tiny, "three labels for tiny", r, 400, "label names").await?;
    // tiny's queries may span an hour; other's are unlimited.
    let wide = |client: &Client| {
        let body = format!(
            r#"{{"profileTypeID":"{CPU}","labelSelector":"{{}}","start":1,"end":4000000000000}}"#
        );
        let client = client.clone();
        async move {
            client
                .post(
                    "/querier.v1.QuerierService/SelectMergeStacktraces",
                    &[("content-type", "application/json")],
                    body.into_bytes(),
                )
                .await
        }
    };
    expect(
        &tiny,
        "a wide query of tiny",
        wide(&tiny).await?,
        400,
        "max_query_length",
    )
    .await?;
    ensure!(
        total_of(&other, CPU, "a").await? > 0,
        "other queries any range"
    );

    // A new file applies without a restart.
    std::fs::write(
        &file,
        "[overrides.tiny]\nmax_global_series_per_tenant = 10\n",
    )?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while limits(&tiny).await?["limits"]["max_global_series_per_tenant"] != 10 {
        ensure!(
            std::time::Instant::now() < deadline,
            "overrides not reloaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let r = tiny.post(push, &[PROTO], push_go_cpu("b")?).await?;
    ensure!(r.status().is_success(), "after the reload: {}", r.status());
    let r = tiny.post(push, &[PROTO], push_with(three, cpu)).await?;
    ensure!(
        r.status().is_success(),
        "three labels after the reload: {}",
        r.status()
    );
    let r = wide(&tiny).await?;
    ensure!(
        r.status().is_success(),
        "a wide query after the reload: {}",
        r.status()
    );

    // A bad file is counted and changes nothing.
    std::fs::write(
        &file,
        "[overrides.tiny]\nmax_global_series_per_tenant = \"x\"\n",
    )?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let m = tiny.get("/metrics").await?.text().await?;
        if m.lines()
            .any(|l| l.starts_with("ignis_overrides_reload_failures_total 1"))
        {
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "bad file not counted");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    ensure!(limits(&tiny).await?["limits"]["max_global_series_per_tenant"] == 10);
    Ok(())
}

#[tokio::test]
async fn a_flooding_tenant_gets_429s_while_another_is_served_in_full() -> Result<()> {
    // "flood" may store 50 KiB/s (burst 100 KiB: about two Go CPU
    // profiles); "calm" has the defaults (no rate limit).
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("overrides.toml");
    std::fs::write(
        &file,
        "[overrides.flood]\ningestion_rate_mb = 0.048828125\ningestion_burst_size_mb = 0.09765625\n",
    )?;
    let env = [(
        "IGNIS_OVERRIDES__FILE".to_string(),
        file.to_string_lossy().to_string(),
    )];
    let node = ignis_integration::node::ChildNode::start_with(dir.path(), &[], &env).await?;
    let before = node.peak_rss_bytes()?;
    let push = "/push.v1.PusherService/Push";
    let body = push_go_cpu("flood.app")?;
    let run = std::time::Duration::from_secs(5);
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let client = Client::new(&node.url).with_tenant("flood");
            let body = body.clone();
            tokio::spawn(async move {
                let (mut ok, mut limited, mut other) = (0i64, 0i64, 0i64);
                let start = std::time::Instant::now();
                while start.elapsed() < run {
                    match client.post(push, &[PROTO], body.clone()).await {
                        Ok(r) if r.status().is_success() => ok += 1,
                        Ok(r) if r.status() == 429 => limited += 1,
                        _ => other += 1,
                    }
                }
                (ok, limited, other)
            })
        })
        .collect();
    let calm = Client::new(&node.url).with_tenant("calm");
    let calm_body = push_go_cpu("calm.app")?;
    let mut calm_failures = Vec::new();
    for i in 0..40 {
        let r = calm.post(push, &[PROTO], calm_body.clone()).await?;
        if !r.status().is_success() {
            calm_failures.push(format!("push {i}: {}", r.status()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (mut ok, mut limited, mut other) = (0, 0, 0);
    for f in flooders {
        let (o, l, x) = f.await?;
        (ok, limited, other) = (ok + o, limited + l, other + x);
    }
    ensure!(
        calm_failures.is_empty(),
        "calm was refused: {calm_failures:?}"
    );
    ensure!(
        other == 0,
        "flood got {other} answers other than 2xx and 429"
    );
    ensure!(
        limited > 10 * ok,
        "flood: {ok} acknowledged, {limited} limited: the rate did not hold"
    );
    // Stored is exactly what was acknowledged, for both.
    let one = crate::tenants::go_cpu_total()?;
    let flood = Client::new(&node.url).with_tenant("flood");
    ensure!(total_of(&flood, CPU, "flood.app").await? == ok * one);
    ensure!(total_of(&calm, CPU, "calm.app").await? == 40 * one);
    let grew = node.peak_rss_bytes()?.saturating_sub(before);
    eprintln!(
        "flood: {ok} acknowledged, {limited} limited; calm: 40 of 40; peak RSS +{} MiB",
        grew >> 20
    );
    ensure!(grew < 256 << 20, "peak RSS grew by {} MiB", grew >> 20);
    Ok(())
}

#[tokio::test]
async fn relabel_rules_rename_and_drop_series_and_sample_types() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("overrides.toml");
    std::fs::write(
        &file,
        r#"
[[overrides.rl.ingestion_relabeling_rules]]
source_labels = ["service_name"]
regex = "(.*)-canary"
target_label = "track"
replacement = "canary-of-$1"

[[overrides.rl.ingestion_relabeling_rules]]
source_labels = ["env"]
regex = "dev"
action = "drop"

[[overrides.rl.sample_type_relabeling_rules]]
source_labels = ["__type__"]
regex = "inuse_space|cpu"
action = "keep"
"#,
    )?;
    let path = file.to_string_lossy().to_string();
    let node = TestNode::start(|c| c.overrides.file = path)?;
    let rl = Client::new(&node.url).with_tenant("rl");
    let other = Client::new(&node.url).with_tenant("other");
    let push = "/push.v1.PusherService/Push";
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let cpu = read_fixture("go/cpu.pb.gz")?;
    let heap = read_fixture("go/heap.pb.gz")?;
    for client in [&rl, &other] {
        for (pairs, raw) in [
            (
                labels(&[("__name__", "process_cpu"), ("service_name", "api-canary")]),
                &cpu,
            ),
            (
                labels(&[
                    ("__name__", "process_cpu"),
                    ("service_name", "api"),
                    ("env", "dev"),
                ]),
                &cpu,
            ),
            (
                labels(&[("__name__", "memory"), ("service_name", "heap")]),
                &heap,
            ),
        ] {
            let r = client
                .post(push, &[PROTO], push_with(pairs, raw.clone()))
                .await?;
            ensure!(r.status().is_success(), "push: {}", r.status());
        }
    }
    let exp = ignis_integration::fixtures::read_json("go/cpu.expected.json")?;
    let cpu_total = exp["value_sums"]["cpu/nanoseconds"].as_i64().unwrap_or(-1);
    let heap_exp = ignis_integration::fixtures::read_json("go/heap.expected.json")?;
    let inuse = heap_exp["value_sums"]["inuse_space/bytes"]
        .as_i64()
        .unwrap_or(-1);
    let total = |client: &Client, ty: &str, sel: &str| {
        let (client, ty, sel) = (client.clone(), ty.to_string(), sel.to_string());
        async move {
            let fg = client.flamegraph(&ty, &sel, 1, 4_000_000_000_000).await?;
            Ok::<_, anyhow::Error>(ignis_integration::client::fg_total(&fg))
        }
    };
    let inuse_type = "memory:inuse_space:bytes:space:bytes";
    let alloc_type = "memory:alloc_space:bytes:space:bytes";
    let samples_type = "process_cpu:samples:count:cpu:nanoseconds";
    // rl: the canary got its label, the dev series was dropped, and only
    // the kept sample types were stored.
    ensure!(total(&rl, CPU, r#"{track="canary-of-api"}"#).await? == cpu_total);
    ensure!(total(&rl, CPU, "{}").await? == cpu_total, "env=dev dropped");
    ensure!(total(&rl, inuse_type, "{}").await? == inuse);
    ensure!(
        total(&rl, alloc_type, "{}").await? == 0,
        "alloc_space dropped"
    );
    ensure!(
        total(&rl, samples_type, "{}").await? == 0,
        "samples dropped"
    );
    // other: no rules.
    ensure!(total(&other, CPU, r#"{track="canary-of-api"}"#).await? == 0);
    ensure!(total(&other, CPU, "{}").await? == 2 * cpu_total);
    ensure!(total(&other, alloc_type, "{}").await? > 0);
    // A rule that removes the metric name is a clear 400.
    std::fs::write(
        &file,
        "[[overrides.rl.ingestion_relabeling_rules]]\naction = \"labeldrop\"\nregex = \"__name__\"\n",
    )?;
    drop(node);
    let path = file.to_string_lossy().to_string();
    let node = TestNode::start(|c| c.overrides.file = path)?;
    let rl = Client::new(&node.url).with_tenant("rl");
    let r = rl
        .post(
            push,
            &[PROTO],
            push_with(labels(&[("__name__", "process_cpu")]), cpu.clone()),
        )
        .await?;
    expect(
        &rl,
        "metric name relabeled away",
        r,
        400,
        "invalid metric name",
    )
    .await?;
    // A bad regex in the file stops the node at start with the reason.
    std::fs::write(
        &file,
        "[[overrides.rl.ingestion_relabeling_rules]]\nsource_labels = [\"a\"]\ntarget_label = \"b\"\nregex = \"(\"\n",
    )?;
    let path = file.to_string_lossy().to_string();
    let err = TestNode::start(|c| c.overrides.file = path)
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    ensure!(err.contains("invalid regex"), "{err}");
    Ok(())
}
