#!/usr/bin/env python3
"""Builds an OTLP profiles export from a pprof file with the official
`opentelemetry-proto` package, and writes or sends it.

Every pprof sample type becomes one OTLP Profile (OTLP profiles carry one
sample type each); the pprof's tables become the request's
ProfilesDictionary, with the "null" entry at index 0 of every table and one
stack table entry per distinct stack. String sample labels become sample
attributes. The pprof is decoded with the official `protobuf` runtime from a
descriptor of the pprof schema built here.

Usage:
  otlp_export.py PPROF --service NAME [--proto OUT] [--json OUT]
                 [--grpc HOST:PORT [--tenant T] [--authorization VALUE] [--gzip]]
                 [--links TRUTH_OUT]

--links links samples to two traces (sample i to link 1 when i % 3 == 0, to
link 2 when i % 3 == 1, none otherwise) and writes, per trace and per span id
(hex), the sum of the linked samples' values by sample type to TRUTH_OUT.

--json writes OTLP/JSON: protojson, except that link trace and span ids are
hex (the OTLP rule). --grpc calls ProfilesService/Export with grpcio and
prints the response as JSON on stdout.
"""
import argparse
import base64
import gzip
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as svc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.profiles.v1development import profiles_pb2 as otel
from opentelemetry.proto.resource.v1 import resource_pb2

EXPORT = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"


