#!/usr/bin/env python3
"""Helpers of bench/compare.sh (standard library only).

  shift FIXTURE N DIR            N copies of a gzip pprof, time_nanos 10 s apart
  total FILE [TYPE]              sum of a pprof's values of one sample type
  go-merge DIR OUT RUNS          times `go tool pprof -proto DIR/*` (median ms)
  ingest URL DIR                 POSTs every DIR/*.pb.gz to /ingest
  query URL DIR RUNS EXPECTED    times SelectMergeStacktraces and SelectMergeProfile
  report RESULTS.json            prints the table

Every command prints one JSON object on stdout; compare.sh collects them.
"""

import glob
import gzip
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
STEP_NS = 10_000_000_000


# --- the few bits of protobuf this needs ------------------------------------

def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def put_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fields(buf):
    """(field number, wire type, value, raw bytes of the whole field)."""
    i = 0
    while i < len(buf):
        start = i
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = varint(buf, i)
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, val, buf[start:i]


def signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def pprof_total(data, sample_type):
    """Sum of the values of `sample_type` ("type/unit") over all samples."""
    strings, types, samples = [], [], []
    for num, _, val, _ in fields(data):
        if num == 6:  # string_table
            strings.append(bytes(val).decode())
        elif num == 1:  # sample_type
            t = {n: v for n, _, v, _ in fields(val)}
            types.append((t.get(1, 0), t.get(2, 0)))
        elif num == 2:  # sample
            samples.append(val)
    names = [f"{strings[t]}/{strings[u]}" for t, u in types]
    idx = names.index(sample_type)
    total = 0
    for s in samples:
        values = []
        for num, wt, val, _ in fields(s):
            if num == 2 and wt == 2:  # packed
                j = 0
                while j < len(val):
                    v, j = varint(val, j)
                    values.append(signed(v))
            elif num == 2:
                values.append(signed(val))
        total += values[idx]
    return total


def read_pprof(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


# --- commands ---------------------------------------------------------------

def cmd_shift(fixture, n, out_dir):
    plain = read_pprof(fixture)
    t0 = next(v for num, _, v, _ in fields(plain) if num == 9)  # time_nanos
    rest = b"".join(raw for num, _, _, raw in fields(plain) if num != 9)
    os.makedirs(out_dir, exist_ok=True)
    size = 0
    for i in range(int(n)):
        body = rest + put_varint(9 << 3) + put_varint(t0 + i * STEP_NS)
        gz = gzip.compress(body, compresslevel=6, mtime=0)
        size += len(gz)
        with open(os.path.join(out_dir, f"p{i:05d}.pb.gz"), "wb") as f:
            f.write(gz)
    fixture_size = os.path.getsize(fixture)
    samples = sum(1 for num, _, _, _ in fields(plain) if num == 2)
    return {
        "profiles": int(n),
        "t0_ns": t0,
        "t_last_ns": t0 + (int(n) - 1) * STEP_NS,
        "gz_bytes": size,
        "fixture_gz_bytes": fixture_size,
        "pprof_samples_per_profile": samples,
    }


def cmd_total(path, sample_type="cpu/nanoseconds"):
    return {"total": pprof_total(read_pprof(path), sample_type)}


def cmd_go_merge(in_dir, out, runs):
    files = sorted(glob.glob(os.path.join(in_dir, "*.pb.gz")))
    times = []
    for _ in range(int(runs)):
        t = time.perf_counter()
        with open(out, "wb") as f:
            subprocess.run(["go", "tool", "pprof", "-proto", *files],
                           stdout=f, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t) * 1000)
    return {"go_ms": times, "go_median_ms": statistics.median(times),
            "go_total": pprof_total(read_pprof(out), "cpu/nanoseconds")}


def connection(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=300)


def cmd_ingest(url, in_dir):
    files = sorted(glob.glob(os.path.join(in_dir, "*.pb.gz")))
    conn = connection(url)
    t = time.perf_counter()
    for path in files:
        with open(path, "rb") as f:
            body = f.read()
        conn.request("POST", "/ingest?name=compare.app&format=pprof&spyName=gospy", body,
                     {"content-type": "application/octet-stream"})
        r = conn.getresponse()
        text = r.read()
        if r.status != 200:
            sys.exit(f"ingest of {path} answered {r.status}: {text[:300]!r}")
    secs = time.perf_counter() - t
    return {"ingested": len(files), "ingest_seconds": secs}


