use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::opentelemetry::proto::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use ignis_storage::proto::opentelemetry::proto::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value,
};
use ignis_storage::proto::opentelemetry::proto::profiles::v1development as otel;
use ignis_storage::proto::opentelemetry::proto::resource::v1::Resource;
use ignis_storage::{SplitProfile, names};
use prost::Message;

use super::convert::{Dictionary, convert_profile};
use super::*;
use crate::error::Reason;

const NOW: i64 = 1_700_000_000_000_000_000;

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: s(v),
        key_strindex: 0,
    }
}

/// A dictionary with the null entries at 0 and two stacks:
/// 1: main → work → leaf, 2: main → work.
fn dictionary() -> otel::ProfilesDictionary {
    let strings = [
        "",
        "samples",
        "count",
        "cpu",
        "nanoseconds",
        "main",
        "work",
        "leaf",
        "app.bin",
        "main.go",
        "thread.name",
        "worker-1",
        "service.name",
        "svc-b",
        "profile.frame.type",
        "kernel",
        "do_syscall",
    ];
    let func = |name: i32| otel::Function {
        name_strindex: name,
        filename_strindex: 9,
        ..Default::default()
    };
    let loc = |f: i32, line: i64| otel::Location {
        mapping_index: 1,
        address: 0x1000 + f as u64,
        lines: vec![otel::Line {
            function_index: f,
            line,
            column: 0,
        }],
        attribute_indices: vec![],
    };
    otel::ProfilesDictionary {
        mapping_table: vec![
            otel::Mapping::default(),
            otel::Mapping {
                memory_start: 0x1000,
                memory_limit: 0x9000,
                filename_strindex: 8,
                ..Default::default()
            },
        ],
        // Locations 1..=3: main, work, leaf; 4: a kernel frame.
        location_table: vec![
            otel::Location::default(),
            loc(1, 10),
            loc(2, 20),
            loc(3, 30),
            otel::Location {
                attribute_indices: vec![3],
                ..loc(4, 0)
            },
        ],
        // Functions 1..=3: main, work, leaf; 4: do_syscall.
        function_table: vec![
            otel::Function::default(),
            func(5),
            func(6),
            func(7),
            func(16),
        ],
        link_table: vec![
            otel::Link::default(),
            otel::Link {
                trace_id: (1..=16).collect(),
                span_id: vec![0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x02, 0x03, 0x04],
            },
        ],
        string_table: strings.iter().map(|s| s.to_string()).collect(),
        attribute_table: vec![
            otel::KeyValueAndUnit::default(),
            otel::KeyValueAndUnit {
                key_strindex: 10,
                value: s("worker-1"),
                unit_strindex: 0,
            },
            otel::KeyValueAndUnit {
                key_strindex: 12,
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValueStrindex(13)),
                }),
                unit_strindex: 0,
            },
            otel::KeyValueAndUnit {
                key_strindex: 14,
                value: s("kernel"),
                unit_strindex: 0,
            },
        ],
        // Leaf first.
        stack_table: vec![
            otel::Stack::default(),
            otel::Stack {
                location_indices: vec![3, 2, 1],
            },
            otel::Stack {
                location_indices: vec![2, 1],
            },
            otel::Stack {
                location_indices: vec![4, 3, 2, 1],
            },
        ],
    }
}

fn sample(stack: i32, value: i64) -> otel::Sample {
    otel::Sample {
        stack_index: stack,
        values: vec![value],
        ..Default::default()
    }
}

/// An eBPF-style profile: samples/count with a 10ms cpu period.
fn cpu_profile(samples: Vec<otel::Sample>) -> otel::Profile {
    otel::Profile {
        sample_type: Some(otel::ValueType {
            type_strindex: 1,
            unit_strindex: 2,
        }),
        samples,
        time_unix_nano: 1_690_000_000_000_000_000,
        duration_nano: 10_000_000_000,
        period_type: Some(otel::ValueType {
            type_strindex: 3,
            unit_strindex: 4,
        }),
        period: 10_000_000,
        ..Default::default()
    }
}

