#!/usr/bin/env bash
# gpu-check.sh - the first thing to run on a machine with an NVIDIA GPU.
#
#   scripts/gpu-check.sh            build for the GPU found here, then check and time it
#   BITNET_GPU_PREBUILT=DIR scripts/gpu-check.sh
#                                   use binaries built elsewhere (scripts/gpu-pack.sh
#                                   makes such a folder, with the libraries they need)
#   scripts/gpu-check.sh --binaries the build's binaries it runs, one a line (for gpu-pack.sh)
#
# Steps, each logged to gpu-check-out/ (or $BITNET_GPU_LOGS), then one summary,
# its list of steps last. With BITNET_GPU_OUT=DIR (for a harness that collects
# only a few files from DIR), DIR gets two after every step, so that a run cut
# short still leaves what it did: summary.txt and gpu-check-logs.tar.gz (every
# log, bench_cuda.json). They go in order of what a short loan of a GPU must not
# miss:
#  1. correctness: the GPU tests (test_cuda: every kernel against its CPU twin,
#     the persistent decode kernel against the kernel-per-operation step, the
#     fixture model against bitnet.cpp's golden tokens and logits), with
#     BITNET_REQUIRE_GPU=1 and BITNET_REQUIRE_FIXTURES=1, so no GPU or a missing
#     fixture is a failure, not a skip; the trained model in models/ against its
#     PyTorch reference on every backend (test_trained_model); every model
#     family against bitnet.cpp's goldens in tests/golden (test_families cuda);
#     the golden token parity of `bitnet-gpu generate --backend cuda`
#     (test_cli with BITNET_CLI_BACKEND=cuda); several sequences in one forward
#     (test_batch cuda: the batch that serve runs); logits that are not finite
#     fail a forward pass (test_nonfinite cuda);
#  2. the headline timings: bench_cuda on a synthetic model of the 2B-4T shape
#     (made here by `bitnet-gpu make-model`), `bitnet-gpu bench` on it (the GPU
#     fed the CPU's tokens must pick the same ones wherever the CPU's top-2
#     margin is clear, tools/bench_compare.h, so the chaotic random model is
#     checked too), the whole 4-token "2+2=" process on the GPU (started on the
#     CPU while it opens, and alone) and on the CPU, and continuous batching at
#     1..64 streams;
#  3. the opt-in variants and the rest of the correctness checks: test_batch
#     cuda with the one-kernel decode attention; every family's goldens
#     with the persistent decode kernel and with the TQ bitlinears on tensor
#     cores; perplexity against bitnet.cpp; test_cli on --backend cpu/auto; the
#     calm 2B-4T model; the streams' variants;
#  4. compute-sanitizer (memcheck on test_cuda, racecheck on its decode-attention
#     tests), then the Falcon3-10B and TQ2_0 models.
# BITNET_GPU_BUDGET=S: seconds the whole run may take (default: no limit). A
# step that would start with less than a minute left is not run; the summary
# lists it, and the run exits 2 if nothing failed but something was not run.
# Each step gets at most $STEP_TIMEOUT seconds (default 300), less near the end
# of the budget: a kernel that hangs fails its step (exit 124), not the run.
# Exits 1 if any check failed. Fixtures: $BITNET_FIXTURES or ../shared/fixtures.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
binaries=(bitnet-gpu test_cuda test_cli test_trained_model test_batch test_families test_nonfinite bench_cuda
  bench_lookup)
