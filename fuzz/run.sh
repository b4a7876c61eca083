#!/usr/bin/env bash
# Fuzzes the parsers with cargo-fuzz (libFuzzer): each target for
# SECONDS (default 20: CI's smoke run), its corpus seeded from
# ../shared/fixtures. An input that crashes, takes more than 10 s or more
# than 2 GiB of memory fails the run; libFuzzer saves it under
# fuzz/artifacts/<target>/ (turn it into a regression test).
#   bash fuzz/run.sh            # every target, 20 s each
#   bash fuzz/run.sh 3600 otlp  # one target for an hour
#   bash fuzz/run.sh 600 block  # block files (builds Parquet: not in the default set;
#                               # CI covers them with storage's corruption test)
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-20}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(push pprof_flat ingest multipart multipart_jfr otlp name selector limits)

rustup toolchain list | grep -q '^nightly' \
  || { echo "fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/ignis-fuzz-target}"

FIX="${IGNIS_FIXTURES:-$(cd ../../shared/fixtures 2>/dev/null && pwd || true)}"
[ -d "$FIX" ] || { echo "fixtures not found (set IGNIS_FIXTURES)" >&2; exit 1; }

seed() { # seed <target> <prefix byte as \\xNN or ''> <files...>
  local t="$1" p="$2"; shift 2
  mkdir -p "corpus/$t"
  for f in "$@"; do
    [ -f "$f" ] || continue
    local out="corpus/$t/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
    { printf "$p"; cat "$f"; } > "$out"
  done
}
seed push '' "$FIX"/python-sdk/push-*/req-*.bin
seed ingest '\x00' "$FIX"/go/*.pb.gz "$FIX"/node-sdk/ingest-pprof-*/req-*.bin "$FIX"/rust-sdk/ingest-pprof-*/req-*.bin
seed ingest '\x03' "$FIX"/rust-sdk/ingest-folded-*/req-*.bin
seed ingest '\x06' "$FIX"/java/demo.jfr
mkdir -p corpus/ingest corpus/pprof_flat
for f in "$FIX"/go/*.pb.gz; do gzip -dc "$f" > "corpus/pprof_flat/seed-$(basename "$f" .pb.gz)"; done
printf '\x04main;work\nmain;idle\n' > corpus/ingest/seed-lines
printf '\x01\x00\x00\x01\x01f\x03\x00' > corpus/ingest/seed-tree
printf '\x05{"shared":{"frames":[{"name":"a"}]},"profiles":[{"type":"sampled","name":"p","unit":"none","startValue":0,"endValue":1,"samples":[[0]],"weights":[1]}]}' > corpus/ingest/seed-speedscope
mkdir -p corpus/limits
sed -n '/^\[limits\]/,/^\[overrides\]/p' ../config.toml | grep -v '^\[' > corpus/limits/seed-defaults
printf 'ingestion_rate_mb = 8.0\nmax_global_series_per_tenant = 20000\n[[ingestion_relabeling_rules]]\nsource_labels = ["pod"]\nregex = "(.*)-[a-z0-9]{5}"\ntarget_label = "deployment"\n[[sample_type_relabeling_rules]]\nsource_labels = ["__type__"]\nregex = "cpu"\naction = "keep"\n[[ingestion_relabeling_rules]]\nsource_labels = ["pod"]\ntarget_label = "shard"\nmodulus = 4\naction = "hashmod"\n' > corpus/limits/seed-rules
mkdir -p corpus/multipart corpus/multipart_jfr corpus/otlp corpus/name corpus/selector corpus/block
printf '\x01b--b\r\nContent-Disposition: form-data; name="profile"; filename="p.pprof"\r\n\r\nPPROF\r\n--b\r\nContent-Disposition: form-data; name="sample_type_config"; filename="c.json"\r\n\r\n{}\r\n--b--\r\n' > corpus/multipart/seed-two-parts
{ gzip -dc "$FIX/go/heap.pb.gz"; printf '\xff\x00{"alloc_space":{"units":"bytes","display-name":"alloc_in_new_tlab_bytes"}}'; } > corpus/multipart_jfr/seed-pprof
printf '\x01{"resourceProfiles":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeProfiles":[{"profiles":[{"sampleType":{"typeStrindex":1,"unitStrindex":2},"samples":[{"stackIndex":1,"values":["5"]}],"timeUnixNano":"1795000000000000000"}]}]}],"dictionary":{"stringTable":["","samples","count","main"],"mappingTable":[{}],"functionTable":[{},{"nameStrindex":3}],"locationTable":[{},{"lines":[{"functionIndex":1}]}],"stackTable":[{},{"locationIndices":[1]}],"linkTable":[{}],"attributeTable":[{}]}}' > corpus/otlp/seed-json
printf 'fixture.go.app{__session_id__=77e4,env=test,region=us-east}' > corpus/name/seed-name
printf 'now-1h' > corpus/name/seed-time
printf 'process_cpu{service_name="api", pod=~"api-.*", env!="dev", "a.b"!~`x|y`}' > corpus/selector/seed-selector
# block: byte 0 picks the file (and bit 7 the mode); 0xffff keeps the length.
for i in 0 1 2 3 4 5 6 7 8 9; do printf "\\x0$i\\xff\\xff\\x10\\x00\\x00" > corpus/block/seed-patch-$i; done

for t in "${TARGETS[@]}"; do
  echo "== fuzz $t for ${SECONDS_EACH}s"
  features=()
  [ "$t" = block ] && features=(--features blocks)
  cargo +nightly fuzz run "${features[@]}" "$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 2>&1 \
    | grep -E '^(==|#[0-9]+ +DONE|stat::number_of_executed_units|SUMMARY|ERROR|Running|INFO: Seed)|panicked|Crash|crash-|timeout-|oom-' || true
  # cargo fuzz exits non-zero on a finding; pipefail is off inside the pipe, so check artifacts.
  if ls "artifacts/$t"/* >/dev/null 2>&1; then
    echo "fuzz target $t found failing inputs:" >&2
    ls -la "artifacts/$t" >&2
    exit 1
  fi
done
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_EACH}s each, no failure"