fn request(profiles: Vec<otel::Profile>) -> ExportProfilesServiceRequest {
    ExportProfilesServiceRequest {
        resource_profiles: vec![otel::ResourceProfiles {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("host.name", "node-1"),
                    KeyValue {
                        key: "process.pid".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::IntValue(42)),
                        }),
                        key_strindex: 0,
                    },
                ],
                ..Default::default()
            }),
            scope_profiles: vec![otel::ScopeProfiles {
                scope: Some(InstrumentationScope {
                    name: "ebpf-profiler".into(),
                    version: "1.0".into(),
                    attributes: vec![kv("host.name", "ignored"), kv("profiler.mode", "system")],
                    dropped_attributes_count: 0,
                }),
                profiles,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
        dictionary: Some(dictionary()),
    }
}

fn decode(req: &ExportProfilesServiceRequest) -> Result<Vec<SplitProfile>, IngestError> {
    decode_otlp(req, &Limits::default(), NOW)
}

fn err(req: &ExportProfilesServiceRequest) -> IngestError {
    match decode(req) {
        Ok(p) => panic!("expected an error, got {} profiles", p.len()),
        Err(e) => e,
    }
}

/// Function names of a sample's stack, root first.
fn stack_names(p: &pprof::Profile, sample: &pprof::Sample) -> Vec<String> {
    sample
        .location_id
        .iter()
        .rev()
        .map(|id| {
            let loc = &p.location[*id as usize - 1];
            let f = &p.function[loc.line[0].function_id as usize - 1];
            p.string_table[f.name as usize].clone()
        })
        .collect()
}

fn label<'p>(p: &'p pprof::Profile, sample: &pprof::Sample, key: &str) -> Option<&'p str> {
    sample
        .label
        .iter()
        .find(|l| p.string_table[l.key as usize] == key)
        .map(|l| p.string_table[l.str as usize].as_str())
}

#[test]
fn ebpf_cpu_profile_becomes_process_cpu_with_resource_labels() {
    let req = request(vec![cpu_profile(vec![sample(1, 3), sample(2, 2)])]);
    let out = decode(&req).unwrap();
    assert_eq!(out.len(), 1);
    let sp = &out[0];
    assert_eq!(sp.series.len(), 1);
    let l = &sp.series[0].labels;
    assert_eq!(
        l.get(names::PROFILE_TYPE),
        Some("process_cpu:cpu:nanoseconds:cpu:nanoseconds")
    );
    assert_eq!(l.get(names::SERVICE_NAME), Some("checkout"));
    assert_eq!(l.get("service.name"), Some("checkout"));
    assert_eq!(l.get(OTEL_LABEL), Some("true"));
    // Resource attributes win over scope attributes; only strings are kept.
    assert_eq!(l.get("host.name"), Some("node-1"));
    assert_eq!(l.get("profiler.mode"), Some("system"));
    assert_eq!(l.get("process.pid"), None);
    assert_eq!(l.get(names::DELTA), None);
    assert_eq!(sp.timestamp_ns, 1_690_000_000_000_000_000);

    let p = &sp.profile.to_proto();
    // Counts times the period.
    let values: Vec<i64> = p.sample.iter().map(|s| s.value[0]).collect();
    assert_eq!(values, vec![30_000_000, 20_000_000]);
    assert_eq!(stack_names(p, &p.sample[0]), ["main", "work", "leaf"]);
    assert_eq!(stack_names(p, &p.sample[1]), ["main", "work"]);
    assert_eq!(p.string_table[0], "");
    assert_eq!(p.period, 10_000_000);
    assert_eq!(p.duration_nanos, 10_000_000_000);
    assert_eq!(p.mapping.len(), 1);
    assert_eq!(p.string_table[p.mapping[0].filename as usize], "app.bin");
    assert!(p.mapping[0].has_functions && p.mapping[0].has_filenames);
    // Locations and functions are shared, not duplicated per sample.
    assert_eq!(p.location.len(), 3);
    assert_eq!(p.function.len(), 3);
    assert_eq!(p.location[0].line[0].line, 30);
}

