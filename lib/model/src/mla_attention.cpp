// palu model: DeepSeek-V3 MLA — the latent KV cache and the attention block (f32, BLAS).
//   q = xn·Wqᵀ, split per head into [q_nope (qk_nope) ‖ q_pe (qk_rope)], q_pe rotated;
//   [c_raw ‖ k_pe] = xn·W_kv_aᵀ, c = RMSNorm(c_raw) (kv_a_layernorm), k_pe rotated, shared by
//   heads; per head h: K_h = [c·W_kb,hᵀ ‖ k_pe], V_h = c·W_vb,hᵀ, attn_h = softmax(q_h·K_hᵀ /
//   sqrt(qk_nope + qk_rope), causal)·V_h;  x += attn·Woᵀ.
// As transformers' DeepseekV3Attention with q_lora_rank null and default rope (no YaRN mscale).
#include <cmath>
#include <cstring>

#include "ops.h"
#include "palu/core/error.h"
#include "palu/model/mla_cache.h"

namespace palu::model {

ModelConfig mla_rope_config(const ModelConfig& config) {
    PALU_ASSERT(config.is_mla());
    ModelConfig c = config;
    c.d_head = config.mla->qk_rope_head_dim;
    return c;
}

void deinterleave_rope_dims(float* x, int64_t n_rows, int64_t d, int64_t ld) {
    std::vector<float> tmp(static_cast<size_t>(d));
    const int64_t half = d / 2;
    for (int64_t r = 0; r < n_rows; ++r) {
        float* v = x + r * ld;
        for (int64_t i = 0; i < half; ++i) {
            tmp[static_cast<size_t>(i)] = v[2 * i];
            tmp[static_cast<size_t>(half + i)] = v[2 * i + 1];
        }
        std::memcpy(v, tmp.data(), static_cast<size_t>(d) * sizeof(float));
    }
}

MlaKvLayerCache::MlaKvLayerCache(const ModelConfig& config, int64_t n_batch, int64_t n_ctx_max)
    : n_heads_(config.n_heads),
      n_latent_(config.mla->kv_lora_rank),
      n_rope_(config.mla->qk_rope_head_dim),
      n_nope_(config.mla->qk_nope_head_dim),
      n_v_(config.mla->v_head_dim),
      n_batch_(n_batch),
      n_ctx_max_(n_ctx_max),
      interleave_(config.mla->rope_interleave),
      latent_norm_(config.mla->latent_norm) {
    PALU_CHECK(n_batch > 0 && n_ctx_max > 0, UsageError,
               "model: mla cache: n_batch and n_ctx_max must be > 0, got %lld, %lld",
               static_cast<long long>(n_batch), static_cast<long long>(n_ctx_max));
    latent_.resize(static_cast<size_t>(n_batch * n_ctx_max * n_latent_));
    k_pe_.resize(static_cast<size_t>(n_batch * n_ctx_max * n_rope_));
}

void MlaKvLayerCache::append(const float* x, int64_t n_batch, int64_t n_new, const LayerWeights& w,
                             const Rope& rope) {
    check_kv_append(n_batch, n_new, n_batch_, n_cached_, n_ctx_max_);
    PALU_ASSERT(rope.d_head() == n_rope_);
    const int64_t d_model = w.w_kv_a.dim(1), n_a = n_latent_ + n_rope_, n_rows = n_batch * n_new;
    std::vector<float> a(static_cast<size_t>(n_rows * n_a));  // [n_rows, kv_lora_rank + rope]
    ops::gemm_nt(n_rows, n_a, d_model, x, d_model, w.w_kv_a.data(), d_model, a.data(), n_a);
    std::vector<int64_t> pos(static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) pos[static_cast<size_t>(r)] = n_cached_ + r % n_new;
    if (interleave_) deinterleave_rope_dims(a.data() + n_latent_, n_rows, n_rope_, n_a);
    rope.apply(a.data() + n_latent_, n_rows, 1, n_a, pos.data());
    for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t b = r / n_new, t = n_cached_ + r % n_new;
        float* c = latent_.data() + (b * n_ctx_max_ + t) * n_latent_;
        // kv_a_layernorm is built with DeepseekV3RMSNorm's default eps 1e-6, not rms_norm_eps.
        if (latent_norm_)
            ops::rms_norm(a.data() + r * n_a, w.kv_a_norm.data(), c, 1, n_latent_, 1e-6);
        else
            std::memcpy(c, a.data() + r * n_a, static_cast<size_t>(n_latent_) * sizeof(float));
        std::memcpy(k_pe_.data() + (b * n_ctx_max_ + t) * n_rope_, a.data() + r * n_a + n_latent_,
                    static_cast<size_t>(n_rope_) * sizeof(float));
    }
    w_ = &w;
    n_cached_ += n_new;
}

const float* MlaKvLayerCache::latent(int64_t b, int64_t t) const {
    return latent_.data() + (b * n_ctx_max_ + t) * n_latent_;
}

