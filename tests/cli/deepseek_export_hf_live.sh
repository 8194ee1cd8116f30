#!/usr/bin/env bash
# ctest reference.deepseek_export_hf_live: palu-export --to deepseek of tests/reference/mla_tiny,
# palu-eval ppl and transformers (tests/reference/deepseek_export_hf_check.py --check) on the same
# random ids; fails when transformers reports missing / unexpected weights or a window NLL differs
# by more than 2e-6 nats. Exits 77 (ctest SKIP) without torch + transformers.
# Usage: deepseek_export_hf_live.sh PALU_EXPORT PALU_EVAL SOURCE_DIR
set -euo pipefail
export_bin=$1 eval_bin=$2 src=$3
if ! python3 -c "import numpy, torch, transformers" >/dev/null 2>&1; then
  echo "skip: needs python3 with numpy, torch and transformers (DeepseekV3ForCausalLM)" >&2
  exit 77
fi
script=$src/tests/reference/deepseek_export_hf_check.py
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 "$script" --write-ids "$tmp/ids.i32" --n-ids 256 --vocab 96 --seed 7
"$export_bin" --model "$src/tests/reference/mla_tiny" --to deepseek --dtype f32 --out "$tmp/ds"
"$eval_bin" ppl --model "$tmp/ds" --tokens "$tmp/ids.i32" --seqlen 32 --json "$tmp/palu.json" \
  >/dev/null
python3 "$script" --model "$tmp/ds" --ids "$tmp/ids.i32" --seqlen 32 --palu-json "$tmp/palu.json" \
  --tol 2e-6 --check --out "$tmp/hf.json"
