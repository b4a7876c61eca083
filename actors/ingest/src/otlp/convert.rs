//! One OTLP `Profile` and the request's dictionary → pprof profiles.
//!
//! Every reference into the dictionary is bounds-checked; a bad index is a
//! [`IngestError`] naming the table and the index. Each stack of the stack
//! table is resolved once (and cut to `max_profile_stacktrace_depth`), so the
//! work is bounded by the size of the request, whatever the samples repeat.

use std::collections::{BTreeMap, HashMap};

use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::opentelemetry::proto::common::v1::{AnyValue, any_value};
use ignis_storage::proto::opentelemetry::proto::profiles::v1development as otel;

use crate::error::{IngestError, Reason};
use crate::limits::Limits;

/// The sample attribute that names a sample's service (it splits a profile).
pub const SERVICE_NAME_ATTRIBUTE: &str = "service.name";
/// The location attribute that marks kernel frames.
const FRAME_TYPE_ATTRIBUTE: &str = "profile.frame.type";
/// The mapping attribute holding a GNU build id.
const BUILD_ID_ATTRIBUTE: &str = "process.executable.build_id.gnu";
/// The pprof sample labels a link's span id (16 hex digits) and trace id
/// (32 hex digits) become: the head stores them per sample.
pub use ignis_storage::head::{SPAN_ID_LABEL, TRACE_ID_LABEL};

/// One pprof made from (part of) an OTLP profile.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The `service.name` sample attribute of its samples, if they had one.
    pub sample_service: Option<String>,
    /// The metric name (`__name__`) Pyroscope gives this profile type.
    pub name: String,
    /// The profile, with ids starting at 1 and string 0 empty.
    pub profile: pprof::Profile,
}

/// Read access to the dictionary with every lookup checked.
#[derive(Debug, Clone, Copy)]
pub struct Dictionary<'a> {
    dict: &'a otel::ProfilesDictionary,
}

fn get<'a, T>(table: &'a [T], index: i32, what: &str) -> Result<&'a T, IngestError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or_else(|| {
            IngestError::malformed(format!(
                "{what} index {index} out of range (table has {} entries)",
                table.len()
            ))
        })
}

impl<'a> Dictionary<'a> {
    /// Wraps a request's dictionary.
    pub fn new(dict: &'a otel::ProfilesDictionary) -> Self {
        Self { dict }
    }

    /// Checks what the dictionary holds whether or not a sample uses it:
    /// every link's trace id is 16 bytes and span id 8 (or empty).
    pub fn validate(&self) -> Result<(), IngestError> {
        for (i, link) in self.dict.link_table.iter().enumerate() {
            let at = |e: IngestError| IngestError {
                message: format!("dictionary.link_table[{i}]: {}", e.message),
                ..e
            };
            id_hex(&link.trace_id, 16, "trace_id").map_err(at)?;
            id_hex(&link.span_id, 8, "span_id").map_err(at)?;
        }
        Ok(())
    }

    /// The string at `index` of the string table.
    pub fn string(&self, index: i32, what: &str) -> Result<&'a str, IngestError> {
        get(&self.dict.string_table, index, what).map(String::as_str)
    }

    /// The string value of an attribute value (`string_value`, or
    /// `string_value_strindex` resolved); other kinds give `None`, as
    /// Pyroscope keeps only string attributes.
    pub fn string_value(
        &self,
        value: Option<&'a AnyValue>,
    ) -> Result<Option<&'a str>, IngestError> {
        match value.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Ok(Some(s.as_str())),
            Some(any_value::Value::StringValueStrindex(i)) => {
                self.string(*i, "attribute value string").map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The key and string value of the attribute at `index` of the attribute table.
    fn attribute(&self, index: i32) -> Result<(&'a str, Option<&'a str>), IngestError> {
        let a = get(&self.dict.attribute_table, index, "attribute")?;
        let key = self.string(a.key_strindex, "attribute key string")?;
        Ok((key, self.string_value(a.value.as_ref())?))
    }

    /// The string value of attribute `key` among `indices`, if any.
    fn find_attribute(&self, indices: &[i32], key: &str) -> Result<Option<&'a str>, IngestError> {
        for &i in indices {
            let (k, v) = self.attribute(i)?;
            if k == key {
                return Ok(v);
            }
        }
        Ok(None)
    }
}

