//! Validation, normalization and series splitting of one decoded pprof.
//!
//! One pprof becomes one series per (sample-label set × sample type), labelled
//! as Pyroscope labels them (`__profile_type__`, `__type__`, `__unit__`, …).

// foldhash (hashbrown's default), not SipHash: this runs for every pushed profile.
use hashbrown::HashMap;

use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::{
    FlatProfile, IdMap, Labels, ProfileId, SeriesSplit, SplitProfile, Truncation, names,
};

use super::error::{IngestError, Reason};
use super::limits::Limits;
use crate::relabel::relabel;

/// Sample labels that never become series labels. They stay in the stored
/// pprof: the head reads `span_id` (or `profile_id`, its older spelling) and
/// `trace_id` to attribute samples to spans and traces ([`ignis_storage::head::sample_span_refs`]).
const NON_SERIES_SAMPLE_LABELS: [&str; 3] = [
    ignis_storage::head::TRACE_ID_LABEL,
    ignis_storage::head::SPAN_ID_LABEL,
    ignis_storage::head::PROFILE_ID_LABEL,
];

/// Timestamps before this (1971-01-01) are treated as missing.
const MIN_VALID_TIME_NS: i64 = 365 * 24 * 3600 * 1_000_000_000;

/// Profiles dated further than this past the node's clock are refused
/// when the tenant sets no `reject_newer_than_secs` (one day): a profile
/// from year 2262 made its block, and every query of the tenant over it,
/// span centuries.
const MAX_FUTURE_NS: i64 = 24 * 3600 * 1_000_000_000;

/// Everything besides the pprof itself that shapes the split.
#[derive(Debug, Clone)]
pub struct SplitInput {
    /// Series labels given by the client (push labels, or derived from `name`).
    pub labels: Labels,
    /// Timestamp to use when the pprof has none (ns).
    pub fallback_time_ns: i64,
    /// Current time (ns), for the ingestion window.
    pub now_ns: i64,
}

/// [`split_profile`] of a profile built by another decoder (JFR, OTLP, text,
/// …): encoded once and decoded in place.
pub fn split_proto(
    p: &pprof::Profile,
    input: SplitInput,
    limits: &Limits,
) -> Result<Option<SplitProfile>, IngestError> {
    let flat = FlatProfile::from_proto(p)
        .map_err(|e| IngestError::malformed(format!("failed to parse pprof profile: {e}")))?;
    split_profile(flat, input, limits)
}

