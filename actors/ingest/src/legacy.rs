//! `POST /ingest`: format dispatch and the mapping of legacy parameters to series labels.

use std::collections::HashMap;

use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::{SplitProfile, names};
use prost::Message;

use super::binary_tree::{parse_tree, parse_trie};
use super::error::{IngestError, Reason};
use super::gzip::maybe_gunzip;
use super::jfr::{JfrUpload, decode_jfr};
use super::limits::Limits;
use super::name::parse_name;
use super::speedscope::parse_speedscope;
use super::split::{SplitInput, split_profile};
use super::text::{parse_folded, parse_lines, text_kind, text_to_pprof};
use ignis_query::attime::parse_time_ns;

/// The query parameters of a legacy ingest request.
#[derive(Debug, Clone, Default)]
pub struct IngestParams {
    /// `name`: app name and labels.
    pub name: String,
    /// `from`: start time.
    pub from: Option<String>,
    /// `until`: end time.
    pub until: Option<String>,
    /// `format`.
    pub format: Option<String>,
    /// `sampleRate`.
    pub sample_rate: Option<String>,
    /// `spyName`.
    pub spy_name: Option<String>,
}

impl IngestParams {
    /// Reads the parameters from a decoded query string.
    pub fn from_query(pairs: &[(String, String)]) -> Self {
        let mut p = Self::default();
        for (k, value) in pairs {
            let v = Some(value.clone());
            match k.as_str() {
                "name" => p.name = value.clone(),
                "from" => p.from = v,
                "until" => p.until = v,
                "format" => p.format = v,
                "sampleRate" => p.sample_rate = v,
                "spyName" => p.spy_name = v,
                _ => {}
            }
        }
        p
    }
}

/// The body of a legacy ingest request, after content decoding.
#[derive(Debug, Clone)]
pub enum IngestBody {
    /// A raw body.
    Raw(Vec<u8>),
    /// A `multipart/form-data` body's file parts.
    Multipart(MultipartParts),
}

/// The file parts of a multipart pprof upload.
#[derive(Debug, Clone, Default)]
pub struct MultipartParts {
    /// Part `profile`.
    pub profile: Option<Vec<u8>>,
    /// Part `prev_profile` (old cumulative clients; refused).
    pub prev_profile: Option<Vec<u8>>,
    /// Part `sample_type_config` (JSON).
    pub sample_type_config: Option<Vec<u8>>,
    /// Part `jfr`.
    pub jfr: Option<Vec<u8>>,
    /// Part `labels` of a JFR upload (a `LabelsSnapshot` protobuf).
    pub labels: Option<Vec<u8>>,
}

/// How a legacy body is to be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyFormat {
    /// Binary radix trie.
    Trie,
    /// Binary tree.
    Tree,
    /// One stack per line.
    Lines,
    /// Java Flight Recorder.
    Jfr,
    /// Raw pprof body.
    Pprof,
    /// speedscope JSON.
    Speedscope,
    /// Multipart pprof form.
    PprofMultipart,
    /// Folded stacks (the default).
    Folded,
}

/// The format dispatch of reference/pyroscope-api.md §3.3 (first match wins).
pub fn detect_format(format: Option<&str>, content_type: &str) -> LegacyFormat {
    let f = format.unwrap_or("");
    if f == "trie" || content_type.contains("binary/octet-stream+trie") {
        LegacyFormat::Trie
    } else if f == "tree" || content_type.contains("binary/octet-stream+tree") {
        LegacyFormat::Tree
    } else if f == "lines" {
        LegacyFormat::Lines
    } else if f == "jfr" {
        LegacyFormat::Jfr
    } else if f == "pprof" {
        LegacyFormat::Pprof
    } else if f == "speedscope" {
        LegacyFormat::Speedscope
    } else if content_type.contains("multipart/form-data") {
        LegacyFormat::PprofMultipart
    } else {
        LegacyFormat::Folded
    }
}