#[test]
fn link_becomes_span_and_trace_id_sample_labels_not_series() {
    let mut linked = sample(1, 1);
    linked.link_index = 1;
    linked.attribute_indices = vec![1];
    let profile = cpu_profile(vec![linked, sample(2, 1)]);
    let dict = dictionary();
    let converted = convert_profile(&profile, Dictionary::new(&dict), &Limits::default()).unwrap();
    let p = &converted[0].profile;
    assert_eq!(label(p, &p.sample[0], "span_id"), Some("aabbccdd01020304"));
    assert_eq!(
        label(p, &p.sample[0], "trace_id"),
        Some("0102030405060708090a0b0c0d0e0f10")
    );
    assert_eq!(label(p, &p.sample[0], "thread.name"), Some("worker-1"));
    assert_eq!(label(p, &p.sample[1], "span_id"), None);

    // Through the split: thread.name makes a series, span and trace ids do not.
    let out = decode(&request(vec![profile])).unwrap();
    let series = &out[0].series;
    assert_eq!(series.len(), 2);
    assert!(series.iter().all(|s| s.labels.get("span_id").is_none()));
    assert!(
        series
            .iter()
            .any(|s| s.labels.get("thread.name") == Some("worker-1"))
    );
    // The stored pprof keeps the span id for span queries.
    let p = &out[0].profile.to_proto();
    assert!(
        p.sample
            .iter()
            .any(|s| label(p, s, "span_id") == Some("aabbccdd01020304"))
    );
}

#[test]
fn sample_service_name_splits_the_profile() {
    let mut other = sample(1, 5);
    other.attribute_indices = vec![2];
    let out = decode(&request(vec![cpu_profile(vec![sample(1, 1), other])])).unwrap();
    let services: Vec<&str> = out
        .iter()
        .map(|sp| sp.series[0].labels.get(names::SERVICE_NAME).unwrap())
        .collect();
    assert_eq!(services, ["checkout", "svc-b"]);
    // service.name is not a sample label.
    for sp in &out {
        let proto = sp.profile.to_proto();
        for s in &proto.sample {
            assert_eq!(label(&proto, s, "service.name"), None);
        }
    }
}

