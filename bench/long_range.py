#!/usr/bin/env python3
"""Latency and peak memory of flame graphs over a long stored history
(issue 18's table).

1. `ignis loadgen --backfill-hours H --series 100 --every 10s` writes H hours
   of the Go CPU fixture for 100 pods into a bucket directory (one block per
   clock hour), unless --data names a directory a previous run kept.
2. For each selection (the whole fleet, one region of 25 pods, one pod) a
   fresh release node serves that bucket; `SelectMergeStacktraces` over the
   whole history runs once cold and RUNS times warm. Every answer's total is
   checked against the fixture's ground truth; the node's peak RSS (VmHWM)
   is read after the queries.

With --compact, a node whose compactor is due at once first compacts the
history (settled days become day blocks, read from their 1-day rollups).
Each node starts with an empty results cache: "cold" is the first query,
"warm" its repeats (settled hours from the cache); --no-results-cache turns
the cache off to measure the merge itself.

Usage: python3 bench/long_range.py --bin target/release/ignis [--hours 24]
       [--runs 5] [--data DIR] [--variants K] [--compact] [--no-results-cache]
       [--query flamegraph|series] [--step SECONDS] [--last H1,H2,…]
       [--fixtures ../shared/fixtures] [--json]
Stdlib only. The same script measures an older build (its binary) unchanged.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from ignis_bench import compact_until_idle, http, load_or_backfill, peak_rss_mb, serve, stop

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
PODS = 100
SELECTIONS = [
    ("fleet (100 pods)", '{service_name="loadgen"}', PODS),
    ("one region (25 pods)", '{service_name="loadgen",region="region-1"}', 25),
    ("one pod", '{service_name="loadgen",pod="pod-0042"}', 1),
]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data", help="backfill here, or reuse what a run kept here")
    ap.add_argument("--fixtures", default=os.environ.get(
        "IGNIS_FIXTURES", os.path.join(root, "..", "shared", "fixtures")))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-results-cache", action="store_true",
                    help="serve with the query-frontend's results cache off (query.results_cache_bytes = 0)")
    ap.add_argument("--variants", type=int, default=1,
                    help="programs the pods are spread over (loadgen --variants)")
    ap.add_argument("--query", choices=["flamegraph", "series"], default="flamegraph",
                    help="SelectMergeStacktraces, or SelectSeries (5-minute steps, by pod)")
    ap.add_argument("--step", type=float, default=300,
                    help="SelectSeries step, seconds (--query series)")
    ap.add_argument("--last", default="",
                    help="comma-separated hours: query the last H hours of the history "
                         "for each H (default: the whole history)")
    ap.add_argument("--compact", action="store_true",
                    help="compact the history first (settled days become day blocks)")
    a = ap.parse_args()
    fixture = os.path.join(a.fixtures, "go", "cpu.pb.gz")
    truth = json.load(open(os.path.join(a.fixtures, "go", "cpu.expected.json")))
    per_profile = truth["value_sums"]["cpu/nanoseconds"]

    work = tempfile.mkdtemp(prefix="ignis-long-range.")
    data = a.data or os.path.join(work, "bf")
    log_path = os.path.join(work, "node.log")
    log = open(log_path, "w")
    try:
        backfill = load_or_backfill(a.bin, data, a.hours, fixture, PODS, a.variants)
        bucket = os.path.join(data, "bucket")
        compaction = None
        if a.compact:
            seconds, written, deleted, rss = compact_until_idle(a.bin, bucket, work, log)
            compaction = {"seconds": round(seconds, 1), "blocks_written": written,
                          "blocks_deleted": deleted, "peak_rss_mb": round(rss, 1)}
        every_ns = 10_000_000_000
        per_pod = backfill["profiles"] // PODS
        first_ns, last_ns = backfill["min_time_ns"], backfill["max_time_ns"]
        spans = [(first_ns, last_ns, "all")]
        if a.last:
            spans = [(max(first_ns, last_ns - int(float(h) * 3_600_000_000_000)), last_ns, f"{h} h")
                     for h in a.last.split(",")]
        rows = []
        for lo_ns, hi_ns, label in spans:
            # Profiles per pod in [lo, hi]: every pod has one at first + k·10 s.
            k_lo = max(0, -(-(lo_ns - first_ns) // every_ns))
            k_hi = min(per_pod - 1, (hi_ns - first_ns) // every_ns)
            in_range = max(0, k_hi - k_lo + 1)
            start_ms = lo_ns // 1_000_000
            end_ms = hi_ns // 1_000_000 + 1
            rows.extend(measure(a, bucket, work, log, label, start_ms, end_ms,
                                in_range * per_profile))
        out = {"bin": a.bin, "backfill": backfill, "compaction": compaction, "queries": rows}
        if a.json:
            print(json.dumps(out))
        else:
            print(f"history: {backfill['profiles']} profiles, {backfill['samples']} sample rows, "
                  f"{backfill['blocks']} blocks, {backfill['bytes']} bytes")
            if compaction:
                print(f"compaction: {compaction}")
            for r in rows:
                print(f"{r['range']:>6} {r['selection']:22} cold {r['cold_ms']:9.1f} ms  "
                      f"warm {r['warm_ms_median']:9.1f} ms  peak RSS {r['peak_rss_mb']:8.1f} MB")
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def measure(a, bucket, work, log, label, start_ms, end_ms, per_pod_total):
    """Each selection over [start_ms, end_ms) on a fresh node: cold, then
    warm runs; every total checked against the ground truth."""
    rows = []
    for name, selector, pods in SELECTIONS:
        env = {"IGNIS_QUERY__RESULTS_CACHE_BYTES": "0"} if a.no_results_cache else {}
        proc, url = serve(a.bin, bucket, work, log, **env)
        time.sleep(2)  # the store-gateway indexes the bucket on start
        try:
            if a.query == "series":
                method = "SelectSeries"
                req = {"profileTypeID": CPU, "labelSelector": selector,
                       "start": start_ms, "end": end_ms, "step": a.step, "groupBy": ["pod"]}
            else:
                method = "SelectMergeStacktraces"
                req = {"profileTypeID": CPU, "labelSelector": selector,
                       "start": start_ms, "end": end_ms, "maxNodes": 1024}
            want = per_pod_total * pods
            times = []
            for run in range(a.runs + 1):
                t0 = time.perf_counter()
                _, body = http("POST", url + "/querier.v1.QuerierService/" + method, req)
                times.append((time.perf_counter() - t0) * 1e3)
                answer = json.loads(body)
                if a.query == "series":
                    total = int(sum(float(p.get("value", 0))
                                    for s in answer.get("series", [])
                                    for p in s.get("points", [])))
                    if len(answer.get("series", [])) != pods:
                        sys.exit(f"{name}: {len(answer.get('series', []))} series, {pods} pods")
                else:
                    total = int(answer["flamegraph"]["total"])
                if total != want:
                    sys.exit(f"{name}, run {run}: total {total}, ground truth {want}")
            rows.append({
                "range": label,
                "selection": name,
                "cold_ms": round(times[0], 1),
                "warm_ms_median": round(statistics.median(times[1:]), 1),
                "peak_rss_mb": round(peak_rss_mb(proc.pid), 1),
                "total": want,
            })
        finally:
            stop(proc)
    return rows


if __name__ == "__main__":
    main()
