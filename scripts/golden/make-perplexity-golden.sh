#!/usr/bin/env bash
# make-perplexity-golden.sh - bitnet.cpp's perplexities of tests/data/austen-excerpt.txt
# (tests/data/perplexity.golden.json, read by tests/test_perplexity.py).
#
#   scripts/golden/make-perplexity-golden.sh BITNET_GPU_BINARY
#
# For each model below: a synthetic one written by `bitnet-gpu make-model`
# (deterministic, so the test rebuilds it from the arguments kept in the golden),
# or the tiny-a fixture (from BITNET_FIXTURES, default ../shared/fixtures). Each is
# run by bitnet.cpp's llama-perplexity (built in BITNET_BUILD as make-golden.sh
# builds it: `make -C "$BITNET_BUILD" llama-perplexity`) one token per decode
# (-b 1), the way the token goldens are made: its batched path gives other
# numbers (0.4% away on tiny-a at -b 128).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${1:?usage: make-perplexity-golden.sh path/to/bitnet-gpu}
BUILD=${BITNET_BUILD:-$repo/../bitnetcpp-build}
FIXTURES=${BITNET_FIXTURES:-$repo/../shared/fixtures}
ppl=$BUILD/bin/llama-perplexity
text=$repo/tests/data/austen-excerpt.txt
out=$repo/tests/data/perplexity.golden.json
[ -x "$ppl" ] || make -C "$BUILD" llama-perplexity >"$BUILD/perplexity-build.log" 2>&1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name | model (make-model arguments, or fixture:PATH) | context
cases=$(cat <<'LIST'
bitnet-b158-tiny|make-model --preset tiny|128
llama-tiny|make-model --preset tiny-llama|128
tiny-a|fixture:tiny-a/tiny-a.gguf|128
LIST
)
while IFS='|' read -r name model ctx; do
    case $model in
    fixture:*) gguf=$FIXTURES/${model#fixture:} ;;
    *) gguf=$tmp/$name.gguf
       # shellcheck disable=SC2086 # the arguments are words
       "$bin" $model -o "$gguf" >/dev/null 2>&1 ;;
    esac
    "$ppl" -m "$gguf" -f "$text" -c "$ctx" -b 1 -ub 1 -t 1 >"$tmp/$name.log" 2>&1
    echo "$name|$model|$ctx|$(grep -o '^\[1\].*' "$tmp/$name.log" | head -1)|$(grep -o 'Final estimate: PPL = [0-9.]*' "$tmp/$name.log")"
done <<<"$cases" | python3 -c '
import json, re, sys
cases = []
for line in sys.stdin:
    name, model, ctx, chunks, final = line.rstrip("\n").split("|")
    per_chunk = [float(v) for v in re.findall(r"\[\d+\]([0-9.]+),", chunks)]
    if not per_chunk or not final:
        sys.exit("llama-perplexity gave no numbers for " + name)
    cases.append({"name": name, "model": model, "n_ctx": int(ctx), "per_chunk": per_chunk,
                  "ppl": float(final.split("=")[1])})
doc = {"engine": "bitnet.cpp (ygqdan/BitNet-linux 6d113cd) llama-perplexity -b 1 -ub 1 -t 1",
       "text": "tests/data/austen-excerpt.txt", "cases": cases}
with open(sys.argv[1], "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
' "$out"
echo "wrote $out"