/// Decodes a legacy ingest request into split profiles ready for the ingester.
pub fn decode_legacy(
    params: &IngestParams,
    format: LegacyFormat,
    body: IngestBody,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SplitProfile>, IngestError> {
    let name = parse_name(&params.name)?;
    let from_ns = match params.from.as_deref() {
        Some(v) => parse_time_ns(v, now_ns)
            .ok_or_else(|| IngestError::invalid(format!("from: invalid time {v:?}")))?,
        None => now_ns,
    };
    let until_ns = match params.until.as_deref() {
        Some(v) => parse_time_ns(v, now_ns)
            .ok_or_else(|| IngestError::invalid(format!("until: invalid time {v:?}")))?,
        None => now_ns,
    };
    let spy = params.spy_name.clone().unwrap_or_else(|| "unknown".into());
    match format {
        LegacyFormat::Pprof | LegacyFormat::PprofMultipart => {
            let (raw, config) = match body {
                IngestBody::Raw(b) => (Some(b), None),
                IngestBody::Multipart(parts) => {
                    if parts.prev_profile.is_some() {
                        return Err(IngestError::new(
                            Reason::Unsupported,
                            "unsupported client version: the prev_profile part (cumulative profiles) is not accepted. Please update github.com/grafana/pyroscope-go to the latest version",
                        ));
                    }
                    (parts.profile, parts.sample_type_config)
                }
            };
            let Some(raw) = raw.filter(|r| !r.is_empty()) else {
                if format == LegacyFormat::Pprof {
                    return Err(IngestError::malformed(
                        "empty request body: expected a pprof profile",
                    ));
                }
                return Ok(Vec::new());
            };
            let display = display_names(config.as_deref())?;
            let mut p = decode_pprof(&raw, limits)?;
            let mut labels = name.labels;
            let types: Vec<&str> = p
                .sample_type
                .iter()
                .map(|t| {
                    p.string_table
                        .get(t.r#type as usize)
                        .map_or("", String::as_str)
                })
                .collect();
            labels.insert(names::METRIC_NAME, pprof_metric_name(&types, &display));
            labels.insert(names::DELTA, "false");
            labels.insert(names::SPY_NAME, spy.as_str());
            labels.insert_if_absent(names::SERVICE_NAME, name.app.as_str());
            if matches!(spy.as_str(), "pyspy" | "rbspy" | "scripting") {
                rewrite_script_frames(&mut p, spy == "pyspy");
            }
            let input = SplitInput {
                labels,
                fallback_time_ns: from_ns,
                now_ns,
            };
            Ok(split_profile(p, input, limits)?.into_iter().collect())
        }
        LegacyFormat::Folded | LegacyFormat::Lines | LegacyFormat::Trie | LegacyFormat::Tree => {
            let IngestBody::Raw(raw) = body else {
                return Err(IngestError::invalid(
                    "this format takes a raw body, not a multipart form",
                ));
            };
            let raw = maybe_gunzip(&raw, limits.max_profile_size_bytes, "profile")?;
            let text = TextUpload {
                app: &name.app,
                labels: name.labels,
                spy: &spy,
                from_ns,
                now_ns,
            };
            let rate = sample_rate(params.sample_rate.as_deref());
            match format {
                LegacyFormat::Trie => text.split(&parse_trie(&raw, limits)?, rate, limits),
                LegacyFormat::Tree => text.split(&parse_tree(&raw, limits)?, rate, limits),
                _ => {
                    let body = std::str::from_utf8(&raw).map_err(|e| {
                        IngestError::malformed(format!("body is not valid UTF-8 text: {e}"))
                    })?;
                    let stacks = if format == LegacyFormat::Lines {
                        parse_lines(body)
                    } else {
                        parse_folded(body)?
                    };
                    text.split(&stacks, rate, limits)
                }
            }
        }
        LegacyFormat::Speedscope => {
            let IngestBody::Raw(raw) = body else {
                return Err(IngestError::invalid(
                    "speedscope takes a raw body, not a multipart form",
                ));
            };
            let raw = maybe_gunzip(&raw, limits.max_profile_size_bytes, "profile")?;
            let profiles = parse_speedscope(&raw, limits)?;
            let many = profiles.len() > 1;
            let mut out = Vec::new();
            for p in profiles {
                let mut labels = name.labels.clone();
                labels.insert("profile_name", p.name.as_str());
                // Several profiles: the unit names the kind (`seconds` → wall, `bytes` → memory).
                let app = if many {
                    format!("{}.{}", name.app, p.unit)
                } else {
                    name.app.clone()
                };
                let text = TextUpload {
                    app: &app,
                    labels,
                    spy: &spy,
                    from_ns,
                    now_ns,
                };
                out.extend(text.split(&p.stacks, p.rate, limits)?);
            }
            Ok(out)
        }
        LegacyFormat::Jfr => {
            let (recording, labels) = match body {
                IngestBody::Raw(b) => (Some(b), None),
                IngestBody::Multipart(parts) => (parts.jfr, parts.labels),
            };
            let Some(recording) = recording else {
                return Err(IngestError::malformed("jfr field is required"));
            };
            let upload = JfrUpload {
                app: &name.app,
                labels: name.labels,
                spy: &spy,
                from_ns,
                until_ns,
                sample_rate: sample_rate(params.sample_rate.as_deref()),
                now_ns,
            };
            decode_jfr(&recording, labels.as_deref(), upload, limits)
        }
    }
}

/// A text-like upload (folded, lines, trie, tree, speedscope): the name's last
/// `.` segment is the profile kind, and the values are sample counts.
struct TextUpload<'a> {
    app: &'a str,
    labels: ignis_storage::Labels,
    spy: &'a str,
    from_ns: i64,
    now_ns: i64,
}

impl TextUpload<'_> {
    fn split<S: AsRef<str>>(
        self,
        stacks: &[(Vec<S>, i64)],
        rate: u32,
        limits: &Limits,
    ) -> Result<Vec<SplitProfile>, IngestError> {
        let (app, suffix) = match self.app.rsplit_once('.') {
            Some((app, suffix)) => (app.to_string(), suffix),
            None => (self.app.to_string(), "cpu"),
        };
        let kind = text_kind(suffix).ok_or_else(|| {
            IngestError::new(
                Reason::InvalidLabels,
                format!("failed to convert metadata: unknown profile type: {suffix}"),
            )
        })?;
        let mut labels = self.labels;
        if labels.get("profile_id").is_some_and(|v| !v.is_empty()) {
            return Ok(Vec::new());
        }
        let p = text_to_pprof(stacks, &kind, rate, self.from_ns);
        labels.insert(names::METRIC_NAME, kind.metric);
        labels.insert(names::DELTA, "false");
        labels.insert(names::SPY_NAME, self.spy);
        if labels.get(names::SERVICE_NAME).is_some() {
            labels.insert_if_absent("app_name", app);
        } else {
            labels.insert(names::SERVICE_NAME, app);
        }
        let input = SplitInput {
            labels,
            fallback_time_ns: self.from_ns,
            now_ns: self.now_ns,
        };
        Ok(split_profile(p, input, limits)?.into_iter().collect())
    }
}

