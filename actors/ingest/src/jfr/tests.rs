//! JFR reader tests: `demo.jfr` against the JDK `jfr` tool's ground truth, a
//! synthetic recording covering both integer encodings, the pool chain and
//! multi-chunk files, and truncated or corrupted inputs (errors, no panics).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

use ignis_storage::proto::google::v1 as pprof;
use prost::Message;

use super::*;
use crate::error::{IngestError, Reason};
use crate::legacy::{IngestBody, IngestParams, LegacyFormat, MultipartParts, decode_legacy};

const TICK: i64 = 10_000_000; // 100 Hz

fn demo() -> Vec<u8> {
    let path = crate::fixtures::fixtures_dir().join("java/demo.jfr");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn truth() -> serde_json::Value {
    crate::fixtures::truth("java/demo")
}

fn opts() -> ConvertOptions<'static> {
    ConvertOptions {
        time_ns: 1_795_000_000_000_000_000,
        duration_ns: 20_000_000_000,
        sample_rate: 100,
        ..ConvertOptions::default()
    }
}

fn profile(p: &JfrProfiles, kind: Kind) -> &pprof::Profile {
    &p.profiles
        .iter()
        .find(|(k, _)| *k == kind)
        .unwrap_or_else(|| panic!("no {kind:?} profile"))
        .1
}

fn total(p: &pprof::Profile, column: usize) -> i64 {
    p.sample.iter().map(|s| s.value[column]).sum()
}

/// Frame names of a sample, leaf first.
fn frames(p: &pprof::Profile, s: &pprof::Sample) -> Vec<String> {
    s.location_id
        .iter()
        .map(|id| {
            let loc = &p.location[*id as usize - 1];
            let f = &p.function[loc.line[0].function_id as usize - 1];
            p.string_table[f.name as usize].clone()
        })
        .collect()
}

/// Self value per leaf function.
fn self_values(p: &pprof::Profile, column: usize) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for s in &p.sample {
        if let Some(leaf) = frames(p, s).into_iter().next() {
            *out.entry(leaf).or_default() += s.value[column];
        }
    }
    out
}

/// Total value per function, counting a function once per stack.
fn total_values(p: &pprof::Profile, column: usize) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for s in &p.sample {
        for f in frames(p, s).into_iter().collect::<BTreeSet<_>>() {
            *out.entry(f).or_default() += s.value[column];
        }
    }
    out
}

fn pairs(v: &serde_json::Value) -> Vec<(String, i64)> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e[0].as_str().expect("name").to_string(),
                e[1].as_i64().expect("n"),
            )
        })
        .collect()
}

#[test]
fn jfr_demo_matches_the_jdk_ground_truth() {
    let t = truth();
    let p = convert(&demo(), &opts()).expect("demo.jfr parses");
    assert_eq!(p.chunks, 1);
    assert_eq!(p.jfr_event, None);

    // Every event type the JDK's `jfr summary` counts, with the same count.
    let want: BTreeMap<String, u64> = t["all_event_counts"]
        .as_object()
        .expect("all_event_counts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(p.event_counts, want);
    assert_eq!(p.event_counts["jdk.ExecutionSample"], 1501);
    assert_eq!(p.event_counts["jdk.ObjectAllocationSample"], 5614);
    assert_eq!(p.event_counts["jdk.JavaMonitorEnter"], 1755);
    assert!(!p.event_counts.contains_key("jdk.ObjectAllocationInNewTLAB"));

    // Only the kinds that had events.
    let kinds: Vec<Kind> = p.profiles.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [Kind::Cpu, Kind::AllocSample, Kind::Lock]);

    // CPU: 1 501 samples of 10 ms; top self and top total as `jfr print` shows them.
    let cpu = profile(&p, Kind::Cpu);
    let ex = &t["execution_sample"];
    assert_eq!(total(cpu, 0), 1501 * TICK);
    assert_eq!(ex["events"].as_i64(), Some(1501));
    let selfs = self_values(cpu, 0);
    let top = pairs(&ex["top_self"]);
    assert_eq!(top[0], ("JfrDemo.lockWaiter".to_string(), 400));
    assert_eq!(top[1], ("java/util/Arrays.copyOf".to_string(), 400));
    assert_eq!(top[2], ("JfrDemo.fib".to_string(), 181));
    for (name, n) in top {
        assert_eq!(selfs.get(&name), Some(&(n * TICK)), "self of {name}");
    }
    let totals = total_values(cpu, 0);
    for (name, n) in pairs(&ex["top_total"]) {
        assert_eq!(totals.get(&name), Some(&(n * TICK)), "total of {name}");
    }
    let stacks: BTreeSet<Vec<String>> = cpu.sample.iter().map(|s| frames(cpu, s)).collect();
    assert_eq!(
        stacks.len() as i64,
        ex["distinct_stacks_depth64"].as_i64().unwrap_or(-1)
    );

    // Allocation samples: count and weight.
    let alloc = profile(&p, Kind::AllocSample);
    let oas = &t["object_allocation_sample"];
    assert_eq!(total(alloc, 0), oas["events"].as_i64().unwrap_or(-1));
    assert_eq!(
        total(alloc, 1),
        oas["weight_sum_bytes"].as_i64().unwrap_or(-1)
    );
    assert_eq!((total(alloc, 0), total(alloc, 1)), (5614, 192_603_969_136));
    // Leaf frames per `jfr print --json --events jdk.ObjectAllocationSample`.
    assert_eq!(self_values(alloc, 0)["JfrDemo.allocWork"], 5072);
    assert_eq!(self_values(alloc, 1)["JfrDemo.allocWork"], 186_462_540_904);

    // Monitor enter: count and duration (ns).
    let lock = profile(&p, Kind::Lock);
    let jme = &t["java_monitor_enter"];
    assert_eq!(total(lock, 0), jme["events"].as_i64().unwrap_or(-1));
    assert_eq!(
        total(lock, 1),
        jme["duration_sum_ns"].as_i64().unwrap_or(-1)
    );
    assert_eq!((total(lock, 0), total(lock, 1)), (1755, 30_107_294_502));
    // Leaf frames per `jfr print --json --events jdk.JavaMonitorEnter`.
    let (count, delay) = (self_values(lock, 0), self_values(lock, 1));
    assert_eq!(
        (count["JfrDemo.lockWaiter"], delay["JfrDemo.lockWaiter"]),
        (1577, 26_044_549_050)
    );
    assert_eq!(
        (count["JfrDemo.lockHolder"], delay["JfrDemo.lockHolder"]),
        (178, 4_062_745_452)
    );

    for (_, p) in &p.profiles {
        assert_eq!(p.time_nanos, opts().time_ns);
        assert_eq!(p.duration_nanos, opts().duration_ns);
    }
}

