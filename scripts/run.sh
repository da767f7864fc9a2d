#!/usr/bin/env bash
# run.sh [PROMPT] - the quick start: installs what is missing, builds, and
# generates from BitNet b1.58 2B-4T if you have it (models/ggml-model-i2_s.gguf
# or $BITNET_MODEL), else from the small model trained for this project
# (models/bitnet-austen-6m.gguf, train/README.md), which ships with it.
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-}
scripts/deps.sh
scripts/build.sh build

model=${BITNET_MODEL:-models/ggml-model-i2_s.gguf}
sampling=(-n 32 --greedy)
if [ ! -f "$model" ]; then
  model=models/bitnet-austen-6m.gguf
  prompt=${prompt:-"It is a truth universally acknowledged"}
  # a model this small loops under greedy decoding; a fixed seed keeps it repeatable
  sampling=(-n 64 --temp 0.8 --top-k 40 --top-p 0.95 --seed 1)
  cat >&2 <<MSG
NOTE: no real model found, so this runs the small BitNet b1.58 model trained for
this project (6M parameters, on Jane Austen's novels; train/README.md): it writes
English in her manner, it does not answer questions. For BitNet b1.58 2B-4T,
download microsoft/bitnet-b1.58-2B-4T-gguf (file ggml-model-i2_s.gguf) into
models/ or point BITNET_MODEL at it, and run this again.
MSG
fi
build/bitnet-gpu generate -m "$model" -p "${prompt:-2+2=}" "${sampling[@]}"