/// How sample values are turned into pprof values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// As sent.
    None,
    /// Sample counts times the period (eBPF `samples/count` with a cpu period).
    ByPeriod(i64),
}

/// Converts `src` into one pprof per distinct `service.name` sample attribute
/// (samples without it together), in a stable order.
pub fn convert_profile(
    src: &otel::Profile,
    dict: Dictionary<'_>,
    limits: &Limits,
) -> Result<Vec<Converted>, IngestError> {
    if limits.max_profile_stacktrace_samples > 0
        && src.samples.len() > limits.max_profile_stacktrace_samples
    {
        return Err(IngestError::new(
            Reason::SamplesLimit,
            format!(
                "the profile exceeds the samples count limit (max_profile_stacktrace_samples, actual: {}, limit: {})",
                src.samples.len(),
                limits.max_profile_stacktrace_samples
            ),
        ));
    }
    // Indexes nothing reads are still checked: a dictionary reference out
    // of range is a malformed export, wherever it is.
    for &i in &src.attribute_indices {
        get(&dict.dict.attribute_table, i, "profile attribute")?;
    }
    let header = Header::new(src, dict)?;
    let mut stacks = StackCache::default();
    let mut builders: BTreeMap<Option<&str>, Builder<'_>> = BTreeMap::new();
    for (i, sample) in src.samples.iter().enumerate() {
        let service = dict.find_attribute(&sample.attribute_indices, SERVICE_NAME_ATTRIBUTE)?;
        let builder = builders
            .entry(service.filter(|s| !s.is_empty()))
            .or_insert_with(|| Builder::new(&header, dict));
        builder
            .add_sample(sample, &header, &mut stacks, limits)
            .map_err(|e| IngestError {
                message: format!("sample {i}: {}", e.message),
                ..e
            })?;
    }
    let mut out = Vec::with_capacity(builders.len());
    for (service, builder) in builders {
        let profile = builder.finish();
        let size = prost::Message::encoded_len(&profile);
        if limits.max_profile_size_bytes > 0 && size > limits.max_profile_size_bytes {
            return Err(IngestError::new(
                Reason::ProfileSizeLimit,
                format!(
                    "uncompressed profile payload size exceeds limit of {} bytes (actual: {size})",
                    limits.max_profile_size_bytes
                ),
            ));
        }
        out.push(Converted {
            sample_service: service.map(str::to_string),
            name: header.name.clone(),
            profile,
        });
    }
    Ok(out)
}

/// What every pprof made from one OTLP profile shares.
#[derive(Debug)]
struct Header<'a> {
    sample_type: (&'a str, &'a str),
    period_type: Option<(&'a str, &'a str)>,
    period: i64,
    scale: Scale,
    name: String,
    time_nanos: i64,
    duration_nanos: i64,
}

