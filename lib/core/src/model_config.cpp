// palu core: ModelConfig validation.
#include "palu/core/model_config.h"

#include "palu/core/error.h"

namespace palu {

void ModelConfig::validate(const std::string& source) const {
    auto positive = [&](int64_t v, const char* name) {
        PALU_CHECK(v > 0, ShapeError, "formats: %s: %s must be > 0, got %lld", source.c_str(), name,
                   static_cast<long long>(v));
    };
    positive(d_model, "hidden_size");
    positive(n_layers, "num_hidden_layers");
    positive(n_heads, "num_attention_heads");
    positive(n_kv_heads, "num_key_value_heads");
    positive(d_head, "head_dim");
    positive(d_ff, "intermediate_size");
    positive(n_vocab, "vocab_size");
    PALU_CHECK(
        n_heads % n_kv_heads == 0, ShapeError,
        "formats: %s: num_attention_heads=%lld is not a multiple of num_key_value_heads=%lld",
        source.c_str(), static_cast<long long>(n_heads), static_cast<long long>(n_kv_heads));
    PALU_CHECK(d_head % 2 == 0, ShapeError, "formats: %s: head_dim must be even for RoPE, got %lld",
               source.c_str(), static_cast<long long>(d_head));
    PALU_CHECK(rope_theta > 0, ShapeError, "formats: %s: rope_theta must be > 0, got %g",
               source.c_str(), rope_theta);
    PALU_CHECK(rms_norm_eps > 0, ShapeError, "formats: %s: rms_norm_eps must be > 0, got %g",
               source.c_str(), rms_norm_eps);
    if (!mla) return;
    positive(mla->kv_lora_rank, "kv_lora_rank");
    positive(mla->qk_rope_head_dim, "qk_rope_head_dim");
    positive(mla->qk_nope_head_dim, "qk_nope_head_dim");
    positive(mla->v_head_dim, "v_head_dim");
    PALU_CHECK(mla->qk_rope_head_dim % 2 == 0, ShapeError,
               "formats: %s: qk_rope_head_dim must be even for RoPE, got %lld", source.c_str(),
               static_cast<long long>(mla->qk_rope_head_dim));
    PALU_CHECK(d_head == mla->qk_nope_head_dim + mla->qk_rope_head_dim && n_kv_heads == n_heads,
               ShapeError,
               "formats: %s: MLA config: expected head_dim = qk_nope_head_dim + qk_rope_head_dim "
               "= %lld and num_key_value_heads = num_attention_heads = %lld, got %lld and %lld",
               source.c_str(),
               static_cast<long long>(mla->qk_nope_head_dim + mla->qk_rope_head_dim),
               static_cast<long long>(n_heads), static_cast<long long>(d_head),
               static_cast<long long>(n_kv_heads));
}

}  // namespace palu
