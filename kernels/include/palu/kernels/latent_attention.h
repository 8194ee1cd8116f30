// palu kernels: fused decode attention over a Palu latent KV cache (issue #5).
//
// One decode step (one query token per sequence) of one attention layer whose K and V caches hold
// Palu latents instead of full heads (palu-reference.md §2, §6.3, §7.1):
//   k_j[t]   = B_k[g](j) · h_k[g][t]              key reconstruction, B_k[g](j) = rows of KV head j
//   s_h[t]   = RoPE(q_h, pos_q) · RoPE(k_j[t], pos_t) · softmax_scale
//   p_h      = softmax_t(s_h)                         (online, split over tokens: flash-decoding)
//   o_lat_h  = Σ_t p_h[t] · h_v[g][t]                 value product kept in latent space
//   out_h    = B_v[g](j) · o_lat_h                    value up-projection, once per step
// for every query head h, its KV head j = h / (n_heads / n_kv_heads) and the head group
// g = j / group_size. Inputs and outputs are device pointers; the API is plain structs so the
// CPU engine (issue #4) and tools can call it without CUDA types beyond cudaStream_t.
//
// Latent cache layout (one layer, one of K or V; `capacity` = allocated tokens per sequence):
//   bits == 16: data   [batch, n_groups, capacity, rank]            dtype (f16 or bf16)
//   bits <  16: data   [batch, n_groups, capacity, rank·bits/8]     uint8, packed codes (below)
//               scales [batch, n_groups, capacity]                  f16
//               zeros  [batch, n_groups, capacity]                  f16 (integer-valued)
// Packed codes (bits ∈ {2, 3, 4}): one row per token and group; the row is a little-endian bit
// stream in which code c (0 ≤ c < rank) occupies bits [bits·c, bits·c + bits), i.e. bit i of the
// stream is bit (i mod 8) of byte i / 8. 4-bit: two codes per byte, low nibble first; 2-bit: four
// per byte, lowest pair first; 3-bit: eight codes per 3 bytes, read as a 24-bit little-endian word.
// Dequantization (per token, per group, asymmetric): x = (code − zero) · scale.
// RoPE: HF rotate-half convention (pairs (i, i + d_head/2)), angle θ_i = fl32(pos · inv_freq[i])
// (a float32 product, as Hugging Face computes it), so any rope_theta and Llama-3 scaling are
// expressed by the inv_freq table the caller passes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace palu::cuda {

/// Element type of latents, up-projections, queries and outputs.
enum class LatentDType : int32_t { F16 = 0, BF16 = 1 };

/// Which split kernel runs the token loop (both write the same partials; the reduction is shared).
///  * Block: one block per (s' KV heads, token range), 64/128-token tiles shared by 8 warps, block
///    barriers per tile (kernel v8). Any supported shape.
///  * Warp: one block per (KV head, token range) whose 8 warps each stream their own 16-token
///    chunks, no block barrier in the token loop (kernel v9). Needs n_heads/n_kv_heads ≤ 8,
///    value rank ≤ 256, both caches 16-bit or both quantized, and its shared memory to fit.
///  * Auto: Warp where it applies and fits, else Block.
enum class LatentKernel : int32_t { Auto = 0, Block = 1, Warp = 2 };

/// One latent cache (K or V) of one layer; see the layout in the file comment.
struct LatentCacheView {
    const void* data =
        nullptr;  ///< bits 16: [batch, n_groups, capacity, rank] dtype; else packed uint8
    const void* scales = nullptr;  ///< bits < 16: [batch, n_groups, capacity] f16, else unused
    const void* zeros = nullptr;   ///< bits < 16: [batch, n_groups, capacity] f16, else unused
    int32_t rank = 0;              ///< r per head group; multiple of 32
    int32_t bits = 16;             ///< 16 (unquantized), 4, 3 or 2
};

/// Bytes of one token's row of one group for a cache of this rank and bit width (no scales).
inline int64_t latent_row_bytes(int32_t rank, int32_t bits) {
    return bits == 16 ? int64_t(rank) * 2 : int64_t(rank) * bits / 8;
}

