#!/usr/bin/env bash
# make-golden.sh - golden outputs from Microsoft's reference engine bitnet.cpp.
#
#   make-golden.sh MODEL.gguf OUT.json [PROMPT...]   build if needed, then dump
#   make-golden.sh --build                           only build bitnet.cpp + golden_dump
#
# Writes OUT.json in the format of ../shared/fixtures/tiny-a/tiny-a.golden.json
# (1 thread, BOS added, special tokens not parsed, prompt fed one token per
# llama_decode, greedy 16 tokens; see scripts/golden/README.md). Without PROMPTs
# it uses the 4 prompts of tiny-a.golden.json.
#
# bitnet.cpp source (needed once, to build): a checkout of ygqdan/BitNet-linux at
# commit 6d113cd (microsoft/BitNet with its llama.cpp fork vendored, no submodules):
#     git clone https://github.com/ygqdan/BitNet-linux
#     git -C BitNet-linux checkout 6d113cd
# Environment:
#   BITNET_SRC    source tree (default: <repo>/../bitnetcpp-src). If it does not
#                 exist, it is exported from BITNET_GIT.
#   BITNET_GIT    a git repository holding commit 6d113cd (a clone, or a bare
#                 mirror); only used to create BITNET_SRC.
#   BITNET_BUILD  build directory (default: <repo>/../bitnetcpp-build); the
#                 dumper is BITNET_BUILD/bin/golden_dump.
#   GOLDEN_FIXTURE  golden JSON to take the default prompts from
#                 (default: <repo>/../shared/fixtures/tiny-a/tiny-a.golden.json)
#   GOLDEN_ARGS   extra options for golden_dump (e.g. "--n-gen 32 --logits-prefix /tmp/x")
# Build logs go to BITNET_BUILD/*.log, never into this repository.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
SRC=${BITNET_SRC:-$repo/../bitnetcpp-src}
BUILD=${BITNET_BUILD:-$repo/../bitnetcpp-build}
FIXTURE=${GOLDEN_FIXTURE:-$repo/../shared/fixtures/tiny-a/tiny-a.golden.json}
COMMIT=6d113cd

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