fn params(query: &str) -> IngestParams {
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    IngestParams::from_query(&pairs)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

const NOW: i64 = 1_795_000_100_000_000_000;

#[test]
fn jfr_ingest_splits_into_canonical_series() {
    let p = params(
        "name=java.app{env=test}&from=1795000000&until=1795000010&spyName=javaspy&format=jfr",
    );
    let limits = Limits::default();
    let multipart = IngestBody::Multipart(MultipartParts {
        jfr: Some(gzip(&demo())),
        ..Default::default()
    });
    let split = decode_legacy(&p, LegacyFormat::Jfr, multipart, &limits, NOW).expect("multipart");
    let raw =
        decode_legacy(&p, LegacyFormat::Jfr, IngestBody::Raw(demo()), &limits, NOW).expect("raw");
    for split in [split, raw] {
        assert_eq!(split.len(), 3);
        let mut got = BTreeMap::new();
        for sp in &split {
            assert_eq!(sp.timestamp_ns, 1_795_000_000_000_000_000);
            assert_eq!(sp.profile.duration_nanos(), 10_000_000_000);
            for s in &sp.series {
                let l = &s.labels;
                assert_eq!(l.get("service_name"), Some("java.app"));
                assert_eq!(l.get("env"), Some("test"));
                assert_eq!(l.get("pyroscope_spy"), Some("javaspy"));
                assert_eq!(l.get("jfr_event"), None);
                assert_eq!(l.get("__delta__"), None);
                let sum: i64 = s
                    .samples
                    .iter()
                    .map(|&i| sp.profile.sample(i as usize).unwrap().values[s.value_index])
                    .sum();
                got.insert(l.get("__profile_type__").unwrap_or("").to_string(), sum);
            }
        }
        let want: BTreeMap<String, i64> = [
            ("process_cpu:cpu:nanoseconds:cpu:nanoseconds", 1501 * TICK),
            ("memory:alloc_sample_objects:count:space:bytes", 5614),
            (
                "memory:alloc_sample_bytes:bytes:space:bytes",
                192_603_969_136,
            ),
            ("mutex:contentions:count:mutex:count", 1755),
            ("mutex:delay:nanoseconds:mutex:count", 30_107_294_502),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(got, want);
    }

    // sampleRate sets the cpu period; a given service_name keeps the app as app_name.
    let p = params("name=java.app{service_name=svc}&sampleRate=50&format=jfr");
    let split =
        decode_legacy(&p, LegacyFormat::Jfr, IngestBody::Raw(demo()), &limits, NOW).expect("raw");
    let cpu = split
        .iter()
        .flat_map(|sp| sp.series.iter().map(move |s| (sp, s)))
        .find(|(_, s)| s.labels.get("__name__") == Some("process_cpu"))
        .expect("cpu series");
    assert_eq!(cpu.1.labels.get("service_name"), Some("svc"));
    assert_eq!(cpu.1.labels.get("app_name"), Some("java.app"));
    assert_eq!(total(&cpu.0.profile.to_proto(), 0), 1501 * 20_000_000);
}

#[test]
fn jfr_ingest_refuses_bad_uploads_with_4xx_reasons() {
    let p = params("name=java.app&format=jfr");
    let limits = Limits::default();
    let err = |body| decode_legacy(&p, LegacyFormat::Jfr, body, &limits, NOW).unwrap_err();

    let e = err(IngestBody::Multipart(MultipartParts::default()));
    assert!(e.message.contains("jfr field is required"), "{e}");
    let e = err(IngestBody::Raw(Vec::new()));
    assert_eq!(e.reason, Reason::MalformedProfile);
    let e = err(IngestBody::Raw(b"x".to_vec()));
    assert_eq!(e.reason, Reason::MalformedProfile);
    assert!(e.message.contains("JFR"), "{e}");
    let mut first_byte = demo();
    first_byte[0] ^= 0xff;
    let e = err(IngestBody::Raw(first_byte));
    assert!(e.message.contains("bad magic"), "{e}");
    let e = err(IngestBody::Raw(gzip(b"not a recording")));
    assert_eq!(e.reason, Reason::MalformedProfile);
    let e = err(IngestBody::Multipart(MultipartParts {
        jfr: Some(demo()),
        labels: Some(vec![0xff, 0xff, 0xff]),
        ..Default::default()
    }));
    assert!(e.message.contains("labels"), "{e}");

    let small = Limits {
        max_profile_size_bytes: 1 << 20,
        ..Limits::default()
    };
    for body in [demo(), gzip(&demo())] {
        let e =
            decode_legacy(&p, LegacyFormat::Jfr, IngestBody::Raw(body), &small, NOW).unwrap_err();
        assert_eq!(e.reason, Reason::ProfileSizeLimit, "{e}");
    }
    let few = Limits {
        max_profile_stacktrace_samples: 5,
        ..Limits::default()
    };
    let e = decode_legacy(&p, LegacyFormat::Jfr, IngestBody::Raw(demo()), &few, NOW).unwrap_err();
    assert_eq!(e.reason, Reason::SamplesLimit, "{e}");
}

#[test]
fn jfr_demo_twice_is_two_chunks() {
    let one = demo();
    let two = [one.clone(), one].concat();
    let p = convert(&two, &opts()).expect("two chunks");
    assert_eq!(p.chunks, 2);
    assert_eq!(p.event_counts["jdk.ExecutionSample"], 3002);
    assert_eq!(total(profile(&p, Kind::Cpu), 0), 3002 * TICK);
    assert_eq!(
        total(profile(&p, Kind::AllocSample), 1),
        2 * 192_603_969_136
    );
    assert_eq!(total(profile(&p, Kind::Lock), 1), 2 * 30_107_294_502);
    // Same frames in both chunks: the stacks merge.
    let single = convert(&demo(), &opts()).expect("one chunk");
    assert_eq!(
        profile(&p, Kind::Cpu).sample.len(),
        profile(&single, Kind::Cpu).sample.len()
    );
}

/// A tiny xorshift generator, so the corruption tests are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sets the chunk size in the header to the data's length, so a truncated
/// chunk is read as far as it goes instead of failing at the header.
fn claim_whole(data: &mut [u8]) {
    if data.len() >= 16 {
        let n = data.len() as i64;
        data[8..16].copy_from_slice(&n.to_be_bytes());
    }
}

#[test]
fn jfr_demo_truncated_or_flipped_never_panics() {
    let data = demo();
    let mut lengths: Vec<usize> = (0..data.len()).step_by(4093).collect();
    lengths.extend([
        1,
        3,
        4,
        67,
        68,
        69,
        8111,
        8112,
        8200,
        data.len() - 96,
        data.len() - 1,
    ]);
    for len in lengths {
        assert!(
            convert(&data[..len], &opts()).is_err(),
            "truncated to {len}"
        );
        let mut patched = data[..len].to_vec();
        claim_whole(&mut patched);
        assert!(
            convert(&patched, &opts()).is_err(),
            "truncated to {len}, size patched"
        );
    }
    // Random flips, biased to the metadata and the newest checkpoint.
    let mut rng = Rng(0x5eed_1f12);
    let hot = [8111..8111 + 20_000, data.len() - 96..data.len(), 0..68];
    for _ in 0..24 {
        let mut d = data.clone();
        for _ in 0..1 + rng.below(4) {
            let at = match rng.below(4) {
                3 => rng.below(d.len()),
                h => {
                    let r = &hot[h];
                    r.start + rng.below(r.len())
                }
            };
            d[at] ^= 1 << rng.below(8) | (rng.below(2) as u8) << 7;
        }
        let _ = convert(&d, &opts()).map_err(|e| e.to_string());
    }
}

/// Writes JFR the way the JDK does, to build small recordings for tests.
struct Writer {
    buf: Vec<u8>,
    compressed: bool,
}

impl Writer {
    fn new(compressed: bool) -> Self {
        Self {
            buf: Vec::new(),
            compressed,
        }
    }

    fn byte(&mut self, b: u8) -> &mut Self {
        self.buf.push(b);
        self
    }

    fn varint(&mut self, mut v: u64) -> &mut Self {
        for _ in 0..8 {
            if v < 0x80 {
                return self.byte(v as u8);
            }
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8)
    }

    fn long(&mut self, v: i64) -> &mut Self {
        if self.compressed {
            self.varint(v as u64)
        } else {
            self.buf.extend_from_slice(&v.to_be_bytes());
            self
        }
    }

    fn int(&mut self, v: i32) -> &mut Self {
        if self.compressed {
            self.varint(u64::from(v as u32))
        } else {
            self.buf.extend_from_slice(&v.to_be_bytes());
            self
        }
    }

    fn utf8(&mut self, s: &str) -> &mut Self {
        self.byte(3).int(s.len() as i32);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    fn latin1(&mut self, s: &str) -> &mut Self {
        self.byte(5).int(s.len() as i32);
        self.buf.extend(s.chars().map(|c| c as u8));
        self
    }

    fn chars(&mut self, s: &str) -> &mut Self {
        let units: Vec<u16> = s.encode_utf16().collect();
        self.byte(4).int(units.len() as i32);
        for u in units {
            if self.compressed {
                self.varint(u64::from(u));
            } else {
                self.buf.extend_from_slice(&u.to_be_bytes());
            }
        }
        self
    }

    fn pooled_string(&mut self, key: i64) -> &mut Self {
        self.byte(2).long(key)
    }

    /// Appends `body` as an event, with the JDK's padded 4-byte size.
    fn event(&mut self, body: Writer) -> usize {
        let at = self.buf.len();
        let size = body.buf.len() as u32 + 4;
        if self.compressed {
            for i in 0..3 {
                self.buf.push((size >> (7 * i)) as u8 & 0x7f | 0x80);
            }
            self.buf.push((size >> 21) as u8 & 0x7f);
        } else {
            self.buf.extend_from_slice(&size.to_be_bytes());
        }
        self.buf.extend_from_slice(&body.buf);
        at
    }

    fn sub(&self) -> Writer {
        Writer::new(self.compressed)
    }
}

/// A metadata element for the synthetic recording.
struct El(&'static str, Vec<(&'static str, String)>, Vec<El>);

fn class(id: u64, name: &'static str, fields: Vec<El>) -> El {
    El(
        "class",
        vec![("id", id.to_string()), ("name", name.into())],
        fields,
    )
}

fn field(name: &'static str, class: u64, pool: bool, array: bool) -> El {
    let mut attrs = vec![("name", name.to_string()), ("class", class.to_string())];
    if pool {
        attrs.push(("constantPool", "true".into()));
    }
    if array {
        attrs.push(("dimension", "1".into()));
    }
    let annotation = El(
        "annotation",
        vec![("class", "999".into()), ("value", "x".into())],
        vec![],
    );
    El("field", attrs, vec![annotation])
}

fn write_element(w: &mut Writer, e: &El, strings: &mut Vec<String>) {
    let mut idx = |s: &str| {
        let i = strings.iter().position(|x| x == s).unwrap_or_else(|| {
            strings.push(s.to_string());
            strings.len() - 1
        });
        i as i32
    };
    let name = idx(e.0);
    let attrs: Vec<(i32, i32)> = e.1.iter().map(|(k, v)| (idx(k), idx(v))).collect();
    w.int(name).int(attrs.len() as i32);
    for (k, v) in attrs {
        w.int(k).int(v);
    }
    w.int(e.2.len() as i32);
    for c in &e.2 {
        write_element(w, c, strings);
    }
}

const LONG: u64 = 1;
const INT: u64 = 2;
const BOOLEAN: u64 = 3;
const STRING: u64 = 4;
const SYMBOL: u64 = 5;
const CLASS: u64 = 6;
const METHOD: u64 = 7;
const FRAME: u64 = 8;
const STACK: u64 = 9;
const STATE: u64 = 10;
const FRAME_TYPE: u64 = 11;
const EXECUTION: u64 = 20;
const TLAB: u64 = 21;
const PARK: u64 = 22;
const SETTING: u64 = 23;
const OTHER: u64 = 24;

fn metadata_root() -> El {
    let start = || field("startTime", LONG, false, false);
    let classes = vec![
        class(LONG, "long", vec![]),
        class(INT, "int", vec![]),
        class(BOOLEAN, "boolean", vec![]),
        class(STRING, "java.lang.String", vec![]),
        class(
            SYMBOL,
            "jdk.types.Symbol",
            vec![field("string", STRING, false, false)],
        ),
        class(
            CLASS,
            "java.lang.Class",
            vec![field("name", SYMBOL, true, false)],
        ),
        class(
            METHOD,
            "jdk.types.Method",
            vec![
                field("type", CLASS, true, false),
                field("name", SYMBOL, true, false),
            ],
        ),
        class(
            FRAME,
            "jdk.types.StackFrame",
            vec![
                field("method", METHOD, true, false),
                field("lineNumber", INT, false, false),
            ],
        ),
        class(
            STACK,
            "jdk.types.StackTrace",
            vec![
                field("truncated", BOOLEAN, false, false),
                field("frames", FRAME, false, true),
            ],
        ),
        class(
            STATE,
            "jdk.types.ThreadState",
            vec![field("name", STRING, false, false)],
        ),
        class(
            FRAME_TYPE,
            "jdk.types.FrameType",
            vec![field("description", STRING, false, false)],
        ),
        El(
            "class",
            vec![
                ("id", EXECUTION.to_string()),
                ("name", "jdk.ExecutionSample".into()),
                ("superType", "jdk.jfr.Event".into()),
            ],
            vec![
                start(),
                field("stackTrace", STACK, true, false),
                field("state", STATE, true, false),
                field("contextId", LONG, false, false),
                El(
                    "setting",
                    vec![("name", "period".into()), ("class", "999".into())],
                    vec![],
                ),
            ],
        ),
        class(
            TLAB,
            "jdk.ObjectAllocationInNewTLAB",
            vec![
                start(),
                field("stackTrace", STACK, true, false),
                field("tlabSize", LONG, false, false),
            ],
        ),
        class(
            PARK,
            "jdk.ThreadPark",
            vec![
                start(),
                field("duration", LONG, false, false),
                field("stackTrace", STACK, true, false),
            ],
        ),
        class(
            SETTING,
            "jdk.ActiveSetting",
            vec![
                start(),
                field("name", STRING, false, false),
                field("value", STRING, false, false),
            ],
        ),
        class(
            OTHER,
            "x.Other",
            vec![start(), field("data", INT, false, true)],
        ),
    ];
    El(
        "root",
        vec![],
        vec![
            El("metadata", vec![], classes),
            El("region", vec![("locale", "en_US".into())], vec![]),
        ],
    )
}

/// Writes a one-chunk recording: the header, the metadata of `root`, then
/// whatever `body` writes; `body` returns the offset of the newest checkpoint.
fn chunk_with(compressed: bool, root: &El, body: impl FnOnce(&mut Writer) -> usize) -> Vec<u8> {
    let mut w = Writer::new(compressed);
    w.buf.resize(chunk::HEADER_SIZE, 0);
    let mut strings = Vec::new();
    let mut tree = w.sub();
    write_element(&mut tree, root, &mut strings);
    let mut meta = w.sub();
    meta.long(0)
        .long(0)
        .long(0)
        .long(1)
        .int(strings.len() as i32);
    for s in &strings {
        meta.utf8(s);
    }
    meta.buf.extend_from_slice(&tree.buf);
    let metadata_at = w.event(meta);
    let cp_at = body(&mut w);
    let size = w.buf.len() as i64;
    let mut h = b"FLR\0".to_vec();
    h.extend_from_slice(&2u16.to_be_bytes());
    h.extend_from_slice(&1u16.to_be_bytes());
    for v in [
        size,
        cp_at as i64,
        metadata_at as i64,
        1,
        2,
        3,
        2_000_000_000,
    ] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h.extend_from_slice(&u32::from(compressed).to_be_bytes());
    w.buf[..chunk::HEADER_SIZE].copy_from_slice(&h);
    w.buf
}

/// A checkpoint header: type, start, duration, delta, kind, pool count.
fn checkpoint(w: &Writer, delta: i64, pools: i32) -> Writer {
    let mut cp = w.sub();
    cp.long(1).long(0).long(0).long(delta).byte(0).int(pools);
    cp
}

/// A one-chunk recording: metadata, a first checkpoint (strings, symbols,
/// classes), events, then the newest checkpoint (methods, stacks, states,
/// frame types) whose delta points back to the first.
fn synthetic(compressed: bool) -> Vec<u8> {
    chunk_with(compressed, &metadata_root(), |w| {
        let mut cp = checkpoint(w, 0, 3);
        cp.long(STRING as i64).int(1).long(1).utf8("STATE_SLEEPING");
        cp.long(SYMBOL as i64).int(5);
        cp.long(1).latin1("com/example/App");
        cp.long(2).chars("java/lang/Thread");
        cp.long(3).utf8("work");
        cp.long(4).utf8("run");
        cp.long(5).pooled_string(1);
        cp.long(CLASS as i64).int(2).long(1).long(1).long(2).long(2);
        let first_cp = w.event(cp);

        let sample = |w: &Writer, stack: i64, state: i64, ctx: i64| {
            let mut e = w.sub();
            e.long(EXECUTION as i64)
                .long(100)
                .long(stack)
                .long(state)
                .long(ctx);
            e
        };
        for (stack, state, ctx) in [(1, 1, 7), (1, 1, 7), (2, 2, 0), (42, 1, 0)] {
            // Stack 42 does not exist: that sample is ignored.
            let e = sample(w, stack, state, ctx);
            w.event(e);
        }
        for (stack, size) in [(1, 100), (2, 200)] {
            let mut e = w.sub();
            e.long(TLAB as i64).long(100).long(stack).long(size);
            w.event(e);
        }
        let mut e = w.sub();
        e.long(PARK as i64).long(100).long(3000).long(3);
        w.event(e);
        let mut e = w.sub();
        e.long(OTHER as i64).long(100).int(3).int(1).int(2).int(3);
        w.event(e);
        // The `event` setting comes after the samples: it still applies to them.
        let mut e = w.sub();
        e.long(SETTING as i64).long(100).utf8("event").utf8("wall");
        w.event(e);

        let cp_at = w.buf.len();
        let mut cp = checkpoint(w, first_cp as i64 - cp_at as i64, 4);
        cp.long(METHOD as i64).int(3);
        cp.long(1).long(1).long(3); // com/example/App.work
        cp.long(2).long(2).long(4); // java/lang/Thread.run
        cp.long(3).long(1).long(5); // com/example/App.STATE_SLEEPING (a pooled name)
        cp.long(STACK as i64).int(3);
        cp.long(1).byte(0).int(2).long(1).int(10).long(2).int(5);
        cp.long(2).byte(1).int(2).long(3).int(20).long(2).int(5);
        cp.long(3).byte(0).int(2).long(99).int(1).long(2).int(5); // method 99 is unknown
        cp.long(STATE as i64).int(2);
        cp.long(1).utf8("STATE_RUNNABLE");
        cp.long(2).pooled_string(1);
        cp.long(FRAME_TYPE as i64)
            .int(1)
            .long(1)
            .utf8("Interpreted");
        w.event(cp)
    })
}

fn check_synthetic(p: &JfrProfiles, chunks: i64) {
    assert_eq!(p.jfr_event.as_deref(), Some("wall"));
    let kinds: Vec<Kind> = p.profiles.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            Kind::Cpu,
            Kind::Wall,
            Kind::AllocInNewTlab,
            Kind::ThreadPark
        ]
    );
    let work = "com/example/App.work".to_string();
    let run = "java/lang/Thread.run".to_string();
    let sleep = "com/example/App.STATE_SLEEPING".to_string();

    let cpu = profile(p, Kind::Cpu);
    assert_eq!(
        total(cpu, 0),
        chunks * 2 * TICK,
        "the sleeping sample is not cpu"
    );
    assert_eq!(cpu.sample.len(), 1);
    assert_eq!(frames(cpu, &cpu.sample[0]), [work.clone(), run.clone()]);
    let line = |p: &pprof::Profile, id: u64| p.location[id as usize - 1].line[0].line;
    assert_eq!(line(cpu, cpu.sample[0].location_id[0]), 10);

    let wall = profile(p, Kind::Wall);
    assert_eq!(total(wall, 0), chunks * 3 * TICK);
    assert_eq!(self_values(wall, 0)[&sleep], chunks * TICK);

    let tlab = profile(p, Kind::AllocInNewTlab);
    assert_eq!((total(tlab, 0), total(tlab, 1)), (chunks * 2, chunks * 300));
    assert_eq!(self_values(tlab, 1)[&work], chunks * 100);

    let park = profile(p, Kind::ThreadPark);
    // 3 000 ticks at 2 GHz.
    assert_eq!((total(park, 0), total(park, 1)), (chunks, chunks * 1500));
    assert_eq!(frames(park, &park.sample[0]), [run]);

    let counts: Vec<(&str, u64)> = p
        .event_counts
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let n = chunks as u64;
    assert_eq!(
        counts,
        [
            ("jdk.ActiveSetting", n),
            ("jdk.CheckPoint", 2 * n),
            ("jdk.ExecutionSample", 4 * n),
            ("jdk.Metadata", n),
            ("jdk.ObjectAllocationInNewTLAB", 2 * n),
            ("jdk.ThreadPark", n),
            ("x.Other", n),
        ]
    );
}

