#!/usr/bin/env bash
# End-to-end palu-compress benchmark (issue #4): SmolLM2-135M-Instruct (Q4_1 GGUF) compressed with
# the defaults (ratio 0.5, group size auto, fisher_uniform, whitened SVD, calibration 32 × 512 tokens
# of the C4 sample), time and peak RSS per stage (from report.json), the calibration FLOP rate
# against the sgemm ceiling measured in the same run (palu_bench_engine BM_SgemmCeiling).
# Usage: bench/compress_e2e.sh [THREADS]   (env: BUILD=build MODEL=... PALU_TEST_DATA=../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
build=${BUILD:-build}
model=${MODEL:-models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf}
data=${PALU_TEST_DATA:-../shared/data}
# The same OpenBLAS kernels palu-compress picks for itself (it re-executes with OPENBLAS_CORETYPE).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PALU_BENCH_THREADS=$threads "$build/bench/palu_bench_engine" --benchmark_filter=SgemmCeiling \
    --benchmark_format=json --benchmark_repetitions=3 > "$work/gemm.json" 2>/dev/null
/usr/bin/time -v "$build/apps/palu-compress" --model "$model" --out "$work/ckpt" --ratio 0.5 \
    --calib "$data/text/c4/c4_sample_500.jsonl" --threads "$threads" > "$work/summary.txt" 2> "$work/log"
python3 - "$work" "$threads" "$model" <<'PY'
import json, re, sys
work, threads, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
gemm = [b for b in json.load(open(f"{work}/gemm.json"))["benchmarks"] if b.get("aggregate_name") == "median"]
ceiling = gemm[0]["GFLOP/s"] if gemm else float("nan")
r = json.load(open(f"{work}/ckpt/report.json"))
cfg = json.load(open(f"{work}/ckpt/config.json"))
d, L, f = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
nh, nkv, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
dh = cfg.get("head_dim", d // nh)
cal = r["palu"]["calibration"]
T, n_tok = cal["seqlen"], cal["n_tokens"]
# GEMM FLOPs per token. Forward: q/k/v/o, MLP, LM head, causal attention (scores + P·V over
# (T+1)/2 keys on average).
layer_lin = 2 * L * (d * nh * dh * 2 + 2 * d * nkv * dh + 3 * d * f)
head = 2 * V * d
attn = 2 * 2 * L * nh * dh * (T + 1) / 2
fwd = (layer_lin + head + attn) * n_tok
# Backward of the Fisher pass: input gradients of every linear and of the LM head (same FLOPs as
# their forward), attention backward (≈ 2× its forward), and the k/v weight gradients only.
bwd = (layer_lin + head + 2 * attn + 2 * L * 2 * d * nkv * dh) * n_tok
# Calibration = one forward for the Gram sums (+ 2·d² per token per layer, f64 rank-k updates)
# and one forward + backward for Fisher.
gram_flops = fwd + 2 * d * d * L * n_tok
fisher_flops = fwd + bwd
cal_s = r["stages"]["calibrate"]["seconds"]
rate = (gram_flops + fisher_flops) / cal_s / 1e9
rss_max = 0
for line in open(f"{work}/log"):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", line)
    if m: rss_max = int(m.group(1)) * 1024
print(f"model {model}, {threads} threads, sgemm ceiling {ceiling:.0f} GFLOP/s (median of 3, 2048^3)")
print("| stage | seconds | peak RSS after stage (MiB) |")
print("|---|---|---|")
for name, st in r["stages"].items():
    print(f"| {name} | {st['seconds']:.2f} | {st['peak_rss_bytes'] / 2**20:.0f} |")
print(f"| **total** | {r['total_seconds']:.2f} | {rss_max / 2**20:.0f} (/usr/bin/time) |")
print(f"calibration: {cal['n_samples']} windows × {T} tokens = {n_tok} tokens, "
      f"{(gram_flops + fisher_flops) / 1e12:.2f} TFLOP (estimate) in {cal_s:.1f} s = {rate:.0f} GFLOP/s "
      f"= {100 * rate / ceiling:.0f}% of the sgemm ceiling")
print(f"kept ratio {r['palu']['rank_search']['achieved_ratio']:.4f}, KV bytes/token "
      f"{r['palu']['kv_bytes_per_token']['original_f16']} -> {r['palu']['kv_bytes_per_token']['compressed']}")
PY
