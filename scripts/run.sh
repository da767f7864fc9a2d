#!/usr/bin/env bash
# run.sh [PROMPT] - the quick start: installs what is missing, builds, and
# generates from BitNet b1.58 2B-4T if you have it (models/ggml-model-i2_s.gguf
# or $BITNET_MODEL), else from a small synthetic model with random weights.
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-"2+2="}
scripts/deps.sh
scripts/build.sh build

model=${BITNET_MODEL:-models/ggml-model-i2_s.gguf}
if [ ! -f "$model" ]; then
  model=models/synthetic-tiny.gguf
  mkdir -p models
  if [ ! -f "$model" ]; then
    vocab=()
    [ -f ../shared/fixtures/llama3/tokenizer.json ] && vocab=(--vocab ../shared/fixtures/llama3/tokenizer.json)
    build/bitnet-gpu make-model -o "$model" --preset tiny --seed 1 "${vocab[@]}"
  fi
  cat >&2 <<MSG
NOTE: no real model found, so this runs a small SYNTHETIC model with RANDOM
weights: the text below is meaningless. For real output, download
microsoft/bitnet-b1.58-2B-4T-gguf (file ggml-model-i2_s.gguf) into models/
or point BITNET_MODEL at it, and run this again.
MSG
fi
build/bitnet-gpu generate -m "$model" -p "$prompt" -n 32 --greedy
