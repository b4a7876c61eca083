"""Helpers the benchmark scripts share: ports, HTTP, nodes, memory."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=600):
    """(status, body bytes) of a request; `body` is sent as JSON."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def metric(url, name):
    """A sample's value on a node's /metrics (0 when absent)."""
    text = http("GET", url + "/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def peak_rss_mb(pid):
    """A process's peak resident memory (VmHWM), MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_ready(url, procs, log_path, secs=120):
    """Waits for `url`/ready; exits if a process in `procs` died."""
    deadline = time.time() + secs
    while time.time() < deadline:
        for p in procs:
            if p.poll() is not None:
                sys.exit(f"a node exited; log: {log_path}")
        try:
            if http("GET", url + "/ready", timeout=2)[0] == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} not ready; log: {log_path}")


def serve(binary, bucket, work, log, **env_extra):
    """A standalone node on `bucket` (its own data dir under `work`), ready:
    (process, URL). `env_extra` adds IGNIS_* settings."""
    port = free_port()
    data = tempfile.mkdtemp(prefix="node.", dir=work)
    env = dict(os.environ,
               IGNIS_SERVER__HTTP_LISTEN_ADDRESS=f"127.0.0.1:{port}",
               IGNIS_STORAGE__DATA_DIR=data,
               IGNIS_STORAGE__BUCKET__PATH=bucket,
               IGNIS_LOG__LEVEL="warn", **env_extra)
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, [proc], log.name)
    return proc, url


def stop_all(procs, timeout=30):
    """SIGTERM to every process, then SIGKILL to those still up after `timeout`."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()


def load_or_backfill(binary, data, hours, fixture, pods, variants=1):
    """The history under `data` (its `backfill.json`), written first with
    `ignis loadgen --backfill-hours` (a profile per pod every 10 s) unless a
    previous run kept it there."""
    summary = os.path.join(data, "backfill.json")
    if os.path.exists(summary):
        return json.load(open(summary))
    bf = subprocess.run(
        [binary, "loadgen", "--backfill-hours", str(hours), "--series", str(pods),
         "--every", "10s", "--data-dir", data, "--profile", fixture, "--json"]
        + (["--variants", str(variants)] if variants > 1 else []),
        check=True, capture_output=True, text=True)
    backfill = json.loads(bf.stdout.strip().splitlines()[-1])
    json.dump(backfill, open(summary, "w"))
    return backfill


def stop(proc):
    """SIGTERM, then SIGKILL after a minute."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def compact_until_idle(binary, bucket, work, log, quiet_secs=5, limit_secs=3600):
    """Runs a node whose compactor is due at once (settle 0, deletion delay
    0, a round a second) until rounds change nothing for `quiet_secs`:
    (seconds it worked, blocks written, blocks deleted, its peak RSS MB)."""
    proc, url = serve(binary, bucket, work, log,
                      IGNIS_COMPACTOR__SETTLE_SECS="0",
                      IGNIS_COMPACTOR__DELETION_DELAY_SECS="0",
                      IGNIS_COMPACTOR__INTERVAL_SECS="1")
    t0 = time.perf_counter()
    try:
        last, last_change = None, time.perf_counter()
        while True:
            time.sleep(0.5)
            now = (metric(url, "ignis_compactor_blocks_written_total"),
                   metric(url, "ignis_compactor_blocks_deleted_total"))
            if now != last:
                last, last_change = now, time.perf_counter()
            elif now[1] > 0 and time.perf_counter() - last_change > quiet_secs:
                break
            if time.perf_counter() - t0 > limit_secs:
                sys.exit("compaction did not finish in time")
        return last_change - t0, last[0], last[1], peak_rss_mb(proc.pid)
    finally:
        stop(proc)
