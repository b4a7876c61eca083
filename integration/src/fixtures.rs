//! The captured requests and profiles under `../shared/fixtures`, and what
//! each must produce once stored (from its `*.expected.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The fixtures directory: `$IGNIS_FIXTURES`, or `shared/fixtures` beside the repository.
pub fn fixtures_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("IGNIS_FIXTURES") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    repo.join("../shared/fixtures")
}

/// A request captured from a real client.
#[derive(Debug, Clone)]
pub struct Capture {
    /// `dir/req-NNNN`, for messages.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// Path and raw query string.
    pub path_and_query: String,
    /// Headers in the order sent.
    pub headers: Vec<(String, String)>,
    /// Exact body.
    pub body: Vec<u8>,
    /// Ground truth.
    pub expected: Value,
}

impl Capture {
    /// The same request as new profiles: a Push whose samples' client ids
    /// (`RawSample.ID`, which name a profile: one sent again with them is
    /// the same profile) are cleared, so Ignis draws new ones. Other
    /// requests carry no ids and are returned as they are.
    pub fn as_new_profiles(&self) -> Result<Capture> {
        use ignis_storage::proto::push::v1::PushRequest;
        use prost::Message;
        if !self
            .path_and_query
            .starts_with("/push.v1.PusherService/Push")
        {
            return Ok(self.clone());
        }
        let encoding = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
            .map_or("identity", |(_, v)| v.as_str());
        let gzip = match encoding {
            "identity" => false,
            "gzip" => true,
            other => bail!("{}: Content-Encoding {other}", self.name),
        };
        let raw = if gzip {
            let mut out = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(self.body.as_slice()),
                &mut out,
            )?;
            out
        } else {
            self.body.clone()
        };
        let mut req = PushRequest::decode(raw.as_slice())
            .with_context(|| format!("{}: not a protobuf PushRequest", self.name))?;
        for sample in req.series.iter_mut().flat_map(|s| s.samples.iter_mut()) {
            sample.id.clear();
        }
        let mut body = req.encode_to_vec();
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &body)?;
            body = gz.finish()?;
        }
        Ok(Capture {
            body,
            ..self.clone()
        })
    }
}

/// Loads every `req-NNNN` of a capture directory (relative to the fixtures).
pub fn load_captures(dir: &str) -> Result<Vec<Capture>> {
    let base = fixtures_dir().join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&base)
        .with_context(|| format!("reading {}", base.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".meta.json").map(str::to_string))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let meta: Value =
            serde_json::from_slice(&std::fs::read(base.join(format!("{n}.meta.json")))?)?;
        let expected: Value =
            serde_json::from_slice(&std::fs::read(base.join(format!("{n}.expected.json")))?)?;
        let body = std::fs::read(base.join(format!("{n}.bin")))?;
        let raw_query = meta["raw_query"].as_str().unwrap_or("");
        let path = meta["path"].as_str().context("meta.path")?;
        let headers = meta["headers"]
            .as_array()
            .context("meta.headers")?
            .iter()
            .filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
            .collect();
        out.push(Capture {
            name: format!("{dir}/{n}"),
            method: meta["method"].as_str().unwrap_or("POST").to_string(),
            path_and_query: if raw_query.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{raw_query}")
            },
            headers,
            body,
            expected,
        });
    }
    if out.is_empty() {
        bail!("no captures in {}", base.display());
    }
    Ok(out)
}

/// What one profile must look like once stored, per sample type.
#[derive(Debug, Clone)]
pub struct ExpectedProfile {
    /// Where it came from.
    pub source: String,
    /// `service_name`.
    pub service: String,
    /// Series `__name__`.
    pub metric: String,
    /// Label selector that picks this profile's series.
    pub selector: String,
    /// Profile timestamp.
    pub time_ns: i64,
    /// Per sample type: profile type id → (value sum, top self functions).
    pub types: BTreeMap<String, (i64, Vec<(String, i64)>)>,
}

fn split_type(t: &str) -> (&str, &str) {
    t.split_once('/').unwrap_or((t, ""))
}

/// Builds expectations from a pprof ground-truth object (`sample_types`, `value_sums`, …).
pub fn from_pprof_truth(
    source: &str,
    service: &str,
    metric: &str,
    truth: &Value,
    fallback_time_ns: i64,
) -> Result<ExpectedProfile> {
    let (pt, pu) = truth["period_type"]
        .as_str()
        .map(split_type)
        .unwrap_or(("", ""));
    let mut time_ns = truth["time_nanos"].as_i64().unwrap_or(0);
    if time_ns < 365 * 24 * 3600 * 1_000_000_000 {
        time_ns = fallback_time_ns;
    }
    let mut types = BTreeMap::new();
    for st in truth["sample_types"].as_array().context("sample_types")? {
        let st = st.as_str().context("sample type")?;
        let (t, u) = split_type(st);
        let sum = truth["value_sums"][st].as_i64().context("value_sums")?;
        let top = top_list(&truth["top_self"][st], 1);
        types.insert(format!("{metric}:{t}:{u}:{pt}:{pu}"), (sum, top));
    }
    Ok(ExpectedProfile {
        source: source.into(),
        service: service.into(),
        metric: metric.into(),
        selector: format!("{{service_name=\"{service}\"}}"),
        time_ns,
        types,
    })
}

fn top_list(v: &Value, scale: i64) -> Vec<(String, i64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e[0].as_str()?.to_string(), e[1].as_i64()? * scale)))
                .collect()
        })
        .unwrap_or_default()
}

