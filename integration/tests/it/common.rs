//! Checks shared by the test modules.

use anyhow::{Result, ensure};
use ignis_integration::client::{Client, as_i64, fg_total, self_by_name};
use ignis_integration::fixtures::ExpectedProfile;
use serde_json::{Value, json};

/// Held by the tests that burn every core for a while (the Go PGO test's
/// toolchain builds) and by the test that compares an SDK's sampled CPU
/// with the CPU its program spent (a sampler starved by such a build
/// under-counts), so the two never overlap.
pub static CORE_HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Query window (ms) that covers exactly one profile timestamp.
pub fn window(time_ns: i64) -> (i64, i64) {
    let ms = time_ns / 1_000_000;
    (ms, ms)
}

/// Checks that the flame graph `fg` holds `times` the self value of every
/// function of the ground truth's `top` list (`[[name, self], …]`).
pub fn check_top_self(fg: &Value, top: &Value, times: i64, ctx: &str) -> Result<()> {
    let selfs = self_by_name(fg);
    for t in top.as_array().into_iter().flatten() {
        let (name, n) = (t[0].as_str().unwrap_or(""), t[1].as_i64().unwrap_or(-1));
        ensure!(
            selfs.get(name) == Some(&(times * n)),
            "{ctx}: self of {name}: {:?}, want {}",
            selfs.get(name),
            times * n
        );
    }
    Ok(())
}

/// Checks every query the issue lists against one profile's ground truth.
pub async fn verify(client: &Client, exp: &ExpectedProfile) -> Result<()> {
    let (start, end) = window(exp.time_ns);
    let selector = exp.selector.clone();
    for (profile_type, (sum, top_self)) in &exp.types {
        let ctx = format!("{} {profile_type}", exp.source);
        // Flame graph total and top self functions.
        let fg = client
            .flamegraph(profile_type, &selector, start, end)
            .await?;
        ensure!(
            fg_total(&fg) == *sum,
            "{ctx}: flame graph total {} != {sum}",
            fg_total(&fg)
        );
        let selfs = self_by_name(&fg);
        ensure!(!top_self.is_empty(), "{ctx}: ground truth has no top self");
        for (name, value) in top_self.iter().take(5) {
            let got = selfs.get(name).copied().unwrap_or(0);
            ensure!(
                got == *value,
                "{ctx}: self of {name} is {got}, want {value}"
            );
        }
        // Merged pprof parses and sums to the same total.
        let p = client
            .merged_pprof(profile_type, &selector, start, end)
            .await?;
        let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        ensure!(total == *sum, "{ctx}: pprof total {total} != {sum}");
        let st = &p.string_table[p.sample_type[0].r#type as usize];
        ensure!(
            profile_type.split(':').nth(1) == Some(st.as_str()),
            "{ctx}: pprof sample type {st}"
        );
        // Series over the window sums to the same total.
        let series = client
            .connect_json(
                "SelectSeries",
                json!({"profileTypeID": profile_type, "labelSelector": selector, "start": start, "end": end, "step": 1.0}),
            )
            .await?;
        let series_sum: f64 = series["series"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["points"].as_array().cloned().unwrap_or_default())
            .map(|p| p["value"].as_f64().unwrap_or(0.0))
            .sum();
        ensure!(
            series_sum == *sum as f64,
            "{ctx}: series sum {series_sum} != {sum}"
        );
        // Legacy render.
        let q = format!("{profile_type}{selector}");
        let r = client
            .get(&format!(
                "/pyroscope/render?query={}&from={start}&until={end}",
                urlencode(&q)
            ))
            .await?;
        ensure!(
            r.status().is_success(),
            "{ctx}: render status {}",
            r.status()
        );
        let body: Value = r.json().await?;
        ensure!(
            as_i64(&body["flamebearer"]["numTicks"]) == *sum,
            "{ctx}: render numTicks {}",
            body["flamebearer"]["numTicks"]
        );
    }
    // The service is listed.
    let lv = client
        .connect_json(
            "LabelValues",
            json!({"name": "service_name", "start": start, "end": end}),
        )
        .await?;
    let names: Vec<&str> = lv["names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        names.contains(&exp.service.as_str()),
        "{}: service_name values {names:?}",
        exp.source
    );
    Ok(())
}

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Flame graph total of one type for a service over a wide window.
pub async fn total_of(client: &Client, profile_type: &str, service: &str) -> Result<i64> {
    let fg = client
        .flamegraph(
            profile_type,
            &format!("{{service_name=\"{service}\"}}"),
            1,
            4_000_000_000_000,
        )
        .await?;
    Ok(fg_total(&fg))
}

/// Two hours of 30 pods of the Go CPU fixture every 30 s for `tenant`
/// (`None`: the default tenant), written as blocks into `data_dir` twice
/// (two replicas' overlapping blocks, so no rollup answers a query: every
/// profile row is read), ending at `end_ns`.
pub async fn replicated_history(
    data_dir: &std::path::Path,
    tenant: Option<&str>,
    end_ns: i64,
) -> Result<ignis::loadgen::BackfillSummary> {
    let args = ignis::loadgen::LoadgenArgs {
        url: String::new(),
        duration: 0,
        concurrency: 1,
        series: 30,
        rate: 0,
        profile: Some(ignis_integration::fixtures::fixtures_dir().join("go/cpu.pb.gz")),
        tenant: tenant.map(str::to_string),
        json: false,
        backfill_hours: 2.0,
        every: std::time::Duration::from_secs(30),
        data_dir: Some(data_dir.to_path_buf()),
        replicas: 2,
        variants: 1,
    };
    ignis::loadgen::backfill(&args, end_ns).await
}

/// The sum of the samples of metric `name` (all its label sets) on `/metrics`.
pub async fn metric(client: &Client, name: &str) -> Result<f64> {
    let text = client.get("/metrics").await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
