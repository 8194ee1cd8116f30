// palu model: the KV cache as a per-layer strategy.
// The forward pass never computes K/V itself: it hands the normalized layer input x (the input of
// k_proj/v_proj) to the layer's KvLayerCache, which projects, caches, and exposes post-RoPE K and V
// for every cached position. DenseKvLayerCache stores K (post-RoPE) and V in f32; the compressed
// model adds a latent cache (h = x·VTᵀ per head group, K = RoPE(h·Uᵀ) and V reconstructed on the
// fly) as another implementation, without touching the forward code.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "palu/model/rope.h"
#include "palu/model/weights.h"

namespace palu::model {

/// Read view of the keys or values of one batch row: element (head h, position t, dim i) is
/// data[h * head_stride + t * d_head + i], t < n_ctx.
struct KvView {
    const float* data = nullptr;
    int64_t n_ctx = 0;
    int64_t head_stride = 0;
};

class KvLayerCache {
   public:
    virtual ~KvLayerCache() = default;
    /// Appends n_new positions for every batch row. x: [n_batch, n_new, d_model] row-major, the
    /// post-input_layernorm hidden state; positions n_cached() .. n_cached()+n_new-1. `w` is the
    /// layer's weights (the dense cache uses wk/bk/wv/bv; a latent cache may use its own factors).
    /// Throws UsageError when the capacity would be exceeded.
    virtual void append(const float* x, int64_t n_batch, int64_t n_new, const LayerWeights& w,
                        const Rope& rope) = 0;
    /// Post-RoPE keys [n_kv_heads, n_cached(), d_head] of batch row b (valid until the next
    /// append).
    virtual KvView keys(int64_t b) = 0;
    /// Values [n_kv_heads, n_cached(), d_head] of batch row b.
    virtual KvView values(int64_t b) = 0;
    virtual int64_t n_cached() const = 0;
    /// Bytes the cache stores per token of one sequence (this layer), from its own storage.
    virtual int64_t bytes_per_token() const = 0;
    virtual void clear() = 0;
};

/// The checks every KvLayerCache::append makes: the batch matches the cache's, and n_new more
/// positions fit (UsageError otherwise).
void check_kv_append(int64_t n_batch, int64_t n_new, int64_t cache_batch, int64_t n_cached,
                     int64_t n_ctx_max);

/// Dense f32 cache: K post-RoPE and V, [n_batch, n_kv_heads, n_ctx_max, d_head] each.
class DenseKvLayerCache final : public KvLayerCache {
   public:
    DenseKvLayerCache(const ModelConfig& config, int64_t n_batch, int64_t n_ctx_max);
    void append(const float* x, int64_t n_batch, int64_t n_new, const LayerWeights& w,
                const Rope& rope) override;
    KvView keys(int64_t b) override;
    KvView values(int64_t b) override;
    int64_t n_cached() const override { return n_cached_; }
    int64_t bytes_per_token() const override;
    void clear() override { n_cached_ = 0; }

   private:
    int64_t n_kv_heads_, d_head_, n_batch_, n_ctx_max_, n_cached_ = 0;
    std::vector<float> k_;        // [n_batch, n_kv_heads, n_ctx_max, d_head]
    std::vector<float> v_;        // [n_batch, n_kv_heads, n_ctx_max, d_head]
    std::vector<float> scratch_;  // [n_batch * n_new, n_kv_heads * d_head] projection output
};

/// Makes the cache of layer `l` for a batch of n_batch sequences of at most n_ctx_max tokens.
using KvLayerCacheFactory =
    std::function<std::unique_ptr<KvLayerCache>(int64_t l, int64_t n_batch, int64_t n_ctx_max)>;

/// The caches of all layers plus the shared position counter.
class KvCache {
   public:
    KvCache(std::vector<std::unique_ptr<KvLayerCache>> layers, int64_t n_batch, int64_t n_ctx_max);
    KvLayerCache& layer(int64_t l) { return *layers_.at(static_cast<size_t>(l)); }
    int64_t n_layers() const { return static_cast<int64_t>(layers_.size()); }
    int64_t n_batch() const { return n_batch_; }
    int64_t n_ctx_max() const { return n_ctx_max_; }
    /// Positions already cached (layer 0's count; all layers agree between forwards).
    int64_t n_past() const { return layers_.empty() ? 0 : layers_[0]->n_cached(); }
    /// Sum over layers of bytes per token.
    int64_t bytes_per_token() const;
    void clear();

   private:
    std::vector<std::unique_ptr<KvLayerCache>> layers_;
    int64_t n_batch_, n_ctx_max_;
};

}  // namespace palu::model
