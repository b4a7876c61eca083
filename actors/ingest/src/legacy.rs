//! `POST /ingest`: format dispatch and the mapping of legacy parameters to series labels.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;

use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::{FlatProfile, SplitProfile, names};
use prost::Message;

use super::binary_tree::{parse_tree, parse_trie};
use super::error::{IngestError, Reason};
use super::gzip::maybe_gunzip;
use super::jfr::{JfrUpload, decode_jfr};
use super::limits::Limits;
use super::name::parse_name;
use super::speedscope::parse_speedscope;
use super::split::{SplitInput, split_profile, split_proto, symbol_tail};
use super::text::{parse_folded, parse_lines, text_kind, text_to_pprof};
use ignis_storage::attime::parse_time_ns;

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
            let p = decode_flat(Bytes::from(raw), limits)?;
            let mut labels = name.labels;
            let types: Vec<&str> = p.sample_types().iter().map(|t| p.str(t.r#type)).collect();
            labels.insert(names::METRIC_NAME, pprof_metric_name(&types, &display));
            labels.insert(names::DELTA, "false");
            labels.insert(names::SPY_NAME, spy.as_str());
            labels.insert_if_absent(names::SERVICE_NAME, name.app.as_str());
            let input = SplitInput {
                labels,
                fallback_time_ns: from_ns,
                now_ns,
            };
            if matches!(spy.as_str(), "pyspy" | "rbspy" | "scripting") {
                // Script frames are rewritten in prost's profile, which is
                // then encoded again.
                let mut p = p.to_proto();
                rewrite_script_frames(
                    &mut p,
                    spy == "pyspy",
                    limits.max_profile_symbol_value_length,
                    limits.max_profile_size_bytes,
                )?;
                return Ok(split_proto(&p, input, limits)?.into_iter().collect());
            }
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
        Ok(split_proto(&p, input, limits)?.into_iter().collect())
    }
}

/// Decodes a pprof (gzip or plain) in place, bounded by
/// `max_profile_size_bytes`; `raw` stays the profile's wire bytes.
pub fn decode_flat(raw: Bytes, limits: &Limits) -> Result<FlatProfile, IngestError> {
    let plain = match maybe_gunzip(&raw, limits.max_profile_size_bytes, "profile")? {
        Cow::Borrowed(_) => raw.clone(),
        Cow::Owned(plain) => Bytes::from(plain),
    };
    FlatProfile::decode(raw, plain)
        .map_err(|e| IngestError::malformed(format!("failed to parse pprof profile: {e}")))
}

/// Decodes a pprof (gzip or plain) with prost, bounded by
/// `max_profile_size_bytes`: for callers that change the profile (the
/// scraper's deltas).
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
    let v: HashMap<String, SampleTypeConfig> = serde_json::from_slice(config)
        .map_err(|e| IngestError::invalid(format!("sample_type_config: invalid JSON: {e}")))?;
    Ok(v.into_iter()
        .filter_map(|(k, c)| Some((k, c.display_name.filter(|d| !d.is_empty())?)))
        .collect())
}