build_only=0
if [ "${1:-}" = "--build" ]; then build_only=1; shift
elif [ $# -lt 2 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; fi

# --- 1. source tree -----------------------------------------------------------
if [ ! -f "$SRC/3rdparty/llama.cpp/include/llama.h" ]; then
    if [ -z "${BITNET_GIT:-}" ]; then
        echo "make-golden: no bitnet.cpp source at $SRC." >&2
        echo "  git clone https://github.com/ygqdan/BitNet-linux && git -C BitNet-linux checkout $COMMIT" >&2
        echo "  then BITNET_SRC=\$PWD/BitNet-linux $0 ...   (or BITNET_GIT=\$PWD/BitNet-linux)" >&2
        exit 1
    fi
    echo "make-golden: exporting $COMMIT from $BITNET_GIT to $SRC" >&2
    mkdir -p "$SRC"
    if ! git -C "$BITNET_GIT" archive "$COMMIT" 2>/dev/null | tar -x -C "$SRC" 2>/dev/null; then
        # A partial mirror may lack a few large blobs (images, vocab test files)
        # that the build does not need: export blob by blob and skip those.
        echo "make-golden: git archive failed; exporting blob by blob" >&2
        git -C "$BITNET_GIT" ls-tree -r -z "$COMMIT" | python3 -c '
import os, subprocess, sys
dst, gitdir = sys.argv[1], sys.argv[2]
p = subprocess.Popen(["git", "-C", gitdir, "cat-file", "--batch"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
for ent in sys.stdin.buffer.read().split(b"\0"):
    if not ent: continue
    meta, path = ent.split(b"\t", 1)
    mode, typ, sha = meta.split()
    if typ != b"blob": continue
    p.stdin.write(sha + b"\n"); p.stdin.flush()
    hdr = p.stdout.readline()
    if hdr.endswith(b"missing\n"):
        print("  skipped (blob missing):", path.decode(), file=sys.stderr); continue
    body = p.stdout.read(int(hdr.split()[2])); p.stdout.read(1)
    out = os.path.join(dst, path.decode())
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.lexists(out): os.remove(out)
    if mode == b"120000": os.symlink(body.decode(), out)
    else:
        with open(out, "wb") as f: f.write(body)
        if mode == b"100755": os.chmod(out, 0o755)
' "$SRC" "$BITNET_GIT"
    fi
fi
SRC=$(cd "$SRC" && pwd)
LL=$SRC/3rdparty/llama.cpp

# The snapshot lacks common/cmake/build-info-gen-cpp.cmake (upstream llama.cpp
# has it); a stub that writes common/build-info.cpp is enough to configure.
stub=$LL/common/cmake/build-info-gen-cpp.cmake
if [ ! -f "$stub" ]; then
    mkdir -p "$(dirname "$stub")"
    cat > "$stub" <<'EOF'
# stub written by bitnet-gpu scripts/golden/make-golden.sh (missing from the snapshot)
set(BUILD_NUMBER 0)
set(BUILD_COMMIT "bitnet-linux-6d113cd")
set(BUILD_COMPILER "${CMAKE_C_COMPILER_ID} ${CMAKE_C_COMPILER_VERSION}")
set(BUILD_TARGET "unknown")
configure_file("${CMAKE_CURRENT_SOURCE_DIR}/common/build-info.cpp.in"
               "${CMAKE_CURRENT_SOURCE_DIR}/common/build-info.cpp")
EOF
fi

# --- 2. bitnet.cpp (CPU, Release, I2_S path: what setup_env.py does on x86) ---
CC=${CC:-$(command -v clang || command -v gcc)}
CXX=${CXX:-$(command -v clang++ || command -v g++)}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
if [ ! -f "$BUILD/3rdparty/llama.cpp/src/libllama.so" ]; then
    echo "make-golden: building bitnet.cpp in $BUILD (logs: $BUILD/*.log)" >&2
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBITNET_X86_TL2=OFF \
        -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" > "$BUILD/configure.log" 2>&1 \
        || { tail -30 "$BUILD/configure.log" >&2; exit 1; }
    cmake --build "$BUILD" --config Release -j"$(nproc)" --target llama llama-cli > "$BUILD/build.log" 2>&1 \
        || { tail -30 "$BUILD/build.log" >&2; exit 1; }
fi

# --- 3. golden_dump ----------------------------------------------------------
bin=$BUILD/bin/golden_dump
if [ ! -x "$bin" ] || [ "$here/golden_dump.cpp" -nt "$bin" ]; then
    mkdir -p "$BUILD/bin"
    lsrc=$BUILD/3rdparty/llama.cpp/src gsrc=$BUILD/3rdparty/llama.cpp/ggml/src
    "$CXX" -std=c++17 -O2 -o "$bin" "$here/golden_dump.cpp" \
        -I"$LL/include" -I"$LL/ggml/include" -L"$lsrc" -L"$gsrc" \
        -Wl,-rpath,"$lsrc" -Wl,-rpath,"$gsrc" -lllama -lggml -lpthread
fi
[ $build_only = 1 ] && { echo "$bin"; exit 0; }

# --- 4. run -----------------------------------------------------------------
model=$1 out=$2; shift 2
if [ $# -eq 0 ]; then
    mapfile -d '' prompts < <(python3 -c '
import json, sys
for c in json.load(open(sys.argv[1]))["cases"]:
    sys.stdout.write(c["prompt"] + "\0")' "$FIXTURE")
    set -- "${prompts[@]}"
fi
# shellcheck disable=SC2086
exec "$bin" ${GOLDEN_ARGS:-} "$model" "$out" "$@"
