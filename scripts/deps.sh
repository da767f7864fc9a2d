#!/usr/bin/env bash
# deps.sh - checks the build dependencies and installs the missing ones from
# Debian's packages (as root, or through sudo). CUDA is optional: when nvcc is
# found (PATH or /usr/local/cuda) the CUDA backend is built too. BITNET_WANT_CLANG=1
# adds clang (the fuzz build), BITNET_WANT_PYTHON=1 what the Python tests need.
set -euo pipefail

# libcurl + libssl (libcrypto): `bitnet-gpu download`; libedit: line editing in `chat`;
# libmicrohttpd: `serve`; libjansson: `tokenize --jsonl` (its strings keep a "\u0000",
# which cJSON's end at); python3: the tests' local HTTP server and pseudo-terminal
# driver.
packages=(cmake make gcc pkg-config libcmocka-dev libcjson-dev libpcre2-dev libcurl4-openssl-dev
          libssl-dev libedit-dev libmicrohttpd-dev libjansson-dev python3)
[ "${BITNET_WANT_CLANG:-0}" = 1 ] && packages+=(clang libclang-rt-dev)
# BITNET_WANT_PYTHON=1 (scripts/test.sh sets it): the Python tests' virtual
# environments, which pip fills from PyPI: .venv below (the openai client that
# tests/test_serve.py talks through) and CTest's build/python-venv
# (python/tests/setup_venv.sh). Without it nothing here needs PyPI: test_serve
# skips, and a CTest run wants -DBITNET_PYTHON_TESTS=OFF.
want_python=${BITNET_WANT_PYTHON:-0}
[ "$want_python" = 1 ] && packages+=(python3-venv)
# BITNET_WANT_ARM64=1 (scripts/test-aarch64.sh): the cross compiler, qemu's user-mode
# emulator and the arm64 builds of the libraries above (Debian multiarch).
want_arm64=${BITNET_WANT_ARM64:-0}
if [ "$want_arm64" = 1 ]; then
  packages+=(gcc-aarch64-linux-gnu qemu-user)
  for p in libcmocka-dev libcjson-dev libpcre2-dev libcurl4-openssl-dev libssl-dev libedit-dev libmicrohttpd-dev \
    libjansson-dev; do packages+=("$p:arm64"); done
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "error: missing packages (${missing[*]}) and no root/sudo to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$want_arm64" = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "deps: CUDA toolkit found in /usr/local/cuda" >&2
elif ! command -v nvcc >/dev/null; then
  echo "deps: no CUDA toolkit (nvcc): building the CPU backend only" >&2
fi

# The official openai Python client, which test_serve talks to the server through,
# Prometheus's own client, whose parser reads the server's /metrics, and
# jsonschema (with rfc3339-validator for its date-time checks), which judges
# the server's structured replies and the JSON Schema automaton, and
# EleutherAI's lm-evaluation-harness (lm-eval, with the extras its API models
# import), which tests/test_lm_eval.py runs against the server: in the
# project's own venv (.venv), not the system's Python, at the versions
# python/requirements-test.txt and tests/requirements-lm-eval.txt pin.
if [ "$want_python" = 1 ]; then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  pin() {
    local v
    v=$(sed -n "s/^$1==\\([^ #]*\\).*/\\1/p" "$root/python/requirements-test.txt")
    [ -n "$v" ] || { echo "error: no $1==VERSION in python/requirements-test.txt" >&2; exit 1; }
    echo "$v"
  }
  specs=()
  for p in openai prometheus-client jsonschema rfc3339-validator six; do specs+=("$p==$(pin "$p")"); done
  lm_eval=$(sed -n 's/^lm-eval\[api\]==\([^ #]*\).*/\1/p' "$root/tests/requirements-lm-eval.txt")
  [ -n "$lm_eval" ] || { echo "error: no lm-eval[api]==VERSION in tests/requirements-lm-eval.txt" >&2; exit 1; }
  specs+=("lm-eval==$lm_eval")
  venv=$root/.venv
  if ! "$venv/bin/python3" -c "import sys; from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (s.split('==') for s in sys.argv[1:])))" "${specs[@]}" 2>/dev/null; then
    echo "deps: installing ${specs[*]} into .venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check "${specs[@]/#lm-eval==/lm-eval[api]==}"
  fi
fi
