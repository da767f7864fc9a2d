#!/usr/bin/env bash
# make-family-goldens.sh - bitnet.cpp's golden outputs for a small synthetic model
# of every family and weight type (tests/golden/*.json, read by test_families).
#
#   scripts/golden/make-family-goldens.sh BITNET_GPU_BINARY
#
# Each model is written by `bitnet-gpu make-model` (deterministic: the same
# arguments give the same bytes on any machine), then run by bitnet.cpp through
# make-golden.sh (see its header for where bitnet.cpp comes from). The golden's
# "model" field holds the make-model arguments, so the test rebuilds the very
# same model instead of committing it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${1:?usage: make-family-goldens.sh path/to/bitnet-gpu}
out=$repo/tests/golden
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# name | make-model arguments
while IFS='|' read -r name args; do
    [ -z "$name" ] && continue
    # shellcheck disable=SC2086 # args are words
    "$bin" make-model $args -o "$tmp/$name.gguf" 2>/dev/null
    "$here/make-golden.sh" "$tmp/$name.gguf" "$out/$name.json" >/dev/null
    # the model field: how to rebuild the model (json.dump keeps the key order)
    python3 - "$out/$name.json" "make-model $args" <<'PY'
import json, sys
path, model = sys.argv[1], sys.argv[2]
with open(path) as f:
    doc = json.load(f)
doc["model"] = model
with open(path, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
PY
    echo "$name: $out/$name.json"
done <<'LIST'
bitnet-b158-tiny|--preset tiny
bitnet-tiny|--preset tiny-bitnet
bitnet-tiny-tq2_0|--preset tiny-bitnet --weight-type tq2_0
llama-tiny|--preset tiny-llama
llama-tiny-tq1_0|--preset tiny-llama --weight-type tq1_0
llama-tiny-tq2_0|--preset tiny-llama --weight-type tq2_0
llama-hd256|--preset tiny-llama --hidden 512 --ffn 1024 --heads 2 --kv-heads 1
LIST