impl<'a> Header<'a> {
    fn new(src: &otel::Profile, dict: Dictionary<'a>) -> Result<Self, IngestError> {
        let st = src
            .sample_type
            .as_ref()
            .ok_or_else(|| IngestError::malformed("profile has no sample type"))?;
        let sample_type = (
            dict.string(st.type_strindex, "sample type string")?,
            dict.string(st.unit_strindex, "sample unit string")?,
        );
        let period_type = match &src.period_type {
            Some(pt) => Some((
                dict.string(pt.type_strindex, "period type string")?,
                dict.string(pt.unit_strindex, "period unit string")?,
            )),
            None => None,
        };
        // Pyroscope names the profile from its type; a period only counts when set.
        let (pt, pu) = match period_type {
            Some(p) if src.period != 0 => p,
            _ => ("", ""),
        };
        let (sample_type, scale, name) = match (sample_type, pt, pu) {
            (("samples", "count"), "cpu", "nanoseconds") => (
                ("cpu", "nanoseconds"),
                Scale::ByPeriod(src.period),
                "process_cpu".to_string(),
            ),
            (("off_cpu", "nanoseconds"), "", "") => (sample_type, Scale::None, "off_cpu".into()),
            // Upstream takes the period type even when it is empty (and then
            // fails on the empty metric name); the sample type is used instead.
            (_, "", _) => (sample_type, Scale::None, sample_type.0.to_string()),
            (_, pt, _) => (sample_type, Scale::None, pt.to_string()),
        };
        let time_nanos = i64::try_from(src.time_unix_nano).map_err(|_| {
            IngestError::malformed(format!(
                "time_unix_nano {} out of range",
                src.time_unix_nano
            ))
        })?;
        let duration_nanos = i64::try_from(src.duration_nano).map_err(|_| {
            IngestError::malformed(format!("duration_nano {} out of range", src.duration_nano))
        })?;
        Ok(Self {
            sample_type,
            period_type,
            period: src.period,
            scale,
            name,
            time_nanos,
            duration_nanos,
        })
    }
}

/// Stacks already resolved: dictionary stack index → dictionary location
/// indexes, cut to the depth limit (root side kept).
#[derive(Debug, Default)]
struct StackCache {
    stacks: HashMap<i32, Vec<i32>>,
}

impl StackCache {
    fn get<'s>(
        &'s mut self,
        index: i32,
        dict: Dictionary<'_>,
        limits: &Limits,
    ) -> Result<&'s [i32], IngestError> {
        let stack = match self.stacks.entry(index) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let stack = get(&dict.dict.stack_table, index, "stack")?;
                let ids = &stack.location_indices;
                let depth = limits.max_profile_stacktrace_depth;
                let kept = if depth > 0 && ids.len() > depth {
                    &ids[ids.len() - depth..]
                } else {
                    &ids[..]
                };
                for &l in kept {
                    get(&dict.dict.location_table, l, "location")?;
                }
                e.insert(kept.to_vec())
            }
        };
        Ok(stack.as_slice())
    }
}

/// Builds one pprof, interning strings and giving ids to what samples reach.
struct Builder<'a> {
    dict: Dictionary<'a>,
    profile: pprof::Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<i32, u64>,
    locations: HashMap<i32, u64>,
    /// (dictionary mapping index, kernel copy) → pprof mapping id.
    mappings: HashMap<(i32, bool), u64>,
    first_timestamp: Option<u64>,
    last_timestamp: Option<u64>,
}

impl<'a> Builder<'a> {
    fn new(header: &Header<'a>, dict: Dictionary<'a>) -> Self {
        let mut b = Self {
            dict,
            profile: pprof::Profile::default(),
            strings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
            mappings: HashMap::new(),
            first_timestamp: None,
            last_timestamp: None,
        };
        b.add_str("");
        let st = pprof::ValueType {
            r#type: b.add_str(header.sample_type.0),
            unit: b.add_str(header.sample_type.1),
        };
        b.profile.default_sample_type = st.r#type;
        b.profile.sample_type = vec![st];
        b.profile.period_type = header.period_type.map(|(t, u)| pprof::ValueType {
            r#type: b.add_str(t),
            unit: b.add_str(u),
        });
        b.profile.period = header.period;
        b.profile.time_nanos = header.time_nanos;
        b.profile.duration_nanos = header.duration_nanos;
        b
    }