/// The app name (before `{`) of a legacy `name` parameter.
pub fn app_of(name: &str) -> &str {
    name.split('{').next().unwrap_or(name)
}

/// Expectations of a captured request, with the metric name Pyroscope derives.
pub fn expectations(c: &Capture, metric: &str) -> Result<Vec<ExpectedProfile>> {
    let e = &c.expected;
    let kind = e["kind"].as_str().unwrap_or("");
    let q = &e["query"];
    let from_s = q["from"]
        .as_str()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let from_ns = if from_s > 1_000_000_000_000_000_000 {
        from_s
    } else {
        from_s * 1_000_000_000
    };
    match kind {
        k if k.starts_with("connect-push") => {
            let mut out = Vec::new();
            for s in e["series"].as_array().context("series")? {
                let service = s["labels"]["service_name"]
                    .as_str()
                    .context("service_name")?;
                let metric = s["labels"]["__name__"].as_str().context("__name__")?;
                for sample in s["samples"].as_array().context("samples")? {
                    out.push(from_pprof_truth(&c.name, service, metric, sample, 0)?);
                }
            }
            Ok(out)
        }
        "ingest pprof" => {
            let name = q["name"].as_str().context("name")?;
            Ok(vec![from_pprof_truth(
                &c.name,
                app_of(name),
                metric,
                &e["profile"],
                from_ns,
            )?])
        }
        "ingest multipart/form-data" => {
            let name = q["name"].as_str().context("name")?;
            let part = e["parts"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == "profile"))
                .context("profile part")?;
            Ok(vec![from_pprof_truth(
                &c.name,
                app_of(name),
                metric,
                &part["profile"],
                from_ns,
            )?])
        }
        "ingest folded" => {
            let name = q["name"].as_str().context("name")?;
            let app = app_of(name);
            let service = app.rsplit_once('.').map_or(app, |(a, _)| a);
            let rate: i64 = q["sampleRate"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(100);
            let scale = 1_000_000_000 / rate;
            let p = &e["profile"];
            let total = p["total"].as_i64().context("total")? * scale;
            let top = top_list(&p["top_self"], scale);
            let mut types = BTreeMap::new();
            types.insert(
                format!("{metric}:cpu:nanoseconds:cpu:nanoseconds"),
                (total, top),
            );
            // pyroscope-rs uploads one profile per tag set and window: pick this
            // request's series by all of its tags (an absent `handler` is "").
            let mut matchers = vec![format!("service_name=\"{service}\"")];
            let tags = name
                .split_once('{')
                .map_or("", |(_, t)| t.trim_end_matches('}'));
            for kv in tags.split(',').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                matchers.push(format!("{k}=\"{v}\""));
            }
            if !tags.contains("handler=") {
                matchers.push("handler=\"\"".into());
            }
            Ok(vec![ExpectedProfile {
                source: c.name.clone(),
                service: service.into(),
                metric: metric.into(),
                selector: format!("{{{}}}", matchers.join(",")),
                time_ns: from_ns,
                types,
            }])
        }
        other => bail!("{}: unknown capture kind {other:?}", c.name),
    }
}

/// Every SDK capture directory with the `__name__` each request's profile gets.
pub fn sdk_captures() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("python-sdk/push-1.4.0", vec![]),
        ("rust-sdk/ingest-pprof-0.5.8", vec!["process_cpu"; 4]),
        ("rust-sdk/ingest-folded-0.5.8", vec!["process_cpu"; 4]),
        (
            "go-sdk/ingest-multipart-1.2.8",
            vec!["memory", "goroutines", "mutex", "block", "process_cpu"],
        ),
        (
            "node-sdk/ingest-pprof-0.6.4",
            vec!["wall", "memory", "wall", "memory"],
        ),
    ]
}

/// The `go/*.pb.gz` profiles with the `__name__` `/ingest` derives for each
/// (a Go block profile without a sample_type_config is classified `mutex`).
pub fn go_pprof_fixtures() -> Vec<(&'static str, &'static str)> {
    vec![
        ("cpu", "process_cpu"),
        ("heap", "memory"),
        ("allocs", "memory"),
        ("goroutine", "goroutines"),
        ("mutex", "mutex"),
        ("block", "mutex"),
    ]
}

/// Reads a fixture file.
pub fn read_fixture(rel: &str) -> Result<Vec<u8>> {
    let p = fixtures_dir().join(rel);
    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
}

/// Reads a fixture's JSON.
pub fn read_json(rel: &str) -> Result<Value> {
    Ok(serde_json::from_slice(&read_fixture(rel)?)?)
}

/// A `PushRequest` (protobuf) carrying `raw_profile` (a pprof, gzip or plain)
/// for one `process_cpu` series of `service`, as the Python and Rust SDKs send it.
pub fn push_request(service: &str, raw_profile: Vec<u8>) -> Vec<u8> {
    use ignis_storage::proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
    use ignis_storage::proto::types::v1::LabelPair;
    use prost::Message;
    let label = |n: &str, v: &str| LabelPair {
        name: n.into(),
        value: v.into(),
    };
    PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![
                label("__name__", "process_cpu"),
                label("service_name", service),
            ],
            samples: vec![RawSample {
                raw_profile,
                id: String::new(),
            }],
            annotations: vec![],
        }],
    }
    .encode_to_vec()
}