const float* MlaKvLayerCache::k_pe(int64_t b, int64_t t) const {
    return k_pe_.data() + (b * n_ctx_max_ + t) * n_rope_;
}

KvView MlaKvLayerCache::keys(int64_t b) {
    PALU_ASSERT(w_ != nullptr);
    const int64_t n = n_cached_, dqk = n_nope_ + n_rope_, dkv = n_nope_ + n_v_;
    proj_.resize(static_cast<size_t>(n * n_heads_ * dkv));
    // [n, n_heads·(nope + v)] = c [n, r] · W_kvbᵀ; both K_nope and V come out of one GEMM.
    ops::gemm_nt(n, n_heads_ * dkv, n_latent_, latent(b, 0), n_latent_, w_->w_kv_b.data(),
                 n_latent_, proj_.data(), n_heads_ * dkv);
    k_.resize(static_cast<size_t>(n_heads_ * n * dqk));
    v_.resize(static_cast<size_t>(n_heads_ * n * n_v_));
    for (int64_t h = 0; h < n_heads_; ++h)
        for (int64_t t = 0; t < n; ++t) {
            const float* src = proj_.data() + t * n_heads_ * dkv + h * dkv;
            float* kd = k_.data() + (h * n + t) * dqk;
            std::memcpy(kd, src, static_cast<size_t>(n_nope_) * sizeof(float));
            std::memcpy(kd + n_nope_, k_pe(b, t), static_cast<size_t>(n_rope_) * sizeof(float));
            std::memcpy(v_.data() + (h * n + t) * n_v_, src + n_nope_,
                        static_cast<size_t>(n_v_) * sizeof(float));
        }
    return KvView{k_.data(), n, n * dqk};
}

KvView MlaKvLayerCache::values(int64_t b) {
    // keys(b) reconstructs both; values of the same row are valid right after it.
    (void)b;
    return KvView{v_.data(), n_cached_, n_cached_ * n_v_};
}

int64_t MlaKvLayerCache::bytes_per_token() const {
    return (n_latent_ + n_rope_) * static_cast<int64_t>(sizeof(float));
}

KvLayerCacheFactory mla_cache_factory(const ModelConfig& config) {
    PALU_CHECK(config.is_mla(), UsageError, "model: mla cache: the model is not MLA");
    return [config](int64_t, int64_t n_batch, int64_t n_ctx_max) {
        return std::make_unique<MlaKvLayerCache>(config, n_batch, n_ctx_max);
    };
}

void mla_attention(const ModelConfig& c, const LayerWeights& w, const Rope& rope, const float* xn,
                   float* x, int64_t n_batch, int64_t n_new, KvLayerCache& cache,
                   std::vector<float>& attn) {
    const MlaConfig& m = *c.mla;
    const int64_t d = c.d_model, dqk = c.d_head, dq = c.d_q(), dv = m.v_head_dim;
    const int64_t n_rows = n_batch * n_new, n_past = cache.n_cached(), da = c.n_heads * dv;
    std::vector<float> q(static_cast<size_t>(n_rows * dq));  // [n_rows, n_heads·(nope+rope)]
    ops::gemm_nt(n_rows, dq, d, xn, d, w.wq.data(), d, q.data(), dq);
    std::vector<int64_t> pos(static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) pos[static_cast<size_t>(r)] = n_past + r % n_new;
    for (int64_t h = 0; h < c.n_heads; ++h) {
        float* q_pe = q.data() + h * dqk + m.qk_nope_head_dim;  // [n_rows, rope], ld dq
        if (m.rope_interleave) deinterleave_rope_dims(q_pe, n_rows, m.qk_rope_head_dim, dq);
        rope.apply(q_pe, n_rows, 1, dq, pos.data());
    }
    cache.append(xn, n_batch, n_new, w, rope);
    const int64_t n_kv = n_past + n_new;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dqk)));
    attn.assign(static_cast<size_t>(n_rows * da), 0.0f);      // [n_rows, n_heads·v_head]
    std::vector<float> s(static_cast<size_t>(n_new * n_kv));  // [n_new, n_kv]
    for (int64_t b = 0; b < n_batch; ++b) {
        const KvView k = cache.keys(b), v = cache.values(b);
        PALU_ASSERT(k.n_ctx == n_kv && v.n_ctx == n_kv);
        for (int64_t h = 0; h < c.n_heads; ++h) {
            const float* q_h = q.data() + b * n_new * dq + h * dqk;  // [n_new, dqk], ld dq
            ops::gemm_nt(n_new, n_kv, dqk, q_h, dq, k.data + h * k.head_stride, dqk, s.data(),
                         n_kv);
            ops::causal_softmax(s.data(), n_new, n_kv, n_past + 1, scale);
            ops::gemm_nn(n_new, dv, n_kv, s.data(), n_kv, v.data + h * v.head_stride, dv,
                         attn.data() + b * n_new * da + h * dv, da);
        }
    }
    ops::gemm_nt(n_rows, d, da, attn.data(), da, w.wo.data(), da, x, d, 1.0f);
}

}  // namespace palu::model