/// Validates, normalizes and splits `p` into series. Returns `None` when the
/// profile holds no data (which is accepted, as Pyroscope does).
pub fn split_profile(
    mut p: FlatProfile,
    input: SplitInput,
    limits: &Limits,
) -> Result<Option<SplitProfile>, IngestError> {
    let mut labels = input.labels;
    normalize_series_labels(&mut labels);
    validate_profile(&p, &labels, limits)?;

    // A missing time is the request's (a legacy upload's `from`), and that
    // too must be a time: else now.
    let timestamp_ns = [p.time_nanos(), input.fallback_time_ns, input.now_ns]
        .into_iter()
        .find(|&t| t >= MIN_VALID_TIME_NS)
        .unwrap_or(input.now_ns);
    check_window(timestamp_ns, input.now_ns, &labels, limits)?;
    let bound = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    p.truncate(Truncation {
        stack_depth: bound(limits.max_profile_stacktrace_depth),
        symbol_bytes: bound(limits.max_profile_symbol_value_length),
    });

    let metric = labels.get(names::METRIC_NAME).unwrap_or("").to_string();
    if metric.is_empty() {
        return Err(IngestError::new(
            Reason::InvalidLabels,
            format!("invalid labels '{labels}' with error: invalid metric name"),
        ));
    }

    let groups = group_by_sample_labels(&p);
    let s = |i: i64| p.str(i);
    let (period_type, period_unit) = match p.period_type() {
        Some(pt) => (Some(s(pt.r#type)), Some(s(pt.unit))),
        None => (None, None),
    };

    let keep_type = kept_sample_types(&p, &labels, limits);
    let kept_types = keep_type.iter().filter(|k| **k).count();
    check_series_count(groups.len(), kept_types, &labels, limits)?;
    // Series labels are built per group and sample type: a small profile
    // whose samples carry many long label combinations must not expand
    // into gigabytes of label sets.
    let label_budget = limits.max_profile_size_bytes.saturating_mul(4);
    let mut label_bytes = 0usize;
    let mut series = Vec::new();
    for (sample_labels, samples) in groups {
        let mut group_labels = labels.clone();
        for (k, v) in sample_labels {
            group_labels.insert_if_absent(s(k), s(v));
        }
        validate_labels(&group_labels, limits)?;
        let bytes: usize = group_labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        label_bytes = label_bytes.saturating_add(bytes.saturating_mul(p.sample_types().len()));
        if label_bytes > label_budget {
            return Err(IngestError::new(
                Reason::ProfileSizeLimit,
                format!(
                    "the series labels of this profile (its labels and each sample's) would take more than {label_budget} bytes (4 × max_profile_size_bytes)"
                ),
            ));
        }
        for (value_index, st) in p.sample_types().iter().enumerate() {
            if !keep_type[value_index] {
                continue;
            }
            let (sample_type, sample_unit) = (s(st.r#type), s(st.unit));
            let mut l = group_labels.clone();
            // Default relabeling: a wall profile's cpu column is process_cpu.
            let name = if metric == "wall" && sample_type == "cpu" {
                "process_cpu"
            } else {
                metric.as_str()
            };
            l.insert(names::METRIC_NAME, name);
            l.insert(names::TYPE, sample_type);
            l.insert(names::UNIT, sample_unit);
            if let (Some(pt), Some(pu)) = (period_type, period_unit) {
                l.insert(names::PERIOD_TYPE, pt);
                l.insert(names::PERIOD_UNIT, pu);
            }
            if !limits.ingestion_relabeling_rules.is_empty() {
                if !relabel(&limits.ingestion_relabeling_rules, &mut l) {
                    continue;
                }
                validate_relabeled(&l, limits)?;
            }
            let part = |n: &str| l.get(n).unwrap_or("").to_string();
            let profile_type = format!(
                "{}:{}:{}:{}:{}",
                part(names::METRIC_NAME),
                part(names::TYPE),
                part(names::UNIT),
                part(names::PERIOD_TYPE),
                part(names::PERIOD_UNIT)
            );
            l.insert(names::PROFILE_TYPE, profile_type);
            if let Some(svc) = l.get(names::SERVICE_NAME).map(str::to_string) {
                l.insert(names::PRIVATE_SERVICE_NAME, svc);
            }
            let kept: Vec<u32> = samples
                .iter()
                .copied()
                .filter(|&i| {
                    p.sample(i as usize)
                        .and_then(|s| s.values.get(value_index))
                        .is_some_and(|&v| v > 0)
                })
                .collect();
            if !kept.is_empty() {
                series.push(SeriesSplit {
                    labels: l,
                    value_index,
                    samples: kept,
                });
            }
        }
    }
    if series.is_empty() {
        return Ok(None);
    }
    p.set_time_nanos(timestamp_ns);
    Ok(Some(SplitProfile {
        profile_id: ProfileId::generate(),
        profile: p,
        timestamp_ns,
        series,
    }))
}

/// Which sample types of `p` the tenant's `sample_type_relabeling_rules`
/// keep: each is relabeled as the profile's labels with `__type__` and
/// `__unit__`.
fn kept_sample_types(p: &FlatProfile, labels: &Labels, limits: &Limits) -> Vec<bool> {
    let rules = &limits.sample_type_relabeling_rules;
    let s = |i: i64| p.str(i);
    p.sample_types()
        .iter()
        .map(|st| {
            if rules.is_empty() {
                return true;
            }
            let mut l = labels.clone();
            l.insert(names::TYPE, s(st.r#type));
            l.insert(names::UNIT, s(st.unit));
            relabel(rules, &mut l)
        })
        .collect()
}

/// Checks a series' labels after the tenant's relabel rules changed them:
/// the metric name is still set, and the label limits hold (counted without
/// the labels the split adds).
fn validate_relabeled(l: &Labels, limits: &Limits) -> Result<(), IngestError> {
    if l.get(names::METRIC_NAME).is_none_or(str::is_empty) {
        return Err(IngestError::new(
            Reason::InvalidLabels,
            format!(
                "invalid labels '{}' with error: invalid metric name (after the tenant's ingestion_relabeling_rules)",
                shown_labels(l)
            ),
        ));
    }
    let mut own = l.clone();
    for n in [
        names::TYPE,
        names::UNIT,
        names::PERIOD_TYPE,
        names::PERIOD_UNIT,
    ] {
        own.remove(n);
    }
    validate_labels(&own, limits)
}

/// Applies the label rules every series gets: default `service_name`, the
/// `godeltaprof_` rename, and removal of `__delta__` and `__session_id__`.
pub fn normalize_series_labels(labels: &mut Labels) {
    if labels.get(names::SERVICE_NAME).is_none_or(str::is_empty) {
        labels.insert(names::SERVICE_NAME, "unknown_service");
    }
    if let Some(rest) = labels
        .get(names::METRIC_NAME)
        .and_then(|n| n.strip_prefix("godeltaprof_"))
        .map(str::to_string)
    {
        labels.insert(names::METRIC_NAME, rest);
    }
    labels.remove(names::DELTA);
    labels.remove(names::SESSION_ID);
}

fn validate_profile(p: &FlatProfile, labels: &Labels, limits: &Limits) -> Result<(), IngestError> {
    if p.sample_types().is_empty() {
        return Err(IngestError::malformed("empty profile: no sample types"));
    }
    if p.string(0) != Some("") {
        return Err(IngestError::malformed("string 0 should be empty string"));
    }
    let nstr = p.string_count() as i64;
    let check = |i: i64, what: &str| -> Result<(), IngestError> {
        if i < 0 || i >= nstr {
            Err(IngestError::malformed(format!(
                "{what} string index {i} out of range"
            )))
        } else {
            Ok(())
        }
    };
    for st in p.sample_types() {
        check(st.r#type, "sample type")?;
        check(st.unit, "sample unit")?;
    }
    if let Some(pt) = p.period_type() {
        check(pt.r#type, "period type")?;
        check(pt.unit, "period unit")?;
    }
    if limits.max_profile_stacktrace_samples > 0
        && p.sample_count() > limits.max_profile_stacktrace_samples
    {
        return Err(IngestError::new(
            Reason::SamplesLimit,
            format!(
                "the profile with labels '{labels}' exceeds the samples count limit (max_profile_stacktrace_samples, actual: {}, limit: {})",
                p.sample_count(),
                limits.max_profile_stacktrace_samples
            ),
        ));
    }
    // Every pprof writer numbers ids 1..=n: the sets are arrays then, and
    // a check per stack frame an index.
    let mut function_ids = IdMap::sized_for(p.functions().iter().map(|f| f.id));
    for f in p.functions() {
        function_ids.insert(f.id, 0);
    }
    let mut location_ids = IdMap::sized_for(p.locations().map(|l| l.id));
    for l in p.locations() {
        location_ids.insert(l.id, 0);
    }
    if function_ids.contains(0) {
        return Err(IngestError::malformed("function id is 0"));
    }
    if location_ids.contains(0) {
        return Err(IngestError::malformed("location id is 0"));
    }
    let ntypes = p.sample_types().len();
    for sample in p.samples() {
        if sample.values.len() != ntypes {
            return Err(IngestError::malformed(format!(
                "sample value length mismatch: {} values for {ntypes} sample types",
                sample.values.len()
            )));
        }
        if limits.max_profile_stacktrace_sample_labels > 0
            && sample.labels.len() > limits.max_profile_stacktrace_sample_labels
        {
            return Err(IngestError::new(
                Reason::SampleLabelsLimit,
                format!(
                    "the profile with labels '{labels}' exceeds the sample labels limit (max_profile_stacktrace_sample_labels, actual: {}, limit: {})",
                    sample.labels.len(),
                    limits.max_profile_stacktrace_sample_labels
                ),
            ));
        }
        for l in sample.labels {
            check(l.key, "label key")?;
            check(l.str, "label value")?;
        }
        // A sample's stack usually repeats the previous location: check
        // each id against the set once per run.
        let mut last = None;
        for &id in sample.location_ids {
            if last == Some(id) {
                continue;
            }
            if id == 0 {
                return Err(IngestError::malformed("location id is 0"));
            }
            if !location_ids.contains(id) {
                return Err(IngestError::malformed(format!(
                    "sample references unknown location id {id}"
                )));
            }
            last = Some(id);
        }
    }
    let depth = limits.max_profile_stacktrace_depth;
    for l in p.locations() {
        // A location is a frame per line (inlined calls): one with more
        // lines than a stack may have frames could not be cut to the limit.
        if depth > 0 && l.lines.len() > depth {
            return Err(IngestError::malformed(format!(
                "location {} has {} lines (inlined frames), more than a stack may have (max_profile_stacktrace_depth: {depth})",
                l.id,
                l.lines.len()
            )));
        }
        for line in l.lines {
            if !function_ids.contains(line.function_id) {
                return Err(IngestError::malformed(format!(
                    "location {} references unknown function id {}",
                    l.id, line.function_id
                )));
            }
        }
    }
    for f in p.functions() {
        check(f.name, "function name")?;
        check(f.system_name, "function system name")?;
        check(f.filename, "function filename")?;
    }
    for m in p.mappings() {
        check(m.filename, "mapping filename")?;
        check(m.build_id, "mapping build id")?;
    }
    Ok(())
}

fn check_window(ts: i64, now: i64, labels: &Labels, limits: &Limits) -> Result<(), IngestError> {
    let secs = |s: u64| {
        i64::try_from(s)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1_000_000_000)
    };
    let start = (limits.reject_older_than_secs > 0)
        .then(|| now.saturating_sub(secs(limits.reject_older_than_secs)));
    let end = now.saturating_add(if limits.reject_newer_than_secs > 0 {
        secs(limits.reject_newer_than_secs)
    } else {
        MAX_FUTURE_NS
    });
    if start.is_some_and(|s| ts < s) || ts > end {
        return Err(IngestError::new(
            Reason::NotInIngestionWindow,
            format!(
                "profile with labels '{labels}' is outside of ingestion window (profile timestamp: {ts}, the ingestion window starts at {} and ends at {})",
                start.map_or("-inf".into(), |s| s.to_string()),
                end
            ),
        ));
    }
    Ok(())
}

/// Refuses a profile that alone splits into more series than the tenant may
/// have active (`groups` sample-label sets × `types` sample types), before
/// any series is built.
fn check_series_count(
    groups: usize,
    types: usize,
    labels: &Labels,
    limits: &Limits,
) -> Result<(), IngestError> {
    let limit = limits.max_global_series_per_tenant;
    let n = groups.saturating_mul(types);
    if limit > 0 && n > limit {
        return Err(IngestError::new(
            Reason::SeriesLimit,
            format!(
                "profile with labels '{labels}' splits into {n} series ({groups} sample label sets × {types} sample types), more than the active series limit ({limit})"
            ),
        ));
    }
    Ok(())
}

/// The last `max` bytes of `s` (fewer at a character boundary): what a
/// symbol longer than `max_profile_symbol_value_length` keeps.
pub(crate) fn symbol_tail(s: &str, max: usize) -> &str {
    &s[s.ceil_char_boundary(s.len().saturating_sub(max))..]
}

/// Groups sample indexes by their string labels (sorted `(key, value)` string ids).
/// Sample label `(key, value)` string ids, and the samples that carry exactly them.
type SampleGroup = (Vec<(i64, i64)>, Vec<u32>);

fn group_by_sample_labels(p: &FlatProfile) -> Vec<SampleGroup> {
    let s = |i: i64| p.str(i);
    // Groups in the order of their first sample; most profiles have one
    // group, and neighbouring samples mostly share theirs: compare with the
    // last sample's group before hashing.
    let mut groups: Vec<SampleGroup> = Vec::new();
    let mut index: HashMap<Vec<(i64, i64)>, usize> = HashMap::new();
    let mut last = usize::MAX;
    let mut key = Vec::new();
    for (i, sample) in p.samples().enumerate() {
        key.clear();
        for l in sample.labels {
            if l.str == 0 || NON_SERIES_SAMPLE_LABELS.contains(&s(l.key)) || s(l.key).is_empty() {
                continue;
            }
            key.push((l.key, l.str));
        }
        if key.len() > 1 {
            key.sort_by(|a, b| s(a.0).cmp(s(b.0)));
            key.dedup_by(|a, b| s(a.0) == s(b.0));
        }
        if let Some((k, samples)) = groups.get_mut(last)
            && *k == key
        {
            samples.push(i as u32);
            continue;
        }
        last = match index.get(&key) {
            Some(&g) => g,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key.clone(), Vec::new()));
                groups.len() - 1
            }
        };
        groups[last].1.push(i as u32);
    }
    groups
}

/// Longest label name or value quoted whole in an error message.
const QUOTED_BYTES: usize = 128;

/// `s`, or its first [`QUOTED_BYTES`] and how many bytes it has.
fn abbreviated(s: &str) -> String {
    if s.len() <= QUOTED_BYTES {
        return s.to_string();
    }
    let head = &s[..s.floor_char_boundary(QUOTED_BYTES)];
    format!("{head}…({} bytes)", s.len())
}

/// `labels` as Pyroscope quotes them in errors, long names and values
/// [`abbreviated`].
fn shown_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}={:?}", abbreviated(k), abbreviated(v)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Checks a series label set against the limits and Pyroscope's label rules.
pub fn validate_labels(labels: &Labels, limits: &Limits) -> Result<(), IngestError> {
    let shown = || shown_labels(labels);
    if labels.is_empty() {
        return Err(IngestError::new(
            Reason::MissingLabels,
            "error at least one label pair is required per profile",
        ));
    }
    if limits.max_label_names_per_series > 0 && labels.len() > limits.max_label_names_per_series {
        return Err(IngestError::new(
            Reason::MaxLabelNamesPerSeries,
            format!(
                "profile series '{}' has {} label names; limit {}",
                shown(),
                labels.len(),
                limits.max_label_names_per_series
            ),
        ));
    }
    for (k, v) in labels.iter() {
        if limits.max_label_name_length > 0 && k.len() > limits.max_label_name_length {
            return Err(IngestError::new(
                Reason::LabelNameTooLong,
                format!(
                    "profile with labels '{}' has label name too long: '{}' ({} bytes, limit {})",
                    shown(),
                    abbreviated(k),
                    k.len(),
                    limits.max_label_name_length
                ),
            ));
        }
        if limits.max_label_value_length > 0 && v.len() > limits.max_label_value_length {
            return Err(IngestError::new(
                Reason::LabelValueTooLong,
                format!(
                    "profile with labels '{}' has label value too long: '{}' ({} bytes, limit {})",
                    shown(),
                    abbreviated(v),
                    v.len(),
                    limits.max_label_value_length
                ),
            ));
        }
        if k.is_empty() {
            return Err(IngestError::new(
                Reason::InvalidLabels,
                format!(
                    "invalid labels '{}' with error: invalid label name ''",
                    shown()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// The Go CPU fixture, decoded with prost so tests can change it.
    fn go_cpu() -> pprof::Profile {
        let gz = std::fs::read(crate::fixtures::fixtures_dir().join("go/cpu.pb.gz"))
            .expect("the shared fixtures are beside the repository");
        let plain = crate::gzip::gunzip(&gz, 64 << 20, "fixture").unwrap();
        pprof::Profile::decode(plain.as_slice()).unwrap()
    }

    fn split(p: &pprof::Profile) -> Result<Option<SplitProfile>, IngestError> {
        let mut labels = Labels::default();
        labels.insert(names::METRIC_NAME, "process_cpu");
        // An hour and a half after the fixture's time.
        let input = SplitInput {
            labels,
            fallback_time_ns: 1_795_500_000_000_000_000,
            now_ns: 1_795_500_000_000_000_000,
        };
        split_proto(p, input, &Limits::default())
    }

    /// What a split keeps: each series' sample count and value sum.
    fn shape(s: &SplitProfile) -> Vec<(usize, i64)> {
        s.series
            .iter()
            .map(|series| {
                let sum = series
                    .samples
                    .iter()
                    .map(|&i| s.profile.sample(i as usize).unwrap().values[series.value_index])
                    .sum();
                (series.samples.len(), sum)
            })
            .collect()
    }

    /// Ids far apart (not 1..=n, so the checks take their map path) split
    /// exactly as the same profile numbered densely.
    #[test]
    fn sparse_ids_split_as_dense_ones() {
        let dense = go_cpu();
        let want = shape(&split(&dense).unwrap().unwrap());
        assert!(!want.is_empty());
        let mut sparse = dense.clone();
        let far = |id: u64| id * (1 << 30) + 7;
        for f in &mut sparse.function {
            f.id = far(f.id);
        }
        for l in &mut sparse.location {
            l.id = far(l.id);
            for line in &mut l.line {
                line.function_id = far(line.function_id);
            }
        }
        for s in &mut sparse.sample {
            for id in &mut s.location_id {
                *id = far(*id);
            }
        }
        assert_eq!(shape(&split(&sparse).unwrap().unwrap()), want);
    }

    /// References to ids the profile does not hold are refused, dense or
    /// sparse, with the id named.
    #[test]
    fn unknown_locations_and_functions_are_refused() {
        let p = go_cpu();
        let max_loc = p.location.iter().map(|l| l.id).max().unwrap();
        let max_fn = p.function.iter().map(|f| f.id).max().unwrap();
        for unknown in [max_loc + 1, max_loc + 100, 1 << 40, u64::MAX] {
            let mut bad = p.clone();
            bad.sample[3].location_id[0] = unknown;
            let err = split(&bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("unknown location id {unknown}")),
                "{err}"
            );
        }
        for unknown in [max_fn + 1, 1 << 40] {
            let mut bad = p.clone();
            bad.location[5].line[0].function_id = unknown;
            let err = split(&bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("unknown function id {unknown}")),
                "{err}"
            );
        }
        let mut zero = p.clone();
        zero.sample[0].location_id[1] = 0;
        assert!(
            split(&zero)
                .unwrap_err()
                .to_string()
                .contains("location id is 0")
        );
    }

    #[test]
    fn a_location_with_more_inlined_lines_than_a_stack_may_have_is_refused() {
        let mut p = go_cpu();
        let line = p.location[0].line[0];
        let depth = Limits::default().max_profile_stacktrace_depth;
        p.location[0].line = vec![line; depth];
        assert!(split(&p).is_ok(), "as many lines as the depth limit pass");
        p.location[0].line.push(line);
        let e = split(&p).expect_err("one more is refused");
        assert_eq!(e.reason, Reason::MalformedProfile);
        assert!(e.message.contains("inlined frames"), "{}", e.message);
    }

    #[test]
    fn times_are_kept_within_the_calendar() {
        let now = 1_700_000_000_000_000_000;
        let at = |time: i64, fallback: i64| {
            let mut p = go_cpu();
            p.time_nanos = time;
            let mut labels = Labels::default();
            labels.insert(names::METRIC_NAME, "process_cpu");
            let input = SplitInput {
                labels,
                fallback_time_ns: fallback,
                now_ns: now,
            };
            split_proto(&p, input, &Limits::default()).map(|s| s.map(|s| s.timestamp_ns))
        };
        let hour = 3_600 * 1_000_000_000;
        assert_eq!(at(now - hour, now).ok(), Some(Some(now - hour)));
        // Missing: the request's time, or now when that is none either.
        assert_eq!(at(0, now - hour).ok(), Some(Some(now - hour)));
        assert_eq!(at(i64::MIN, i64::MIN).ok(), Some(Some(now)));
        assert_eq!(at(-5, -9_000_000_000_000_000_000).ok(), Some(Some(now)));
        // A day ahead of the clock passes; past it, refused.
        assert_eq!(at(now + 23 * hour, now).ok(), Some(Some(now + 23 * hour)));
        let e = at(i64::MAX, now).expect_err("year 2262");
        assert_eq!(e.reason, Reason::NotInIngestionWindow);
    }
}
