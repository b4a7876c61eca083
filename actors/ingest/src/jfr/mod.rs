//! Java Flight Recorder ingest (`POST /ingest?format=jfr`): a JFR reader
//! written against the format (chunk headers, metadata, constant pools,
//! generically decoded events) and the mapping of its events to one pprof
//! per profile type, which then goes through the usual split and validation.

pub mod builder;
pub mod chunk;
pub mod error;
pub mod event;
pub mod labels;
pub mod mapping;
pub mod metadata;
pub mod pool;
pub mod reader;
pub mod value;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::{Labels, SplitProfile, names};

use super::error::IngestError;
use super::gzip::maybe_gunzip;
use super::limits::Limits;
use super::split::{SplitInput, split_proto};
use builder::ProfileBuilder;
use chunk::split_chunks;
use event::for_each_event;
use mapping::{EventContext, EventType, contributions};
use metadata::{Metadata, parse_metadata};
use pool::{Pools, read_pools};
use value::Fields;

pub use error::JfrError;
pub use labels::LabelsSnapshot;
pub use mapping::Kind;

/// How a recording becomes profiles.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvertOptions<'a> {
    /// Timestamp of every profile (the upload's `from`), in ns.
    pub time_ns: i64,
    /// Duration of every profile (`until - from`), in ns.
    pub duration_ns: i64,
    /// `sampleRate` in Hz: each cpu or wall sample is worth `1e9 / rate` ns (0: nothing).
    pub sample_rate: u32,
    /// Labels of the events' `contextId`s, from the upload's `labels` part.
    pub labels: Option<&'a LabelsSnapshot>,
    /// Most distinct samples per profile (0: no limit).
    pub max_samples: usize,
    /// Stacks are cut to this many root-side frames, as the split would (0: no limit).
    pub max_depth: usize,
}

/// The profiles of one recording.
#[derive(Debug, Clone, Default)]
pub struct JfrProfiles {
    /// One pprof per profile kind that had events, in [`Kind`] order.
    pub profiles: Vec<(Kind, pprof::Profile)>,
    /// Events per type name over all chunks (as `jfr summary` counts them).
    pub event_counts: BTreeMap<String, u64>,
    /// The recording's `event` setting (async-profiler: `cpu`, `itimer`, `wall`, …).
    pub jfr_event: Option<String>,
    /// Number of chunks read.
    pub chunks: usize,
}

/// Reads every chunk of a (decompressed) recording and builds its profiles.
pub fn convert(data: &[u8], opts: &ConvertOptions<'_>) -> Result<JfrProfiles, JfrError> {
    let period = match i64::from(opts.sample_rate) {
        0 => 0,
        rate => 1_000_000_000 / rate,
    };
    let mut out = JfrProfiles::default();
    let mut builders: BTreeMap<Kind, ProfileBuilder> = BTreeMap::new();
    for chunk in split_chunks(data)? {
        out.chunks += 1;
        let md = parse_metadata(&chunk)?;
        let pools = read_pools(&chunk, &md)?;
        // Settings first: whether execution samples also count as wall time
        // depends on the `event` setting, wherever it is in the chunk.
        for_each_event(
            &chunk,
            &md,
            |c| c.name == "jdk.ActiveSetting",
            |class, v| {
                if let Some(f) = Fields::new(class, &v)
                    && text_field(&md, &pools, &f, "name").as_deref() == Some("event")
                {
                    out.jfr_event = text_field(&md, &pools, &f, "value");
                }
                Ok(())
            },
        )?;
        let mut stacks: HashMap<(Kind, u64), u32> = HashMap::new();
        let counts = for_each_event(
            &chunk,
            &md,
            |c| EventType::of(&c.name).is_some(),
            |class, v| {
                let (Some(ev), Some(f)) = (EventType::of(&class.name), Fields::new(class, &v))
                else {
                    return Ok(());
                };
                let Some(stack_key) = f.get("stackTrace").and_then(|(_, v)| v.as_ref_key()) else {
                    return Ok(());
                };
                let Some(stack) = pools.stack(stack_key) else {
                    return Ok(());
                };
                let state = f
                    .get("state")
                    .and_then(|(_, v)| v.as_ref_key())
                    .and_then(|k| pools.thread_state(k));
                let cx = EventContext {
                    jfr_event: out.jfr_event.as_deref(),
                    state,
                    period_ns: period,
                    chunk: &chunk.header,
                };
                let labels = sample_labels(&f, opts.labels);
                for (kind, values) in contributions(ev, &f, &cx) {
                    let b = builders.entry(kind).or_insert_with(|| {
                        let max = opts.max_samples;
                        ProfileBuilder::new(kind, opts.time_ns, opts.duration_ns, period, max)
                    });
                    let id = *stacks.entry((kind, stack_key)).or_insert_with(|| {
                        // Leaf first; keep the root side, as the split does.
                        let skip = match opts.max_depth {
                            0 => 0,
                            max => stack.frames.len().saturating_sub(max),
                        };
                        let locations = stack.frames[skip..]
                            .iter()
                            .filter_map(|fr| {
                                let name = pools.frame_name(fr.method?)?;
                                Some(b.location(&name, fr.line))
                            })
                            .collect();
                        b.stack(locations)
                    });
                    b.add(id, &labels, &values)
                        .map_err(|e| JfrError::TooManySamples {
                            profile: kind.metric(),
                            limit: e.0,
                        })?;
                }
                Ok(())
            },
        )?;
        for (name, n) in counts {
            *out.event_counts.entry(name).or_default() += n;
        }
    }
    out.profiles = builders
        .into_iter()
        .map(|(kind, b)| (kind, b.finish()))
        .collect();
    Ok(out)
}

