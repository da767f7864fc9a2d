#!/usr/bin/env bash
# test.sh - builds and runs every test: the normal build (with CUDA compiled in
# when nvcc exists), then again under AddressSanitizer + UBSan, then a short
# libFuzzer run of the GGUF reader, then the 64-bit Arm build's kernel and parity
# tests under qemu (scripts/test-aarch64.sh). Fixtures come from ../shared/fixtures or
# $BITNET_FIXTURES; tests that need them skip, saying so, when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
BITNET_WANT_CLANG=1 BITNET_WANT_PYTHON=1 scripts/deps.sh
fixtures=${BITNET_FIXTURES:-$(pwd)/../shared/fixtures}
jobs=$(nproc)

echo "== build + tests (Release, -Werror)"
scripts/build.sh build -DBITNET_FIXTURES="$fixtures"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBITNET_SANITIZE=ON \
  -DBITNET_FIXTURES="$fixtures"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

if command -v clang >/dev/null; then
  echo "== fuzz the GGUF reader for ${BITNET_FUZZ_SECONDS:-30} s (libFuzzer)"
  CC=clang scripts/build.sh build-fuzz -DBITNET_FUZZ=ON -DBITNET_CUDA=OFF -DBITNET_FIXTURES="$fixtures"
  mkdir -p build-fuzz/corpus
  build-fuzz/fuzz_gguf -max_total_time="${BITNET_FUZZ_SECONDS:-30}" -max_len=65536 \
    build-fuzz/corpus fuzz/corpus 2>&1 | tail -3
  echo "== fuzz the tokenizer for ${BITNET_FUZZ_TOKENIZER_SECONDS:-20} s (libFuzzer)"
  mkdir -p build-fuzz/corpus-tokenizer
  build-fuzz/fuzz_tokenizer -max_total_time="${BITNET_FUZZ_TOKENIZER_SECONDS:-20}" -max_len=4096 \
    build-fuzz/corpus-tokenizer fuzz/corpus-tokenizer 2>&1 | tail -3
  echo "== fuzz the server's endpoints for ${BITNET_FUZZ_SERVE_SECONDS:-20} s (libFuzzer)"
  mkdir -p build-fuzz/corpus-serve
  build-fuzz/fuzz_serve_api -max_total_time="${BITNET_FUZZ_SERVE_SECONDS:-20}" -max_len=4096 \
    build-fuzz/corpus-serve fuzz/corpus-serve 2>&1 | tail -3
  echo "== fuzz the JSON Schema compiler and automaton for ${BITNET_FUZZ_SCHEMA_SECONDS:-20} s (libFuzzer)"
  mkdir -p build-fuzz/corpus-schema
  build-fuzz/fuzz_json_schema -max_total_time="${BITNET_FUZZ_SCHEMA_SECONDS:-20}" -max_len=4096 \
    build-fuzz/corpus-schema fuzz/corpus-schema 2>&1 | tail -3
fi
echo "== 64-bit Arm: cross-compiled, the neon kernels and the golden parity under qemu"
rc=0
BITNET_FIXTURES="$fixtures" scripts/test-aarch64.sh || rc=$?
if [ $rc -eq 77 ]; then
  echo "SKIP: the Arm build (scripts/test-aarch64.sh says why above)"
elif [ $rc -ne 0 ]; then
  exit $rc
fi
echo "all tests passed"
