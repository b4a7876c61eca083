#!/usr/bin/env python3
"""What compaction costs and saves (issue 18): bytes in the bucket, the
compactor's throughput, and a fleet flame graph's latency and peak memory,
before and after, on the history three replicated ingesters leave.

1. `ignis loadgen --backfill-hours H --series 100 --every 10s --replicas 3`
   writes H hours of the Go CPU fixture for 100 pods as three ingesters
   would: every profile in three blocks, each replica cutting its blocks at
   a different minute of the hour.
2. A release node serves that bucket with compaction held off; the flame
   graph of the fleet over the whole history runs cold once and RUNS times
   warm (totals checked against the fixture's ground truth).
3. A node with the compactor due at once (settle 0, deletion delay 0,
   a round every second) compacts the bucket; the script waits until rounds
   change nothing more (the current hour is not settled, so its replicas
   stay) and reports the wall time and sample rows per second.
4. The same flame graph on a fresh node over the compacted bucket.

Usage: python3 bench/compaction.py --bin target/release/ignis [--hours 6]
       [--runs 5] [--fixtures ../shared/fixtures] [--json]
Stdlib only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from ignis_bench import compact_until_idle, http, peak_rss_mb, serve, stop

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
PODS = 100
SELECTOR = '{service_name="loadgen"}'


def bucket_stats(bucket):
    blocks, size, samples = 0, 0, 0
    root = os.path.join(bucket, "anonymous", "blocks")
    for ulid in os.listdir(root):
        meta = os.path.join(root, ulid, "meta.json")
        if not os.path.exists(meta):
            continue
        m = json.load(open(meta))
        blocks += 1
        size += sum(f["size_bytes"] for f in m["files"])
        samples += m["stats"]["samples"]
    return {"blocks": blocks, "bytes": size, "sample_rows": samples}


def flamegraph(a, bucket, work, log, backfill, want):
    proc, url = serve(a.bin, bucket, work, log, IGNIS_COMPACTOR__SETTLE_SECS="100000000")
    time.sleep(2)
    try:
        req = {"profileTypeID": CPU, "labelSelector": SELECTOR,
               "start": backfill["min_time_ns"] // 1_000_000,
               "end": backfill["max_time_ns"] // 1_000_000 + 1, "maxNodes": 1024}
        times = []
        for run in range(a.runs + 1):
            t0 = time.perf_counter()
            _, body = http("POST", url + "/querier.v1.QuerierService/SelectMergeStacktraces", req)
            times.append((time.perf_counter() - t0) * 1e3)
            total = int(json.loads(body)["flamegraph"]["total"])
            if total != want:
                sys.exit(f"run {run}: total {total}, ground truth {want}")
        return {"cold_ms": round(times[0], 1),
                "warm_ms_median": round(statistics.median(times[1:]), 1),
                "peak_rss_mb": round(peak_rss_mb(proc.pid), 1)}
    finally:
        stop(proc)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--fixtures", default=os.environ.get(
        "IGNIS_FIXTURES", os.path.join(root, "..", "shared", "fixtures")))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    fixture = os.path.join(a.fixtures, "go", "cpu.pb.gz")
    truth = json.load(open(os.path.join(a.fixtures, "go", "cpu.expected.json")))
    per_profile = truth["value_sums"]["cpu/nanoseconds"]

    work = tempfile.mkdtemp(prefix="ignis-compaction.")
    log_path = os.path.join(work, "node.log")
    log = open(log_path, "w")
    try:
        bf = subprocess.run(
            [a.bin, "loadgen", "--backfill-hours", str(a.hours), "--series", str(PODS),
             "--every", "10s", "--replicas", "3", "--data-dir", os.path.join(work, "bf"),
             "--profile", fixture, "--json"],
            check=True, capture_output=True, text=True)
        backfill = json.loads(bf.stdout.strip().splitlines()[-1])
        bucket = os.path.join(work, "bf", "bucket")
        want = backfill["profiles"] * per_profile
        before = bucket_stats(bucket)
        query_before = flamegraph(a, bucket, work, log, backfill, want)

        seconds, written, _, compactor_rss = compact_until_idle(a.bin, bucket, work, log)
        after = bucket_stats(bucket)
        query_after = flamegraph(a, bucket, work, log, backfill, want)
        out = {
            "bin": a.bin, "backfill": backfill,
            "before": before, "after": after,
            "compaction": {"seconds": round(seconds, 1), "blocks_written": written,
                           "sample_rows_per_sec": round(before["sample_rows"] / seconds),
                           "peak_rss_mb": round(compactor_rss, 1)},
            "query_before": query_before, "query_after": query_after,
        }
        if a.json:
            print(json.dumps(out))
        else:
            print(json.dumps(out, indent=2))
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
