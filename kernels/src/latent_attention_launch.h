// palu kernels (private): POD launch arguments shared by the host API (latent_attention.cpp, which
// validates and throws) and the CUDA translation unit (latent_attention.cu, which never throws and
// reports errors as a code plus message).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace palu::cuda::detail {

constexpr int kThreads = 256;  // 8 warps per block
constexpr int kMaxHeadsPerBlock = 16;

struct KernelArgs {
    int32_t batch, n_heads, n_kv_heads, group_size, d_head, capacity, n_groups, n_rep;
    int32_t dtype;  // LatentDType
    int32_t r_k, r_v, bits_k, bits_v;
    int32_t kv_per_block;   // s' KV heads per block
    int32_t n_stages;       // cp.async ring depth (2 or 3)
    int32_t tile_tokens;    // tokens per shared-memory tile: 64 or 128
    int32_t n_head_blocks;  // group_size / s'
    int32_t n_splits, tokens_per_split;
    int32_t kernel;    // 1: block kernel (split_kernel), 2: warp kernel (warp_kernel)
    float scale_log2;  // softmax_scale · log2(e)
    const void* q;
    const int32_t* seq_lens;
    const int32_t* k_pos0;
    const int32_t* q_pos;
    const float* inv_freq;
    const uint8_t* k_data;
    const uint16_t* k_scales;
    const uint16_t* k_zeros;
    const uint8_t* v_data;
    const uint16_t* v_scales;
    const uint16_t* v_zeros;
    const void* k_up;
    const void* v_up;
    float* out_latent;
    void* out;
    float* ws_ml;  // [n_splits, batch, n_heads, 2]   (one partial per split, both kernels)
    float* ws_o;   // [n_splits, batch, n_heads, r_v]
    size_t smem_bytes;
};

/// Dynamic shared memory of the split kernel for these arguments (bytes).
size_t split_kernel_smem_bytes(int d_head, int r_k, int r_v, int bits_k, int bits_v,
                               int kv_per_block, int n_rep, int n_stages, int tile_tokens);

/// Launches the split kernel and the reduction. Returns cudaSuccess or the first CUDA error;
/// `what` names the failing step.
cudaError_t launch_latent_attention(const KernelArgs& a, cudaStream_t stream, const char** what);

/// Resident split-kernel blocks per SM for this configuration (sets the smem attribute).
cudaError_t split_kernel_occupancy(int d_head, int dtype, int tile_tokens, size_t smem,
                                   int* blocks);

/// Warp kernel (latent_attention_warp.cu): warps per block, tokens per warp chunk, and its limits.
constexpr int kWarpKernelWarps = 8;
constexpr int kWarpChunk = 16;
constexpr int kWarpMaxRep = 8;
constexpr int kWarpMaxRankV = 256;  // r_v ≤ 128: 2-stage ring; ≤ 256: 1 stage

/// Warp kernel: dynamic shared memory per block with a `stages`-deep (1 or 2) per-warp ring.
size_t warp_kernel_smem_bytes(int d_head, int r_k, int r_v, int bits_k, int bits_v, int n_rep,
                              int stages);

/// Launches the warp kernel and the reduction (same contract as launch_latent_attention).
cudaError_t launch_latent_attention_warp(const KernelArgs& a, cudaStream_t stream,
                                         const char** what);

/// Resident warp-kernel blocks per SM.
cudaError_t warp_kernel_occupancy(int d_head, int dtype, bool quant, int n_rep, int r_k, int r_v,
                                  int stages, size_t smem, int* blocks);

/// Launches only the reduction (shared by both split kernels).
cudaError_t launch_reduce(const KernelArgs& a, cudaStream_t stream, const char** what);

/// Maximum dynamic shared memory per block on the current device (opt-in limit).
cudaError_t device_smem_optin(int* bytes, int* n_sm);

}  // namespace palu::cuda::detail
