// palu model: the MLA (DeepSeek-V3 multi-head latent attention) KV cache and attention.
//
// Per layer and sequence the cache stores, for every token, the normalised latent
// c = RMSNorm(x·W_kv_aᵀ[:kv_lora_rank]) (kv_lora_rank f32) and the rotated shared key
// k_pe = RoPE(x·W_kv_aᵀ[kv_lora_rank:]) (qk_rope f32), never the per-head K/V:
//   latent [n_batch, n_ctx_max, kv_lora_rank], k_pe [n_batch, n_ctx_max, qk_rope]
// bytes_per_token() = 4·(kv_lora_rank + qk_rope). keys()/values() reconstruct the per-head K =
// [c·W_kb,hᵀ ‖ k_pe] and V = c·W_vb,hᵀ from it (kv_b_proj rows per head: qk_nope K rows, then
// v_head V rows) into scratch that is not cache storage. Equations as transformers'
// DeepseekV3Attention (DeepSeek-AI 2024, §2.1.1).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "palu/model/kv_cache.h"

namespace palu::model {

class MlaKvLayerCache final : public KvLayerCache {
   public:
    /// `config` must be MLA (config.is_mla()). Throws UsageError on n_batch or n_ctx_max <= 0.
    MlaKvLayerCache(const ModelConfig& config, int64_t n_batch, int64_t n_ctx_max);
    /// x [n_batch, n_new, d_model]; uses w.w_kv_a, w.kv_a_norm and keeps &w for keys()/values().
    /// `rope` must be built for qk_rope_head_dim (mla_rope_config).
    void append(const float* x, int64_t n_batch, int64_t n_new, const LayerWeights& w,
                const Rope& rope) override;
    /// Keys [n_heads, n_cached(), qk_nope + qk_rope] of row b, reconstructed (valid until the
    /// next call).
    KvView keys(int64_t b) override;
    /// Values [n_heads, n_cached(), v_head_dim] of row b, reconstructed.
    KvView values(int64_t b) override;
    int64_t n_cached() const override { return n_cached_; }
    int64_t bytes_per_token() const override;
    void clear() override { n_cached_ = 0; }

    /// Stored latent c of row b, token t: [kv_lora_rank].
    const float* latent(int64_t b, int64_t t) const;
    /// Stored rotated k_pe of row b, token t: [qk_rope_head_dim].
    const float* k_pe(int64_t b, int64_t t) const;
    /// Floats stored per token (kv_lora_rank + qk_rope_head_dim).
    int64_t floats_per_token() const { return n_latent_ + n_rope_; }
    /// Capacity in floats of the stored planes (n_batch · n_ctx_max · floats_per_token()).
    int64_t n_stored_floats() const { return static_cast<int64_t>(latent_.size() + k_pe_.size()); }

   private:
    int64_t n_heads_, n_latent_, n_rope_, n_nope_, n_v_, n_batch_, n_ctx_max_, n_cached_ = 0;
    bool interleave_;
    bool latent_norm_;
    std::vector<float> latent_;        // [n_batch, n_ctx_max, kv_lora_rank]
    std::vector<float> k_pe_;          // [n_batch, n_ctx_max, qk_rope]
    std::vector<float> k_, v_;         // reconstruction scratch [n_heads, n_ctx, ·]
    std::vector<float> proj_;          // [n_ctx, n_heads·(qk_nope + v_head)]
    const LayerWeights* w_ = nullptr;  // from the last append (kv_b_proj for reconstruction)
};

/// The config Rope needs for MLA: d_head = qk_rope_head_dim.
ModelConfig mla_rope_config(const ModelConfig& config);

/// Cache factory making MlaKvLayerCache for every layer.
KvLayerCacheFactory mla_cache_factory(const ModelConfig& config);

/// Reorders the rope dims of `n_rows` vectors of size d (row stride ld) from interleaved pairs
/// (x0, x1, x2, x3, ...) to halves (x0, x2, ..., x1, x3, ...), after which rotate-half RoPE is
/// DeepSeek's interleaved RoPE (transformers' apply_rotary_pos_emb_interleave output order).
void deinterleave_rope_dims(float* x, int64_t n_rows, int64_t d, int64_t ld);

/// MLA attention block of one layer: x [n_batch·n_new, d_model] += o_proj(attn(xn)); xn is the
/// post-input_layernorm state. Appends the tokens to `cache` (an MlaKvLayerCache). attn_out
/// receives the o_proj input [n_rows, n_heads·v_head_dim].
void mla_attention(const ModelConfig& config, const LayerWeights& w, const Rope& rope,
                   const float* xn, float* x, int64_t n_batch, int64_t n_new, KvLayerCache& cache,
                   std::vector<float>& attn_out);

}  // namespace palu::model
