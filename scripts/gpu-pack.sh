#!/usr/bin/env bash
# gpu-pack.sh [CUDA_ARCH] - builds the GPU binaries here, for a GPU machine that
# has the CUDA driver but not this project's build dependencies.
#
# Writes gpu-pack/ (git-ignored), xz-compressed so that it travels in under 64 MiB:
#   bin.tar.xz  bin/: the binaries scripts/gpu-check.sh runs (`scripts/gpu-check.sh
#               --binaries`), and the shared libraries they load besides the C
#               library's and CUDA's own;
#   fixtures/   what scripts/gpu-check.sh reads: tiny-a, and the Llama-3 tokenizer
#               and vectors test_cli reads (the large files xz-compressed).
# On the GPU machine, from the repository root:
#   tar -C gpu-pack -xJf gpu-pack/bin.tar.xz && xz -d gpu-pack/fixtures/*/*.xz
#   BITNET_GPU_PREBUILT=gpu-pack/bin BITNET_FIXTURES=$PWD/gpu-pack/fixtures scripts/gpu-check.sh
# CUDA_ARCH: the compute capability without the dot (default 90: H100/H200).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-90}
fixtures=${BITNET_FIXTURES:-$(pwd)/../shared/fixtures}
[ -f "$fixtures/tiny-a/tiny-a.gguf" ] || { echo "error: no fixtures in $fixtures" >&2; exit 1; }
scripts/deps.sh
scripts/build.sh build-pack -DCMAKE_CUDA_ARCHITECTURES="$arch" -DBITNET_FIXTURES="$fixtures"
rm -rf gpu-pack
mkdir -p gpu-pack/bin gpu-pack/fixtures/tiny-a gpu-pack/fixtures/llama3
binaries=$(scripts/gpu-check.sh --binaries)
for b in $binaries; do cp "build-pack/$b" gpu-pack/bin/; done
git describe --always --dirty >gpu-pack/bin/COMMIT # which code the binaries are
# Every library they load but glibc's, the compiler runtime's and CUDA's (the GPU
# machine has those): cJSON, cmocka, PCRE2, and the CLI's libcurl, libcrypto,
# libedit, libmicrohttpd and Jansson with what they load in turn.
ldd build-pack/bitnet-gpu build-pack/test_cuda | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*|libgcc_s|libstdc\+\+|libcuda|libcublas[^/]*|libcudart)\.so' |
  while read -r lib; do cp -L "$lib" gpu-pack/bin/; done
cp "$fixtures"/tiny-a/*.json "$fixtures"/tiny-a/*.f32 gpu-pack/fixtures/tiny-a/
xz -T0 -6 -c "$fixtures/tiny-a/tiny-a.gguf" >gpu-pack/fixtures/tiny-a/tiny-a.gguf.xz
cp "$fixtures/llama3/vectors_extra.jsonl" gpu-pack/fixtures/llama3/
xz -T0 -6 -c "$fixtures/llama3/tokenizer.json" >gpu-pack/fixtures/llama3/tokenizer.json.xz
tar -C gpu-pack -cf - bin | xz -T0 -6 >gpu-pack/bin.tar.xz
rm -rf gpu-pack/bin
du -sh gpu-pack
