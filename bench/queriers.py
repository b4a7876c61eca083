#!/usr/bin/env python3
"""Query throughput with 1, 2 and 4 querier processes on the same data
(issue 17: querier count scales throughput).

1. `ignis loadgen --backfill-hours H --series 100 --every 10s` writes H hours
   of the Go CPU fixture for 100 pods into a bucket directory, unless --data
   names a directory a previous run (of this script or long_range.py) kept.
2. For each querier count N, a cluster on loopback (gossip) serves that
   bucket: one `ingester,store-gateway` node, one
   `query-frontend,query-scheduler` node (no store-gateway: no results
   cache, every query is merged) and N `querier` nodes.
3. CLIENTS clients send QUERIES `SelectMergeStacktraces` of one region (25
   pods) over the last RANGE hours of the history to the frontend, which splits each into
   sub-queries the queriers pull from the scheduler. Every answer's total is
   checked against the fixture's ground truth; the script reports queries
   per second, latency p50/p99 and the sub-queries each querier ran.

Usage: python3 bench/queriers.py --bin target/release/ignis [--data DIR]
       [--hours 24] [--range-hours 2] [--queriers 1,2,4] [--clients 4]
       [--queries 16]
       [--fixtures ../shared/fixtures] [--json]
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
import threading
import time
import urllib.error

from ignis_bench import free_port, http, load_or_backfill, stop_all, wait_ready

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
PODS = 100
SELECTOR = '{service_name="loadgen",region="region-1"}'
SELECTED_PODS = 25


def metric_sum(url, name):
    """A metric's value on a node, summed over its label sets."""
    text = http("GET", url + "/metrics")[1].decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_cluster(binary, bucket, work, log, queriers):
    """(processes, frontend URL, querier URLs) of a running cluster."""
    gossip = free_port()
    specs = ([("store", "ingester,store-gateway"),
              ("frontend", "query-frontend,query-scheduler")]
             + [(f"querier-{i}", "querier") for i in range(queriers)])
    procs, urls = [], []
    for i, (name, target) in enumerate(specs):
        port = free_port()
        env = dict(os.environ,
                   IGNIS_TARGET=target,
                   IGNIS_CLUSTER__ENABLED="true",
                   IGNIS_CLUSTER__REPLICATION_FACTOR="1",
                   IGNIS_CLUSTER__NODE_ID=name,
                   IGNIS_CLUSTER__GOSSIP_LISTEN_ADDRESS=
                   f"127.0.0.1:{gossip if i == 0 else free_port()}",
                   IGNIS_CLUSTER__SEEDS=json.dumps([f"127.0.0.1:{gossip}"]),
                   IGNIS_SERVER__HTTP_LISTEN_ADDRESS=f"127.0.0.1:{port}",
                   IGNIS_STORAGE__DATA_DIR=os.path.join(work, name),
                   IGNIS_STORAGE__BUCKET__PATH=bucket,
                   IGNIS_LOG__LEVEL="warn")
        procs.append(subprocess.Popen([binary], env=env, stdout=log, stderr=log))
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        wait_ready(url, procs, log.name)
    deadline = time.time() + 60
    while time.time() < deadline:
        members = json.loads(http("GET", urls[1] + "/cluster?format=json")[1])["members"]
        alive = [m for m in members if str(m.get("state", "")).lower() == "alive"]
        if len(alive) >= len(specs):
            break
        time.sleep(0.5)
    else:
        sys.exit(f"the cluster did not form; log: {log.name}")
    # The store-gateway indexes the bucket; queriers find the scheduler.
    time.sleep(4)
    return procs, urls[1], urls[2:], [name for name, _ in specs]