#[test]
fn missing_service_name_falls_back_like_pyroscope() {
    let mut req = request(vec![cpu_profile(vec![sample(1, 1)])]);
    let attrs = &mut req.resource_profiles[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes;
    attrs.retain(|a| a.key != "service.name");
    let out = decode(&req).unwrap();
    assert_eq!(
        out[0].series[0].labels.get(names::SERVICE_NAME),
        Some("unknown_service")
    );
    let attrs = &mut req.resource_profiles[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes;
    attrs.push(kv("process.executable.name", "nginx"));
    let out = decode(&req).unwrap();
    assert_eq!(
        out[0].series[0].labels.get(names::SERVICE_NAME),
        Some("unknown_service:nginx")
    );
}

#[test]
fn profile_names_follow_the_profile_type() {
    // cpu/nanoseconds with a cpu period: named after the period type.
    let mut p = cpu_profile(vec![sample(1, 7)]);
    p.sample_type = Some(otel::ValueType {
        type_strindex: 3,
        unit_strindex: 4,
    });
    let out = decode(&request(vec![p])).unwrap();
    assert_eq!(
        out[0].series[0].labels.get(names::PROFILE_TYPE),
        Some("cpu:cpu:nanoseconds:cpu:nanoseconds")
    );
    assert_eq!(out[0].profile.to_proto().sample[0].value, [7]);
    // No period: named after the sample type.
    let mut p = cpu_profile(vec![sample(1, 7)]);
    p.period = 0;
    p.period_type = None;
    let out = decode(&request(vec![p])).unwrap();
    assert_eq!(
        out[0].series[0].labels.get(names::PROFILE_TYPE),
        Some("samples:samples:count::")
    );
}

#[test]
fn timestamps_count_as_events_and_date_the_profile() {
    let mut p = cpu_profile(vec![otel::Sample {
        stack_index: 1,
        timestamps_unix_nano: vec![1_690_000_000_500_000_000, 1_690_000_000_100_000_000],
        ..Default::default()
    }]);
    p.time_unix_nano = 0;
    p.duration_nano = 0;
    let out = decode(&request(vec![p])).unwrap();
    assert_eq!(out[0].profile.to_proto().sample[0].value, [2 * 10_000_000]);
    assert_eq!(out[0].timestamp_ns, 1_690_000_000_100_000_000);
    assert_eq!(out[0].profile.duration_nanos(), 400_000_000);
}

#[test]
fn kernel_frames_get_a_kernel_mapping() {
    let out = decode(&request(vec![cpu_profile(vec![sample(3, 1)])])).unwrap();
    let p = &out[0].profile.to_proto();
    let names: Vec<&str> = p
        .mapping
        .iter()
        .map(|m| p.string_table[m.filename as usize].as_str())
        .collect();
    assert_eq!(names, ["[kernel] app.bin", "app.bin"]);
}

#[test]
fn deep_stacks_are_cut_root_side_kept() {
    let limits = Limits {
        max_profile_stacktrace_depth: 2,
        ..Limits::default()
    };
    let req = request(vec![cpu_profile(vec![sample(1, 1)])]);
    let out = decode_otlp(&req, &limits, NOW).unwrap();
    let p = &out[0].profile.to_proto();
    assert_eq!(stack_names(p, &p.sample[0]), ["main", "work"]);
}

/// A change that breaks a request.
type Mutation = Box<dyn Fn(&mut ExportProfilesServiceRequest)>;

#[test]
fn out_of_range_indexes_are_refused() {
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "stack index 99",
            Box::new(|r| profile(r).samples[0].stack_index = 99),
        ),
        (
            "stack index -1",
            Box::new(|r| profile(r).samples[0].stack_index = -1),
        ),
        (
            "location index 50",
            Box::new(|r| dict(r).stack_table[1].location_indices[0] = 50),
        ),
        (
            "function index 9",
            Box::new(|r| dict(r).location_table[3].lines[0].function_index = 9),
        ),
        (
            "mapping index 7",
            Box::new(|r| dict(r).location_table[3].mapping_index = 7),
        ),
        (
            "function name string index 1000",
            Box::new(|r| dict(r).function_table[3].name_strindex = 1000),
        ),
        (
            "attribute index 12",
            Box::new(|r| profile(r).samples[0].attribute_indices = vec![12]),
        ),
        (
            "profile attribute index 9",
            Box::new(|r| profile(r).attribute_indices = vec![9]),
        ),
        (
            "link_table[0]: link trace_id must be 16 bytes, got 1",
            Box::new(|r| {
                dict(r).link_table = vec![otel::Link {
                    trace_id: vec![7],
                    span_id: vec![],
                }]
            }),
        ),
        (
            "link index 5",
            Box::new(|r| profile(r).samples[0].link_index = 5),
        ),
        (
            "sample type string index 77",
            Box::new(|r| profile(r).sample_type.as_mut().unwrap().type_strindex = 77),
        ),
        (
            "attribute key string index -4",
            Box::new(|r| dict(r).attribute_table[1].key_strindex = -4),
        ),
        (
            "attribute value string index 400",
            Box::new(|r| {
                dict(r).attribute_table[1].value = Some(AnyValue {
                    value: Some(any_value::Value::StringValueStrindex(400)),
                });
            }),
        ),
    ];
    for (want, mutate) in cases {
        let mut req = request(vec![cpu_profile(vec![sample(1, 1)])]);
        if want.starts_with("attribute") {
            profile(&mut req).samples[0].attribute_indices = vec![1];
        }
        mutate(&mut req);
        let e = err(&req);
        assert_eq!(e.reason, Reason::MalformedProfile, "{want}: {e}");
        assert!(e.message.contains(want), "{want}: {e}");
        assert!(
            e.message.contains("profiles[0]") || e.message.contains("dictionary"),
            "{want}: {e}"
        );
    }
}

fn profile(r: &mut ExportProfilesServiceRequest) -> &mut otel::Profile {
    &mut r.resource_profiles[0].scope_profiles[0].profiles[0]
}

fn dict(r: &mut ExportProfilesServiceRequest) -> &mut otel::ProfilesDictionary {
    r.dictionary.as_mut().unwrap()
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let e = err(&ExportProfilesServiceRequest::default());
    assert!(e.message.contains("missing resource profiles"), "{e}");

    let mut req = request(vec![cpu_profile(vec![sample(1, 1)])]);
    req.dictionary = None;
    assert!(err(&req).message.contains("dictionary"));

    let mut req = request(vec![cpu_profile(vec![sample(1, 1)])]);
    profile(&mut req).sample_type = None;
    assert!(err(&req).message.contains("no sample type"));

    let mut req = request(vec![cpu_profile(vec![sample(1, i64::MAX)])]);
    assert!(err(&req).message.contains("overflow"));
    profile(&mut req).samples = vec![otel::Sample {
        stack_index: 1,
        values: vec![i64::MAX, 1],
        ..Default::default()
    }];
    assert!(err(&req).message.contains("overflow"));
    profile(&mut req).samples = vec![otel::Sample {
        stack_index: 1,
        ..Default::default()
    }];
    assert!(err(&req).message.contains("neither values nor timestamps"));

    let mut req = request(vec![cpu_profile(vec![sample(1, 1)])]);
    dict(&mut req).link_table.push(otel::Link {
        trace_id: vec![1, 2, 3],
        span_id: vec![1; 8],
    });
    profile(&mut req).samples[0].link_index = 2;
    let e = err(&req);
    assert!(e.message.contains("trace_id must be 16 bytes"), "{e}");

    let mut req = request(vec![cpu_profile(vec![sample(1, 1)])]);
    profile(&mut req).time_unix_nano = u64::MAX;
    assert!(err(&req).message.contains("time_unix_nano"));
}

