// palu model: the latent KV cache of a compressed (Palu) model — what makes the KV saving real.
//
// Per layer and sequence the cache stores, for every cached token, the key latents
// h_k = x·VT_kᵀ (pre-RoPE, one r_g-wide row per head group) and the value latents h_v = x·VT_vᵀ,
// as f32, f16, or b-bit codes (b ∈ {2, 3, 4, 8}) with f16 per-token scales (and zeros, asymmetric)
// per chunk of the group's channels — palu::quant's quantizer and packing (lib/quant). Keys and
// values are reconstructed on demand: K_g = RoPE(h_k,g·U_k,gᵀ + b_k,g), V_g = h_v,g·U_v,gᵀ + b_v,g,
// into a workspace shared by all layers of one cache (one layer of full K/V for the batch; never
// counted as cache storage).
//
// Storage layout (per layer; one plane for K, one for V), chosen to equal the CUDA kernels' view
// (kernels/include/palu/kernels/latent_attention.h) when the quantization group is the whole latent
// group (latent group_size 0):
//   latents f32/f16: data   [n_batch, n_groups, n_ctx_max, r_g]                 (one block per
//   group) quantized:       codes  [n_batch, n_groups, n_ctx_max, ⌈r_g·b/8⌉]  packed little-endian
//   bits
//                    scales [n_batch, n_groups, n_ctx_max, r_g/chunk] f16
//                    zeros  [n_batch, n_groups, n_ctx_max, r_g/chunk] f16 (asymmetric only)
// bytes_per_token() = Σ over K and V groups of quant::latent_token_bytes(r_g, spec) (f32: 4·r_g).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "palu/model/kv_cache.h"
#include "palu/quant/latent_quant.h"

namespace palu::model {

/// How the latents are stored.
struct LatentCacheOptions {
    /// 32 = f32 latents (exact; the default for tests), 16 = f16 latents, 2/3/4/8 = quantized with
    /// quant.group_size / symmetric / clip_ratio / include_zero below (quant.bits is ignored).
    int bits = 32;
    quant::LatentQuantSpec quant;
};

/// Scratch for reconstructed K/V, shared by the layer caches of one KvCache (grown on demand).
struct LatentWorkspace {
    std::vector<float> k, v;    // [n_batch, n_kv_heads, n_ctx, d_head]
    std::vector<float> latent;  // [n_ctx, max Σ r_g] dequantized latents of one row
    std::vector<float> proj;    // [n_ctx, n_kv_heads·d_head] reconstruction before the scatter
};

class LatentKvLayerCache final : public KvLayerCache {
   public:
    /// `w` must be a compressed layer (lk/lv present); its U factors and biases are copied.
    /// Throws UsageError on a bad option (bits, a quantization group not dividing a rank).
    LatentKvLayerCache(const ModelConfig& config, const LayerWeights& w, int64_t n_batch,
                       int64_t n_ctx_max, const LatentCacheOptions& options,
                       std::shared_ptr<LatentWorkspace> workspace);
    void append(const float* x, int64_t n_batch, int64_t n_new, const LayerWeights& w,
                const Rope& rope) override;
    KvView keys(int64_t b) override;
    KvView values(int64_t b) override;
    int64_t n_cached() const override { return n_cached_; }
    int64_t bytes_per_token() const override;
    void clear() override { n_cached_ = 0; }

    /// The stored latents of batch row b, token t, K (which = 0) or V (1), dequantized:
    /// [Σ r_g] in group order (for tests and the kernel harness).
    std::vector<float> latent(int64_t b, int64_t t, int which) const;

    /// Read-only view of the raw storage of the K (which = 0) or V (1) latents of every batch row,
    /// laid out as in the file comment (capacity n_ctx_max; only tokens < n_cached() are
    /// meaningful). Exactly one of f32 / f16 / codes is non-empty; zeros is empty when symmetric.
    /// For the CUDA kernel harness, which uploads it. Valid until the cache is destroyed.
    struct Storage {
        int bits = 32;
        bool symmetric = false;
        std::span<const int64_t> ranks;  // [n_groups] r_g
        int64_t n_ctx_max = 0;
        std::span<const float> f32;        // bits 32
        std::span<const uint16_t> f16;     // bits 16: IEEE f16 words
        std::span<const uint8_t> codes;    // quantized: packed rows
        std::span<const uint16_t> scales;  // quantized: f16, [.., r_g / chunk] per token and group
        std::span<const uint16_t> zeros;   // quantized, asymmetric
    };
    Storage storage(int which) const;

   private:
    struct Plane {  // K or V latents of this layer
        std::vector<int64_t> ranks, offsets;
        int64_t n_latent = 0;
        std::vector<Tensor> u, bias;  // U_g [s·d_head, r_g], bias_g [s·d_head] or empty
        std::vector<float> f32;       // bits 32: [n_batch, n_groups, n_ctx_max, r_g] blocks
        std::vector<uint16_t> f16;    // bits 16
        std::vector<uint8_t> codes;   // quantized
        std::vector<uint16_t> scales, zeros;
        std::vector<int64_t> code_bytes, n_chunks;   // per group
        std::vector<int64_t> code_base, param_base;  // per group: element offset of (b=0, g, t=0)
        int64_t code_batch = 0, param_batch = 0;     // per batch row
    };
    void init_plane(Plane& p, const LowRankWeights& lr);
    // Tokens t0 .. t0+n-1 of batch row b; h is [n, Σ r_g] row-major.
    void store(Plane& p, const float* h, int64_t b, int64_t t0, int64_t n);
    void load(const Plane& p, int64_t b, int64_t t0, int64_t n, float* h) const;
    void reconstruct(const Plane& p, int64_t b, bool rope_keys, std::vector<float>& dst);

    int64_t n_kv_heads_, d_head_, group_size_, n_batch_, n_ctx_max_, n_cached_ = 0;
    int bits_;
    quant::LatentQuantSpec quant_;
    Plane k_, v_;
    const Rope* rope_ = nullptr;  // from the last append (keys are rotated at reconstruction)
    std::shared_ptr<LatentWorkspace> ws_;
    std::vector<float> h_;  // [n_rows, Σ r] projection scratch
};

/// A cache factory for a Transformer over a compressed model: latent caches for every layer, all
/// sharing one workspace (safe: a Transformer runs one forward at a time and reads a layer's views
/// only while it runs that layer). Throws UsageError when the model is not compressed.
KvLayerCacheFactory latent_cache_factory(const class ModelWeights& weights,
                                         const LatentCacheOptions& options);

}  // namespace palu::model
