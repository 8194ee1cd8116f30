#!/usr/bin/env bash
# Regenerates the small seed corpora of fuzz_safetensors and fuzz_hf_config (committed under
# tests/fuzz/corpus/). Seeds are written from scratch here, never copied from ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/corpus"
mkdir -p safetensors hf_config

# st NAME HEADER N_DATA: u64 little-endian header length, header, N_DATA bytes of a ramp.
st() {
  local name=$1 header=$2 n_data=$3 n=${#2} i
  {
    for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(( (n >> (8 * i)) & 255 )))"; done
    printf '%s' "$header"
    for ((i = 0; i < n_data; i++)); do printf "\\x$(printf %02x $(( (i * 37 + 11) & 255 )))"; done
  } > "safetensors/$name"
}
e() { printf '"%s":{"dtype":"%s","shape":%s,"data_offsets":[%s,%s]}' "$@"; }

st empty '{}' 0
st empty_meta '{"__metadata__":{"format":"pt"}}' 0
st f32_2x2 "{$(e w F32 '[2,2]' 0 16)}" 16
st scalar_f64 "{$(e s F64 '[]' 0 8)}" 8
st zero_dim "{$(e z F32 '[0,3]' 0 0),$(e b BF16 '[2]' 0 4)}" 4
st all_dtypes "{\"__metadata__\":{\"k\":\"v\"},$(e a F64 '[1]' 0 8),$(e b F32 '[1]' 8 12),$(e c F16 '[2]' 12 16),$(e d BF16 '[2]' 16 20),$(e e I64 '[1]' 20 28),$(e f I32 '[1]' 28 32),$(e g I16 '[2]' 32 36),$(e h I8 '[2]' 36 38),$(e i U8 '[1]' 38 39),$(e j BOOL '[1]' 39 40)}" 40
st padded "{$(e w F16 '[3]' 0 6)}      " 6
st reversed_offsets "{$(e a F32 '[2]' 8 16),$(e b F32 '[2]' 0 8)}" 16
st overlap "{$(e a F32 '[2]' 0 8),$(e b F32 '[2]' 4 12)}" 12
st dup "{$(e a F32 '[2]' 0 8),$(e a F32 '[2]' 0 8)}" 8
st bad_dtype "{$(e a F8_E4M3 '[2]' 0 2)}" 2
st incomplete "{$(e a F32 '[2]' 0 8)}" 12
deep=$(printf '%.0s[' {1..80})$(printf '%.0s]' {1..80})
st deep "{\"a\":$deep}" 0

cat > hf_config/llama3.json <<'J'
{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":256,"intermediate_size":512,
 "num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":1000,
 "max_position_embeddings":4096,"rms_norm_eps":1e-05,"rope_theta":500000.0,"hidden_act":"silu",
 "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
                 "original_max_position_embeddings":8192,"rope_type":"llama3"},
 "tie_word_embeddings":false,"bos_token_id":1,"eos_token_id":[2,3],"attention_bias":false,"mlp_bias":false}
J
cat > hf_config/qwen2.json <<'J'
{"model_type":"qwen2","hidden_size":128,"intermediate_size":384,"num_hidden_layers":3,
 "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":500,"rope_theta":1000000.0,
 "rms_norm_eps":1e-06,"tie_word_embeddings":true,"eos_token_id":2,"sliding_window":null}
J
cat > hf_config/mistral_linear.json <<'J'
{"model_type":"mistral","hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
 "num_attention_heads":4,"vocab_size":32,"head_dim":32,"rope_scaling":{"type":"linear","factor":2.0}}
J
cat > hf_config/palullama.json <<'J'
{"model_type":"palullama","hidden_size":64,"intermediate_size":172,"num_hidden_layers":1,
 "num_attention_heads":8,"num_key_value_heads":4,"head_dim":8,"vocab_size":512,
 "head_wise_ranks":{"model.layers.0.self_attn.k_proj":[8,8]},"palu":{"format_version":1}}
J
cat > hf_config/rope_parameters.json <<'J'
{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
 "num_attention_heads":4,"vocab_size":32,"rope_parameters":{"rope_type":"default","rope_theta":10000.0}}
J
printf '{"model_type":"llama","x":%s}' "$deep" > hf_config/deep.json
cat > hf_config/yarn.json <<'J'
{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
 "num_attention_heads":4,"vocab_size":32,"rope_scaling":{"rope_type":"yarn","factor":4.0}}
J