#[test]
fn limits_apply_before_and_after_conversion() {
    let req = request(vec![cpu_profile(vec![sample(1, 1); 5])]);
    let limits = Limits {
        max_profile_stacktrace_samples: 4,
        ..Limits::default()
    };
    let e = decode_otlp(&req, &limits, NOW).unwrap_err();
    assert_eq!(e.reason, Reason::SamplesLimit);

    let limits = Limits {
        max_profile_size_bytes: 64,
        ..Limits::default()
    };
    let e = decode_otlp(&req, &limits, NOW).unwrap_err();
    assert_eq!(e.reason, Reason::ProfileSizeLimit);

    let mut req = request(vec![cpu_profile(vec![sample(1, 1)])]);
    let attrs = &mut req.resource_profiles[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes;
    attrs.push(kv("huge", &"x".repeat(5000)));
    assert_eq!(err(&req).reason, Reason::LabelValueTooLong);
}

#[test]
fn huge_repeated_stacks_are_resolved_once() {
    // 4k samples on one 100k-frame stack: the stack is resolved (and cut to
    // the depth limit) once, not per sample.
    let mut req = request(vec![cpu_profile(vec![sample(4, 1); 4_000])]);
    dict(&mut req).stack_table.push(otel::Stack {
        location_indices: [3, 2].repeat(50_000),
    });
    let limits = Limits {
        max_profile_size_bytes: 64 << 20,
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let out = decode_otlp(&req, &limits, NOW).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(out[0].profile.to_proto().sample[0].location_id.len(), 1000);
}

#[test]
fn protobuf_round_trip_and_garbage() {
    let req = request(vec![cpu_profile(vec![sample(1, 2)])]);
    let bytes = req.encode_to_vec();
    let back = decode_request(&bytes, Encoding::Protobuf).unwrap();
    assert_eq!(back, req);
    let e = decode_request(b"\xff\xff\xff\xff", Encoding::Protobuf).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidRequest);
    assert!(e.message.contains("invalid protobuf"), "{e}");
    // Deeply nested attribute values hit the decoder's recursion limit.
    let mut v = AnyValue::default();
    for _ in 0..200 {
        v = AnyValue {
            value: Some(any_value::Value::ArrayValue(
                ignis_storage::proto::opentelemetry::proto::common::v1::ArrayValue {
                    values: vec![v],
                },
            )),
        };
    }
    let mut deep = req.clone();
    deep.resource_profiles[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(KeyValue {
            key: "deep".into(),
            value: Some(v),
            key_strindex: 0,
        });
    assert!(decode_request(&deep.encode_to_vec(), Encoding::Protobuf).is_err());
}

const JSON_REQUEST: &str = r#"{
  "resourceProfiles": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
    "scopeProfiles": [{
      "scope": {"name": "test"},
      "profiles": [{
        "sampleType": {"typeStrindex": 1, "unitStrindex": 2},
        "periodType": {"typeStrindex": 3, "unitStrindex": 4},
        "period": "10000000",
        "timeUnixNano": "1690000000000000000",
        "durationNano": 10000000000,
        "profileId": "0102030405060708090a0b0c0d0e0f10",
        "samples": [
          {"stackIndex": 1, "values": ["3"], "linkIndex": 1, "futureField": true},
          {"stack_index": 2, "values": [2]}
        ]
      }]
    }]
  }],
  "dictionary": {
    "mappingTable": [{}, {"memoryStart": "4096", "filenameStrindex": 8}],
    "locationTable": [{}, {"mappingIndex": 1, "lines": [{"functionIndex": 1, "line": "10"}]},
                      {"mappingIndex": 1, "lines": [{"functionIndex": 2}]},
                      {"mappingIndex": 1, "lines": [{"functionIndex": 3}]}],
    "functionTable": [{}, {"nameStrindex": 5}, {"nameStrindex": 6}, {"nameStrindex": 7}],
    "linkTable": [{}, {"traceId": "0102030405060708090A0B0C0D0E0F10", "spanId": "aabbccdd01020304"}],
    "stringTable": ["", "samples", "count", "cpu", "nanoseconds", "main", "work", "leaf", "app.bin"],
    "attributeTable": [{}],
    "stackTable": [{}, {"locationIndices": [3, 2, 1]}, {"locationIndices": [2, 1]}]
  }
}"#;

