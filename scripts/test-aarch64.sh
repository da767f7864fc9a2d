#!/usr/bin/env bash
# test-aarch64.sh - builds the project for 64-bit Arm Linux (Graviton, Ampere,
# NVIDIA Grace, Raspberry Pi 5) on this x86-64 Debian host and runs the CPU
# kernel tests under qemu's user-mode emulator: every NEON kernel against the
# scalar oracle (test_kernels_simd), and bitnet.cpp's golden tokens and logits
# on the fixture model with the neon set, token by token (test_parity_neon's
# first test), both on one thread: this qemu-user does not run a program's
# threads side by side, so a test that waits on another thread (the rest of
# test_parity, test_trained_model, test_threadpool) does not finish under it.
# BITNET_ARM64_FULL=1 tries them anyway, for a qemu that does. Emulation checks
# the arithmetic, not the speed.
#
# Installs what it needs from Debian's packages (BITNET_WANT_ARM64=1
# scripts/deps.sh: the cross compiler, qemu-user, and the arm64 -dev packages of
# the dependencies); exits 77 (skipped) where they cannot be installed (package
# sources without arm64, no root). Fixtures: $BITNET_FIXTURES or
# ../shared/fixtures; the parity tests skip, saying so, without them.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=${BITNET_FIXTURES:-$(pwd)/../shared/fixtures}
build=${BITNET_ARM64_BUILD:-build-arm64}

if ! BITNET_WANT_ARM64=1 scripts/deps.sh; then
  echo "SKIP: test-aarch64: the arm64 toolchain and libraries could not be installed here (see above)" >&2
  exit 77
fi

cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
  -DBITNET_CUDA=OFF -DBITNET_PYTHON_TESTS=OFF -DBITNET_FIXTURES="$fixtures" >/dev/null
cmake --build "$build" -j"$(nproc)" --target test_kernels_simd test_parity test_trained_model
# CTest runs each test binary through qemu (the toolchain file's emulator).
if [ "${BITNET_ARM64_FULL:-0}" = 1 ]; then
  ctest --test-dir "$build" --output-on-failure -R '^(test_kernels_simd|test_parity_neon|test_trained_model)$'
else
  ctest --test-dir "$build" --output-on-failure -R '^test_kernels_simd$'
  BITNET_TEST_FILTER=test_golden_token_by_token ctest --test-dir "$build" --output-on-failure -R '^test_parity_neon$'
fi