/// One entry of the multipart `sample_type_config` part, as the Go SDK
/// writes it: fields of the wrong type are refused (as Go's JSON decoder
/// refuses them), unknown ones ignored.
#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)] // Only the display name shapes what is stored; the rest is type-checked.
struct SampleTypeConfig {
    units: Option<String>,
    aggregation: Option<String>,
    #[serde(rename = "display-name")]
    display_name: Option<String>,
    sampled: Option<bool>,
    cumulative: Option<bool>,
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
/// Names script frames `"{file} {function}"` as Pyroscope does for
/// py-spy/rbspy uploads. Each distinct (file, name) pair is built once, and
/// only its last `max_len` bytes (the symbol length limit; 0: no limit), so
/// functions sharing a huge file name cannot multiply it; the names built
/// may add at most `budget` bytes (the decompressed profile size limit) in
/// all, so distinct functions of one huge file cannot either.
fn rewrite_script_frames(
    p: &mut pprof::Profile,
    only_relative: bool,
    max_len: usize,
    budget: usize,
) -> Result<(), IngestError> {
    let mut built: HashMap<(i64, i64), i64> = HashMap::new();
    let mut added = 0usize;
    for i in 0..p.function.len() {
        let f = &p.function[i];
        let key = (f.filename, f.name);
        if let Some(&id) = built.get(&key) {
            p.function[i].name = id;
            continue;
        }
        let text = |id: i64| {
            usize::try_from(id)
                .ok()
                .and_then(|i| p.string_table.get(i))
                .map_or("", String::as_str)
        };
        let (file, name) = (text(f.filename), text(f.name));
        if file.is_empty() || (only_relative && file.starts_with('/')) {
            continue;
        }
        let joined = script_frame_name(file, name, max_len);
        added = added.saturating_add(joined.len());
        if added > budget {
            return Err(IngestError::new(
                Reason::ProfileSizeLimit,
                format!(
                    "script frame names (file and function) of this profile exceed {budget} bytes, the decompressed profile size limit"
                ),
            ));
        }
        p.string_table.push(joined);
        let id = p.string_table.len() as i64 - 1;
        built.insert(key, id);
        p.function[i].name = id;
    }
    Ok(())
}

/// `"{file} {name}"`, keeping only its last `max_len` bytes (0: all of it)
/// without building the whole string first.
fn script_frame_name(file: &str, name: &str, max_len: usize) -> String {
    let full = file.len() + 1 + name.len();
    if max_len == 0 || full <= max_len {
        return format!("{file} {name}");
    }
    if name.len() >= max_len {
        return symbol_tail(name, max_len).to_string();
    }
    format!("{} {name}", symbol_tail(file, max_len - name.len() - 1))
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
    fn script_frame_names_are_the_tail_of_file_and_name() {
        let tail = |s: String, n: usize| symbol_tail(&s, n).to_string();
        for (file, name) in [
            ("app/x.rb", "run"),
            ("dir/é/ü.py", "fünc"),
            ("", "f"),
            ("f", ""),
        ] {
            for max in 0..20 {
                let full = format!("{file} {name}");
                let want = if max == 0 {
                    full.clone()
                } else {
                    tail(full, max)
                };
                assert_eq!(
                    script_frame_name(file, name, max),
                    want,
                    "{file} {name} {max}"
                );
            }
        }
    }

    #[test]
    fn script_frames_sharing_a_huge_file_name_cost_it_once() {
        let huge = "x".repeat(100_000);
        let mut p = pprof::Profile {
            string_table: vec![String::new(), huge],
            ..Default::default()
        };
        for id in 1..=1000 {
            p.function.push(pprof::Function {
                id,
                name: 1,
                filename: 1,
                ..Default::default()
            });
        }
        let mut distinct = p.clone();
        rewrite_script_frames(&mut p, false, 1024, 1 << 20).unwrap();
        assert_eq!(
            p.string_table.len(),
            3,
            "one joined name for 1000 functions"
        );
        assert_eq!(p.string_table[2].len(), 1024);
        assert!(p.function.iter().all(|f| f.name == 2));
        // 1000 distinct names in one huge file: refused past the budget.
        for (i, f) in distinct.function.iter_mut().enumerate() {
            distinct.string_table.push(format!("f{i}"));
            f.name = distinct.string_table.len() as i64 - 1;
        }
        let err = rewrite_script_frames(&mut distinct, false, 65_535, 4 << 20).unwrap_err();
        assert_eq!(err.reason, Reason::ProfileSizeLimit);
    }

    #[test]
    fn sample_type_config_is_type_checked() {
        let ok = br#"{"alloc_space":{"units":"bytes","display-name":"alloc_bytes","sampled":false,"x":1}}"#;
        let names = display_names(Some(ok)).unwrap();
        assert_eq!(names["alloc_space"], "alloc_bytes");
        for bad in [
            &br#"{"alloc_space":{"display-name":5}}"#[..],
            br#"{"alloc_space":{"sampled":"yes"}}"#,
            br#"{"alloc_space":"alloc_bytes"}"#,
            br#"[1,2]"#,
        ] {
            let e = display_names(Some(bad)).unwrap_err();
            assert_eq!(e.reason, Reason::InvalidRequest, "{e}");
        }
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
