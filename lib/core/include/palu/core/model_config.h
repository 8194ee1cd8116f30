// palu core: the architecture of a Llama-family decoder, independent of the file it came from.
// Filled by formats (HF config.json, GGUF metadata, llama2.c header) and consumed by lib/model.
// It lives in core so that lib/model does not depend on formats (ARCHITECTURE.md dependency table).
#pragma once

#include <cstdint>
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

    int64_t n_kv_groups() const { return n_kv_heads > 0 ? n_heads / n_kv_heads : 0; }
    int64_t d_q() const { return n_heads * d_head; }
    int64_t d_kv() const { return n_kv_heads * d_head; }
    /// Throws ShapeError naming the inconsistency (heads not dividing, zero dims ...).
    void validate(const std::string& source) const;
};

}  // namespace palu