/// Decodes a pprof (gzip or plain), bounded by `max_profile_size_bytes`.
pub fn decode_pprof(raw: &[u8], limits: &Limits) -> Result<pprof::Profile, IngestError> {
    let data = maybe_gunzip(raw, limits.max_profile_size_bytes, "profile")?;
    pprof::Profile::decode(&*data)
        .map_err(|e| IngestError::malformed(format!("failed to parse pprof profile: {e}")))
}

fn sample_rate(v: Option<&str>) -> u32 {
    v.and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&r| r >= 0)
        .map_or(100, |r| u32::try_from(r).unwrap_or(u32::MAX))
}

fn display_names(config: Option<&[u8]>) -> Result<HashMap<String, String>, IngestError> {
    let Some(config) = config.filter(|c| !c.is_empty()) else {
        return Ok(HashMap::new());
    };
    let v: HashMap<String, serde_json::Value> = serde_json::from_slice(config)
        .map_err(|e| IngestError::invalid(format!("sample_type_config: invalid JSON: {e}")))?;
    Ok(v.into_iter()
        .filter_map(|(k, v)| {
            let d = v.get("display-name")?.as_str()?.to_string();
            (!d.is_empty()).then_some((k, d))
        })
        .collect())
}

/// The `__name__` of a pprof uploaded to `/ingest` (reference §3.4 A).
pub fn pprof_metric_name(types: &[&str], display: &HashMap<String, String>) -> String {
    if types.contains(&"wall") {
        return "wall".into();
    }
    let shown = |t: &str| -> String {
        if let Some(d) = display.get(t) {
            return d.clone();
        }
        match t {
            "samples" => "cpu",
            "goroutine" => "goroutines",
            "contentions" => "mutex_count",
            "delay" => "mutex_duration",
            other => other,
        }
        .to_string()
    };
    for t in types {
        let n = shown(t);
        if n.contains("cpu") {
            return "process_cpu".into();
        }
        if n.contains("alloc_") || n.contains("inuse_") || n == "space" || n == "objects" {
            return "memory".into();
        }
        if n.contains("mutex_") {
            return "mutex".into();
        }
        if n.contains("block_") {
            return "block".into();
        }
        if n.contains("goroutines") {
            return "goroutines".into();
        }
    }
    types.last().map_or_else(String::new, |t| shown(t))
}

/// Scripting spies name frames `"<file> <function>"`.
fn rewrite_script_frames(p: &mut pprof::Profile, only_relative: bool) {
    for i in 0..p.function.len() {
        let f = &p.function[i];
        let file = p
            .string_table
            .get(f.filename as usize)
            .cloned()
            .unwrap_or_default();
        let name = p
            .string_table
            .get(f.name as usize)
            .cloned()
            .unwrap_or_default();
        if file.is_empty() || (only_relative && file.starts_with('/')) {
            continue;
        }
        p.string_table.push(format!("{file} {name}"));
        p.function[i].name = p.string_table.len() as i64 - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_pyroscope() {
        let none = HashMap::new();
        assert_eq!(pprof_metric_name(&["samples", "cpu"], &none), "process_cpu");
        assert_eq!(pprof_metric_name(&["samples", "wall"], &none), "wall");
        assert_eq!(
            pprof_metric_name(&["alloc_objects", "alloc_space"], &none),
            "memory"
        );
        assert_eq!(pprof_metric_name(&["goroutine"], &none), "goroutines");
        assert_eq!(pprof_metric_name(&["contentions", "delay"], &none), "mutex");
        let block: HashMap<_, _> = [("contentions".to_string(), "block_count".to_string())].into();
        assert_eq!(
            pprof_metric_name(&["contentions", "delay"], &block),
            "block"
        );
        assert_eq!(pprof_metric_name(&["weird"], &none), "weird");
    }

    #[test]
    fn format_dispatch() {
        assert_eq!(
            detect_format(Some("pprof"), "multipart/form-data"),
            LegacyFormat::Pprof
        );
        assert_eq!(
            detect_format(None, "multipart/form-data; boundary=x"),
            LegacyFormat::PprofMultipart
        );
        assert_eq!(
            detect_format(None, "binary/octet-stream"),
            LegacyFormat::Folded
        );
        assert_eq!(detect_format(Some("lines"), ""), LegacyFormat::Lines);
    }
}
