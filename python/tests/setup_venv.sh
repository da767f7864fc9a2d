#!/usr/bin/env bash
# setup_venv.sh PYTHON BUILD_DIR - the Python tests' environment (CTest runs it
# first, as the fixture of test_python and test_python_serve): a virtual
# environment in BUILD_DIR/python-venv with python/requirements-test.txt, and
# the package installed by `pip install` of this repository, as a user would.
# The CMake build behind pip keeps its tree in BUILD_DIR/python-build, so a
# second run rebuilds only what changed; it leaves CUDA out (-DBITNET_CUDA=OFF):
# the CPU build is what these tests load, and nvcc would take minutes more.
set -euo pipefail
python=$1
build=$(cd "$2" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
venv=$build/python-venv
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/python" -m pip install -q -r "$src/python/requirements-test.txt"
"$venv/bin/python" -m pip install -q --no-build-isolation -C build-dir="$build/python-build" \
  -C cmake.define.BITNET_CUDA=OFF "$src"
echo "bitnet_gpu $("$venv/bin/python" -c 'import bitnet_gpu; print(bitnet_gpu.__version__)') in $venv"
