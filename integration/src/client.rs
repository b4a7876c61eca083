//! A small client for the Ignis HTTP API.

use anyhow::{Context, Result, bail};
use ignis_storage::proto::google::v1 as pprof;
use prost::Message;
use serde_json::{Value, json};

use crate::fixtures::Capture;

/// Talks to one node, optionally as a tenant.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Base URL.
    pub url: String,
    /// `X-Scope-OrgID`, if any.
    pub tenant: Option<String>,
    /// `Authorization`, if any.
    pub authorization: Option<String>,
}

/// Headers a replay must not copy (the transport sets them).
const HOP_HEADERS: [&str; 4] = ["host", "content-length", "connection", "transfer-encoding"];

impl Client {
    /// A client for `url`.
    pub fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.to_string(),
            tenant: None,
            authorization: None,
        }
    }

    /// The same client sending `Authorization: <value>` (e.g. `Bearer x`).
    pub fn with_authorization(&self, value: &str) -> Self {
        Self {
            authorization: Some(value.to_string()),
            ..self.clone()
        }
    }

    /// The same client sending its requests through `http` (e.g. one that
    /// trusts a test certificate).
    pub fn with_client(&self, http: reqwest::Client) -> Self {
        Self {
            http,
            ..self.clone()
        }
    }

    /// The same client sending `X-Scope-OrgID: tenant`.
    pub fn with_tenant(&self, tenant: &str) -> Self {
        Self {
            tenant: Some(tenant.to_string()),
            ..self.clone()
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(a) = &self.authorization {
            r = r.header("Authorization", a);
        }
        match &self.tenant {
            Some(t) => r.header("X-Scope-OrgID", t),
            None => r,
        }
    }

    /// Sends a captured request exactly as the client sent it.
    pub async fn replay(&self, c: &Capture) -> Result<reqwest::Response> {
        let method = reqwest::Method::from_bytes(c.method.as_bytes())?;
        let mut r = self.req(method, &c.path_and_query);
        for (k, v) in &c.headers {
            if !HOP_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                r = r.header(k, v);
            }
        }
        Ok(r.body(c.body.clone()).send().await?)
    }

    /// POSTs raw bytes.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response> {
        let mut r = self.req(reqwest::Method::POST, path);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        Ok(r.body(body).send().await?)
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> Result<reqwest::Response> {
        Ok(self.req(reqwest::Method::GET, path).send().await?)
    }

    /// Calls a Connect method with a JSON body; fails on non-2xx.
    pub async fn connect_json(&self, method: &str, body: Value) -> Result<Value> {
        let path = format!("/querier.v1.QuerierService/{method}");
        let r = self
            .post(
                &path,
                &[("content-type", "application/json")],
                serde_json::to_vec(&body)?,
            )
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{method}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method}: not JSON: {text}"))
    }

    /// `SelectMergeStacktraces` as JSON.
    pub async fn flamegraph(
        &self,
        profile_type: &str,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Value> {
        self.connect_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": profile_type, "labelSelector": selector, "start": start_ms, "end": end_ms, "maxNodes": 1_000_000}),
        )
        .await
    }

    /// `SelectMergeProfile` over the proto codec, parsed as pprof.
    pub async fn merged_pprof(
        &self,
        profile_type: &str,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<pprof::Profile> {
        let req = json!({"profileTypeID": profile_type, "labelSelector": selector, "start": start_ms, "end": end_ms});
        let r = self
            .post(
                "/querier.v1.QuerierService/SelectMergeProfile",
                &[("content-type", "application/json")],
                serde_json::to_vec(&req)?,
            )
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!(
                "SelectMergeProfile: {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let v: Value = serde_json::from_slice(&body)?;
        // Round-trip through protojson, then check the binary codec gives the same profile.
        let proto = self
            .post(
                "/querier.v1.QuerierService/SelectMergeProfile",
                &[("content-type", "application/proto")],
                ignis_storage::proto::querier::v1::SelectMergeProfileRequest {
                    profile_type_id: profile_type.into(),
                    label_selector: selector.into(),
                    start: start_ms,
                    end: end_ms,
                    ..Default::default()
                }
                .encode_to_vec(),
            )
            .await?
            .bytes()
            .await?;
        let p = pprof::Profile::decode(proto.as_ref())
            .context("SelectMergeProfile proto is not a pprof")?;
        let from_json: pprof::Profile = serde_json::from_value(v)?;
        if from_json != p {
            bail!("SelectMergeProfile differs between JSON and proto codecs");
        }
        Ok(p)
    }
}

/// Flame graph total (JSON int64 is a string).
pub fn fg_total(v: &Value) -> i64 {
    as_i64(&v["flamegraph"]["total"])
}

/// Reads a protojson int64 (string or number).
pub fn as_i64(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Self value per function name in a flame graph response.
pub fn self_by_name(v: &Value) -> std::collections::HashMap<String, i64> {
    let mut out = std::collections::HashMap::new();
    let fg = &v["flamegraph"];
    let names: Vec<&str> = fg["names"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for level in fg["levels"].as_array().into_iter().flatten() {
        let vals: Vec<i64> = level["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(as_i64)
            .collect();
        for t in vals.chunks(4) {
            if t.len() == 4 && t[2] != 0 {
                *out.entry(names.get(t[3] as usize).unwrap_or(&"?").to_string())
                    .or_insert(0) += t[2];
            }
        }
    }
    out
}
