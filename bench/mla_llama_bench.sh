#!/usr/bin/env bash
# llama.cpp decode speed of an MLA export against the original model, same weights format (F32),
# same machine, same llama-bench run: tokens/s generating 64 tokens after 4K and 16K tokens of
# context (-d), and the KV-cache bytes per token each model's cache holds (f16 cache).
#
# Usage: bench/mla_llama_bench.sh ORIGINAL.gguf MLA_CHECKPOINT_DIR [DEPTHS] [REPS]
#   DEPTHS default "4096,16384", REPS default 2. Needs scripts/get-llama-cpp.sh and build/apps.
set -euo pipefail
cd "$(dirname "$0")/.."
orig=$1 mla=$2 depths=${3:-4096,16384} reps=${4:-2}
bin=${PALU_BIN:-build/apps}
llama=$(scripts/get-llama-cpp.sh | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/palu-export" --to gguf --model "$mla" --out "$work/mla-f32.gguf" --dtype f32 --quiet
"$llama/llama-quantize" --allow-requantize "$orig" "$work/orig-f32.gguf" F32 >/dev/null 2>&1
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; llama.cpp 0.3.36 (llama-cpp-python sdist), CPU"
"$llama/llama-bench" -m "$work/orig-f32.gguf,$work/mla-f32.gguf" -p 0 -n 64 -d "$depths" \
  -r "$reps" -t "$(nproc)" -o md 2>/dev/null
for m in orig-f32 mla-f32; do
  # llama-perplexity's log line "llama_kv_cache: size = ... MiB (N cells, ...)" at a 4096 context.
  head -c 20000 /dev/urandom | base64 > "$work/t.txt"
  "$llama/llama-perplexity" -m "$work/$m.gguf" -f "$work/t.txt" -c 4096 --chunks 1 -t "$(nproc)" \
    2>&1 | grep -m1 "llama_kv_cache: *size" | sed "s/^/$m: /" || true
done
