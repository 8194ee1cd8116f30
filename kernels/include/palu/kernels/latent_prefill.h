// palu kernels: prefill attention over a Palu latent KV cache (issue #5: "key reconstruction + RoPE
// through cuBLAS GEMMs and a standard attention is fine; the latent cache is what gets appended").
//
// For a prompt of T tokens whose latents are already in the cache (tokens 0 … T−1 of every
// sequence, layout of latent_attention.h, 16-bit or 4/3/2-bit), one layer:
//   H_k, H_v  = the cached latents (quantized ones dequantized to dtype first)
//   K_j       = RoPE(H_k[g] · B_k[g](j)ᵀ)        [T, d_head] per KV head, cuBLAS, f32 accumulate →
//   dtype V_j       = H_v[g] · B_v[g](j)ᵀ              [T, d_head] S_h       = RoPE(Q_h) · K_jᵀ ·
//   softmax_scale  [T, T] f32 (cuBLAS), causal mask out_h     = softmax(S_h) · V_j                P
//   rounded to dtype (as FlashAttention), cuBLAS
// with positions pos0 + t (the same for every sequence). Standard attention: the workspace holds
// the [T, T] scores of every head (latent_prefill_workspace_bytes), so this is meant for prompts
// of a few thousand tokens, not for long-context prefill.
#pragma once

#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>

#include "palu/kernels/latent_attention.h"

namespace palu::cuda {

struct LatentPrefillParams {
    int32_t batch = 0;
    int32_t n_heads = 0;
    int32_t n_kv_heads = 0;
    int32_t group_size = 1;
    int32_t d_head = 128;  ///< 64 or 128
    int32_t capacity = 0;  ///< tokens allocated per sequence in the caches (multiple of 16)
    int32_t n_tokens = 0;  ///< T, 1 ≤ T ≤ capacity
    int32_t pos0 = 0;      ///< position of token 0
    LatentDType dtype = LatentDType::F16;

    const void* q = nullptr;          ///< [batch, T, n_heads, d_head] dtype, before RoPE
    const float* inv_freq = nullptr;  ///< [d_head / 2]
    float softmax_scale = 0.0f;       ///< 0: 1 / sqrt(d_head)
    LatentCacheView k;                ///< key latents (any format of latent_attention.h)
    LatentCacheView v;                ///< value latents
    const void* k_up = nullptr;       ///< [n_groups, s·d_head, r_k] dtype
    const void* v_up = nullptr;       ///< [n_groups, s·d_head, r_v] dtype
    void* out = nullptr;              ///< [batch, T, n_heads, d_head] dtype

    void* workspace = nullptr;  ///< device scratch of latent_prefill_workspace_bytes()
    size_t workspace_bytes = 0;
};

/// Scratch bytes for `p` (reconstructed K/V, rotated Q, scores, probabilities, head outputs).
/// Throws ShapeError / UsageError on invalid shapes.
size_t latent_prefill_workspace_bytes(const LatentPrefillParams& p);

/// Runs the prefill attention on `stream` with `cublas` (its stream is set to `stream`).
/// Throws ShapeError / UsageError before any launch, CudaError when a launch or cuBLAS call fails.
void latent_attention_prefill(const LatentPrefillParams& p, cublasHandle_t cublas,
                              cudaStream_t stream);

}  // namespace palu::cuda
