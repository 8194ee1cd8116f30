// palu model: the latent KV cache (latent_cache.h).
#include "palu/model/latent_cache.h"

#include <algorithm>
#include <cstring>

#include "ops.h"
#include "palu/core/dtype.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/model/weights.h"

namespace palu::model {

LatentKvLayerCache::LatentKvLayerCache(const ModelConfig& config, const LayerWeights& w,
                                       int64_t n_batch, int64_t n_ctx_max,
                                       const LatentCacheOptions& options,
                                       std::shared_ptr<LatentWorkspace> workspace)
    : n_kv_heads_(config.n_kv_heads),
      d_head_(config.d_head),
      group_size_(w.lk.group_size),
      n_batch_(n_batch),
      n_ctx_max_(n_ctx_max),
      bits_(options.bits),
      quant_(options.quant),
      ws_(std::move(workspace)) {
    PALU_CHECK(w.lk.present() && w.lv.present(), UsageError,
               "model: latent kv cache: the layer has no low-rank k_proj/v_proj; hint: load a "
               "compressed checkpoint");
    PALU_CHECK(n_batch > 0 && n_ctx_max > 0, UsageError,
               "model: kv cache: n_batch and n_ctx_max must be > 0, got %lld, %lld",
               static_cast<long long>(n_batch), static_cast<long long>(n_ctx_max));
    PALU_CHECK(bits_ == 32 || bits_ == 16 || bits_ == 8 || bits_ == 4 || bits_ == 3 || bits_ == 2,
               UsageError,
               "model: latent kv cache: latent bits must be 2, 3, 4, 8, 16 or 32, got %d", bits_);
    quant_.bits = bits_ < 16 ? bits_ : 16;
    PALU_CHECK(w.lk.group_size == w.lv.group_size, ShapeError,
               "model: latent kv cache: k_proj groups of %lld heads, v_proj of %lld",
               static_cast<long long>(w.lk.group_size), static_cast<long long>(w.lv.group_size));
    PALU_CHECK(ws_ != nullptr, UsageError, "model: latent kv cache: no workspace");
    init_plane(k_, w.lk);
    init_plane(v_, w.lv);
}

void LatentKvLayerCache::init_plane(Plane& p, const LowRankWeights& lr) {
    p.ranks = lr.ranks;
    p.u = lr.u;
    p.bias = lr.bias;
    p.n_latent = lr.n_latent();
    const int64_t n_groups = lr.n_groups();
    int64_t off = 0;
    for (int64_t r : p.ranks) {
        p.offsets.push_back(off);
        off += r;
    }
    if (bits_ == 32) {
        p.f32.assign(static_cast<size_t>(n_batch_ * n_ctx_max_ * p.n_latent), 0.0f);
    } else if (bits_ == 16) {
        p.f16.assign(static_cast<size_t>(n_batch_ * n_ctx_max_ * p.n_latent), 0);
    } else {
        int64_t codes = 0, params = 0;
        for (int64_t g = 0; g < n_groups; ++g) {
            const int64_t r = p.ranks[static_cast<size_t>(g)];
            quant::validate_quant_spec(quant_, r);
            const int64_t chunk = quant_.group_size > 0 ? quant_.group_size : r;
            p.code_bytes.push_back(quant::packed_row_bytes(r, bits_));
            p.n_chunks.push_back(r / chunk);
            p.code_base.push_back(codes);
            p.param_base.push_back(params);
            codes += n_ctx_max_ * p.code_bytes.back();
            params += n_ctx_max_ * p.n_chunks.back();
        }
        p.code_batch = codes;
        p.param_batch = params;
        p.codes.assign(static_cast<size_t>(n_batch_ * codes), 0);
        p.scales.assign(static_cast<size_t>(n_batch_ * params), 0);
        if (!quant_.symmetric) p.zeros.assign(static_cast<size_t>(n_batch_ * params), 0);
    }
}

// Element offset of (b, g, t) in the f32/f16 block layout [n_batch, n_groups, n_ctx_max, r_g].
namespace {
int64_t block_offset(int64_t b, int64_t g_off, int64_t r, int64_t t, int64_t n_ctx_max,
                     int64_t n_latent) {
    return b * n_ctx_max * n_latent + g_off * n_ctx_max + t * r;
}
}  // namespace

void LatentKvLayerCache::store(Plane& p, const float* h, int64_t b, int64_t t0, int64_t n) {
    std::vector<float> slice;
    for (size_t g = 0; g < p.ranks.size(); ++g) {
        const int64_t r = p.ranks[g];
        if (bits_ == 32 || bits_ == 16) {
            for (int64_t t = 0; t < n; ++t) {
                const float* src = h + t * p.n_latent + p.offsets[g];
                const int64_t o = block_offset(b, p.offsets[g], r, t0 + t, n_ctx_max_, p.n_latent);
                if (bits_ == 32)
                    std::memcpy(p.f32.data() + o, src, static_cast<size_t>(r) * sizeof(float));
                else
                    for (int64_t i = 0; i < r; ++i)
                        p.f16[static_cast<size_t>(o + i)] = f32_to_f16(src[i]);
            }
            continue;
        }
        // One quantizer call for the group's n rows; per-token parameters are contiguous in t.
        slice.resize(static_cast<size_t>(n * r));
        for (int64_t t = 0; t < n; ++t)
            std::memcpy(slice.data() + t * r, h + t * p.n_latent + p.offsets[g],
                        static_cast<size_t>(r) * sizeof(float));
        const quant::QuantizedRows q = quant::quantize_rows(slice.data(), n, r, quant_);
        const int64_t cb = p.code_bytes[g];
        uint8_t* codes = p.codes.data() + b * p.code_batch + p.code_base[g] + t0 * cb;
        for (int64_t t = 0; t < n; ++t)
            quant::pack_codes(q.codes.data() + t * r, r, bits_, codes + t * cb);
        const int64_t po = b * p.param_batch + p.param_base[g] + t0 * p.n_chunks[g];
        std::copy(q.scales.begin(), q.scales.end(), p.scales.begin() + po);
        if (!quant_.symmetric) std::copy(q.zeros.begin(), q.zeros.end(), p.zeros.begin() + po);
    }
}

void LatentKvLayerCache::load(const Plane& p, int64_t b, int64_t t0, int64_t n, float* h) const {
    std::vector<float> slice;
    for (size_t g = 0; g < p.ranks.size(); ++g) {
        const int64_t r = p.ranks[g];
        if (bits_ == 32 || bits_ == 16) {
            for (int64_t t = 0; t < n; ++t) {
                float* dst = h + t * p.n_latent + p.offsets[g];
                const int64_t o = block_offset(b, p.offsets[g], r, t0 + t, n_ctx_max_, p.n_latent);
                if (bits_ == 32)
                    std::memcpy(dst, p.f32.data() + o, static_cast<size_t>(r) * sizeof(float));
                else
                    for (int64_t i = 0; i < r; ++i)
                        dst[i] = f16_to_f32(p.f16[static_cast<size_t>(o + i)]);
            }
            continue;
        }
        const int64_t cb = p.code_bytes[g], nc = p.n_chunks[g];
        quant::QuantizedRows q;
        q.n_rows = n;
        q.n_cols = r;
        q.chunk = r / nc;
        q.bits = bits_;
        q.symmetric = quant_.symmetric;
        q.codes.resize(static_cast<size_t>(n * r));
        const uint8_t* codes = p.codes.data() + b * p.code_batch + p.code_base[g] + t0 * cb;
        for (int64_t t = 0; t < n; ++t)
            quant::unpack_codes(codes + t * cb, r, bits_, q.codes.data() + t * r);
        const int64_t po = b * p.param_batch + p.param_base[g] + t0 * nc;
        q.scales.assign(p.scales.begin() + po, p.scales.begin() + po + n * nc);
        if (!quant_.symmetric) q.zeros.assign(p.zeros.begin() + po, p.zeros.begin() + po + n * nc);
        slice.resize(static_cast<size_t>(n * r));
        quant::dequantize_rows(q, slice.data());
        for (int64_t t = 0; t < n; ++t)
            std::memcpy(h + t * p.n_latent + p.offsets[g], slice.data() + t * r,
                        static_cast<size_t>(r) * sizeof(float));
    }
}

void LatentKvLayerCache::append(const float* x, int64_t n_batch, int64_t n_new,
                                const LayerWeights& w, const Rope& rope) {
    check_kv_append(n_batch, n_new, n_batch_, n_cached_, n_ctx_max_);
    PALU_CHECK(w.lk.present() && w.lk.n_latent() == k_.n_latent && w.lv.n_latent() == v_.n_latent,
               UsageError, "model: latent kv cache: layer weights do not match the cache's ranks");
    rope_ = &rope;
    const int64_t d_model = w.lk.vt.dim(1), n_rows = n_batch * n_new;
    for (int which = 0; which < 2; ++which) {
        Plane& p = which == 0 ? k_ : v_;
        const LowRankWeights& lr = which == 0 ? w.lk : w.lv;
        h_.resize(static_cast<size_t>(n_rows * p.n_latent));
        // h = x · VTᵀ  [n_rows, Σ r_g]
        ops::gemm_nt(n_rows, p.n_latent, d_model, x, d_model, lr.vt.data(), d_model, h_.data(),
                     p.n_latent);
        for (int64_t b = 0; b < n_batch; ++b)
            store(p, h_.data() + b * n_new * p.n_latent, b, n_cached_, n_new);
    }
    n_cached_ += n_new;
}

void LatentKvLayerCache::reconstruct(const Plane& p, int64_t b, bool rope_keys,
                                     std::vector<float>& dst) {
    const int64_t n = n_cached_, d_kv = n_kv_heads_ * d_head_, w_g = group_size_ * d_head_;
    const size_t per_row = static_cast<size_t>(n_kv_heads_ * n_ctx_max_ * d_head_);
    if (dst.size() < static_cast<size_t>(n_batch_) * per_row)
        dst.resize(static_cast<size_t>(n_batch_) * per_row);
    LatentWorkspace& ws = *ws_;
    ws.latent.resize(std::max(ws.latent.size(), static_cast<size_t>(n * p.n_latent)));
    ws.proj.resize(std::max(ws.proj.size(), static_cast<size_t>(n * d_kv)));
    load(p, b, 0, n, ws.latent.data());
    // Y[:, g·s·d_head ...] = H_g · U_gᵀ (+ bias_g)   [n, d_kv]
    for (size_t g = 0; g < p.ranks.size(); ++g) {
        float* y = ws.proj.data() + static_cast<int64_t>(g) * w_g;
        ops::gemm_nt(n, w_g, p.ranks[g], ws.latent.data() + p.offsets[g], p.n_latent, p.u[g].data(),
                     p.ranks[g], y, d_kv);
        if (p.bias[g].numel() > 0) ops::add_bias(y, p.bias[g].data(), n, w_g, d_kv);
    }
    if (rope_keys) {
        PALU_ASSERT(rope_ != nullptr);
        std::vector<int64_t> pos(static_cast<size_t>(n));
        for (int64_t t = 0; t < n; ++t) pos[static_cast<size_t>(t)] = t;
        rope_->apply(ws.proj.data(), n, n_kv_heads_, d_kv, pos.data());
    }
    float* out = dst.data() + static_cast<size_t>(b) * per_row;
    for (int64_t h = 0; h < n_kv_heads_; ++h)
        for (int64_t t = 0; t < n; ++t)
            std::memcpy(out + (h * n_ctx_max_ + t) * d_head_,
                        ws.proj.data() + t * d_kv + h * d_head_,
                        static_cast<size_t>(d_head_) * sizeof(float));
}

KvView LatentKvLayerCache::keys(int64_t b) {
    PALU_ASSERT(b >= 0 && b < n_batch_);
    reconstruct(k_, b, /*rope_keys=*/true, ws_->k);
    return KvView{ws_->k.data() + b * n_kv_heads_ * n_ctx_max_ * d_head_, n_cached_,
                  n_ctx_max_ * d_head_};
}

KvView LatentKvLayerCache::values(int64_t b) {
    PALU_ASSERT(b >= 0 && b < n_batch_);
    reconstruct(v_, b, /*rope_keys=*/false, ws_->v);
    return KvView{ws_->v.data() + b * n_kv_heads_ * n_ctx_max_ * d_head_, n_cached_,
                  n_ctx_max_ * d_head_};
}

int64_t LatentKvLayerCache::bytes_per_token() const {
    int64_t n = 0;
    for (const Plane* p : {&k_, &v_}) {
        if (bits_ == 32) {
            n += 4 * p->n_latent;
            continue;
        }
        for (int64_t r : p->ranks) n += quant::latent_token_bytes(r, quant_);
    }
    return n;
}

std::vector<float> LatentKvLayerCache::latent(int64_t b, int64_t t, int which) const {
    PALU_CHECK(b >= 0 && b < n_batch_ && t >= 0 && t < n_cached_ && (which == 0 || which == 1),
               UsageError, "model: latent kv cache: no latent at batch %lld, token %lld",
               static_cast<long long>(b), static_cast<long long>(t));
    const Plane& p = which == 0 ? k_ : v_;
    std::vector<float> h(static_cast<size_t>(p.n_latent));
    load(p, b, t, 1, h.data());
    return h;
}

LatentKvLayerCache::Storage LatentKvLayerCache::storage(int which) const {
    PALU_CHECK(which == 0 || which == 1, UsageError,
               "model: latent kv cache: storage: which must be 0 (K) or 1 (V), got %d", which);
    const Plane& p = which == 0 ? k_ : v_;
    Storage s;
    s.bits = bits_;
    s.symmetric = quant_.symmetric;
    s.ranks = p.ranks;
    s.n_ctx_max = n_ctx_max_;
    s.f32 = p.f32;
    s.f16 = p.f16;
    s.codes = p.codes;
    s.scales = p.scales;
    s.zeros = p.zeros;
    return s;
}

KvLayerCacheFactory latent_cache_factory(const ModelWeights& weights,
                                         const LatentCacheOptions& options) {
    PALU_CHECK(weights.layer(0)->compressed(), UsageError,
               "model: latent kv cache: the model has dense k_proj/v_proj; hint: a latent cache "
               "needs a compressed palu checkpoint");
    auto ws = std::make_shared<LatentWorkspace>();
    const ModelWeights* wp = &weights;
    return [wp, options, ws](int64_t l, int64_t n_batch, int64_t n_ctx_max) {
        return std::make_unique<LatentKvLayerCache>(wp->config(), *wp->layer(l), n_batch, n_ctx_max,
                                                    options, ws);
    };
}

}  // namespace palu::model
