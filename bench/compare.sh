#!/usr/bin/env bash
# Side-by-side ratios of issue 8, measured in one run on this machine:
#   (a) `go tool pprof -proto` merging 1 000 copies of the Go CPU fixture
#       vs Ignis answering the flame graph and the merged pprof of the same
#       1 000 profiles once stored (from the head, then from the block);
#   (b) Ignis's ingest throughput (`ignis loadgen`, saturated, per core the
#       node used) vs the decode floors (gunzip alone, gunzip + prost,
#       gunzip + Ignis's in-place decoder; criterion), the decoder alone vs
#       prost, the node's RSS over the run (sampled every 5 s), and the
#       acknowledgement latency of three nodes at replication factor 3 at a
#       steady 20 profiles/s;
#   (c) bytes on disk per sample of the block vs the gzipped pprof input.
#
# Usage: bench/compare.sh            (from anywhere in a clone; needs cargo,
#                                     python3, curl; installs Go if missing)
# Knobs: PROFILES=1000 RUNS=5 LOAD_SECS=600 LOAD_CONCURRENCY=8 CLUSTER_SECS=60
#        KEEP=1 (keep the temp dir)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIXTURES=${IGNIS_FIXTURES:-$ROOT/../shared/fixtures}
FIXTURE=$FIXTURES/go/cpu.pb.gz
PROFILES=${PROFILES:-1000}
RUNS=${RUNS:-5}
LOAD_SECS=${LOAD_SECS:-600}
CLUSTER_SECS=${CLUSTER_SECS:-60}
LOAD_CONCURRENCY=${LOAD_CONCURRENCY:-8}
PORT=${PORT:-4190}
URL=http://127.0.0.1:$PORT
PY="python3 $ROOT/bench/compare.py"
WORK=$(mktemp -d -t ignis-compare.XXXXXX)
NODE_PID=
CLUSTER_PIDS=()

say() { printf '\n== %s\n' "$*" >&2; }

cleanup() {
    if [[ -n $NODE_PID ]] && kill -0 "$NODE_PID" 2>/dev/null; then kill "$NODE_PID"; fi
    for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

# Starts a release node on data dir $1 (blocks never cut by age or size
# while it runs; SIGTERM cuts the head into a block).
start_node() {
    IGNIS_STORAGE__DATA_DIR=$1 \
    IGNIS_STORAGE__MAX_BLOCK_DURATION_SECS=86400 \
    IGNIS_STORAGE__MAX_HEAD_SAMPLES=0 \
    IGNIS_LOG__LEVEL=warn \
        "$BIN" --listen "127.0.0.1:$PORT" >>"$WORK/node.log" 2>&1 &
    NODE_PID=$!
    for _ in $(seq 1 200); do
        if curl -fsS "$URL/ready" >/dev/null 2>&1; then return 0; fi
        kill -0 "$NODE_PID" 2>/dev/null || { cat "$WORK/node.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "node did not become ready" >&2; exit 1
}

stop_node() {
    kill -TERM "$NODE_PID"
    wait "$NODE_PID" || { echo "node exited with $?" >&2; exit 1; }
    NODE_PID=
}

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

[[ -f $FIXTURE ]] || { echo "missing $FIXTURE (set IGNIS_FIXTURES)" >&2; exit 1; }

say "installing Go (Debian golang-go) if needed"
bash "$ROOT/integration/scripts/setup-go.sh" >&2

say "building ignis (release)"
(cd "$ROOT" && cargo build --release --bin ignis >&2)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ignis

EXPECTED=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['value_sums']['cpu/nanoseconds'] * int(sys.argv[2]))" \
    "$FIXTURES/go/cpu.expected.json" "$PROFILES")

say "writing $PROFILES time-shifted copies of go/cpu.pb.gz (10 s apart)"
SHIFT=$($PY shift "$FIXTURE" "$PROFILES" "$WORK/profiles")

say "go tool pprof -proto over the $PROFILES files: 1 warm-up + $RUNS runs"
$PY go-merge "$WORK/profiles" "$WORK/go-merged.pb.gz" 1 >/dev/null
GO=$($PY go-merge "$WORK/profiles" "$WORK/go-merged.pb.gz" "$RUNS")
GO_TOTAL=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["go_total"])' "$GO")
[[ $GO_TOTAL == "$EXPECTED" ]] || { echo "go tool pprof total $GO_TOTAL != $EXPECTED" >&2; exit 1; }

say "Ignis: ingesting the $PROFILES files into a release node, querying from the head"
start_node "$WORK/node"
INGEST=$($PY ingest "$URL" "$WORK/profiles")
$PY query "$URL" "$SHIFT" 1 "$EXPECTED" >/dev/null   # warm-up
QUERY_HEAD=$($PY query "$URL" "$SHIFT" "$RUNS" "$EXPECTED")

say "SIGTERM: the head becomes a block; restart and query the block"
stop_node
META=$(find "$WORK/node" -name meta.json | head -1)
[[ -n $META ]] || { echo "no block under $WORK/node" >&2; exit 1; }
BLOCK_DIR=$(dirname "$META")
BLOCK=$(python3 - "$BLOCK_DIR" <<'EOF'
import json, os, sys
d = sys.argv[1]
meta = json.load(open(os.path.join(d, "meta.json")))
size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
print(json.dumps({"dir": d, "bytes": size, "stats": meta["stats"],
                  "files": {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}}))
EOF
)
start_node "$WORK/node"
QUERY_BLOCK=$($PY query "$URL" "$SHIFT" "$RUNS" "$EXPECTED")
stop_node