/// The text of a string or symbol field of an event.
fn text_field(md: &Metadata, pools: &Pools, f: &Fields<'_>, name: &str) -> Option<String> {
    let (fd, v) = f.get(name)?;
    pools.text(&pool::text(md, fd, v)).map(str::to_string)
}

/// Sample labels of an event: its context's labels, and the span it ran in.
fn sample_labels(f: &Fields<'_>, snapshot: Option<&LabelsSnapshot>) -> Vec<(String, String)> {
    let Some(snap) = snapshot else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = f
        .int("contextId")
        .map(|id| snap.context(id))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(span) = f.int("spanId").filter(|&s| s != 0) {
        out.push(("profile_id".into(), format!("{:016x}", span as u64)));
    }
    if let Some(name) = f.int("spanName").filter(|&s| s != 0) {
        out.push(("span_name".into(), snap.string(name).to_string()));
    }
    out
}

/// A JFR upload to `/ingest`, with what its query string said.
#[derive(Debug, Clone)]
pub struct JfrUpload<'a> {
    /// The app name (becomes `service_name`).
    pub app: &'a str,
    /// Labels from `name`.
    pub labels: Labels,
    /// `spyName`.
    pub spy: &'a str,
    /// `from`, in ns: the profiles' timestamp.
    pub from_ns: i64,
    /// `until`, in ns.
    pub until_ns: i64,
    /// `sampleRate`.
    pub sample_rate: u32,
    /// Current time, for the ingestion window.
    pub now_ns: i64,
}

/// Decodes a JFR upload (`jfr` bytes, gzip or plain, and the optional `labels`
/// part) into split profiles, one pprof per profile type.
pub fn decode_jfr(
    jfr: &[u8],
    labels: Option<&[u8]>,
    upload: JfrUpload<'_>,
    limits: &Limits,
) -> Result<Vec<SplitProfile>, IngestError> {
    if jfr.is_empty() {
        return Err(IngestError::malformed("empty JFR recording"));
    }
    let data = maybe_gunzip(jfr, limits.max_profile_size_bytes, "JFR recording")?;
    let snapshot = labels
        .filter(|l| !l.is_empty())
        .map(|l| LabelsSnapshot::decode_part(l, limits.max_profile_size_bytes))
        .transpose()?;
    if let Some(snap) = &snapshot {
        snap.check_labels_limit(limits.max_profile_stacktrace_sample_labels)?;
    }
    let converted = convert(
        &data,
        &ConvertOptions {
            time_ns: upload.from_ns,
            duration_ns: upload.until_ns.saturating_sub(upload.from_ns).max(0),
            sample_rate: upload.sample_rate,
            labels: snapshot.as_ref(),
            max_samples: limits.max_profile_stacktrace_samples,
            max_depth: limits.max_profile_stacktrace_depth,
        },
    )?;
    let mut base = upload.labels;
    base.insert(names::DELTA, "false");
    base.insert(names::SPY_NAME, upload.spy);
    if base.get(names::SERVICE_NAME).is_some() {
        base.insert_if_absent("app_name", upload.app);
    } else {
        base.insert(names::SERVICE_NAME, upload.app);
    }
    if let Some(e) = converted.jfr_event.as_deref().filter(|e| !e.is_empty()) {
        base.insert("jfr_event", e);
    }
    let mut out = Vec::new();
    for (kind, p) in converted.profiles {
        let mut labels = base.clone();
        labels.insert(names::METRIC_NAME, kind.metric());
        let input = SplitInput {
            labels,
            fallback_time_ns: upload.from_ns,
            now_ns: upload.now_ns,
        };
        out.extend(split_proto(&p, input, limits)?);
    }
    Ok(out)
}