def pprof_class():
    """perftools.profiles.Profile (the pprof wire format), built from a descriptor."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="ignis_pprof.proto", package="perftools.profiles", syntax="proto3")

    def msg(name, fields):
        m = fdp.message_type.add(name=name)
        for number, fname, ftype, repeated, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = ".perftools.profiles." + type_name

    msg("Profile", [
        (1, "sample_type", F.TYPE_MESSAGE, True, "ValueType"),
        (2, "sample", F.TYPE_MESSAGE, True, "Sample"),
        (3, "mapping", F.TYPE_MESSAGE, True, "Mapping"),
        (4, "location", F.TYPE_MESSAGE, True, "Location"),
        (5, "function", F.TYPE_MESSAGE, True, "Function"),
        (6, "string_table", F.TYPE_STRING, True, None),
        (9, "time_nanos", F.TYPE_INT64, False, None),
        (10, "duration_nanos", F.TYPE_INT64, False, None),
        (11, "period_type", F.TYPE_MESSAGE, False, "ValueType"),
        (12, "period", F.TYPE_INT64, False, None),
    ])
    msg("ValueType", [(1, "type", F.TYPE_INT64, False, None), (2, "unit", F.TYPE_INT64, False, None)])
    msg("Sample", [
        (1, "location_id", F.TYPE_UINT64, True, None),
        (2, "value", F.TYPE_INT64, True, None),
        (3, "label", F.TYPE_MESSAGE, True, "Label"),
    ])
    msg("Label", [(1, "key", F.TYPE_INT64, False, None), (2, "str", F.TYPE_INT64, False, None),
                  (3, "num", F.TYPE_INT64, False, None)])
    msg("Mapping", [
        (1, "id", F.TYPE_UINT64, False, None), (2, "memory_start", F.TYPE_UINT64, False, None),
        (3, "memory_limit", F.TYPE_UINT64, False, None), (4, "file_offset", F.TYPE_UINT64, False, None),
        (5, "filename", F.TYPE_INT64, False, None), (6, "build_id", F.TYPE_INT64, False, None),
    ])
    msg("Location", [
        (1, "id", F.TYPE_UINT64, False, None), (2, "mapping_id", F.TYPE_UINT64, False, None),
        (3, "address", F.TYPE_UINT64, False, None), (4, "line", F.TYPE_MESSAGE, True, "Line"),
    ])
    msg("Line", [(1, "function_id", F.TYPE_UINT64, False, None), (2, "line", F.TYPE_INT64, False, None)])
    msg("Function", [
        (1, "id", F.TYPE_UINT64, False, None), (2, "name", F.TYPE_INT64, False, None),
        (3, "system_name", F.TYPE_INT64, False, None), (4, "filename", F.TYPE_INT64, False, None),
        (5, "start_line", F.TYPE_INT64, False, None),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("perftools.profiles.Profile"))


def read_pprof(path):
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    p = pprof_class()()
    p.ParseFromString(data)
    return p


LINKS = [
    (bytes.fromhex("5b8efff798038103d269b633813fc60c"), bytes.fromhex("eee19b7ec3c1b174")),
    (bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), bytes.fromhex("b7ad6b7169203331")),
]


def link_of(i):
    """The link (1-based index into the link table) of sample i, 0 for none."""
    return [1, 2, 0][i % 3]


def links_truth(p):
    """Per trace and span id (hex): the sums of the linked samples by sample type."""
    truth = {"traces": {}, "spans": {}}
    for i, s in enumerate(p.sample):
        link = link_of(i)
        if link == 0:
            continue
        trace, span = LINKS[link - 1]
        for kind, key in (("traces", trace.hex()), ("spans", span.hex())):
            sums = truth[kind].setdefault(key, [0] * len(p.sample_type))
            for t, v in enumerate(s.value):
                sums[t] += v
    return truth


def build_request(p, service, links=False):
    d = otel.ProfilesDictionary()
    d.string_table.extend(p.string_table)  # pprof string 0 is "" too
    d.mapping_table.add()
    d.location_table.add()
    d.function_table.add()
    d.link_table.add()
    if links:
        for trace, span in LINKS:
            d.link_table.add(trace_id=trace, span_id=span)
    d.attribute_table.add()
    d.stack_table.add()

    mapping_index = {}
    for m in p.mapping:
        mapping_index[m.id] = len(d.mapping_table)
        d.mapping_table.add(memory_start=m.memory_start, memory_limit=m.memory_limit,
                            file_offset=m.file_offset, filename_strindex=m.filename)
    function_index = {}
    for f in p.function:
        function_index[f.id] = len(d.function_table)
        d.function_table.add(name_strindex=f.name, system_name_strindex=f.system_name,
                             filename_strindex=f.filename, start_line=f.start_line)
    location_index = {}
    for loc in p.location:
        location_index[loc.id] = len(d.location_table)
        ol = d.location_table.add(mapping_index=mapping_index.get(loc.mapping_id, 0), address=loc.address)
        for line in loc.line:
            ol.lines.add(function_index=function_index[line.function_id], line=line.line)

    stacks = {}
    attributes = {}
    samples = []
    for n, s in enumerate(p.sample):
        key = tuple(location_index[i] for i in s.location_id)
        if key not in stacks:
            stacks[key] = len(d.stack_table)
            d.stack_table.add(location_indices=key)
        attrs = []
        for label in s.label:
            if label.str == 0:
                continue
            k = (label.key, label.str)
            if k not in attributes:
                attributes[k] = len(d.attribute_table)
                d.attribute_table.add(key_strindex=label.key,
                                      value=common_pb2.AnyValue(string_value=p.string_table[label.str]))
            attrs.append(attributes[k])
        samples.append((stacks[key], attrs, list(s.value), link_of(n) if links else 0))

    scope = otel.ScopeProfiles(scope=common_pb2.InstrumentationScope(name="ignis-otlp-export-test", version="1"))
    for i, st in enumerate(p.sample_type):
        prof = scope.profiles.add(
            sample_type=otel.ValueType(type_strindex=st.type, unit_strindex=st.unit),
            time_unix_nano=p.time_nanos,
            duration_nano=p.duration_nanos,
            period=p.period,
        )
        if p.HasField("period_type"):
            prof.period_type.CopyFrom(otel.ValueType(type_strindex=p.period_type.type,
                                                     unit_strindex=p.period_type.unit))
        for stack, attrs, values, link in samples:
            prof.samples.add(stack_index=stack, attribute_indices=attrs, values=[values[i]],
                             link_index=link)

    resource = resource_pb2.Resource(attributes=[
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service)),
        common_pb2.KeyValue(key="host.name", value=common_pb2.AnyValue(string_value="otlp-test-host")),
    ])
    req = svc.ExportProfilesServiceRequest(dictionary=d)
    req.resource_profiles.add(resource=resource, scope_profiles=[scope])
    return req


def to_otlp_json(req):
    """protojson, then link ids from base64 to hex as OTLP/JSON requires."""
    obj = json.loads(json_format.MessageToJson(req))
    for link in obj.get("dictionary", {}).get("linkTable", []):
        for k in ("traceId", "spanId"):
            if k in link:
                link[k] = base64.b64decode(link[k]).hex()
    return json.dumps(obj)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pprof")
    ap.add_argument("--service", required=True)
    ap.add_argument("--proto")
    ap.add_argument("--json")
    ap.add_argument("--grpc")
    ap.add_argument("--tenant")
    ap.add_argument("--authorization")
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--ca", help="gRPC over TLS, trusting this PEM certificate")
    ap.add_argument("--links", help="link samples to traces; write their sums here")
    a = ap.parse_args()
    pprof = read_pprof(a.pprof)
    req = build_request(pprof, a.service, links=bool(a.links))
    if a.links:
        open(a.links, "w").write(json.dumps(links_truth(pprof)))
    if a.proto:
        open(a.proto, "wb").write(req.SerializeToString())
    if a.json:
        open(a.json, "w").write(to_otlp_json(req))
    if a.grpc:
        import grpc

        if a.ca:
            creds = grpc.ssl_channel_credentials(root_certificates=open(a.ca, "rb").read())
            channel = grpc.secure_channel(a.grpc, creds)
        else:
            channel = grpc.insecure_channel(a.grpc)
        with channel:
            export = channel.unary_unary(
                EXPORT,
                request_serializer=svc.ExportProfilesServiceRequest.SerializeToString,
                response_deserializer=svc.ExportProfilesServiceResponse.FromString,
            )
            metadata = [("x-scope-orgid", a.tenant)] if a.tenant else []
            if a.authorization:
                metadata.append(("authorization", a.authorization))
            compression = grpc.Compression.Gzip if a.gzip else grpc.Compression.NoCompression
            try:
                resp = export(req, metadata=metadata, compression=compression, timeout=30)
            except grpc.RpcError as e:
                print(json.dumps({"code": e.code().name, "details": e.details()}))
                sys.exit(3)
            print(json_format.MessageToJson(resp) or "{}")


if __name__ == "__main__":
    main()
