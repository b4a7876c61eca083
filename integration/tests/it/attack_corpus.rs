//! The attack corpus: hostile requests against every ingest and query
//! route, built from the fixtures (truncated, garbage and deep protobuf,
//! huge varints, invalid UTF-8, gzip bombs, label floods, overflowing
//! values and times, wrong content types, huge multipart parts, broken JFR
//! chunks, OTLP indexes out of range, hostile queries and tenant headers).

use anyhow::Result;
use ignis_integration::fixtures::{push_request, read_fixture};
use ignis_storage::proto::google::v1 as pprof;
use prost::Message;
use serde_json::{Value, json};

use crate::bad_input::{gzip, push_with};

/// What a hostile request may get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A 4xx.
    Refused,
    /// A 4xx, or a 2xx when what it holds is valid after all (a cut at a
    /// field boundary, random bytes that parse): never a 5xx.
    NotFailed,
    /// A 2xx: valid input that looks hostile (checked by its totals after).
    Stored,
    /// A gRPC-Web refusal: HTTP 200 whose trailers frame carries a
    /// `grpc-status` other than 0 (or a 4xx before the call starts).
    GrpcRefused,
}

/// One hostile request.
pub struct Attack {
    /// What it tries.
    pub name: String,
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Extra headers (a name may repeat).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// What it must get.
    pub expect: Expect,
}

const PUSH: &str = "/push.v1.PusherService/Push";
const OTLP: &str = "/v1development/profiles";
const QUERY: &str = "/querier.v1.QuerierService/";
/// The Go CPU fixture's profile type (and text uploads' at 100 Hz).
pub const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
/// Service of two folded stacks of i64::MAX each.
pub const SATURATED: &str = "attack.saturated";
/// Service of 20 000 equal `lines` stacks.
pub const LINES: &str = "attack.lines";

fn post(name: impl Into<String>, path: impl Into<String>, ct: &str, body: Vec<u8>) -> Attack {
    Attack {
        name: name.into(),
        method: "POST",
        path: path.into(),
        headers: if ct.is_empty() {
            vec![]
        } else {
            vec![("content-type", ct.to_string())]
        },
        body,
        expect: Expect::Refused,
    }
}

fn get(name: impl Into<String>, path: impl Into<String>) -> Attack {
    Attack {
        name: name.into(),
        method: "GET",
        path: path.into(),
        headers: vec![],
        body: vec![],
        expect: Expect::Refused,
    }
}

impl Attack {
    fn may_pass(mut self) -> Self {
        self.expect = Expect::NotFailed;
        self
    }

    fn stored(mut self) -> Self {
        self.expect = Expect::Stored;
        self
    }

    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A gzip stream that inflates to 1 GiB of zeros (1 024 members of 1 MiB)
/// in about a megabyte.
fn gzip_bomb() -> Vec<u8> {
    let member = gzip(&vec![0u8; 1 << 20]);
    member.repeat(1024)
}

fn varint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(v, &mut out);
    out
}

fn labels(service: &str) -> Vec<(String, String)> {
    vec![
        ("__name__".into(), "process_cpu".into()),
        ("service_name".into(), service.into()),
    ]
}

/// The Go CPU fixture, decoded.
pub fn go_cpu() -> Result<pprof::Profile> {
    let gz = read_fixture("go/cpu.pb.gz")?;
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut plain)?;
    Ok(pprof::Profile::decode(plain.as_slice())?)
}

/// A Push of the Go CPU fixture changed by `f`, for service `service`.
fn pprof_push(
    base: &pprof::Profile,
    service: &str,
    f: impl FnOnce(&mut pprof::Profile),
) -> Vec<u8> {
    let mut p = base.clone();
    f(&mut p);
    push_with(labels(service), p.encode_to_vec())
}

/// A multipart form body with `parts` (name, content).
fn multipart(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, content) in parts {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(content);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

/// A valid OTLP/JSON export of one sample (value 5) for `service`.
pub fn otlp_json(service: &str) -> Value {
    json!({
        "resourceProfiles": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeProfiles": [{"profiles": [{
                "sampleType": {"typeStrindex": 1, "unitStrindex": 2},
                "samples": [{"stackIndex": 1, "values": ["5"]}],
                "timeUnixNano": "1795000000000000000",
                "periodType": {"typeStrindex": 3, "unitStrindex": 4},
                "period": "10000000"
            }]}]
        }],
        "dictionary": {
            "stringTable": ["", "samples", "count", "cpu", "nanoseconds", "main", "m.go"],
            "mappingTable": [{}],
            "functionTable": [{}, {"nameStrindex": 5, "filenameStrindex": 6}],
            "locationTable": [{}, {"lines": [{"functionIndex": 1}]}],
            "stackTable": [{}, {"locationIndices": [1]}],
            "linkTable": [{}],
            "attributeTable": [{}]
        }
    })
}

fn ingest(service: &str, format: &str) -> String {
    format!("/ingest?name={service}.cpu&format={format}&from=1795000000&until=1795000010")
}

