#!/usr/bin/env bash
# run.sh [PROMPT] - the quick start: installs what is missing, builds, and
# generates from BitNet b1.58 2B-4T if you have it, else from a small synthetic
# model with random weights. Which model, and why, is the first thing it says:
#   $BITNET_MODEL                  when set (a path that does not exist is an error);
#   models/ggml-model-i2_s.gguf    when present (`build/bitnet-gpu download` puts it there);
#   models/synthetic-tiny.gguf     otherwise, made here, with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-"2+2="}
real=models/ggml-model-i2_s.gguf

if [ -n "${BITNET_MODEL:-}" ] && [ ! -f "$BITNET_MODEL" ]; then
  echo "error: BITNET_MODEL=$BITNET_MODEL: no such file (unset it to use $real or a synthetic model)" >&2
  exit 1
fi
scripts/deps.sh
scripts/build.sh build

if [ -n "${BITNET_MODEL:-}" ]; then
  model=$BITNET_MODEL
  echo "run.sh: model $model (from BITNET_MODEL)" >&2
elif [ -f "$real" ]; then
  model=$real
  echo "run.sh: model $model (BitNet b1.58 2B-4T, found in models/)" >&2
else
  model=models/synthetic-tiny.gguf
  mkdir -p models
  if [ ! -f "$model" ]; then
    vocab=()
    [ -f ../shared/fixtures/llama3/tokenizer.json ] && vocab=(--vocab ../shared/fixtures/llama3/tokenizer.json)
    build/bitnet-gpu make-model -o "$model" --preset tiny --seed 1 "${vocab[@]}"
  fi
  cat >&2 <<MSG
run.sh: model $model (no BITNET_MODEL and no $real)
NOTE: this is a small SYNTHETIC model with RANDOM weights: the text below is
meaningless. For real output, fetch BitNet b1.58 2B-4T (1.2 GB) into models/ with
  build/bitnet-gpu download
(or point BITNET_MODEL at a copy you have) and run this again.
MSG
fi
build/bitnet-gpu generate -m "$model" -p "$prompt" -n 32 --greedy