def request(conn, method, body, content_type):
    conn.request("POST", f"/querier.v1.QuerierService/{method}", body,
                 {"content-type": content_type})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{method} answered {r.status}: {data[:300]!r}")
    return data


def cmd_query(url, shifted_json, runs, expected_total):
    meta = json.loads(shifted_json)
    start_ms = meta["t0_ns"] // 1_000_000
    end_ms = meta["t_last_ns"] // 1_000_000 + 1
    expected = int(expected_total)
    conn = connection(url)
    fg_body = json.dumps({"profileTypeID": CPU, "labelSelector": '{service_name="compare.app"}',
                          "start": start_ms, "end": end_ms}).encode()
    # SelectMergeProfileRequest in protobuf: the pprof comes back as bytes.
    mp_body = b"".join([
        put_varint(1 << 3 | 2), put_varint(len(CPU)), CPU.encode(),
        put_varint(2 << 3 | 2), put_varint(len('{service_name="compare.app"}')),
        b'{service_name="compare.app"}',
        put_varint(3 << 3), put_varint(start_ms),
        put_varint(4 << 3), put_varint(end_ms),
    ])
    out = {"flamegraph_ms": [], "pprof_ms": []}
    for _ in range(int(runs)):
        t = time.perf_counter()
        fg = request(conn, "SelectMergeStacktraces", fg_body, "application/json")
        out["flamegraph_ms"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        pp = request(conn, "SelectMergeProfile", mp_body, "application/proto")
        out["pprof_ms"].append((time.perf_counter() - t) * 1000)
    fg_total = int(json.loads(fg)["flamegraph"]["total"])
    pp_total = pprof_total(pp, "cpu/nanoseconds")
    if fg_total != expected or pp_total != expected:
        sys.exit(f"WRONG TOTALS: flame graph {fg_total}, pprof {pp_total}, expected {expected}")
    out.update({
        "flamegraph_median_ms": statistics.median(out["flamegraph_ms"]),
        "pprof_median_ms": statistics.median(out["pprof_ms"]),
        "flamegraph_total": fg_total, "pprof_total": pp_total,
        "flamegraph_bytes": len(fg), "pprof_bytes": len(pp),
    })
    return out


def fmt_ms(v):
    return f"{v:,.1f} ms"


def cmd_report(path):
    r = json.load(open(path))
    go = r["go"]["go_median_ms"]
    head, block = r["query_head"], r["query_block"]
    # The node reads and decodes the block on the first query after the
    # restart; the cached figures are the medians of the later runs.
    cached_fg = statistics.median(block["flamegraph_ms"][1:] or block["flamegraph_ms"])
    cached_pp = statistics.median(block["pprof_ms"])
    n = r["shift"]["profiles"]
    rows = [
        ("(a) merge 1 000 Go CPU profiles", "", "", ""),
        ("  go tool pprof -proto (1 000 files)", fmt_ms(go), "1×", "target: Ignis ≥ 50×"),
        ("  Ignis flame graph, head (HTTP JSON)", fmt_ms(head["flamegraph_median_ms"]),
         f"{go / head['flamegraph_median_ms']:.1f}× faster", ""),
        ("  Ignis merged pprof, head (HTTP proto)", fmt_ms(head["pprof_median_ms"]),
         f"{go / head['pprof_median_ms']:.1f}× faster", ""),
        ("  Ignis flame graph, block (cached)", fmt_ms(cached_fg),
         f"{go / cached_fg:.1f}× faster", ""),
        ("  Ignis merged pprof, block (cached)", fmt_ms(cached_pp),
         f"{go / cached_pp:.1f}× faster", ""),
        ("  Ignis flame graph, block (first query: read + decode)",
         fmt_ms(block["flamegraph_ms"][0]),
         f"{go / block['flamegraph_ms'][0]:.1f}× faster", ""),
    ]
    lg, floor, cl = r["loadgen"], r["floor"], r["cluster"]
    per_core = lg["mb_per_node_cpu_sec"]
    top = floor["decode_floor_in_place"]["gz_mb_s"]
    pct = lambda v: f"{100 * v / top:.0f} %"
    rss = lg.get("rss_per_minute_max_bytes") or [0]
    rows += [
        ("(b) ingest vs decode floors (gzipped pprof, MB/s of gzip input)", "", "", ""),
        ("  gunzip alone, 1 core", f"{floor['gunzip_only']['gz_mb_s']:.1f} MB/s",
         pct(floor["gunzip_only"]["gz_mb_s"]), ""),
        ("  floor: gunzip + prost decode, 1 core", f"{floor['decode_floor']['gz_mb_s']:.1f} MB/s",
         pct(floor["decode_floor"]["gz_mb_s"]), ""),
        ("  floor: gunzip + in-place decode, 1 core", f"{top:.1f} MB/s", "100 %",
         "the floor the targets use"),
        ("  Ignis decode + split, 1 core (criterion)", f"{floor['decode_split']['gz_mb_s']:.1f} MB/s",
         pct(floor["decode_split"]["gz_mb_s"]), ""),
        ("  Ignis end to end, per node core (loadgen)", f"{per_core:.1f} MB/s", pct(per_core),
         "target: ≥ 40 MB/s and ≥ 50 %"),
        ("  Ignis end to end, whole node (loadgen)", f"{lg['mb_per_sec']:.1f} MB/s",
         f"node busy {lg['node_cores_busy']:.2f} of {r['machine']['nproc']} cores", ""),
        ("  decoder alone, prost (plain pprof)", f"{floor['decoder_prost']['us']:.0f} µs", "1×", ""),
        ("  decoder alone, in place (plain pprof)", f"{floor['decoder_in_place']['us']:.0f} µs",
         f"{floor['decoder_prost']['us'] / floor['decoder_in_place']['us']:.1f}× faster", ""),
        ("  node RSS, saturated: first minute / last minute / max",
         " / ".join(f"{b / 2**20:.0f}" for b in (rss[0], rss[-1], max(rss))) + " MiB", "",
         "target: flat, < 1 GiB"),
        ("  3 nodes RF=3, 20 profiles/s: ack p50 / p99",
         f"{cl['latency_ms'][0]:.1f} / {cl['latency_ms'][2]:.1f} ms", "", "target: p99 < 20 ms"),
    ]
    blk, s = r["block"], r["shift"]
    samples = n * s["pprof_samples_per_profile"]
    gz_per = s["gz_bytes"] / samples
    blk_per = blk["bytes"] / samples
    rows += [
        ("(c) bytes per pprof sample", "", "", ""),
        ("  gzipped pprof input", f"{gz_per:.3f} B", "1×", ""),
        ("  block on disk (all files)", f"{blk_per:.3f} B", f"{gz_per / blk_per:.1f}× smaller",
         "target: ≤ 4 B"),
    ]
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip())
    m = r["machine"]
    print()
    print(f"{n} profiles = {samples:,} pprof samples ({s['gz_bytes']:,} gzipped bytes); "
          f"block {blk['bytes']:,} bytes, {blk['stats']['samples']:,} sample rows; "
          f"totals checked: {head['flamegraph_total']:,} ns = {n} × fixture")
    ing = r["ingest"]
    print(f"stored with {ing['ingested']} sequential /ingest POSTs on one connection in "
          f"{ing['ingest_seconds']:.2f} s ({ing['ingested'] / ing['ingest_seconds']:.0f} profiles/s)")
    print(f"loadgen: {lg['profiles']:,} profiles in {lg['seconds']:.1f} s, "
          f"node CPU {lg['node_cpu_sec']:.1f} s, ack p50/p99 {lg['latency_ms'][0]:.1f}/"
          f"{lg['latency_ms'][2]:.1f} ms; RSS max per minute (MiB): "
          + " ".join(str(b >> 20) for b in rss))
    print(f"cluster: {cl['profiles']:,} profiles in {cl['seconds']:.1f} s at RF=3, "
          f"ack p50/p90/p99/max {' / '.join(f'{v:.1f}' for v in cl['latency_ms'])} ms")
    print(f"machine: {m['nproc']} cores, {m['mem']}, {m['model']}; {m['date']}")
    return None


def main():
    cmd, args = sys.argv[1].replace("-", "_"), sys.argv[2:]
    out = globals()[f"cmd_{cmd}"](*args)
    if out is not None:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