#[test]
fn jfr_synthetic_recordings_in_both_integer_encodings() {
    for compressed in [true, false] {
        let data = synthetic(compressed);
        let p = convert(&data, &opts()).unwrap_or_else(|e| panic!("compressed={compressed}: {e}"));
        assert_eq!(p.chunks, 1);
        check_synthetic(&p, 1);
    }
    // Chunks in different encodings, one after the other.
    let both = [synthetic(true), synthetic(false), synthetic(true)].concat();
    let p = convert(&both, &opts()).expect("three chunks");
    assert_eq!(p.chunks, 3);
    check_synthetic(&p, 3);
}

#[test]
fn jfr_context_labels_become_sample_labels() {
    let snapshot = LabelsSnapshot {
        contexts: [(
            7,
            labels::Context {
                labels: [(1, 2)].into(),
            },
        )]
        .into(),
        strings: [(1, "thread_name".to_string()), (2, "worker-1".to_string())].into(),
    };
    let o = ConvertOptions {
        labels: Some(&snapshot),
        ..opts()
    };
    let p = convert(&synthetic(true), &o).expect("parses");
    let cpu = profile(&p, Kind::Cpu);
    let l = &cpu.sample[0].label;
    assert_eq!(l.len(), 1);
    assert_eq!(cpu.string_table[l[0].key as usize], "thread_name");
    assert_eq!(cpu.string_table[l[0].str as usize], "worker-1");
    // Through the split, the label makes its own series.
    let upload = JfrUpload {
        app: "app",
        labels: Labels::new(),
        spy: "javaspy",
        from_ns: 1_795_000_000_000_000_000,
        until_ns: 1_795_000_010_000_000_000,
        sample_rate: 100,
        now_ns: NOW,
    };
    let split = decode_jfr(
        &synthetic(true),
        Some(&gzip(&snapshot.encode_to_vec())),
        upload,
        &Limits::default(),
    )
    .expect("ingest");
    let cpu: Vec<_> = split
        .iter()
        .flat_map(|sp| &sp.series)
        .filter(|s| s.labels.get("__name__") == Some("process_cpu"))
        .collect();
    assert_eq!(cpu.len(), 1);
    assert_eq!(cpu[0].labels.get("thread_name"), Some("worker-1"));
    assert_eq!(cpu[0].labels.get("jfr_event"), Some("wall"));
}

