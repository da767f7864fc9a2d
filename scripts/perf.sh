#!/usr/bin/env bash
# perf.sh smoke|nightly - the CPU performance jobs of the workflows, in one
# script they share (ci.yml's perf-smoke, perf.yml's cpu-perf), so that
# tests/test_workflows.py can run exactly what CI runs and a command a tool does
# not accept fails a test instead of a night.
#   smoke    a tiny synthetic model; `bitnet-gpu bench --json` -> bench.json;
#            one summary line (a GitHub ::notice::).
#   nightly  a model of the 2B-4T shape; bench, bench_kernels and bench_tokenizer
#            as JSON: bench-2b4t.json, bench-kernels.json, bench-tokenizer.json
#            (bench_tokenizer needs the fixtures' tokenizer.json; skipped, saying
#            so, without it).
# Environment: BITNET_BUILD (the build directory, default build), BITNET_PERF_OUT
# (where the JSON goes, default .), BITNET_PERF_PRESET (the nightly model's
# make-model preset, default 2b-4t; the test uses tiny), BITNET_FIXTURES.
set -euo pipefail
mode=${1:-}
build=${BITNET_BUILD:-build}
out=${BITNET_PERF_OUT:-.}
preset=${BITNET_PERF_PRESET:-2b-4t}
fixtures=${BITNET_FIXTURES:-$(cd "$(dirname "$0")/.." && pwd)/../shared/fixtures}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# Reads one number out of bench's JSON: the first backend's FIELD.
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['backends'][0].get(sys.argv[2], 'n/a'))" "$1" "$2"; }

case "$mode" in
smoke)
  "$build/bitnet-gpu" make-model -o "$tmp/tiny.gguf" --preset tiny --seed 1
  start=$(date +%s%N)
  "$build/bitnet-gpu" bench -m "$tmp/tiny.gguf" --json >"$out/bench.json"
  ms=$((($(date +%s%N) - start) / 1000000))
  echo "::notice::perf-smoke: bench of a tiny synthetic model took $ms ms;" \
    "ms_per_token $(field "$out/bench.json" ms_per_token), roofline_pct $(field "$out/bench.json" roofline_pct)"
  ;;
nightly)
  "$build/bitnet-gpu" make-model -o "$tmp/model.gguf" --preset "$preset" --seed 1
  "$build/bitnet-gpu" bench -m "$tmp/model.gguf" --json >"$out/bench-2b4t.json"
  "$build/bench_kernels" --json >"$out/bench-kernels.json"
  if [ -f "$fixtures/llama3/tokenizer.json" ]; then
    "$build/bench_tokenizer" --json "$fixtures/llama3/tokenizer.json" >"$out/bench-tokenizer.json"
  else
    echo "perf.sh: no $fixtures/llama3/tokenizer.json: bench_tokenizer skipped" >&2
  fi
  ;;
*)
  echo "usage: scripts/perf.sh smoke|nightly" >&2
  exit 2
  ;;
esac