say "ingest throughput and memory: ignis loadgen for ${LOAD_SECS}s, $LOAD_CONCURRENCY connections"
# Default limits (the head's memory bound among them): the node cuts and
# uploads blocks as it would in production.
IGNIS_STORAGE__DATA_DIR=$WORK/load IGNIS_LOG__LEVEL=warn \
    "$BIN" --listen "127.0.0.1:$PORT" >>"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 200); do curl -fsS "$URL/ready" >/dev/null 2>&1 && break; sleep 0.1; done
( while kill -0 "$NODE_PID" 2>/dev/null; do
      printf '%s %s\n' "$(date +%s)" "$(awk '/^VmRSS/ { print $2 }' "/proc/$NODE_PID/status")"
      sleep 5
  done ) >"$WORK/rss.txt" 2>/dev/null &
CPU0=$(cpu_secs "$NODE_PID")
LG=$("$BIN" loadgen --url "$URL" --duration "$LOAD_SECS" --concurrency "$LOAD_CONCURRENCY" \
    --series 100 --profile "$FIXTURE" --json)
CPU1=$(cpu_secs "$NODE_PID")
stop_node
LOADGEN=$(python3 - "$LG" "$CPU0" "$CPU1" "$WORK/rss.txt" <<'EOF'
import json, sys
lg = json.loads(sys.argv[1]); cpu = float(sys.argv[3]) - float(sys.argv[2])
lg["node_cpu_sec"] = cpu
lg["node_cores_busy"] = cpu / lg["seconds"]
lg["mb_per_node_cpu_sec"] = lg["mb_per_sec"] * lg["seconds"] / cpu
# RSS (KiB) sampled every 5 s: the largest of each minute of the run.
rows = [l.split() for l in open(sys.argv[4]) if len(l.split()) == 2]
t0 = int(rows[0][0]) if rows else 0
per_min = {}
for t, kib in rows:
    m = (int(t) - t0) // 60
    per_min[m] = max(per_min.get(m, 0), int(kib) * 1024)
lg["rss_per_minute_max_bytes"] = [per_min[m] for m in sorted(per_min)]
print(json.dumps(lg))
EOF
)

say "three nodes, replication factor 3: ${CLUSTER_SECS}s at 20 profiles/s on one connection"
for i in 1 2 3; do
    IGNIS_CLUSTER__ENABLED=true IGNIS_CLUSTER__NODE_ID=n$i \
    IGNIS_CLUSTER__GOSSIP_LISTEN_ADDRESS=127.0.0.1:1794$i IGNIS_CLUSTER__SEEDS='["127.0.0.1:17941"]' \
    IGNIS_SERVER__HTTP_LISTEN_ADDRESS=127.0.0.1:1404$i IGNIS_STORAGE__DATA_DIR=$WORK/c$i \
    IGNIS_LOG__LEVEL=warn "$BIN" >>"$WORK/cluster.log" 2>&1 &
    CLUSTER_PIDS+=($!)
done
# Every node ready; then a few seconds for gossip to put all three in the ring.
for i in 1 2 3; do
    for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:1404$i/ready" >/dev/null 2>&1 && break; sleep 0.1; done
done
sleep 5
CLUSTER=$("$BIN" loadgen --url http://127.0.0.1:14041 --duration "$CLUSTER_SECS" --concurrency 1 \
    --rate 20 --profile "$FIXTURE" --json)
for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid"; wait "$pid" || true; done
CLUSTER_PIDS=()

say "decode floors, decoder vs prost, decode + split (criterion)"
(cd "$ROOT" && cargo bench -p ignis-actors --bench ingest -- --warm-up-time 1 --measurement-time 3 \
    'go_cpu_fixture/(gunzip_only|decode_floor|decode_floor_in_place|decode_split)$|pprof_decode_go_cpu/' >&2)
FLOOR=$(python3 - "${CARGO_TARGET_DIR:-$ROOT/target}/criterion" "$FIXTURE" <<'EOF'
import gzip, json, os, sys
d, path = sys.argv[1], sys.argv[2]
size, plain = os.path.getsize(path), len(gzip.open(path).read())
ns = lambda g, b: json.load(open(os.path.join(d, g, b, "new", "estimates.json")))["median"]["point_estimate"]
out = {"gz_bytes": size, "plain_bytes": plain}
for name in ["gunzip_only", "decode_floor", "decode_floor_in_place", "decode_split"]:
    t = ns("go_cpu_fixture", name)
    out[name] = {"us": t / 1e3, "gz_mb_s": size / t * 1e3}
for name in ["prost", "in_place"]:
    t = ns("pprof_decode_go_cpu", name)
    out["decoder_" + name] = {"us": t / 1e3, "plain_mb_s": plain / t * 1e3}
print(json.dumps(out))
EOF
)

MACHINE=$(python3 - <<'EOF'
import json, os, subprocess, datetime
model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
print(json.dumps({"nproc": len(os.sched_getaffinity(0)), "mem": f"{mem:.1f} GiB", "model": model,
                  "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}))
EOF
)

# Every step's JSON goes into one results file, kept under the target dir.
RESULTS=${CARGO_TARGET_DIR:-$ROOT/target}/compare-results.json
export SHIFT GO INGEST QUERY_HEAD QUERY_BLOCK BLOCK LOADGEN CLUSTER FLOOR MACHINE
python3 - "$RESULTS" <<'EOF'
import json, os, sys
keys = ["SHIFT", "GO", "INGEST", "QUERY_HEAD", "QUERY_BLOCK", "BLOCK", "LOADGEN", "CLUSTER",
        "FLOOR", "MACHINE"]
json.dump({k.lower(): json.loads(os.environ[k]) for k in keys}, open(sys.argv[1], "w"), indent=1)
EOF

say "results ($PROFILES profiles, medians of $RUNS runs)"
$PY report "$RESULTS"
echo "(all figures: $RESULTS)" >&2
