#!/usr/bin/env bash
# run.sh [PROMPT] - the quick start: installs what is missing, builds, and
# generates from BitNet b1.58 2B-4T if you have it, else from the small model
# trained for this project, which ships with it. Which model, and why, is the
# first thing it says:
#   $BITNET_MODEL                   when set (a path that does not exist is an error);
#   models/ggml-model-i2_s.gguf     when present (`build/bitnet-gpu download` puts it there);
#   models/bitnet-austen-6m.gguf    otherwise (6M parameters, Jane Austen; train/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-}
real=models/ggml-model-i2_s.gguf

if [ -n "${BITNET_MODEL:-}" ] && [ ! -f "$BITNET_MODEL" ]; then
  echo "error: BITNET_MODEL=$BITNET_MODEL: no such file (unset it to use $real or the shipped model)" >&2
  exit 1
fi
scripts/deps.sh
scripts/build.sh build

sampling=(-n 32 --greedy)
if [ -n "${BITNET_MODEL:-}" ]; then
  model=$BITNET_MODEL
  echo "run.sh: model $model (from BITNET_MODEL)" >&2
elif [ -f "$real" ]; then
  model=$real
  echo "run.sh: model $model (BitNet b1.58 2B-4T, found in models/)" >&2
else
  model=models/bitnet-austen-6m.gguf
  prompt=${prompt:-"It is a truth universally acknowledged"}
  # a model this small loops under greedy decoding; a fixed seed keeps it repeatable
  sampling=(-n 64 --temp 0.8 --top-k 40 --top-p 0.95 --seed 1)
  cat >&2 <<MSG
run.sh: model $model (no BITNET_MODEL and no $real)
NOTE: this is the small BitNet b1.58 model trained for this project (6M parameters,
on Jane Austen's novels; train/README.md): it writes English in her manner, it does
not answer questions. For BitNet b1.58 2B-4T (1.2 GB), fetch it into models/ with
  build/bitnet-gpu download
(or point BITNET_MODEL at a copy you have) and run this again.
MSG
fi
build/bitnet-gpu generate -m "$model" -p "${prompt:-2+2=}" "${sampling[@]}"
