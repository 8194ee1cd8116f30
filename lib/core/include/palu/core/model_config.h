// palu core: the architecture of a Llama-family decoder, independent of the file it came from.
// Filled by formats (HF config.json, GGUF metadata, llama2.c header) and consumed by lib/model.
// It lives in core so that lib/model does not depend on formats (ARCHITECTURE.md dependency table).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace palu {

/// RoPE frequency scaling. type: "none", "linear", "llama3".
struct RopeScaling {
    std::string type = "none";
    double factor = 1.0;
    double low_freq_factor = 1.0;                     // llama3
    double high_freq_factor = 4.0;                    // llama3
    int64_t original_max_position_embeddings = 8192;  // llama3
};

/// DeepSeek-V3 multi-head latent attention (MLA, q_lora_rank null): per layer
/// kv_a_proj_with_mqa [kv_lora_rank + qk_rope_head_dim, d_model], kv_a_layernorm [kv_lora_rank],
/// kv_b_proj [n_heads·(qk_nope_head_dim + v_head_dim), kv_lora_rank], q_proj
/// [n_heads·(qk_nope_head_dim + qk_rope_head_dim), d_model], o_proj [d_model, n_heads·v_head_dim].
/// With MLA, ModelConfig::d_head is the query/key head size qk_nope + qk_rope.
struct MlaConfig {
    int64_t kv_lora_rank = 0;
    int64_t qk_rope_head_dim = 0;
    int64_t qk_nope_head_dim = 0;
    int64_t v_head_dim = 0;
    bool rope_interleave = true;  // rope dims of q_proj / kv_a_proj rows stored as (x0,x1) pairs
    // kv_a_layernorm applied (always in DeepSeek and every runtime); false only for palu's
    // in-memory diagnostics that measure what the latent norm costs (palu-compress --mla-ablation).
    bool latent_norm = true;
};

/// Hyper-parameters of a Llama-family model (llama, mistral, qwen2, SmolLM ...).
/// Dimension names follow docs/conventions.md.
struct ModelConfig {
    std::string architecture = "llama";  // HF model_type of the base model: llama|mistral|qwen2
    int64_t d_model = 0;                 // hidden_size
    int64_t n_layers = 0;                // num_hidden_layers
    int64_t n_heads = 0;                 // num_attention_heads
    int64_t n_kv_heads = 0;              // num_key_value_heads (== n_heads for MHA)
    int64_t d_head = 0;                  // head_dim (explicit or d_model / n_heads)
    int64_t d_ff = 0;                    // intermediate_size
    int64_t n_vocab = 0;                 // vocab_size
    int64_t max_position_embeddings = 0;
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    RopeScaling rope_scaling;
    bool tie_word_embeddings = false;
    bool qkv_bias = false;  // q/k/v projections carry biases (qwen2, attention_bias)
    bool o_bias = false;    // o_proj bias (attention_bias=true in llama)
    bool mlp_bias = false;
    int64_t bos_token_id = -1;
    std::vector<int64_t> eos_token_ids;  // may be several (llama3)
    std::optional<MlaConfig> mla;        // set for deepseek_v3 (MLA attention)

    bool is_mla() const { return mla.has_value(); }

    int64_t n_kv_groups() const { return n_kv_heads > 0 ? n_heads / n_kv_heads : 0; }
    int64_t d_q() const { return n_heads * d_head; }
    int64_t d_kv() const { return n_kv_heads * d_head; }
    /// Throws ShapeError naming the inconsistency (heads not dividing, zero dims ...).
    void validate(const std::string& source) const;
};

}  // namespace palu