/// Every attack, at least 200.
pub fn corpus() -> Result<Vec<Attack>> {
    let cpu = go_cpu()?;
    let plain = cpu.encode_to_vec();
    let good_push = push_request("attack.push", plain.clone());
    let jfr = read_fixture("java/demo.jfr")?;
    let mut out = Vec::new();
    protobuf_attacks(&mut out, &cpu, &plain, &good_push);
    garbage_attacks(&mut out);
    pprof_content_attacks(&mut out, &cpu);
    bomb_attacks(&mut out, &plain);
    text_attacks(&mut out);
    jfr_attacks(&mut out, &jfr);
    otlp_attacks(&mut out)?;
    query_attacks(&mut out);
    header_attacks(&mut out, &good_push);
    grpc_web_attacks(&mut out, &good_push);
    Ok(out)
}

/// gRPC-Web framing (the same handlers behind it): bad frames, lengths and
/// flags, a gzip bomb as a compressed message, junk inside a good frame.
fn grpc_web_attacks(out: &mut Vec<Attack>, good: &[u8]) {
    const WEB: &str = "application/grpc-web+proto";
    let frame = |flag: u8, msg: &[u8]| {
        let mut f = vec![flag];
        f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f
    };
    let web = |name: &str, path: &str, body: Vec<u8>| {
        let mut a = post(format!("gRPC-Web {name}"), path, WEB, body);
        a.expect = Expect::GrpcRefused;
        a
    };
    let query = format!("{QUERY}SelectMergeStacktraces");
    out.push(web("push, 3 bytes", PUSH, vec![0, 0, 0]));
    out.push(web("push, no body", PUSH, vec![]));
    let mut long = frame(0, good);
    long[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
    out.push(web("push, a 4 GiB length", PUSH, long));
    let mut extra = frame(0, good);
    extra.extend_from_slice(&frame(0, good));
    out.push(web("push, two messages", PUSH, extra));
    out.push(web("push, flag 0x7f", PUSH, frame(0x7f, good)));
    out.push(web(
        "push, a trailers frame",
        PUSH,
        frame(0x80, b"grpc-status: 0\r\n"),
    ));
    out.push(web(
        "push, compressed without grpc-encoding",
        PUSH,
        frame(1, &gzip(good)),
    ));
    out.push(
        web("push, gzip bomb message", PUSH, frame(1, &gzip_bomb()))
            .header("grpc-encoding", "gzip"),
    );
    out.push(
        web("push, unknown grpc-encoding", PUSH, frame(1, good)).header("grpc-encoding", "br"),
    );
    out.push(web("push, junk message", PUSH, frame(0, &noise(7, 4096))));
    out.push(web("query, junk message", &query, frame(0, &noise(8, 512))));
    out.push(web("query, empty message", &query, frame(0, &[])));
    out.push(web("query, bad grpc-timeout", &query, frame(0, &[])).header("grpc-timeout", "-1S"));
    out.push(web("unknown procedure", "/no.Such/Method", frame(0, &[])));
    // A gRPC codec Ignis does not speak is refused before the call: 415.
    out.push(post(
        "gRPC-Web text",
        PUSH,
        "application/grpc-web-text",
        frame(0, good),
    ));
}

/// Truncated, deep and huge-varint protobuf.
fn protobuf_attacks(out: &mut Vec<Attack>, cpu: &pprof::Profile, plain: &[u8], good: &[u8]) {
    const PROTO: &str = "application/proto";
    for i in 1..=30 {
        let cut = good.len() * i / 31;
        out.push(post(
            format!("push cut at {cut}"),
            PUSH,
            PROTO,
            good[..cut].to_vec(),
        ));
    }
    for i in 1..=20 {
        let cut = plain.len() * i / 21;
        let body = push_with(labels("attack.cut"), plain[..cut].to_vec());
        out.push(post(format!("pprof cut at {cut}"), PUSH, PROTO, body).may_pass());
    }
    for i in 1..=5 {
        let cut = plain.len() * i / 6;
        out.push(
            post(
                format!("/ingest pprof cut at {cut}"),
                ingest("attack.cut", "pprof"),
                "",
                plain[..cut].to_vec(),
            )
            .may_pass(),
        );
    }
    // Length prefixes far beyond the body.
    for len in [1u64 << 31, 1 << 32, 1 << 62, u64::MAX] {
        let mut b = vec![0x0a];
        b.extend(varint(len));
        b.extend_from_slice(b"abc");
        out.push(post(format!("push length {len}"), PUSH, PROTO, b.clone()));
        let body = push_with(labels("attack.varint"), b);
        out.push(post(format!("pprof length {len}"), PUSH, PROTO, body));
    }
    // An 11-byte varint (invalid) and a varint cut in the middle.
    out.push(post(
        "push 11-byte varint",
        PUSH,
        PROTO,
        [vec![0x0a], vec![0xff; 10], vec![0x01]].concat(),
    ));
    out.push(post("push cut varint", PUSH, PROTO, vec![0x0a, 0xff, 0xff]));
    // Groups nested 100 000 deep (wire type 3), in the push and in a pprof.
    let deep: Vec<u8> = [vec![0x2b; 100_000], vec![0x2c; 100_000]].concat();
    out.push(post("push groups 100k deep", PUSH, PROTO, deep.clone()));
    out.push(post(
        "pprof groups 100k deep",
        PUSH,
        PROTO,
        push_with(labels("attack.deep"), deep),
    ));
    // Unknown fields of every wire type in a valid pprof: ignored, stored.
    let mut unknown = plain.to_vec();
    unknown.extend([0xf8, 0xff, 0x03, 0x01, 0xfd, 0xff, 0x03, 1, 2, 3, 4]);
    out.push(
        post(
            "pprof unknown fields",
            PUSH,
            PROTO,
            push_with(labels("attack.unknown"), unknown),
        )
        .stored(),
    );
    // A pprof whose one sample is a million frames deep: cut, stored.
    let mut deep_stack = cpu.clone();
    deep_stack.sample.truncate(1);
    let loc = deep_stack.sample[0].location_id[0];
    deep_stack.sample[0].location_id = vec![loc; 1_000_000];
    out.push(
        post(
            "pprof sample 1M frames deep",
            PUSH,
            PROTO,
            push_with(labels("attack.deepstack"), deep_stack.encode_to_vec()),
        )
        .may_pass(),
    );
}

/// Random bytes at every parser.
fn garbage_attacks(out: &mut Vec<Attack>) {
    let targets: [(&str, String, &str); 16] = [
        ("push proto", PUSH.into(), "application/proto"),
        ("push json", PUSH.into(), "application/json"),
        ("ingest pprof", ingest("attack.noise", "pprof"), ""),
        ("ingest jfr", ingest("attack.noise", "jfr"), ""),
        (
            "ingest speedscope",
            ingest("attack.noise", "speedscope"),
            "",
        ),
        ("ingest tree", ingest("attack.noise", "tree"), ""),
        ("ingest trie", ingest("attack.noise", "trie"), ""),
        ("ingest folded", ingest("attack.noise", "folded"), ""),
        ("ingest lines", ingest("attack.noise", "lines"), ""),
        ("otlp proto", OTLP.into(), "application/x-protobuf"),
        ("otlp json", OTLP.into(), "application/json"),
        (
            "flame graph proto",
            format!("{QUERY}SelectMergeStacktraces"),
            "application/proto",
        ),
        (
            "flame graph json",
            format!("{QUERY}SelectMergeStacktraces"),
            "application/json",
        ),
        (
            "series proto",
            format!("{QUERY}SelectSeries"),
            "application/proto",
        ),
        ("diff proto", format!("{QUERY}Diff"), "application/proto"),
        ("sql", "/api/v1/sql".into(), "application/json"),
    ];
    for (i, (what, path, ct)) in targets.into_iter().enumerate() {
        for (j, n) in [1usize, 9, 200, 5_000, 300_000].into_iter().enumerate() {
            let body = noise((i * 10 + j) as u64 + 1, n);
            out.push(post(format!("{what}: {n} random bytes"), path.clone(), ct, body).may_pass());
        }
    }
    // Invalid UTF-8 where text is expected.
    let bad = b"main;\xff\xfe;leaf 3\n".to_vec();
    out.push(post(
        "folded invalid UTF-8",
        ingest("attack.utf8", "folded"),
        "",
        bad.clone(),
    ));
    out.push(post(
        "lines invalid UTF-8",
        ingest("attack.utf8", "lines"),
        "",
        bad,
    ));
    out.push(post(
        "sql invalid UTF-8",
        "/api/v1/sql",
        "application/json",
        b"{\"query\":\"\xff\"}".to_vec(),
    ));
    // JSON nested 100 000 deep.
    let nested = [vec![b'['; 100_000], vec![b']'; 100_000]].concat();
    out.push(post(
        "connect json 100k deep",
        format!("{QUERY}SelectMergeStacktraces"),
        "application/json",
        nested.clone(),
    ));
    out.push(post(
        "otlp json 100k deep",
        OTLP,
        "application/json",
        nested.clone(),
    ));
    out.push(post(
        "speedscope 100k deep",
        ingest("attack.deep", "speedscope"),
        "",
        nested,
    ));
}

/// Valid protobuf, hostile pprof contents.
fn pprof_content_attacks(out: &mut Vec<Attack>, cpu: &pprof::Profile) {
    const PROTO: &str = "application/proto";
    type Mutation = Box<dyn Fn(&mut pprof::Profile)>;
    let refused: Vec<(&str, Mutation)> = vec![
        (
            "sample location 99999",
            Box::new(|p| p.sample[0].location_id = vec![99_999]),
        ),
        (
            "location function 99999",
            Box::new(|p| p.location[0].line[0].function_id = 99_999),
        ),
        (
            "function name string 1e9",
            Box::new(|p| p.function[0].name = 1_000_000_000),
        ),
        (
            "function name string -1",
            Box::new(|p| p.function[0].name = -1),
        ),
        (
            "sample type string 1e6",
            Box::new(|p| p.sample_type[0].r#type = 1_000_000),
        ),
        (
            "value count mismatch",
            Box::new(|p| p.sample[0].value.push(1)),
        ),
        ("no sample types", Box::new(|p| p.sample_type.clear())),
        (
            // Dated centuries ahead, a profile made its block span them.
            "time i64::MAX",
            Box::new(|p| p.time_nanos = i64::MAX),
        ),
        (
            // Each line is a frame: 200 000 of them under one location
            // made every flame graph of a 1.2 MB push cost 1.5 GB.
            "location of 200 000 inlined lines",
            Box::new(|p| p.location[0].line = vec![p.location[0].line[0]; 200_000]),
        ),
        (
            "string 0 not empty",
            Box::new(|p| p.string_table[0] = "x".into()),
        ),
        ("location id 0", Box::new(|p| p.location[0].id = 0)),
        ("function id 0", Box::new(|p| p.function[0].id = 0)),
        (
            "100k labels on a sample",
            Box::new(|p| {
                p.sample[0].label = (0..100_000)
                    .map(|_| pprof::Label {
                        key: 1,
                        str: 1,
                        ..Default::default()
                    })
                    .collect()
            }),
        ),
        (
            "label key string out of range",
            Box::new(|p| {
                p.sample[0].label = vec![pprof::Label {
                    key: 1 << 40,
                    str: 1,
                    ..Default::default()
                }]
            }),
        ),
        (
            "20 000 samples",
            Box::new(|p| {
                let s = p.sample[0].clone();
                p.sample = vec![s; 20_000];
            }),
        ),
    ];
    for (what, f) in refused {
        out.push(post(
            format!("pprof {what}"),
            PUSH,
            PROTO,
            pprof_push(cpu, "attack.pprof", f),
        ));
    }
    // Stored (values at the ends of i64 saturate when summed; times are kept).
    let stored: Vec<(&str, &str, Mutation)> = vec![
        (
            "values -1",
            "attack.negative",
            Box::new(|p| {
                p.sample
                    .iter_mut()
                    .for_each(|s| s.value = vec![-1; s.value.len()])
            }),
        ),
        (
            "values i64::MIN",
            "attack.min",
            Box::new(|p| {
                p.sample
                    .iter_mut()
                    .for_each(|s| s.value = vec![i64::MIN; s.value.len()])
            }),
        ),
        (
            "time i64::MIN",
            "attack.past",
            Box::new(|p| p.time_nanos = i64::MIN),
        ),
        (
            "duration -1",
            "attack.duration",
            Box::new(|p| p.duration_nanos = -1),
        ),
        (
            "period i64::MIN",
            "attack.period",
            Box::new(|p| p.period = i64::MIN),
        ),
        (
            "1 MB function name",
            "attack.longname",
            Box::new(|p| {
                let n = p.function[0].name as usize;
                p.string_table[n] = "f".repeat(1 << 20);
            }),
        ),
    ];
    for (what, service, f) in stored {
        out.push(
            post(
                format!("pprof {what}"),
                PUSH,
                PROTO,
                pprof_push(cpu, service, f),
            )
            .may_pass(),
        );
    }
    // Labels: 100 000 of them, a 1 MB value, an empty name, no labels, invalid UTF-8.
    let many: Vec<(String, String)> = (0..100_000)
        .map(|i| (format!("l{i}"), "v".into()))
        .collect();
    let plain = cpu.encode_to_vec();
    out.push(post(
        "push 100k labels",
        PUSH,
        PROTO,
        push_with([labels("attack.labels"), many].concat(), plain.clone()),
    ));
    let mut long = labels("attack.labels");
    long.push(("big".into(), "v".repeat(1 << 20)));
    out.push(post(
        "push 1 MB label value",
        PUSH,
        PROTO,
        push_with(long, plain.clone()),
    ));
    let mut empty = labels("attack.labels");
    empty.push((String::new(), "v".into()));
    out.push(post(
        "push empty label name",
        PUSH,
        PROTO,
        push_with(empty, plain.clone()),
    ));
    out.push(post(
        "push no labels",
        PUSH,
        PROTO,
        push_with(vec![], plain.clone()),
    ));
    let mut dup = labels("attack.labels");
    dup.push(("service_name".into(), "other".into()));
    out.push(post(
        "push duplicate label",
        PUSH,
        PROTO,
        push_with(dup, plain.clone()),
    ));
    let mut body = push_with(labels("attack.utf8"), plain.clone());
    if let Some(i) = body.windows(11).position(|w| w == b"attack.utf8") {
        body[i] = 0xff;
    }
    out.push(post("push label invalid UTF-8", PUSH, PROTO, body));
    // One push making 100 000 series: 20 sample types × 5 000 labelled samples.
    let mut wide = cpu.clone();
    let unit = wide.sample_type[0].unit;
    wide.sample_type = (0..20)
        .map(|i| pprof::ValueType {
            r#type: i + 1,
            unit,
        })
        .collect();
    let key = wide.string_table.len() as i64;
    wide.string_table.push("pod".into());
    let loc = wide.sample[0].location_id.clone();
    wide.sample = (0..5_000)
        .map(|i| {
            wide.string_table.push(format!("pod-{i}"));
            pprof::Sample {
                location_id: loc.clone(),
                value: vec![1; 20],
                label: vec![pprof::Label {
                    key,
                    str: key + 1 + i,
                    ..Default::default()
                }],
            }
        })
        .collect();
    out.push(post(
        "push 100k series",
        PUSH,
        PROTO,
        push_with(labels("attack.series"), wide.encode_to_vec()),
    ));
}

/// Compression bombs and compressed garbage.
fn bomb_attacks(out: &mut Vec<Attack>, plain: &[u8]) {
    let bomb = gzip_bomb();
    out.push(post(
        "pprof gzip bomb",
        PUSH,
        "application/proto",
        push_with(labels("attack.bomb"), bomb.clone()),
    ));
    out.push(
        post(
            "push body gzip bomb",
            PUSH,
            "application/proto",
            bomb.clone(),
        )
        .header("content-encoding", "gzip"),
    );
    out.push(post(
        "ingest pprof gzip bomb",
        ingest("attack.bomb", "pprof"),
        "",
        bomb.clone(),
    ));
    out.push(post(
        "ingest folded gzip bomb",
        ingest("attack.bomb", "folded"),
        "",
        bomb.clone(),
    ));
    out.push(post(
        "ingest speedscope gzip bomb",
        ingest("attack.bomb", "speedscope"),
        "",
        bomb.clone(),
    ));
    out.push(post(
        "ingest jfr gzip bomb",
        ingest("attack.bomb", "jfr"),
        "",
        bomb.clone(),
    ));
    out.push(
        post(
            "otlp gzip bomb",
            OTLP,
            "application/x-protobuf",
            bomb.clone(),
        )
        .header("content-encoding", "gzip"),
    );
    out.push(
        post(
            "query gzip bomb",
            format!("{QUERY}SelectMergeStacktraces"),
            "application/proto",
            bomb.clone(),
        )
        .header("content-encoding", "gzip"),
    );
    out.push(
        post("sql gzip bomb", "/api/v1/sql", "application/json", bomb)
            .header("content-encoding", "gzip"),
    );
    // 5 MB of pprof over the 4 MiB decompressed limit, gzipped small.
    let mut big = plain.to_vec();
    while big.len() < 5 << 20 {
        big.extend_from_slice(&[0xfa, 0x01, 0x00]); // an empty unknown length-delimited field
    }
    out.push(post(
        "pprof 5 MB decompressed",
        PUSH,
        "application/proto",
        push_with(labels("attack.big"), gzip(&big)),
    ));
    // A multipart profile part of 5 MB, 10 000 parts, no closing boundary, no boundary.
    let b = "XyZzy";
    let ct = format!("multipart/form-data; boundary={b}");
    let path = ingest("attack.multipart", "pprof");
    let huge = noise(7, 5 << 20);
    out.push(post(
        "multipart 5 MB part",
        path.clone(),
        &ct,
        multipart(b, &[("profile", &huge)]),
    ));
    let parts: Vec<(&str, &[u8])> = (0..10_000).map(|_| ("junk", &b"x"[..])).collect();
    out.push(
        post(
            "multipart 10 000 parts",
            path.clone(),
            &ct,
            multipart(b, &parts),
        )
        .may_pass(),
    );
    let mut open = multipart(b, &[("profile", plain)]);
    open.truncate(open.len() - 12);
    out.push(post("multipart unclosed", path.clone(), &ct, open));
    out.push(post(
        "multipart without boundary",
        path.clone(),
        "multipart/form-data",
        multipart(b, &[("profile", plain)]),
    ));
    out.push(post(
        "multipart bad sample_type_config",
        path,
        &ct,
        multipart(
            b,
            &[
                ("profile", plain),
                ("sample_type_config", br#"{"samples":{"display-name":7}}"#),
            ],
        ),
    ));
}

/// Tree, trie, folded, lines and speedscope.
fn text_attacks(out: &mut Vec<Attack>) {
    let node = |name: &[u8], value: u64, children: u64| {
        [
            varint(name.len() as u64),
            name.to_vec(),
            varint(value),
            varint(children),
        ]
        .concat()
    };
    out.push(post(
        "tree name length 2^62",
        ingest("attack.tree", "tree"),
        "",
        [varint(1 << 62), b"x".to_vec()].concat(),
    ));
    out.push(post(
        "tree 2^40 children",
        ingest("attack.tree", "tree"),
        "",
        node(b"", 0, 1 << 40),
    ));
    out.push(post(
        "tree value > i64",
        ingest("attack.tree", "tree"),
        "",
        [node(b"", 0, 1), node(b"f", u64::MAX, 0)].concat(),
    ));
    out.push(post(
        "tree missing children",
        ingest("attack.tree", "tree"),
        "",
        node(b"", 0, 3),
    ));
    out.push(post(
        "trie trailing bytes",
        ingest("attack.trie", "trie"),
        "",
        [node(b"", 0, 0), b"junk".to_vec()].concat(),
    ));
    let folded = |s: &str| s.as_bytes().to_vec();
    for (what, body) in [
        (
            "folded count overflow",
            folded("a;b 99999999999999999999999\n"),
        ),
        ("folded count not a number", folded("a;b x\n")),
        ("folded count float", folded("a;b 1.5\n")),
    ] {
        out.push(post(what, ingest("attack.folded", "folded"), "", body));
    }
    for (what, body) in [
        ("folded negative count", folded("a;b -5\n")),
        ("folded empty", Vec::new()),
        (
            "folded 100 000 frames",
            folded(&format!("{} 1\n", vec!["f"; 100_000].join(";"))),
        ),
    ] {
        out.push(post(what, ingest("attack.text", "folded"), "", body).may_pass());
    }
    // Checked after: the sum saturates at i64::MAX; equal lines are one stack.
    let max_twice = folded("a;b 9223372036854775807\na;c 9223372036854775807\n");
    out.push(
        post(
            "folded i64::MAX twice",
            ingest(SATURATED, "folded"),
            "",
            max_twice,
        )
        .stored(),
    );
    let lines = folded(&"main;work\n".repeat(20_000));
    out.push(post("lines 20 000 identical", ingest(LINES, "lines"), "", lines).stored());
    for (what, body) in [
        (
            "speedscope frame index out of range",
            json!({"shared": {"frames": [{"name": "a"}]}, "profiles": [{"type": "sampled", "name": "p", "unit": "none", "startValue": 0, "endValue": 1, "samples": [[5]], "weights": [1]}]}),
        ),
        (
            "speedscope weights missing",
            json!({"shared": {"frames": [{"name": "a"}]}, "profiles": [{"type": "sampled", "name": "p", "unit": "none", "startValue": 0, "endValue": 1, "samples": [[0], [0]], "weights": [1]}]}),
        ),
        (
            "speedscope unclosed event",
            json!({"shared": {"frames": [{"name": "a"}]}, "profiles": [{"type": "evented", "name": "p", "unit": "none", "startValue": 0, "endValue": 10, "events": [{"type": "C", "frame": 0, "at": 5}]}]}),
        ),
        (
            "speedscope unknown type",
            json!({"shared": {"frames": []}, "profiles": [{"type": "weird"}]}),
        ),
    ] {
        out.push(post(
            what,
            ingest("attack.speedscope", "speedscope"),
            "",
            serde_json::to_vec(&body).unwrap_or_default(),
        ));
    }
}

/// JFR with broken chunk headers.
fn jfr_attacks(out: &mut Vec<Attack>, jfr: &[u8]) {
    let path = ingest("attack.jfr", "jfr");
    for (what, at, value) in [
        ("chunk size 2^62", 8usize, 1i64 << 62),
        ("chunk size 0", 8, 0),
        ("chunk size -1", 8, -1),
        ("constant pool offset past the chunk", 16, 1 << 40),
        ("constant pool offset -8", 16, -8),
        ("metadata offset past the chunk", 24, 1 << 40),
        ("metadata offset 0", 24, 0),
    ] {
        let mut b = jfr.to_vec();
        if b.len() >= at + 8 {
            b[at..at + 8].copy_from_slice(&value.to_be_bytes());
        }
        out.push(post(format!("jfr {what}"), path.clone(), "", b));
    }
    for i in 1..=6 {
        let cut = jfr.len() * i / 7;
        out.push(
            post(
                format!("jfr cut at {cut}"),
                path.clone(),
                "",
                jfr[..cut].to_vec(),
            )
            .may_pass(),
        );
    }
    out.push(post(
        "jfr bad magic",
        path,
        "",
        [b"FLX\0".to_vec(), jfr[4..].to_vec()].concat(),
    ));
}

/// OTLP/JSON with dictionary references out of range.
fn otlp_attacks(out: &mut Vec<Attack>) -> Result<()> {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "stack index 9",
            Box::new(|v| {
                v["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["samples"][0]["stackIndex"] =
                    json!(9)
            }),
        ),
        (
            "stack index -1",
            Box::new(|v| {
                v["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["samples"][0]["stackIndex"] =
                    json!(-1)
            }),
        ),
        (
            "location index 7",
            Box::new(|v| v["dictionary"]["stackTable"][1]["locationIndices"] = json!([7])),
        ),
        (
            "function index 7",
            Box::new(|v| {
                v["dictionary"]["locationTable"][1]["lines"][0]["functionIndex"] = json!(7)
            }),
        ),
        (
            "mapping index 7",
            Box::new(|v| v["dictionary"]["locationTable"][1]["mappingIndex"] = json!(7)),
        ),
        (
            "string index 1e6",
            Box::new(|v| v["dictionary"]["functionTable"][1]["nameStrindex"] = json!(1_000_000)),
        ),
        (
            "sample type string index 99",
            Box::new(|v| {
                v["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["sampleType"]["typeStrindex"] =
                    json!(99)
            }),
        ),
        (
            "sample attribute index 5",
            Box::new(|v| {
                v["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["samples"][0]["attributeIndices"] =
                    json!([5])
            }),
        ),
        (
            "profile attribute index 5",
            Box::new(|v| {
                v["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["attributeIndices"] =
                    json!([5])
            }),
        ),
        (
            "link index 3",
            Box::new(|v| {
                v["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["samples"][0]["linkIndex"] =
                    json!(3)
            }),
        ),
        (
            "1-byte trace id",
            Box::new(|v| {
                v["dictionary"]["linkTable"] =
                    json!([{}, {"traceId": "ab", "spanId": "0102030405060708"}])
            }),
        ),
        (
            "trace id not hex",
            Box::new(|v| v["dictionary"]["linkTable"] = json!([{}, {"traceId": "zz"}])),
        ),
        (
            "values and timestamps missing",
            Box::new(|v| {
                v["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["samples"][0]["values"] =
                    json!([])
            }),
        ),
        ("no dictionary", Box::new(|v| v["dictionary"] = Value::Null)),
        (
            "value not a number",
            Box::new(|v| {
                v["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["samples"][0]["values"] =
                    json!(["x"])
            }),
        ),
    ];
    for (what, f) in cases {
        let mut v = otlp_json("attack.otlp");
        f(&mut v);
        out.push(post(
            format!("otlp {what}"),
            OTLP,
            "application/json",
            serde_json::to_vec(&v)?,
        ));
    }
    Ok(())
}

/// Queries no client should send.
fn query_attacks(out: &mut Vec<Attack>) {
    let q = |method: &str, body: Value| {
        post(
            format!("{method} {body}")
                .chars()
                .take(120)
                .collect::<String>(),
            format!("{QUERY}{method}"),
            "application/json",
            serde_json::to_vec(&body).unwrap_or_default(),
        )
    };
    let sel = "{service_name=\"attack\"}";
    // A step longer than any range: one point, at the range's start or
    // later (never a wrapped timestamp).
    out.push(
        q(
            "SelectSeries",
            json!({"profileTypeID": CPU, "labelSelector": sel, "start": 1, "end": 2, "step": 1e308}),
        )
        .may_pass(),
    );
    for body in [
        json!({"profileTypeID": CPU, "labelSelector": sel, "start": 1, "end": 2, "step": 0}),
        json!({"profileTypeID": CPU, "labelSelector": sel, "start": 1, "end": 2, "step": -1}),
        json!({"profileTypeID": CPU, "labelSelector": sel, "start": 1, "end": 2, "step": "NaN"}),
        json!({"profileTypeID": CPU, "labelSelector": "{", "start": 1, "end": 2, "step": 1}),
        json!({"profileTypeID": "x", "labelSelector": sel, "start": 1, "end": 2, "step": 1}),
    ] {
        out.push(q("SelectSeries", body));
    }
    for body in [
        json!({"profileTypeID": CPU, "labelSelector": sel, "start": 5, "end": 1}),
        json!({"profileTypeID": CPU, "labelSelector": "{service_name=~\"(\"}", "start": 1, "end": 2}),
        json!({"profileTypeID": CPU, "labelSelector": format!("{{a=\"{}\"", "x".repeat(1 << 20)), "start": 1, "end": 2}),
        json!({"profileTypeID": CPU, "labelSelector": sel, "start": 1, "end": 2, "maxNodes": -5}),
        json!({"profileTypeID": 7, "labelSelector": sel, "start": 1, "end": 2}),
    ] {
        out.push(q("SelectMergeStacktraces", body));
    }
    // 100 regexes of 10 MB each compiled, from 1.6 KB (2.6 GB before their
    // budget): refused past it.
    let heavy: Vec<String> = (0..100).map(|i| format!("l{i}=~`\\w{{200}}`")).collect();
    out.push(q(
        "SelectMergeStacktraces",
        json!({"profileTypeID": CPU, "labelSelector": format!("{{{}}}", heavy.join(",")), "start": 1, "end": 2}),
    ));
    // Selectors that are valid but hostile: 10 000 matchers, a catastrophic
    // regex for backtracking engines; times at the ends of i64.
    let matchers: Vec<String> = (0..10_000).map(|i| format!("l{i}!=\"v\"")).collect();
    for body in [
        json!({"profileTypeID": CPU, "labelSelector": format!("{{{}}}", matchers.join(",")), "start": 1, "end": 2}),
        json!({"profileTypeID": CPU, "labelSelector": format!("{{service_name=~\"(a+)+{}b\"}}", "a".repeat(10)), "start": 1, "end": i64::MAX}),
        json!({"profileTypeID": CPU, "labelSelector": sel, "start": i64::MIN, "end": i64::MAX}),
    ] {
        out.push(q("SelectMergeStacktraces", body).may_pass());
    }
    out.push(q("Diff", json!({"left": {}, "right": null})));
    // An enum value newer than Ignis: ignored as connect-go ignores it.
    out.push(
        q(
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": sel, "start": 1, "end": 2, "format": 99}),
        )
        .may_pass(),
    );
    out.push(q("NoSuchMethod", json!({})).may_pass());
    out.push(q("SelectSeries", json!({"profileTypeID": CPU, "labelSelector": sel, "start": 1, "end": 2, "step": 1, "groupBy": (0..10_000).map(|i| format!("l{i}")).collect::<Vec<_>>()})).may_pass());
    for path in [
        "/pyroscope/render?query=%7B&from=now-1h",
        "/pyroscope/render?query=process_cpu.cpu%7B%7D&from=now-99999999d&until=now%2B99999999d",
        "/pyroscope/render?query=process_cpu.cpu%7B%7D&from=abc",
        "/pyroscope/render-diff?leftQuery=x&rightQuery=%7B",
        "/pyroscope/label-values?label=%FF&query=%7B",
    ] {
        out.push(get(format!("GET {path}"), path).may_pass());
    }
    out.push(
        get(
            "render from after until",
            "/pyroscope/render?query=process_cpu.cpu%7B%7D&from=2000000000&until=1000000000",
        )
        .may_pass(),
    );
    out.push(post(
        "sql not a select",
        "/api/v1/sql",
        "application/json",
        br#"{"query":"COPY profiles TO '/tmp/x'"}"#.to_vec(),
    ));
    out.push(post(
        "sql ddl",
        "/api/v1/sql",
        "application/json",
        br#"{"query":"CREATE TABLE t AS SELECT 1"}"#.to_vec(),
    ));
    // A flat chain parses into a tree as deep as it is long: 2 000 terms
    // overflowed the planner's stack and aborted the process.
    for (name, query) in [
        (
            "sql long operator chain",
            format!("SELECT {}", vec!["1"; 2000].join("+")),
        ),
        (
            "sql long union chain",
            vec!["SELECT 1"; 2000].join(" UNION ALL "),
        ),
        // Results sized by an argument, outside the query's memory limit.
        (
            "sql repeat",
            "SELECT length(repeat('x', 2000000000))".to_string(),
        ),
        (
            "sql lpad",
            "SELECT length(lpad('x', 2000000000))".to_string(),
        ),
        (
            "sql generate_series array",
            "SELECT unnest(generate_series(1, 200000000)) LIMIT 1".to_string(),
        ),
        (
            "sql generate_series table",
            "SELECT count(DISTINCT value) FROM generate_series(1, 50000000)".to_string(),
        ),
    ] {
        out.push(post(
            name,
            "/api/v1/sql",
            "application/json",
            json!({ "query": query }).to_string().into_bytes(),
        ));
    }
    out.push(post(
        "sql unknown table",
        "/api/v1/sql",
        "application/json",
        br#"{"query":"SELECT * FROM nope"}"#.to_vec(),
    ));
    out.push(
        post(
            "sql cross join of everything",
            "/api/v1/sql",
            "application/json",
            br#"{"query":"SELECT count(*) FROM samples a, samples b"}"#.to_vec(),
        )
        .may_pass(),
    );
}

/// Content types and tenant headers.
fn header_attacks(out: &mut Vec<Attack>, good: &[u8]) {
    for ct in [
        "text/plain",
        "application/xml",
        "image/png",
        "application/grpc-web+json",
    ] {
        out.push(post(format!("push as {ct}"), PUSH, ct, good.to_vec()));
        out.push(post(format!("otlp as {ct}"), OTLP, ct, good.to_vec()));
        out.push(post(
            format!("query as {ct}"),
            format!("{QUERY}SelectMergeStacktraces"),
            ct,
            b"{}".to_vec(),
        ));
    }
    out.push(post(
        "sql as proto",
        "/api/v1/sql",
        "application/proto",
        good.to_vec(),
    ));
    out.push(
        post(
            "push unknown encoding",
            PUSH,
            "application/proto",
            good.to_vec(),
        )
        .header("content-encoding", "br2"),
    );
    for (what, tenant) in [
        ("tenant ..", ".."),
        ("tenant 151 chars", &"t".repeat(151)[..]),
        ("tenant with /", "a/b"),
        ("tenant with space", "a b"),
        ("tenant empty", ""),
        ("two tenants on a push", "a|b"),
    ] {
        out.push(
            post(
                format!("push {what}"),
                PUSH,
                "application/proto",
                good.to_vec(),
            )
            .header("x-scope-orgid", tenant),
        );
    }
    out.push(
        post(
            "push two X-Scope-OrgID",
            PUSH,
            "application/proto",
            good.to_vec(),
        )
        .header("x-scope-orgid", "a")
        .header("x-scope-orgid", "b"),
    );
    out.push(get("query ?name invalid", "/ingest?name=x").may_pass());
    for name in [
        "app%7Bk%3Dv",
        "%7Bk%3Dv%7D",
        "app%7Bbad-name%21%3Dv%7D",
        "%FF%FE",
        "app%7B%3Dv%7D",
    ] {
        out.push(post(
            format!("ingest name {name}"),
            format!("/ingest?name={name}&format=folded"),
            "",
            b"a;b 1\n".to_vec(),
        ));
    }
}
