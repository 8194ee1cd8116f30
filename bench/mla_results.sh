#!/usr/bin/env bash
# The MLA layout against the Palu layout, 8-bit KV quantization and the original at equal f16 KV
# bytes per token, on the same calibration and evaluation windows, with the cost of each MLA
# approximation (--mla-ablation). Prints a markdown table (docs/results.md "MLA layout").
#
# Usage: bench/mla_results.sh MODEL CALIB EVAL SEQLEN WINDOWS "RATIOS" [extra palu-compress args]
#   CALIB / EVAL: a text file, or a .i32 token file.
# Example (SmolLM2, docs/results.md):
#   bench/mla_results.sh models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf \
#     ../shared/data/text/c4/c4_sample_500.jsonl ../shared/data/text/wikitext-2/wiki.test.raw \
#     2048 16 "0.375 0.5 0.75"
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 calib=$2 eval=$3 seqlen=$4 windows=$5 ratios=$6
shift 6
bin=${PALU_BIN:-build/apps}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src_arg() { case $2 in *.i32) echo "--$1-tokens $2" ;; *) echo "--$1 $2" ;; esac; }
# shellcheck disable=SC2046
common=(--model "$model" $(src_arg calib "$calib") $(src_arg eval "$eval") --eval-seqlen "$seqlen"
        --eval-max-windows "$windows" --quiet "$@")
j() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1/report.json"; }

echo "| budget (f16 KV) | original | Palu (f16 latents) | 8-bit KV (Palu ratio 1) | MLA | MLA: RoPE only | + low-rank | + norm, refit | + norm, linearised |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in $ratios; do
  "$bin/palu-compress" "${common[@]}" --out "$work/palu" --ratio "$r" --stats "$work/stats-palu.h5"
  "$bin/palu-compress" "${common[@]}" --out "$work/mla" --layout mla --ratio "$r" --mla-ablation --stats "$work/stats.h5"
  q8="-"
  if [ "$r" = "0.5" ]; then
    "$bin/palu-compress" "${common[@]}" --out "$work/q8" --ratio 1 --latent-bits 8 --stats "$work/stats-palu.h5"
    q8=$(j "$work/q8" "'%.3f (%d B)' % (r['eval']['ppl_compressed'], r['palu']['kv_bytes_per_token']['compressed'])")
  fi
  row=$(j "$work/mla" "' | '.join(['%.3f' % a['ppl'] for a in r['ablation'][1:3]] + ['%.3f' % r['ablation'][4]['ppl'], '%.3f' % r['ablation'][5]['ppl']])")
  echo "| $r: $(j "$work/mla" "r['palu']['kv_bytes_per_token']['mla_f16']") B ($(j "$work/mla" "'%d+%d' % (r['palu']['mla']['kv_lora_rank'], r['palu']['mla']['rope_dim'])")) | $(j "$work/palu" "'%.3f' % r['eval']['ppl_original']") | $(j "$work/palu" "'%.3f (%d B)' % (r['eval']['ppl_compressed'], r['palu']['kv_bytes_per_token']['compressed'])") | $q8 | **$(j "$work/mla" "'%.3f' % r['eval']['ppl_mla']")** | $row |"
  rm -rf "$work/palu" "$work/mla" "$work/q8"
done
