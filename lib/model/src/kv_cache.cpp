// palu model: dense f32 KV cache (post-RoPE keys, values).
#include "palu/model/kv_cache.h"

#include <cstring>

#include "ops.h"
#include "palu/core/error.h"

namespace palu::model {

void check_kv_append(int64_t n_batch, int64_t n_new, int64_t cache_batch, int64_t n_cached,
                     int64_t n_ctx_max) {
    PALU_CHECK(n_batch == cache_batch, UsageError,
               "model: kv cache: batch of %lld rows, cache made for %lld",
               static_cast<long long>(n_batch), static_cast<long long>(cache_batch));
    PALU_CHECK(n_cached + n_new <= n_ctx_max, UsageError,
               "model: kv cache: %lld + %lld positions exceed its capacity %lld; hint: make the "
               "cache with a larger n_ctx_max",
               static_cast<long long>(n_cached), static_cast<long long>(n_new),
               static_cast<long long>(n_ctx_max));
}

DenseKvLayerCache::DenseKvLayerCache(const ModelConfig& config, int64_t n_batch, int64_t n_ctx_max)
    : n_kv_heads_(config.n_kv_heads),
      d_head_(config.d_head),
      n_batch_(n_batch),
      n_ctx_max_(n_ctx_max) {
    PALU_CHECK(n_batch > 0 && n_ctx_max > 0, UsageError,
               "model: kv cache: n_batch and n_ctx_max must be > 0, got %lld, %lld",
               static_cast<long long>(n_batch), static_cast<long long>(n_ctx_max));
    const size_t n = static_cast<size_t>(n_batch * n_kv_heads_ * n_ctx_max * d_head_);
    k_.resize(n);
    v_.resize(n);
}

void DenseKvLayerCache::append(const float* x, int64_t n_batch, int64_t n_new,
                               const LayerWeights& w, const Rope& rope) {
    check_kv_append(n_batch, n_new, n_batch_, n_cached_, n_ctx_max_);
    const int64_t d_model = w.wk.dim(1), d_kv = n_kv_heads_ * d_head_, n_rows = n_batch * n_new;
    scratch_.resize(static_cast<size_t>(n_rows * d_kv));
    std::vector<int64_t> pos(static_cast<size_t>(n_rows));
    for (int64_t b = 0; b < n_batch; ++b)
        for (int64_t t = 0; t < n_new; ++t) pos[static_cast<size_t>(b * n_new + t)] = n_cached_ + t;
    // K = RoPE(x · Wkᵀ + bk), V = x · Wvᵀ + bv, scattered to [b, head, position, d_head].
    for (int which = 0; which < 2; ++which) {
        const Tensor& wt = which == 0 ? w.wk : w.wv;
        const Tensor& bias = which == 0 ? w.bk : w.bv;
        float* y = scratch_.data();  // [n_rows, d_kv]
        ops::gemm_nt(n_rows, d_kv, d_model, x, d_model, wt.data(), d_model, y, d_kv);
        if (bias.numel() > 0) ops::add_bias(y, bias.data(), n_rows, d_kv, d_kv);
        if (which == 0) rope.apply(y, n_rows, n_kv_heads_, d_kv, pos.data());
        std::vector<float>& dst = which == 0 ? k_ : v_;
        for (int64_t b = 0; b < n_batch; ++b)
            for (int64_t h = 0; h < n_kv_heads_; ++h)
                for (int64_t t = 0; t < n_new; ++t)
                    std::memcpy(
                        dst.data() + ((b * n_kv_heads_ + h) * n_ctx_max_ + n_cached_ + t) * d_head_,
                        y + (b * n_new + t) * d_kv + h * d_head_,
                        static_cast<size_t>(d_head_) * sizeof(float));
    }
    n_cached_ += n_new;
}

KvView DenseKvLayerCache::keys(int64_t b) {
    return KvView{k_.data() + b * n_kv_heads_ * n_ctx_max_ * d_head_, n_cached_,
                  n_ctx_max_ * d_head_};
}

KvView DenseKvLayerCache::values(int64_t b) {
    return KvView{v_.data() + b * n_kv_heads_ * n_ctx_max_ * d_head_, n_cached_,
                  n_ctx_max_ * d_head_};
}

int64_t DenseKvLayerCache::bytes_per_token() const {
    return 2 * n_kv_heads_ * d_head_ * static_cast<int64_t>(sizeof(float));
}

KvCache::KvCache(std::vector<std::unique_ptr<KvLayerCache>> layers, int64_t n_batch,
                 int64_t n_ctx_max)
    : layers_(std::move(layers)), n_batch_(n_batch), n_ctx_max_(n_ctx_max) {}

int64_t KvCache::bytes_per_token() const {
    int64_t n = 0;
    for (const auto& l : layers_) n += l->bytes_per_token();
    return n;
}

void KvCache::clear() {
    for (auto& l : layers_) l->clear();
}

}  // namespace palu::model