#[test]
fn jfr_synthetic_truncated_or_corrupted_never_panics() {
    for compressed in [true, false] {
        let data = synthetic(compressed);
        for len in 0..data.len() {
            assert!(
                convert(&data[..len], &opts()).is_err(),
                "truncated to {len}"
            );
            let mut d = data[..len].to_vec();
            claim_whole(&mut d);
            assert!(
                convert(&d, &opts()).is_err(),
                "truncated to {len}, size patched"
            );
        }
        for at in 0..data.len() {
            for v in [
                0x00,
                0xff,
                0x80,
                0x7f,
                data[at].wrapping_add(1),
                data[at] ^ 0x40,
            ] {
                let mut d = data.clone();
                d[at] = v;
                let _ = convert(&d, &opts()).map_err(|e| e.to_string());
            }
        }
        let mut rng = Rng(0xfeed ^ u64::from(compressed));
        for _ in 0..2000 {
            let mut d = data.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(d.len());
                d[at] = rng.next() as u8;
            }
            let _ = convert(&d, &opts()).map_err(|e| e.to_string());
        }
    }
}

fn err_of(data: &[u8]) -> String {
    match convert(data, &opts()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

fn empty_checkpoint(w: &mut Writer) -> usize {
    let cp = checkpoint(w, 0, 0);
    w.event(cp)
}

#[test]
fn jfr_hostile_structures_are_refused() {
    let root = |classes: Vec<El>| El("root", vec![], vec![El("metadata", vec![], classes)]);
    let long = || class(LONG, "long", vec![]);
    assert!(
        convert(
            &chunk_with(true, &root(vec![long()]), empty_checkpoint),
            &opts()
        )
        .is_ok()
    );

    // A struct that contains itself inline.
    let looped = root(vec![
        long(),
        class(30, "x.Loop", vec![field("next", 30, false, false)]),
    ]);
    let e = err_of(&chunk_with(true, &looped, empty_checkpoint));
    assert!(e.contains("nested too deeply"), "{e}");

    // A field of a type the metadata does not describe.
    let dangling = root(vec![class(30, "x.Bad", vec![field("x", 77, false, false)])]);
    assert!(err_of(&chunk_with(true, &dangling, empty_checkpoint)).contains("unknown type id 77"));

    // An element tree nested beyond reason.
    let mut deep = El("leaf", vec![], vec![]);
    for _ in 0..40 {
        deep = El("x", vec![], vec![deep]);
    }
    let e = err_of(&chunk_with(
        true,
        &root(vec![long(), deep]),
        empty_checkpoint,
    ));
    assert!(e.contains("nested too deeply"), "{e}");

    // Two checkpoints whose deltas point at each other (fixed-size integers,
    // so the first checkpoint's size, 41 bytes, is known up front).
    let e = err_of(&chunk_with(false, &root(vec![long()]), |w| {
        let a = checkpoint(w, 41, 0);
        let a = w.event(a);
        let b = checkpoint(w, -41, 0);
        let b = w.event(b);
        assert_eq!(b - a, 41);
        b
    }));
    assert!(e.contains("loops"), "{e}");

    // A delta leading outside the chunk, and offsets pointing at the wrong event.
    let e = err_of(&chunk_with(true, &root(vec![long()]), |w| {
        let cp = checkpoint(w, -100_000, 0);
        w.event(cp)
    }));
    assert!(e.contains("outside the chunk"), "{e}");
    let mut d = chunk_with(true, &root(vec![long()]), empty_checkpoint);
    let meta_at = d[24..32].to_vec();
    d[16..24].copy_from_slice(&meta_at);
    assert!(err_of(&d).contains("not 1"));
    let mut d = chunk_with(true, &root(vec![long()]), empty_checkpoint);
    let cp_at = d[16..24].to_vec();
    d[24..32].copy_from_slice(&cp_at);
    assert!(err_of(&d).contains("not 0"));

    // Counts far beyond the data: a pool, and the entries of a pool.
    let e = err_of(&chunk_with(true, &root(vec![long()]), |w| {
        let cp = checkpoint(w, 0, 1_000_000);
        w.event(cp)
    }));
    assert!(e.contains("exceeds"), "{e}");
    let e = err_of(&chunk_with(true, &root(vec![long()]), |w| {
        let mut cp = checkpoint(w, 0, 1);
        cp.long(LONG as i64).int(i32::MAX);
        w.event(cp)
    }));
    assert!(e.contains("exceeds"), "{e}");

    // An event with a huge array of field-less structs.
    let empties = root(vec![
        long(),
        class(31, "x.Empty", vec![]),
        class(
            EXECUTION,
            "jdk.ExecutionSample",
            vec![
                field("items", 31, false, true),
                field("stackTrace", LONG, true, false),
            ],
        ),
    ]);
    let e = err_of(&chunk_with(true, &empties, |w| {
        let mut e = w.sub();
        e.long(EXECUTION as i64).int(5000);
        e.buf.resize(e.buf.len() + 5000, 0);
        w.event(e);
        empty_checkpoint(w)
    }));
    assert!(e.contains("empty values"), "{e}");

    // An event whose type the metadata does not know.
    let e = err_of(&chunk_with(true, &root(vec![long()]), |w| {
        let mut e = w.sub();
        e.long(55).long(1);
        w.event(e);
        empty_checkpoint(w)
    }));
    assert!(e.contains("unknown type id 55"), "{e}");
}

#[test]
fn jfr_limits_apply_while_converting() {
    // Stacks keep their root-side frames, as the split would cut them.
    let cut = ConvertOptions {
        max_depth: 1,
        ..opts()
    };
    let p = convert(&synthetic(true), &cut).expect("parses");
    let cpu = profile(&p, Kind::Cpu);
    assert_eq!(frames(cpu, &cpu.sample[0]), ["java/lang/Thread.run"]);
    assert_eq!(total(cpu, 0), 2 * TICK);

    // Too many distinct samples fails early (the wall profile has two).
    let few = ConvertOptions {
        max_samples: 1,
        ..opts()
    };
    let e = convert(&synthetic(true), &few).unwrap_err();
    assert_eq!(
        e,
        JfrError::TooManySamples {
            profile: "wall",
            limit: 1
        }
    );
    assert_eq!(IngestError::from(e).reason, Reason::SamplesLimit);
}

#[test]
fn jfr_deep_stacks_cost_once_not_per_event() {
    // One stack of 100 000 frames, sampled 100 000 times: resolved once,
    // cut to the depth limit, then every event is a hash lookup.
    const N: i64 = 100_000;
    let data = chunk_with(true, &metadata_root(), |w| {
        let cp_at = w.buf.len();
        let mut cp = checkpoint(w, 0, 5);
        cp.long(SYMBOL as i64)
            .int(2)
            .long(1)
            .utf8("Deep")
            .long(2)
            .utf8("f");
        cp.long(CLASS as i64).int(1).long(1).long(1);
        cp.long(METHOD as i64).int(1).long(1).long(1).long(2);
        cp.long(STATE as i64).int(1).long(1).utf8("STATE_RUNNABLE");
        cp.long(STACK as i64).int(1).long(1).byte(0).int(N as i32);
        for line in 0..N {
            cp.long(1).int(line as i32);
        }
        w.event(cp);
        for _ in 0..N {
            let mut e = w.sub();
            e.long(EXECUTION as i64).long(1).long(1).long(1).long(0);
            w.event(e);
        }
        cp_at
    });
    let o = ConvertOptions {
        max_depth: 1000,
        max_samples: 16_000,
        ..opts()
    };
    let started = std::time::Instant::now();
    let p = convert(&data, &o).expect("parses");
    let cpu = profile(&p, Kind::Cpu);
    assert_eq!(total(cpu, 0), N * TICK);
    assert_eq!(cpu.sample.len(), 1);
    assert_eq!(cpu.sample[0].location_id.len(), 1000);
    assert_eq!(cpu.location.len(), 1000);
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}