def cpu_secs(pid):
    """CPU seconds (user + system) a process used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(url, req, want, clients, queries):
    """(wall seconds, sorted latencies ms) of `queries` queries by `clients` threads."""
    lock = threading.Lock()
    todo = [queries]
    latencies, errors = [], []

    def client():
        while True:
            with lock:
                if todo[0] == 0:
                    return
                todo[0] -= 1
            t0 = time.perf_counter()
            try:
                _, body = http("POST", url + "/querier.v1.QuerierService/SelectMergeStacktraces", req)
                total = int(json.loads(body)["flamegraph"]["total"])
                if total != want:
                    errors.append(f"total {total}, ground truth {want}")
            except urllib.error.HTTPError as e:
                errors.append(f"{e}: {e.read().decode(errors='replace')}")
            except Exception as e:  # noqa: BLE001
                errors.append(str(e))
            with lock:
                latencies.append((time.perf_counter() - t0) * 1e3)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        sys.exit(f"{len(errors)} queries failed: {errors[0]}")
    return wall, sorted(latencies)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", help="backfill here, or reuse what a run kept here")
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--range-hours", type=float, default=2,
                    help="the queries' range: the last hours of the history")
    ap.add_argument("--queriers", default="1,2,4")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("--fixtures", default=os.environ.get(
        "IGNIS_FIXTURES", os.path.join(root, "..", "shared", "fixtures")))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    fixture = os.path.join(a.fixtures, "go", "cpu.pb.gz")
    truth = json.load(open(os.path.join(a.fixtures, "go", "cpu.expected.json")))
    per_profile = truth["value_sums"]["cpu/nanoseconds"]

    work = tempfile.mkdtemp(prefix="ignis-queriers.")
    data = a.data or os.path.join(work, "bf")
    log = open(os.path.join(work, "nodes.log"), "w")
    rows = []
    try:
        backfill = load_or_backfill(a.bin, data, a.hours, fixture, PODS)
        bucket = os.path.join(data, "bucket")
        end_ms = backfill["max_time_ns"] // 1_000_000 + 1
        start_ms = max(backfill["min_time_ns"] // 1_000_000,
                       end_ms - int(a.range_hours * 3_600_000))
        req = {"profileTypeID": CPU, "labelSelector": SELECTOR,
               "start": start_ms, "end": end_ms, "maxNodes": 1024}
        # Each pod has a profile every 10 s, the last at max_time.
        per_pod = (backfill["max_time_ns"] // 1_000_000 - start_ms) // 10_000 + 1
        per_pod = min(per_pod, backfill["profiles"] // PODS)
        want = per_pod * SELECTED_PODS * per_profile
        for n in [int(x) for x in a.queriers.split(",")]:
            run_dir = tempfile.mkdtemp(prefix=f"q{n}.", dir=work)
            procs, frontend, queriers, names = start_cluster(a.bin, bucket, run_dir, log, n)
            try:
                run_load(frontend, req, want, 1, 1)  # warm: footers, files
                cpu0 = [cpu_secs(p.pid) for p in procs]
                wall, lat = run_load(frontend, req, want, a.clients, a.queries)
                cpu = {name: round(cpu_secs(p.pid) - c, 1)
                       for name, p, c in zip(names, procs, cpu0)}
                ran = [metric_sum(q, "ignis_querier_sub_queries_total") for q in queriers]
                rows.append({
                    "queriers": n,
                    "queries_per_s": round(a.queries / wall, 2),
                    "p50_ms": round(statistics.median(lat), 1),
                    "p99_ms": round(lat[-1], 1),
                    "sub_queries_per_querier": [int(r) for r in ran],
                    "cpu_secs": cpu,
                    "wall_secs": round(wall, 1),
                })
            finally:
                stop_all(procs)
        out = {"bin": a.bin, "backfill": backfill, "range_hours": a.range_hours,
               "clients": a.clients,
               "queries": a.queries, "selector": SELECTOR, "runs": rows}
        if a.json:
            print(json.dumps(out))
        else:
            print(f"history: {backfill['profiles']} profiles, {backfill['blocks']} blocks; "
                  f"{a.clients} clients, {a.queries} queries of {SELECTOR} over its last "
                  f"{a.range_hours} h")
            for r in rows:
                print(f"{r['queriers']} querier(s): {r['queries_per_s']:6.2f} queries/s  "
                      f"p50 {r['p50_ms']:8.1f} ms  p99 {r['p99_ms']:8.1f} ms  "
                      f"sub-queries per querier {r['sub_queries_per_querier']}")
                print(f"   {r['wall_secs']} s wall; CPU seconds by node: {r['cpu_secs']}")
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
