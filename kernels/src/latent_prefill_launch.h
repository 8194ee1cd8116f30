// palu kernels (private): POD arguments of the element-wise prefill steps, shared by the host code
// (latent_prefill.cpp: validation, workspace, cuBLAS) and latent_prefill.cu (never throws).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace palu::cuda::detail {

enum class PrefillStep { DequantK, DequantV, RopeK, RopeQ, Softmax, TransposeOut };

struct PrefillArgs {
    int32_t batch, n_heads, n_kv_heads, n_groups, d_head, capacity, n_tokens, pos0;
    int32_t r_k, r_v, bits_k, bits_v;
    bool bf16;
    const uint8_t* k_data;
    const uint16_t* k_scales;
    const uint16_t* k_zeros;
    const uint8_t* v_data;
    const uint16_t* v_scales;
    const uint16_t* v_zeros;
    const void* q;  // [batch, T, H, D]
    const float* inv_freq;
    void* hk;         // [batch, n_groups, T, r_k] dequantized key latents
    void* hv;         // [batch, n_groups, T, r_v]
    void* keys;       // [batch, n_kv, T, D]
    void* qr;         // [batch, H, T, D] rotated queries
    float* scores;    // [batch, H, T, T]
    void* probs;      // [batch, H, T, T]
    void* heads_out;  // [batch, H, T, D]
    void* out;        // [batch, T, H, D]
};

/// Launches one element-wise step on `stream`; returns the launch's CUDA error.
cudaError_t launch_prefill_step(PrefillStep step, const PrefillArgs& a, cudaStream_t stream);

}  // namespace palu::cuda::detail
