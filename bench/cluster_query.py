#!/usr/bin/env python3
"""Bytes moved between nodes, and latency, of a one-pod flame graph over a
stored hour in a three-node cluster (issue 14's measure of scoped reads).

1. `ignis loadgen --backfill-hours 1 --series 100 --every 10s` writes an hour
   of the Go CPU fixture for 100 pods into a bucket directory (one block).
2. Three `-target=all` nodes (replication factor --rf, gossip on loopback) serve
   that bucket. Each node advertises the address of a byte-counting TCP proxy
   in front of its HTTP port, so every node-to-node call (and nothing else)
   passes through a proxy.
3. `SelectMergeStacktraces` of `{service_name="loadgen",pod="pod-0001"}` over
   the hour, through node 1, cold once and warm RUNS times; the script checks
   the flame graph's total against the fixture's ground truth and reports the
   bytes the proxies carried per query and the latencies.

Usage: python3 bench/cluster_query.py --bin target/release/ignis [--runs 10]
       [--rf 3] [--fixtures ../shared/fixtures] [--json]
Stdlib only. The same script measures an older build (its binary) unchanged.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from ignis_bench import free_port, http, stop_all, wait_ready

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
SELECTOR = '{service_name="loadgen",pod="pod-0001"}'


class Proxies:
    """Byte-counting TCP proxies on one asyncio loop in a thread."""

    def __init__(self):
        self.bytes = 0
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def add(self, listen_port, target_port):
        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    with self.lock:
                        self.bytes += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(cr, cw):
            try:
                tr, tw = await asyncio.open_connection("127.0.0.1", target_port)
            except OSError:
                cw.close()
                return
            await asyncio.gather(pipe(cr, tw), pipe(tr, cw))

        async def start():
            return await asyncio.start_server(handle, "127.0.0.1", listen_port)

        asyncio.run_coroutine_threadsafe(start(), self.loop).result()

    def take(self):
        with self.lock:
            n, self.bytes = self.bytes, 0
        return n


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rf", type=int, default=3, help="replication factor")
    ap.add_argument("--fixtures", default=os.environ.get(
        "IGNIS_FIXTURES", os.path.join(root, "..", "shared", "fixtures")))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    fixture = os.path.join(a.fixtures, "go", "cpu.pb.gz")
    truth = json.load(open(os.path.join(a.fixtures, "go", "cpu.expected.json")))
    per_profile = truth["value_sums"]["cpu/nanoseconds"]

    work = tempfile.mkdtemp(prefix="ignis-cluster-query.")
    log_path = os.path.join(work, "nodes.log")
    log = open(log_path, "w")
    procs = []
    try:
        bf = subprocess.run(
            [a.bin, "loadgen", "--backfill-hours", "1", "--series", "100",
             "--every", "10s", "--data-dir", os.path.join(work, "bf"),
             "--profile", fixture, "--json"],
            check=True, capture_output=True, text=True)
        backfill = json.loads(bf.stdout.strip().splitlines()[-1])
        bucket = os.path.join(work, "bf", "bucket")

        proxies = Proxies()
        gossip = [free_port() for _ in range(3)]
        nodes = []
        for i in range(3):
            http_port, proxy_port = free_port(), free_port()
            proxies.add(proxy_port, http_port)
            env = dict(os.environ,
                       IGNIS_CLUSTER__ENABLED="true",
                       IGNIS_CLUSTER__REPLICATION_FACTOR=str(a.rf),
                       IGNIS_CLUSTER__NODE_ID=f"n{i + 1}",
                       IGNIS_CLUSTER__GOSSIP_LISTEN_ADDRESS=f"127.0.0.1:{gossip[i]}",
                       IGNIS_CLUSTER__SEEDS=json.dumps([f"127.0.0.1:{gossip[0]}"]),
                       IGNIS_CLUSTER__HTTP_ADVERTISE_ADDRESS=f"127.0.0.1:{proxy_port}",
                       IGNIS_SERVER__HTTP_LISTEN_ADDRESS=f"127.0.0.1:{http_port}",
                       IGNIS_STORAGE__DATA_DIR=os.path.join(work, f"n{i + 1}"),
                       IGNIS_STORAGE__BUCKET__PATH=bucket,
                       IGNIS_LOG__LEVEL="warn")
            procs.append(subprocess.Popen([a.bin], env=env, stdout=log, stderr=log))
            nodes.append(f"http://127.0.0.1:{http_port}")
        for url in nodes:
            wait_ready(url, procs, log_path)
        # Every node sees the other two (and serves reads through them).
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                members = json.loads(http("GET", nodes[0] + "/cluster?format=json")[1])["members"]
                alive = [m for m in members
                         if str(m.get("state", "")).lower() == "alive" and m.get("ready", True)]
                if len(alive) >= 3:
                    break
            except Exception:
                pass
            time.sleep(0.5)
        time.sleep(3)  # store-gateways index the bucket on start

        start_ms = backfill["min_time_ns"] // 1_000_000
        end_ms = backfill["max_time_ns"] // 1_000_000 + 1
        req = {"profileTypeID": CPU, "labelSelector": SELECTOR,
               "start": start_ms, "end": end_ms, "maxNodes": 1024}
        url = nodes[0] + "/querier.v1.QuerierService/SelectMergeStacktraces"
        want = backfill["profiles"] // 100 * per_profile  # pod-0001's profiles
        results = []
        proxies.take()
        for run in range(a.runs + 1):
            t0 = time.perf_counter()
            status, body = http("POST", url, req)
            ms = (time.perf_counter() - t0) * 1e3
            moved = proxies.take()
            total = int(json.loads(body)["flamegraph"]["total"])
            if total != want:
                sys.exit(f"run {run}: total {total}, ground truth {want}")
            results.append({"ms": ms, "bytes": moved})
        cold, warm = results[0], results[1:]
        out = {
            "bin": a.bin,
            "replication_factor": a.rf,
            "backfill": backfill,
            "cold_ms": round(cold["ms"], 1),
            "cold_bytes": cold["bytes"],
            "warm_ms_median": round(statistics.median(r["ms"] for r in warm), 1),
            "warm_ms_min": round(min(r["ms"] for r in warm), 1),
            "warm_bytes_median": int(statistics.median(r["bytes"] for r in warm)),
            "total": want,
        }
        if a.json:
            print(json.dumps(out))
        else:
            for k, v in out.items():
                print(f"{k:20} {v}")
    finally:
        stop_all(procs)
        log.close()
        if a.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