/// Parameters of one decode step. All pointers are device pointers unless stated.
struct LatentAttentionParams {
    int32_t batch = 0;
    int32_t n_heads = 0;     ///< query heads
    int32_t n_kv_heads = 0;  ///< KV heads (== n_heads for MHA)
    int32_t group_size = 1;  ///< s: KV heads per latent group; n_groups = n_kv_heads / s
    int32_t d_head = 128;    ///< 64 or 128
    int32_t capacity = 0;    ///< tokens allocated per sequence in the caches; multiple of 16
    LatentDType dtype = LatentDType::F16;

    const void* q = nullptr;            ///< [batch, n_heads, d_head] dtype, before RoPE
    const int32_t* seq_lens = nullptr;  ///< [batch] cached tokens per sequence, 1 ≤ len ≤ capacity
    const int32_t* k_pos0 = nullptr;  ///< [batch] position of cached token 0 (nullptr: 0)
    const int32_t* q_pos = nullptr;   ///< [batch] query position (nullptr: k_pos0 + len − 1)
    const float* inv_freq = nullptr;  ///< [d_head / 2] RoPE inverse frequencies (already scaled)
    float softmax_scale = 0.0f;       ///< 0: 1 / sqrt(d_head)

    LatentCacheView k;           ///< key latents
    LatentCacheView v;           ///< value latents
    const void* k_up = nullptr;  ///< [n_groups, s·d_head, r_k] dtype (U_k[g].weight, HF layout)
    const void* v_up = nullptr;  ///< [n_groups, s·d_head, r_v] dtype, or nullptr (no `out`)

    float* out_latent = nullptr;  ///< [batch, n_heads, r_v] f32 = o_lat, or nullptr
    void* out = nullptr;          ///< [batch, n_heads, d_head] dtype, or nullptr

    int32_t n_splits = 0;  ///< token splits (flash-decoding); 0: chosen from the device
    LatentKernel kernel = LatentKernel::Auto;  ///< Warp when it does not apply: UsageError
    void* workspace = nullptr;  ///< device scratch of latent_attention_workspace_bytes()
    size_t workspace_bytes = 0;
};

/// The launch plan the library chooses for `p` on the current device.
struct LatentAttentionPlan {
    LatentKernel kernel = LatentKernel::Block;  ///< the kernel chosen (never Auto)
    int32_t n_partials =
        0;  ///< (max, sum, o_lat) partials per (sequence, head) the reduction merges (= n_splits)
    int32_t n_splits = 0;          ///< token splits per (sequence, head block)
    int32_t tokens_per_split = 0;  ///< multiple of tile_tokens
    int32_t tile_tokens =
        0;  ///< Block: tokens per shared-memory tile (64 or 128); Warp: 16 × warps
    int32_t kv_heads_per_block = 0;  ///< KV heads whose keys one thread block rebuilds (Warp: 1)
    int32_t n_stages = 0;            ///< depth of the cp.async tile ring (2 or 3; Warp: 2 per warp)
    size_t smem_bytes = 0;           ///< dynamic shared memory per block
    size_t workspace_bytes = 0;      ///< scratch for the split partials
};

/// Validates the shapes of `p` and returns the launch plan (honours p.n_splits when > 0).
/// Throws palu::ShapeError / palu::UsageError on invalid parameters, palu::CudaError when the
/// device cannot be queried.
LatentAttentionPlan plan_latent_attention(const LatentAttentionParams& p);

/// Scratch bytes the call needs (plan_latent_attention(p).workspace_bytes).
size_t latent_attention_workspace_bytes(const LatentAttentionParams& p);

/// Runs one decode step on `stream` (asynchronous). Writes out_latent and/or out.
/// Throws palu::ShapeError / palu::UsageError on bad parameters (before any launch) and
/// palu::CudaError when a launch fails (message names the kernel and the CUDA error).
void latent_attention_decode(const LatentAttentionParams& p, cudaStream_t stream);

}  // namespace palu::cuda
