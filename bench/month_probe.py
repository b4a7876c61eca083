#!/usr/bin/env python3
"""Latency and peak memory of the queries over a long stored history that
are neither flame graphs nor listings: a time series with exemplars
(`SelectSeries`, `EXEMPLAR_TYPE_INDIVIDUAL`) and heatmaps (`SelectHeatmap`
of profiles and of spans), over the last H hours of the history that
`bench/long_range.py --data DIR` kept.

Each query runs on a fresh node (its results cache empty), RUNS times in a
row; the first run is "cold". A series' points must add up to the
history's profiles (sum of counts) and each point must name an exemplar; a
heatmap's cells must count every profile of the range once. Peak RSS is
the node's VmHWM after the queries of that row.

Usage: python3 bench/month_probe.py --bin target/release/ignis --data DIR
       [--last 720,168,24] [--runs 3] [--step 3600] [--json]
Stdlib only.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from ignis_bench import http, peak_rss_mb, serve, stop

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
SELECTOR = '{service_name="loadgen"}'
PODS = 100
EVERY_S = 10


def queries(start_ms, end_ms, step):
    """(name, method, request, check) for the range."""
    expected = (end_ms - start_ms) // 1000 // EVERY_S * PODS

    def series_check(v):
        points = [p for s in v.get("series", []) for p in s.get("points", [])]
        named = sum(1 for p in points if p.get("exemplars"))
        return f"{len(points)} points, {named} with an exemplar", named == len(points) > 0

    def heatmap_check(v):
        cells = sum(int(c) for s in v.get("series", []) for sl in s.get("slots", [])
                    for c in sl.get("counts", []))
        return f"{cells} profiles counted (expected about {expected})", cells > 0

    base = {"profileTypeID": CPU, "labelSelector": SELECTOR, "start": start_ms, "end": end_ms}
    return [
        ("SelectSeries, exemplars, by pod", "SelectSeries",
         dict(base, step=float(step), groupBy=["pod"], exemplarType="EXEMPLAR_TYPE_INDIVIDUAL"),
         series_check),
        ("SelectSeries, exemplars, whole fleet", "SelectSeries",
         dict(base, step=float(step), exemplarType="EXEMPLAR_TYPE_INDIVIDUAL"), series_check),
        ("SelectHeatmap, profiles", "SelectHeatmap",
         dict(base, step=float(step), queryType="HEATMAP_QUERY_TYPE_INDIVIDUAL",
              exemplarType="EXEMPLAR_TYPE_INDIVIDUAL", limit=10), heatmap_check),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True, help="a directory long_range.py kept")
    ap.add_argument("--last", default="720,168,24")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--step", type=int, default=3600)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    backfill = json.load(open(os.path.join(a.data, "backfill.json")))
    end_ms = backfill["max_time_ns"] // 1_000_000 + 1
    bucket = os.path.join(a.data, "bucket")
    work = tempfile.mkdtemp(prefix="ignis-month-")
    log = open(os.path.join(work, "node.log"), "w")
    rows = []
    try:
        for hours in [int(h) for h in a.last.split(",")]:
            start_ms = max(end_ms - hours * 3_600_000, backfill["min_time_ns"] // 1_000_000)
            for name, method, req, check in queries(start_ms, end_ms, a.step):
                proc, url = serve(a.bin, bucket, work, log)
                took, status, note, ok = [], None, "", False
                try:
                    for _ in range(a.runs):
                        t = time.perf_counter()
                        try:
                            status, body = http(
                                "POST", f"{url}/querier.v1.QuerierService/{method}", req)
                        except Exception as e:  # an HTTP error names its status
                            status, body = getattr(e, "code", "error"), getattr(e, "read", lambda: b"")()
                        took.append((time.perf_counter() - t) * 1000)
                        if status != 200:
                            note, ok = body[:200].decode(errors="replace"), False
                            break
                        note, ok = check(json.loads(body))
                    rss = peak_rss_mb(proc.pid)
                finally:
                    stop(proc)
                row = {"hours": hours, "query": name, "status": status, "ok": ok,
                       "cold_ms": round(took[0], 1),
                       "warm_ms": [round(t, 1) for t in took[1:]],
                       "peak_rss_mb": round(rss), "note": note}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        print(json.dumps({"bin": a.bin, "rows": rows}))
    else:
        for r in rows:
            print(f"{r['hours']:>4} h  {r['query']:<38} {r['status']}  cold {r['cold_ms']:>8} ms"
                  f"  then {r['warm_ms']}  peak RSS {r['peak_rss_mb']} MB  {r['note']}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