    fn add_str(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn add_sample(
        &mut self,
        sample: &otel::Sample,
        header: &Header<'_>,
        stacks: &mut StackCache,
        limits: &Limits,
    ) -> Result<(), IngestError> {
        // One value per event, or one event per timestamp when there are no values.
        let mut value = if sample.values.is_empty() {
            i64::try_from(sample.timestamps_unix_nano.len()).unwrap_or(i64::MAX)
        } else {
            sample
                .values
                .iter()
                .try_fold(0i64, |acc, &v| acc.checked_add(v))
                .ok_or_else(|| IngestError::malformed("sample values overflow"))?
        };
        if sample.values.is_empty() && sample.timestamps_unix_nano.is_empty() {
            return Err(IngestError::malformed(
                "sample has neither values nor timestamps",
            ));
        }
        if let Scale::ByPeriod(period) = header.scale {
            value = value
                .checked_mul(period)
                .ok_or_else(|| IngestError::malformed("sample value times period overflows"))?;
        }
        for &t in &sample.timestamps_unix_nano {
            self.first_timestamp = Some(self.first_timestamp.map_or(t, |f| f.min(t)));
            self.last_timestamp = Some(self.last_timestamp.map_or(t, |l| l.max(t)));
        }

        let mut labels = Vec::new();
        for &i in &sample.attribute_indices {
            let (key, value) = self.dict.attribute(i)?;
            if key == SERVICE_NAME_ATTRIBUTE || key.is_empty() {
                continue;
            }
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                labels.push(pprof::Label {
                    key: self.add_str(key),
                    str: self.add_str(v),
                    ..Default::default()
                });
            }
        }
        if sample.link_index != 0 {
            let link = get(&self.dict.dict.link_table, sample.link_index, "link")?;
            if let Some(span) = id_hex(&link.span_id, 8, "span_id")? {
                labels.push(pprof::Label {
                    key: self.add_str(SPAN_ID_LABEL),
                    str: self.add_str(&span),
                    ..Default::default()
                });
            }
            if let Some(trace) = id_hex(&link.trace_id, 16, "trace_id")? {
                labels.push(pprof::Label {
                    key: self.add_str(TRACE_ID_LABEL),
                    str: self.add_str(&trace),
                    ..Default::default()
                });
            }
        }

        let dict = self.dict;
        let stack = stacks.get(sample.stack_index, dict, limits)?;
        let mut location_id = Vec::with_capacity(stack.len());
        for &l in stack {
            location_id.push(self.location(l)?);
        }
        self.profile.sample.push(pprof::Sample {
            location_id,
            value: vec![value],
            label: labels,
        });
        Ok(())
    }

    fn location(&mut self, index: i32) -> Result<u64, IngestError> {
        if let Some(&id) = self.locations.get(&index) {
            return Ok(id);
        }
        let dict = self.dict;
        let loc = get(&dict.dict.location_table, index, "location")?;
        let kernel =
            dict.find_attribute(&loc.attribute_indices, FRAME_TYPE_ATTRIBUTE)? == Some("kernel");
        let mapping_id = self.mapping(loc.mapping_index, kernel)?;
        let mut lines = Vec::with_capacity(loc.lines.len());
        for line in &loc.lines {
            lines.push(pprof::Line {
                function_id: self.function(line.function_index)?,
                line: line.line,
            });
        }
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(pprof::Location {
            id,
            mapping_id,
            address: loc.address,
            line: lines,
            is_folded: false,
        });
        self.locations.insert(index, id);
        Ok(id)
    }

    fn function(&mut self, index: i32) -> Result<u64, IngestError> {
        if let Some(&id) = self.functions.get(&index) {
            return Ok(id);
        }
        let dict = self.dict;
        let f = get(&dict.dict.function_table, index, "function")?;
        let name = dict.string(f.name_strindex, "function name string")?;
        let system_name = dict.string(f.system_name_strindex, "function system name string")?;
        let filename = dict.string(f.filename_strindex, "function filename string")?;
        let id = self.profile.function.len() as u64 + 1;
        let function = pprof::Function {
            id,
            name: self.add_str(name),
            system_name: self.add_str(system_name),
            filename: self.add_str(filename),
            start_line: f.start_line,
        };
        self.profile.function.push(function);
        self.functions.insert(index, id);
        Ok(id)
    }

