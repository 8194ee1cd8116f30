#!/usr/bin/env bash
# palu bench: CPU engine vs PyTorch on SmolLM2-135M's architecture, same threads, same run.
# Prints the machine, the sgemm ceiling, palu's prefill (512, 2048) and decode tokens/s with
# achieved GFLOP/s, then PyTorch's numbers for the same forward passes.
# Usage: bench/engine_vs_torch.sh [BUILD_DIR] [THREADS]
#   PYTHON: interpreter with torch + transformers (default python3)
#   PALU_BENCH_MODEL: a model path for palu (default: random weights of the same shapes)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-2}
python=${PYTHON:-python3}
echo "machine: $(lscpu | grep 'Model name' | sed 's/Model name: *//'), threads $threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
# OpenBLAS picks its AVX2 (Haswell) kernels on this CPU unless told otherwise (docs/PERFORMANCE.md).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
PALU_BENCH_THREADS=$threads "$build/bench/palu_bench_engine" --benchmark_counters_tabular=true
if "$python" -c 'import torch, transformers' 2>/dev/null; then
  "$python" bench/torch_forward.py --threads "$threads"
else
  echo "engine_vs_torch: $python has no torch/transformers; PyTorch baseline skipped" >&2
fi