if [ "${1:-}" = --binaries ]; then printf '%s\n' "${binaries[@]}"; exit 0; fi
fixtures=${BITNET_FIXTURES:-$(pwd)/../shared/fixtures}
out=${BITNET_GPU_LOGS:-gpu-check-out}
ship_to=${BITNET_GPU_OUT:-}
mkdir -p "$out" ${ship_to:+"$ship_to"}
case "$(realpath "${ship_to:-/nonexistent}")/" in # the logs' own folder, or one inside it: nothing to ship
  "$(realpath "$out")"/*) ship_to="" ;;
esac
: >"$out/summary.txt"
# The summary and every log so far to $BITNET_GPU_OUT, two files.
ship() {
  [ -n "$ship_to" ] || return 0
  cp "$out/summary.txt" "$ship_to/summary.txt"
  tar -C "$out" -czf "$ship_to/gpu-check-logs.tar.gz" .
}
# BITNET_SOURCE_DIR: the files the repository ships (models/, tests/golden/) are
# read from this tree, wherever the binaries were built.
export BITNET_FIXTURES=$fixtures BITNET_REQUIRE_GPU=1 BITNET_REQUIRE_FIXTURES=1 BITNET_SOURCE_DIR=$PWD
# bench compares CUDA with the CPU's own kernel set, not every set (the CPU's sets
# are held to one another by the tests, on any machine).
export BITNET_BENCH_CPU_SETS=0
summary=()
failed=0

budget=${BITNET_GPU_BUDGET:-0}
not_run=()

# The seconds a step may take now: $STEP_TIMEOUT, or what the budget has left
# (keeping 20 s for the summary); 0 when under a minute is left.
step_limit() {
  local limit=${STEP_TIMEOUT:-300} left
  if [ "$budget" -gt 0 ]; then
    left=$((budget - SECONDS - 20))
    [ "$left" -lt 60 ] && { echo 0; return; }
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  echo "$limit"
}

# step NAME COMMAND...: runs it with its output in $out/NAME.log, records the
# result. A command gets $limit seconds (step_limit); a function of this script
# is given $limit and must pass it to what it runs (timeout "$limit" ...).
step() {
  local name=$1 t0 t1 rc line
  shift
  limit=$(step_limit)
  if [ "$limit" -eq 0 ]; then
    not_run+=("$name")
    line=$(printf '%-28s not run (budget of %d s spent)' "$name" "$budget")
    summary+=("$line")
    echo "$line" | tee -a "$out/summary.txt"
    ship
    return 3
  fi
  t0=$(date +%s.%N)
  if declare -F "$1" >/dev/null; then
    "$@" >"$out/$name.log" 2>&1
  else
    timeout -k 10 "$limit" "$@" >"$out/$name.log" 2>&1
  fi
  rc=$?
  t1=$(date +%s.%N)
  if [ $rc -eq 0 ]; then
    line=$(printf '%-28s pass  %6.1f s' "$name" "$(awk "BEGIN{print $t1 - $t0}")")
  else
    failed=1
    line=$(printf '%-28s FAIL  %6.1f s  (exit %d, see %s/%s.log)' "$name" "$(awk "BEGIN{print $t1 - $t0}")" $rc "$out" "$name")
  fi
  summary+=("$line")
  # As it goes too, so that a run cut short (a machine lent for minutes) still
  # says what it got through.
  echo "$line" | tee -a "$out/summary.txt"
  ship
  return $rc
}

if ! nvidia-smi -L >"$out/gpu.log" 2>&1; then
  echo "gpu-check: no NVIDIA GPU found (nvidia-smi -L failed):" >&2
  cat "$out/gpu.log" >&2
  exit 1
fi
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
[ -d "$fixtures/tiny-a" ] || { echo "gpu-check: fixtures not found in $fixtures (set BITNET_FIXTURES)" >&2; exit 1; }

if [ -n "${BITNET_GPU_PREBUILT:-}" ]; then
  bin=$(realpath "$BITNET_GPU_PREBUILT")
  # The pack's libraries, then CUDA's own (bench_cuda links cuBLAS, not packed).
  export LD_LIBRARY_PATH="$bin:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  bin=$PWD/build-gpu
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  STEP_TIMEOUT=1800 step build bash -c "scripts/deps.sh && scripts/build.sh $bin -DCMAKE_CUDA_ARCHITECTURES=$cap \
    -DBITNET_FIXTURES='$fixtures'" || exit 1 # its line is out already
fi
no_bench_cuda=""
for b in "${binaries[@]}"; do
  [ -x "$bin/$b" ] || { echo "gpu-check: $bin/$b is missing" >&2; exit 1; }
  # A library the loader cannot find fails here, in one line, not in every step;
  # but bench_cuda's cuBLAS (the machine's own) only fails bench_cuda's steps.
  missing=$(ldd "$bin/$b" 2>&1 | grep "not found")
  if [ -n "$missing" ] && [ "$b" = bench_cuda ]; then
    no_bench_cuda="$bin/$b: $missing"
    echo "gpu-check: $no_bench_cuda: its steps will fail" | tee -a "$out/summary.txt"
  elif [ -n "$missing" ]; then
    echo "gpu-check: $bin/$b: $missing" >&2
    exit 1
  fi
done
# bench_cuda ARGS...: bench_cuda, or its loader's error.
bench_cuda() {
  [ -z "$no_bench_cuda" ] || { echo "$no_bench_cuda"; return 1; }
  timeout -k 10 "$limit" "$bin/bench_cuda" "$@"
}
cli=$bin/bitnet-gpu
model=${BITNET_GPU_MODEL:-/tmp/bitnet-2b4t-synthetic.gguf}

# ---- 1. correctness --------------------------------------------------------------
step test_cuda "$bin/test_cuda"
# The trained model that ships in models/ against its PyTorch reference, CUDA
# included. Exit 77 (a CPU kernel set this host lacks was skipped) passes only
# when the CUDA cases themselves passed.
trained() {
  BITNET_SOURCE_DIR="$PWD" timeout -k 10 "$limit" "$bin/test_trained_model"
  local rc=$?
  [ $rc -eq 77 ] && grep -q "OK \] test_cuda_backend" "$out/trained_model.log" &&
    grep -q "OK \] test_cuda_cpu_start" "$out/trained_model.log" && rc=0
  return $rc
}
step trained_model trained
# Every model family's bitnet.cpp goldens (tests/golden) on the GPU; make-model
# (the CLI) rebuilds each golden's model there.
step families_cuda env BITNET_SOURCE_DIR="$PWD" BITNET_CLI="$cli" "$bin/test_families" cuda
# Golden parity of the CLI on the GPU: test_cli's golden cases on --backend cuda
# (generated ids equal bitnet.cpp's but for the 2nd-best where the reference's
# margin is below 0.05, fixtures README); its other tests run too.
step cli_golden_parity env BITNET_CLI_BACKEND=cuda BITNET_CLI="$cli" "$bin/test_cli"
step batch_cuda "$bin/test_batch" cuda # several sequences in one forward: each as if alone
# Logits that are not finite (a NaN in the weights): one error in each output form, none on a clean model.
step nonfinite_cuda "$bin/test_nonfinite" cuda

# ---- 2. the headline timings ----------------------------------------------------
[ -f "$model" ] || step make_model "$cli" make-model -o "$model" --preset 2b-4t --seed 1
step bench_cuda bench_cuda "$model" --json-out "$out/bench_cuda.json"
step bench_2b4t "$cli" bench -m "$model" -r 3 -n 32
# The whole short process, best of 3, on each backend: CUDA as a user runs it
# (on the CPU while the GPU opens, moving to it when ready), on the GPU alone,
# and on the CPU.
process_ms() {
  local best="" t0 t1 ms each=$((limit / 9 > 5 ? limit / 9 : 5)) # 9 runs in the step's limit
  for _ in 1 2 3; do
    t0=$(date +%s%N)
    timeout -k 10 "$each" "$cli" generate -m "$model" -p "2+2=" -n 4 --greedy --backend "$@" >/dev/null || return 1
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "$best"
}
process_times() {
  local gpu gpu_alone cpu
  gpu=$(process_ms cuda) && gpu_alone=$(process_ms cuda --no-cpu-start) && cpu=$(process_ms cpu) || return 1
  echo "whole 'generate -p 2+2= -n 4' process, best of 3: cuda $gpu ms (started on the CPU)," \
    "cuda alone $gpu_alone ms, cpu $cpu ms"
}
step process_times process_times
# Continuous batching: aggregate decode rate of 1..64 streams in one bn_batch.
step bench_streams "$cli" bench -m "$model" --concurrency 1,4,16,64 -n 8

# ---- 3. opt-in variants, the other checks ---------------------------------------
# test_batch cuda with the one-kernel decode attention below position 16 (off by default
# until measured): batches that mix it with the split pair.
step batch_cuda_one_kernel env BITNET_CUDA_ATTD_SHORT=16 "$bin/test_batch" cuda
# The families' goldens with every decode step in the persistent kernel (BITNET_CUDA_PERSIST,
# off by default until measured): SiLU and no-sub-norm families, adjacent-pair RoPE, head dim 256.
step families_cuda_persistent env BITNET_CUDA_PERSIST=512 BITNET_SOURCE_DIR="$PWD" BITNET_CLI="$cli" \
  "$bin/test_families" cuda
# Every family's TQ goldens with the TQ bitlinears on the tensor cores (BITNET_CUDA_TQ=mma).
step families_cuda_tq_mma env BITNET_CUDA_TQ=mma BITNET_SOURCE_DIR="$PWD" BITNET_CLI="$cli" "$bin/test_families" cuda
# Perplexity on CUDA against bitnet.cpp's llama-perplexity (tests/data/perplexity.golden.json).
step perplexity_cuda env BITNET_PERPLEXITY_BACKEND=cuda BITNET_CLI="$cli" python3 tests/test_perplexity.py \
  PerplexityTest.test_against_bitnet_cpp
# The CLI's golden cases on --backend cpu, and --backend auto picks the GPU.
step test_cli env BITNET_CLI="$cli" "$bin/test_cli"
step bench_tiny_a "$cli" bench -m "$fixtures/tiny-a/tiny-a.gguf" -r 3 --json
# The calm 2B-4T (residual branches damped: not chaotic), where bench holds CUDA to
# the calm class: the argmax wherever the margin is above 0.1, logits within 0.1.
calm=${BITNET_GPU_MODEL_CALM:-/tmp/bitnet-2b4t-calm.gguf}
[ -f "$calm" ] || step make_model_calm "$cli" make-model -o "$calm" --preset 2b-4t --calm --head untied --seed 1
step bench_calm "$cli" bench -m "$calm" -r 1 -n 8
# The same with the persistent decode kernel at every position: its speed on the
# 2B-4T shape, and the calm class at full depth.
step bench_calm_persistent env BITNET_CUDA_PERSIST=4096 "$cli" bench -m "$calm" -r 1 -n 8
# A longer generation, which moves to the GPU on the way: its stderr says where.
step generate_moves "$cli" generate -m "$model" -p "2+2=" -n 64 --greedy --backend cuda
# The batches on the mma GEMM's narrower tiles (BITNET_CUDA_GEMM_TILE, 128 by default until measured).
step bench_streams_tile_auto env BITNET_CUDA_GEMM_TILE=auto "$cli" bench -m "$model" --concurrency 16,64 -n 8
# The same streams sampling with llama.cpp's defaults (top-k 40): each step brings
# back every slot's 128 best tokens (forward_top) instead of its row of logits.
step bench_streams_sampled "$cli" bench -m "$model" --concurrency 1,16,64 -n 8 --temp 0.8
# What a prompt lookup pass of 1 + k tokens costs against a step, and its gain on a repeating prompt.
step lookup_cuda "$bin/bench_lookup" -m "$model" -b cuda -p "A B C D A B C D A B C D A B C D" -n 64 --json
# A draft model (-md) at its best: a calm 2B-4T with a tied head repeats its input
# token, and so does a calm small model of its vocabulary, so every draft is taken;
# decode ms/token without and with it, and a random draft model (p-min 0) at its
# worst. The tokens must be the same (on CUDA a pass's rows come from other
# kernels than a step's: a near tie may part them, which this reports).
draft_times() {
  local target=/tmp/bitnet-2b4t-calm-tied.gguf agree=/tmp/bitnet-draft-calm.gguf other=/tmp/bitnet-draft-rand.gguf
  local t0=$SECONDS
  # within what is left of the step's limit, for all of its commands together
  within() {
    local left=$((limit - (SECONDS - t0)))
    [ "$left" -gt 5 ] || return 124
    timeout -k 10 "$left" "$@"
  }
  within "$cli" make-model -o "$target" --preset 2b-4t --calm --head tied --seed 1 &&
    within "$cli" make-model -o "$agree" --hidden 512 --ffn 1536 --layers 4 --heads 8 --kv-heads 2 \
      --vocab-size 128256 --calm --head tied --seed 2 &&
    within "$cli" make-model -o "$other" --hidden 512 --ffn 1536 --layers 4 --heads 8 --kv-heads 2 \
      --vocab-size 128256 --seed 2 || return 1
  local flags want got
  for flags in "" "-md $agree" "-md $other --draft-p-min 0"; do
    # shellcheck disable=SC2086 # flags is a list of words
    got=$(within "$cli" generate -m "$target" -p "The quick brown fox" -n 64 --greedy \
      --backend cuda --no-cpu-start --json $flags) || return 1
    echo "${flags:-no draft}: $(python3 -c 'import json, sys; t = json.load(sys.stdin)["timings"]
print("%.3f ms/token, %s drafted, %s taken, %s passes" % (t["ms_per_token"], t.get("lookup_drafted", "-"),
      t.get("lookup_accepted", "-"), t.get("lookup_passes", "-")))' <<<"$got")"
    got=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["generated_ids"])' <<<"$got")
    [ -z "$want" ] && want=$got
    [ "$got" = "$want" ] || echo "note: the tokens differ from the run without a draft model"
  done
}
step draft_cuda draft_times
# The same agreeing draft model for 4 and 16 streams at once (the batch that
# serve -md runs: the streams draft together, a draft call a token for all).
step draft_streams_cuda "$cli" bench -m /tmp/bitnet-2b4t-calm-tied.gguf -md /tmp/bitnet-draft-calm.gguf \
  --concurrency 4,16 -n 16 -p "The quick brown fox"

# ---- 4. sanitizers, the large and TQ models --------------------------------------
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$san" ]; then
  step memcheck env BITNET_TEST_QUICK=1 "$san" --tool memcheck --error-exitcode 1 --leak-check full "$bin/test_cuda"
  # Shared-memory races in the decode attention (its one-kernel form shares its
  # tiles between phases); racecheck is slow, so those tests alone, and at most
  # 2 minutes (exit 124 then) so that the rest of the run still reports.
  STEP_TIMEOUT=120 step racecheck_attention env BITNET_TEST_FILTER='test_attention_decode*' "$san" \
    --tool racecheck --error-exitcode 1 "$bin/test_cuda"
else
  step memcheck false || echo "compute-sanitizer not found (PATH, /usr/local/cuda/bin)" >"$out/memcheck.log"
fi
# The largest model family bitnet.cpp runs (llama graph, head dim 256, untied head).
model10=${BITNET_GPU_MODEL_10B:-/tmp/bitnet-falcon3-10b-synthetic.gguf}
[ -f "$model10" ] || step make_model_10b "$cli" make-model -o "$model10" --preset falcon3-10b --seed 1
step bench_cuda_10b bench_cuda "$model10" --model-only --quick --json-out "$out/bench_cuda_10b.json"
step bench_10b "$cli" bench -m "$model10" -r 2 -n 4
# A 2B-4T-shaped TQ2_0 model timed on each of the TQ kernels (BITNET_CUDA_TQ=mma: off until measured).
modeltq=${BITNET_GPU_MODEL_TQ:-/tmp/bitnet-2b4t-tq2.gguf}
[ -f "$modeltq" ] || step make_model_tq "$cli" make-model -o "$modeltq" --preset 2b-4t --weight-type tq2_0 --seed 1
step bench_cuda_tq bench_cuda "$modeltq" --model-only --quick
bench_cuda_tq_mma() { BITNET_CUDA_TQ=mma bench_cuda "$@"; }
step bench_cuda_tq_mma bench_cuda_tq_mma "$modeltq" --model-only --quick

echo
commit=$(cat "$bin/COMMIT" 2>/dev/null || git describe --always --dirty 2>/dev/null || echo unknown)
echo "== gpu-check on $gpu (binaries of $commit)"
grep -h "ERROR SUMMARY" "$out/memcheck.log" 2>/dev/null | tail -1
grep -h "RACECHECK SUMMARY" "$out/racecheck_attention.log" 2>/dev/null | tail -1
grep -hE "^(start-up|device-to-device|decode at|prefill|model |GEMV limit)" "$out/bench_cuda.log" 2>/dev/null
# The LM head at 1, 16 and 64 rows (64: one pass for 64 streams, new since e375702).
grep -hE "^lm_head" "$out/bench_cuda.log" 2>/dev/null
# The decode attention's two forms side by side (the one-kernel form is opt-in until measured).
grep -hE "^attention decode( \(ctx = K\)|, one kernel)" "$out/bench_cuda.log" 2>/dev/null
# Each opt-in decode variant against the default at its context: the ones to turn on.
speedups() {
  awk -v pre="$2" '/^decode at context +[0-9]+: / { base[$4 + 0] = $5 }
     /^decode at context +[0-9]+, / { ctx = $4 + 0; split($0, parts, ": "); ms = parts[2] + 0
       if (base[ctx] > 0) printf "  %svs default at %d: %.2fx  (%s)\n", pre, ctx, base[ctx] / ms, $0 }' "$1" 2>/dev/null
}
speedups "$out/bench_cuda.log" ""
grep -h "^whole" "$out/process_times.log" 2>/dev/null
grep -hE "^(backend|timings)" "$out/generate_moves.log" 2>/dev/null | sed 's/^/generate -n 64 on cuda: /'
grep -hE "^(cpu|cuda) " "$out/bench_2b4t.log" 2>/dev/null | sed 's/^/bench 2b-4t: /'
grep -hE "^compare cuda" "$out/bench_calm.log" 2>/dev/null | sed 's/^/calm 2b-4t: /'
grep -hE "^(cuda |compare cuda)" "$out/bench_calm_persistent.log" 2>/dev/null | sed 's/^/calm 2b-4t, persistent kernel: /'
grep -hE "^(cpu|cuda) +[0-9]" "$out/bench_streams.log" 2>/dev/null | sed 's/^/streams 2b-4t: /'
grep -hE "^cuda +[0-9]" "$out/bench_streams_tile_auto.log" 2>/dev/null | sed 's/^/streams 2b-4t, GEMM tiles by batch: /'
grep -hE "^cuda +[0-9]" "$out/bench_streams_sampled.log" 2>/dev/null | sed 's/^/streams 2b-4t, sampled (top-k 40): /'
grep -hE "^(decode at|prefill|model )" "$out/bench_cuda_10b.log" 2>/dev/null | sed 's/^/falcon3-10b: /'
speedups "$out/bench_cuda_10b.log" "falcon3-10b: "
grep -hE "^(cpu|cuda) " "$out/bench_10b.log" 2>/dev/null | sed 's/^/bench falcon3-10b: /'
grep -hE "^(decode at|prefill)" "$out/bench_cuda_tq.log" 2>/dev/null | sed 's/^/tq2_0 2b-4t, dp4a: /'
grep -hE "^(decode at|prefill)" "$out/bench_cuda_tq_mma.log" 2>/dev/null | sed 's/^/tq2_0 2b-4t, BITNET_CUDA_TQ=mma: /'
# The steps last, so that the end of the output (all a lent machine may send
# back of it) holds every one of them.
echo "== steps (logs: $out${ship_to:+, and $ship_to/gpu-check-logs.tar.gz})"
printf '%s\n' "${summary[@]}"
ship
if [ $failed -ne 0 ]; then
  echo "gpu-check: FAILED"
  exit 1
elif [ ${#not_run[@]} -gt 0 ]; then
  echo "gpu-check: passed what ran; not run (budget): ${not_run[*]}"
  exit 2
fi
echo "gpu-check: all passed"
