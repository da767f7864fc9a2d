#!/usr/bin/env bash
# test_install.sh BUILD_DIR VERSION - installs the build into a temporary prefix
# with `cmake --install`, then uses it as a new user would:
#   - the installed files are there, and bitnet.h includes no project header;
#   - libbitnet.so carries none of the development tools (devtools/: make-model's
#     writers, inspect's report), which the CLI links on its own;
#   - the version macros and bn_version() are the project's VERSION;
#   - the README's C API example builds with `pkg-config --cflags --libs bitnet`
#     (shared), with `pkg-config --static` (static) and with find_package(bitnet)
#     (both targets), and each binary prints what the in-tree build prints;
#   - without -m, the installed bitnet-gpu runs the installed shipped model.
# The model: tiny-a from the fixtures, else a synthetic one made by the
# installed bitnet-gpu (random weights; the comparison still holds).
set -euo pipefail
build=$(cd "$1" && pwd)
version=$2
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/bitnet-gpu lib/libbitnet.a lib/libbitnet.so include/bitnet.h include/bitnet_version.h \
  lib/pkgconfig/bitnet.pc lib/cmake/bitnet/bitnetConfig.cmake; do
  [ -e "$prefix/$f" ] || fail "$f was not installed"
done
[ "$(ls "$prefix/include")" = "$(printf 'bitnet.h\nbitnet_version.h')" ] || fail "extra headers installed"
if grep '^ *# *include *"' "$prefix/include/bitnet.h" | grep -v '"bitnet_version.h"'; then
  fail "the installed bitnet.h includes a project header"
fi
[ "$("$prefix/bin/bitnet-gpu" --version)" = "bitnet-gpu $version" ] || fail "bitnet-gpu --version"
if nm -D --defined-only "$prefix/lib/libbitnet.so" | grep -E ' (bn_synth|bn_inspect|bn_gguf_writer|bn_weights)_'; then
  fail "libbitnet.so exports development tools"
fi

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cat >"$tmp/version.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <bitnet.h>
int main(void) {
    printf("%d.%d.%d %s\n", BITNET_VERSION_MAJOR, BITNET_VERSION_MINOR, BITNET_VERSION_PATCH,
           strcmp(bn_version(), BITNET_VERSION_STRING) ? "mismatch" : BITNET_VERSION_STRING);
    return 0;
}
C
# shellcheck disable=SC2046 # pkg-config's output is a list of words
"$cc" "$tmp/version.c" -o "$tmp/version" $(pkg-config --cflags --libs bitnet)
[ "$(LD_LIBRARY_PATH=$prefix/lib "$tmp/version")" = "$version $version" ] || fail "version macros"
if command -v c++ >/dev/null; then # the header is usable from C++ too
  echo '#include <bitnet.h>' | c++ -x c++ -fsyntax-only -Werror -I"$prefix/include" - || fail "C++ include"
fi

example=$build/readme_example.c
# shellcheck disable=SC2046
"$cc" "$example" -o "$tmp/pc_shared" $(pkg-config --cflags --libs bitnet)
# Static: the archive itself, then what pkg-config --static says it needs.
# shellcheck disable=SC2046
"$cc" "$example" -o "$tmp/pc_static" $(pkg-config --cflags bitnet) "$prefix/lib/libbitnet.a" \
  $(pkg-config --static --libs bitnet | sed 's/ -lbitnet / /')
cmake -S "$here/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DEXAMPLE="$example" \
  -DCMAKE_C_COMPILER="$cc" >"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "find_package"; }
cmake --build "$tmp/consumer" >>"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "find_package build"; }
if readelf -d "$tmp/pc_static" "$tmp/consumer/example_static" | grep -q 'libbitnet\.so'; then
  fail "a static example links libbitnet.so"
fi

model=${BITNET_FIXTURES:-}/tiny-a/tiny-a.gguf
if [ ! -f "$model" ]; then
  echo "note: fixture tiny-a not found; running on a synthetic model instead" >&2
  model=$tmp/synthetic.gguf
  "$prefix/bin/bitnet-gpu" make-model -o "$model" --preset tiny --seed 1 2>/dev/null
fi
want=$("$build/readme_example" "$model" "2+2=") || fail "the in-tree example failed"
[ -n "$want" ] || fail "the in-tree example printed nothing"
for bin in pc_shared pc_static consumer/example_shared consumer/example_static; do
  got=$(LD_LIBRARY_PATH=$prefix/lib "$tmp/$bin" "$model" "2+2=") || fail "$bin exited non-zero"
  [ "$got" = "$want" ] || fail "$bin printed '$got', the in-tree example '$want'"
  echo "$bin: ok"
done

# Without -m, from a directory with no models/ and no BITNET_MODEL, the installed
# command runs the installed copy of the shipped model.
shipped=$(realpath "$prefix/share/bitnet-gpu/bitnet-austen-6m.gguf")
mkdir "$tmp/elsewhere"
(cd "$tmp/elsewhere" && env -u BITNET_MODEL "$prefix/bin/bitnet-gpu" generate -p "It is a truth" -n 4 --greedy \
  --json >"$tmp/default.json" 2>"$tmp/default.err") || { cat "$tmp/default.err"; fail "generate without -m"; }
grep -q "ships with bitnet-gpu, $shipped" "$tmp/default.err" || { cat "$tmp/default.err"; fail "the default model's note"; }
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["model"] == sys.argv[2] and len(d["generated_ids"]) == 4, d' \
  "$tmp/default.json" "$shipped" || fail "generate without -m did not run the installed model"
echo "installed into a temporary prefix; 4 builds of the README example run and agree; no -m runs the installed model"