    /// The pprof mapping of dictionary mapping `index`; kernel frames get a
    /// copy whose file name starts with `[kernel]`, as upstream does.
    fn mapping(&mut self, index: i32, kernel: bool) -> Result<u64, IngestError> {
        if let Some(&id) = self.mappings.get(&(index, kernel)) {
            return Ok(id);
        }
        let dict = self.dict;
        let m = get(&dict.dict.mapping_table, index, "mapping")?;
        let filename = dict.string(m.filename_strindex, "mapping filename string")?;
        let filename = match (kernel, filename) {
            (false, f) => f.to_string(),
            (true, f) if f.starts_with("[kernel]") => f.to_string(),
            (true, "") => "[kernel]".to_string(),
            (true, f) => format!("[kernel] {f}"),
        };
        let build_id = dict
            .find_attribute(&m.attribute_indices, BUILD_ID_ATTRIBUTE)?
            .unwrap_or("");
        let id = self.profile.mapping.len() as u64 + 1;
        let mapping = pprof::Mapping {
            id,
            memory_start: m.memory_start,
            memory_limit: m.memory_limit,
            file_offset: m.file_offset,
            filename: self.add_str(&filename),
            build_id: self.add_str(build_id),
            ..Default::default()
        };
        self.profile.mapping.push(mapping);
        self.mappings.insert((index, kernel), id);
        Ok(id)
    }

    /// Sets the mapping symbol flags from the locations that use them, and
    /// the time from the sample timestamps when the profile has none.
    fn finish(mut self) -> pprof::Profile {
        let p = &mut self.profile;
        // (functions, filenames, line numbers, inline frames), all true until a
        // location of the mapping lacks them.
        let mut flags = vec![(true, true, true, true); p.mapping.len()];
        for loc in &p.location {
            let Some(f) = (loc.mapping_id as usize)
                .checked_sub(1)
                .and_then(|i| flags.get_mut(i))
            else {
                continue;
            };
            if loc.line.is_empty() {
                *f = (false, false, false, false);
                continue;
            }
            f.3 &= loc.line.len() > 1;
            for line in &loc.line {
                f.2 &= line.line > 0;
                let func = (line.function_id as usize)
                    .checked_sub(1)
                    .and_then(|i| p.function.get(i));
                f.0 &= func.is_some_and(|func| func.name != 0);
                f.1 &= func.is_some_and(|func| func.filename != 0);
            }
        }
        for (m, (functions, filenames, lines, inline)) in p.mapping.iter_mut().zip(flags) {
            m.has_functions = functions;
            m.has_filenames = filenames;
            m.has_line_numbers = lines;
            m.has_inline_frames = inline;
        }
        if p.time_nanos == 0
            && let Some(first) = self.first_timestamp.and_then(|t| i64::try_from(t).ok())
        {
            p.time_nanos = first;
        }
        if p.duration_nanos == 0
            && let (Some(first), Some(last)) = (self.first_timestamp, self.last_timestamp)
        {
            p.duration_nanos = i64::try_from(last - first).unwrap_or(0);
        }
        self.profile
    }
}

/// A trace or span id as lowercase hex; `None` when absent (empty or all
/// zeros, which OTLP defines as invalid), an error when its length is wrong.
fn id_hex(id: &[u8], len: usize, what: &str) -> Result<Option<String>, IngestError> {
    if id.is_empty() || id.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if id.len() != len {
        return Err(IngestError::malformed(format!(
            "link {what} must be {len} bytes, got {}",
            id.len()
        )));
    }
    let mut s = String::with_capacity(len * 2);
    for b in id {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Ok(Some(s))
}

const HEX: &[u8; 16] = b"0123456789abcdef";
