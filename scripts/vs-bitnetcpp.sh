#!/usr/bin/env bash
# vs-bitnetcpp.sh - CPU speed side by side with Microsoft's bitnet.cpp on this
# machine, in one run: llama-bench's pp64, pp512 and tg32 on a model of the
# 2B-4T shape (3 repetitions; the best is taken), against the same three
# measures from tests/test_perf.c (pp64 and tg32 the best of 3 after a warm-up,
# pp512 one run), at 1 and 2 threads (or those given). The two programs run in turn, ROUNDS times (default 2), so a noisy
# machine shows as spread rather than as one side's luck.
#
#   scripts/vs-bitnetcpp.sh [THREADS...]        e.g. scripts/vs-bitnetcpp.sh 1 2 4
#
# bitnet.cpp is built from source by scripts/golden/make-golden.sh (see its
# header: BITNET_SRC / BITNET_GIT / BITNET_BUILD), as its setup_env.py builds it
# for I2_S on x86 (Release, -march=native, clang where present), plus llama-bench.
# Environment: BITNET_BUILD_DIR (our build, default build), ROUNDS.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
ours=${BITNET_BUILD_DIR:-$repo/build}
rounds=${ROUNDS:-2}
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
if [ ! -x "$ours/test_perf" ] || [ ! -x "$ours/bitnet-gpu" ]; then
    echo "vs-bitnetcpp: build first (scripts/build.sh); no $ours/test_perf" >&2
    exit 1
fi

dump=$("$here/golden/make-golden.sh" --build)
theirs_build=$(cd "$(dirname "$dump")/.." && pwd)
bench=$theirs_build/bin/llama-bench
if [ ! -x "$bench" ]; then
    cmake --build "$theirs_build" -j"$(nproc)" --target llama-bench >"$theirs_build/llama-bench.log" 2>&1 ||
        { tail -20 "$theirs_build/llama-bench.log" >&2; exit 1; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ours/bitnet-gpu" make-model -o "$tmp/2b4t.gguf" --preset 2b-4t --seed 1 >/dev/null 2>&1
tlist=$(IFS=,; echo "${threads[*]}")

for round in $(seq 1 "$rounds"); do
    echo "vs-bitnetcpp: round $round of $rounds" >&2
    # bitnet.cpp's pp512 on one thread overflows the default 8 MB stack (it
    # segfaults in libggml); llama-bench gets an unlimited one.
    (ulimit -s unlimited && "$bench" -m "$tmp/2b4t.gguf" -p 64,512 -n 32 -t "$tlist" -r 3 -o json) \
        >"$tmp/theirs-$round.json" 2>"$tmp/theirs-$round.log" ||
        { tail -20 "$tmp/theirs-$round.log" >&2; exit 1; }
    for t in "${threads[@]}"; do
        RUN_PERF_TESTS=1 BITNET_PERF_THREADS=$t "$ours/test_perf" >"$tmp/ours-$round-$t.log" 2>&1 ||
            { tail -20 "$tmp/ours-$round-$t.log" >&2; exit 1; }
    done
done

python3 - "$tmp" "$rounds" "${threads[@]}" <<'PY'
import json, re, sys
tmp, rounds, threads = sys.argv[1], int(sys.argv[2]), [int(t) for t in sys.argv[3:]]
tests = ["pp64", "pp512", "tg32"]
theirs, ours = {}, {}
for r in range(1, rounds + 1):
    for row in json.load(open(f"{tmp}/theirs-{r}.json")):
        test = f"pp{row['n_prompt']}" if row["n_gen"] == 0 else f"tg{row['n_gen']}"
        theirs.setdefault((test, row["n_threads"]), []).append(max(row["samples_ts"]))
    for t in threads:
        text = open(f"{tmp}/ours-{r}-{t}.log").read()
        for test, what in (("pp64", "prefill pp64"), ("pp512", "prefill pp512"), ("tg32", "decode")):
            m = re.search(rf"perf: {what}, {t} thread\(s\)\s+([0-9.]+) tok/s", text)
            ours.setdefault((test, t), []).append(float(m.group(1)))
span = lambda v: f"{min(v):.1f}" if len(v) == 1 else f"{min(v):.1f}-{max(v):.1f}"
print("| test | threads | bitnet.cpp tok/s | bitnet-gpu tok/s | ratio per round |")
print("|---|---|---|---|---|")
for t in threads:
    for test in tests:
        a, b = theirs[(test, t)], ours[(test, t)]
        ratios = ", ".join(f"{y / x:.2f}x" for x, y in zip(a, b))
        print(f"| {test} | {t} | {span(a)} | {span(b)} | {ratios} |")
PY