#[test]
fn otlp_json_with_hex_ids_and_string_integers() {
    let req = decode_request(JSON_REQUEST.as_bytes(), Encoding::Json).unwrap();
    let d = req.dictionary.as_ref().unwrap();
    assert_eq!(d.link_table[1].trace_id, (1..=16).collect::<Vec<u8>>());
    assert_eq!(
        d.link_table[1].span_id,
        [0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4]
    );
    let p = &req.resource_profiles[0].scope_profiles[0].profiles[0];
    assert_eq!(p.profile_id, (1..=16).collect::<Vec<u8>>());
    assert_eq!(p.time_unix_nano, 1_690_000_000_000_000_000);
    let out = decode(&req).unwrap();
    let sp = &out[0];
    assert_eq!(
        sp.series[0].labels.get(names::SERVICE_NAME),
        Some("json-svc")
    );
    let pp = &sp.profile.to_proto();
    assert_eq!(
        label(pp, &pp.sample[0], "span_id"),
        Some("aabbccdd01020304")
    );
    assert_eq!(stack_names(pp, &pp.sample[0]), ["main", "work", "leaf"]);
    assert_eq!(pp.sample[0].value, [30_000_000]);
}

#[test]
fn bad_json_is_refused() {
    for (body, want) in [
        ("", "empty JSON body"),
        ("{", "invalid JSON"),
        ("[]", "invalid JSON"),
        (r#"{"resourceProfiles": 5}"#, "invalid JSON"),
        (
            r#"{"dictionary": {"linkTable": [{"traceId": "xyz"}]}}"#,
            "linkTable[0].traceId",
        ),
        (r#"{"dictionary": {"stringTable": [1]}}"#, "invalid JSON"),
    ] {
        let e = decode_request(body.as_bytes(), Encoding::Json).unwrap_err();
        assert_eq!(e.reason, Reason::InvalidRequest, "{body}");
        assert!(e.message.contains(want), "{body}: {e}");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(decode_request(deep.as_bytes(), Encoding::Json).is_err());
}

#[test]
fn responses_in_both_encodings() {
    let resp = ExportProfilesServiceResponse::default();
    assert_eq!(encode_response(&resp, Encoding::Json).unwrap(), b"{}");
    assert!(
        encode_response(&resp, Encoding::Protobuf)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        Encoding::from_content_type("application/json; charset=utf-8"),
        Some(Encoding::Json)
    );
    assert_eq!(
        Encoding::from_content_type("application/x-protobuf"),
        Some(Encoding::Protobuf)
    );
    assert_eq!(Encoding::from_content_type("text/plain"), None);
}

#[test]
fn a_profile_keeps_the_id_its_client_sent() {
    let mut other = sample(1, 5);
    other.attribute_indices = vec![2];
    let mut p = cpu_profile(vec![sample(1, 1), other]);
    p.profile_id = (1..=16).collect();
    let out = decode(&request(vec![p])).unwrap();
    // Every pprof made of it (one per sample service) carries it.
    assert_eq!(out.len(), 2);
    for sp in &out {
        assert_eq!(
            sp.profile_id.to_string(),
            "01020304-0506-0708-090a-0b0c0d0e0f10"
        );
    }
    // No id, or all zeros: Ignis draws distinct ones.
    let mut p = cpu_profile(vec![sample(1, 1)]);
    p.profile_id = vec![0; 16];
    let a = decode(&request(vec![p.clone()])).unwrap()[0].profile_id;
    let b = decode(&request(vec![p])).unwrap()[0].profile_id;
    assert!(a != b && a.key() != 0);
}
