// palu kernels: the element-wise steps of the prefill attention (latent_prefill.h): dequantization
// of packed latents, RoPE of the rebuilt keys and of the queries, the causal softmax, and the
// output transpose. The GEMMs run through cuBLAS (latent_prefill.cpp). No exceptions: every
// launcher returns the CUDA error of its launch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "latent_attention_device.cuh"
#include "latent_prefill_launch.h"

namespace palu::cuda::detail {
namespace {

// out[bg, t, c] = (code − zero)·scale of cached row (bg, t), for t < n_tokens.
template <typename T>
__global__ void dequant_kernel(const uint8_t* __restrict__ data,
                               const uint16_t* __restrict__ scales,
                               const uint16_t* __restrict__ zeros, int64_t n_bg, int capacity,
                               int n_tokens, int rank, int bits, T* __restrict__ out) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t total = n_bg * n_tokens * rank;
    if (i >= total) return;
    const int c = int(i % rank);
    const int64_t row_out = i / rank;
    const int64_t bg = row_out / n_tokens, t = row_out % n_tokens;
    const int64_t row = bg * capacity + t;
    const int rb = rank * bits / 8;
    const uint8_t* p = data + row * rb;
    const int bit = bits * c, byte = bit >> 3;
    uint32_t word = p[byte];
    if (byte + 1 < rb) word |= uint32_t(p[byte + 1]) << 8;
    const uint32_t code = (word >> (bit & 7)) & ((1u << bits) - 1u);
    const float s = __half2float(__ushort_as_half(scales[row]));
    const float z = __half2float(__ushort_as_half(zeros[row]));
    out[i] = Ops<T>::from_f((float(code) - z) * s);
}

__device__ __forceinline__ void rope_pair(float& x0, float& x1, int pos, float inv_freq) {
    const float theta = float(pos) * inv_freq;  // float32 product, as Hugging Face computes it
    float s, c;
    sincosf(theta, &s, &c);
    const float y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
    x0 = y0;
    x1 = y1;
}

// x [n_rows, d_head], row r at position pos0 + r % n_tokens; rotated in place.
template <typename T>
__global__ void rope_rows_kernel(T* __restrict__ x, int64_t n_rows, int n_tokens, int d_head,
                                 int pos0, const float* __restrict__ inv_freq) {
    const int half = d_head / 2;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n_rows * half) return;
    const int64_t r = i / half;
    const int k = int(i % half);
    T* row = x + r * d_head;
    float x0 = Ops<T>::to_f(row[k]), x1 = Ops<T>::to_f(row[k + half]);
    rope_pair(x0, x1, pos0 + int(r % n_tokens), inv_freq[k]);
    row[k] = Ops<T>::from_f(x0);
    row[k + half] = Ops<T>::from_f(x1);
}

// q [batch, T, H, D] → qr [batch, H, T, D], rotated.
template <typename T>
__global__ void rope_q_kernel(const T* __restrict__ q, T* __restrict__ qr, int batch, int n_tokens,
                              int n_heads, int d_head, int pos0,
                              const float* __restrict__ inv_freq) {
    const int half = d_head / 2;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(batch) * n_tokens * n_heads * half) return;
    const int k = int(i % half);
    const int64_t bth = i / half;
    const int h = int(bth % n_heads);
    const int64_t bt = bth / n_heads;
    const int t = int(bt % n_tokens), b = int(bt / n_tokens);
    const T* src = q + bth * d_head;
    float x0 = Ops<T>::to_f(src[k]), x1 = Ops<T>::to_f(src[k + half]);
    rope_pair(x0, x1, pos0 + t, inv_freq[k]);
    T* dst = qr + ((int64_t(b) * n_heads + h) * n_tokens + t) * d_head;
    dst[k] = Ops<T>::from_f(x0);
    dst[k + half] = Ops<T>::from_f(x1);
}

// One warp per score row: row r is query t = r % T; keys 0 … t are kept (causal), the rest get 0.
template <typename T>
__global__ void causal_softmax_kernel(const float* __restrict__ s, T* __restrict__ p,
                                      int64_t n_rows, int n_tokens) {
    const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= n_rows) return;
    const int n_valid = int(r % n_tokens) + 1;
    const float* row = s + r * n_tokens;
    T* out = p + r * n_tokens;
    float mx = -INFINITY;
    for (int c = lane; c < n_valid; c += 32) mx = fmaxf(mx, row[c]);
    for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.0f;
    for (int c = lane; c < n_valid; c += 32) sum += expf(row[c] - mx);
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float inv = 1.0f / sum;
    for (int c = lane; c < n_tokens; c += 32)
        out[c] = Ops<T>::from_f(c < n_valid ? expf(row[c] - mx) * inv : 0.0f);
}

// o [batch, H, T, D] → out [batch, T, H, D].
template <typename T>
__global__ void transpose_out_kernel(const T* __restrict__ o, T* __restrict__ out, int batch,
                                     int n_heads, int n_tokens, int d_head) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(batch) * n_heads * n_tokens * d_head) return;
    const int d = int(i % d_head);
    const int64_t bht = i / d_head;
    const int t = int(bht % n_tokens);
    const int64_t bh = bht / n_tokens;
    const int h = int(bh % n_heads), b = int(bh / n_heads);
    out[((int64_t(b) * n_tokens + t) * n_heads + h) * d_head + d] = o[i];
}

constexpr int kBlock = 256;
unsigned grid_for(int64_t n) {
    return unsigned((n + kBlock - 1) / kBlock);
}

template <typename T>
cudaError_t launch_all(const PrefillStep& st, const PrefillArgs& a, cudaStream_t stream) {
    switch (st) {
        case PrefillStep::DequantK:
        case PrefillStep::DequantV: {
            const bool k = st == PrefillStep::DequantK;
            const int rank = k ? a.r_k : a.r_v;
            const int64_t n = int64_t(a.batch) * a.n_groups * a.n_tokens * rank;
            dequant_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(
                k ? a.k_data : a.v_data, k ? a.k_scales : a.v_scales, k ? a.k_zeros : a.v_zeros,
                int64_t(a.batch) * a.n_groups, a.capacity, a.n_tokens, rank,
                k ? a.bits_k : a.bits_v, static_cast<T*>(k ? a.hk : a.hv));
            break;
        }
        case PrefillStep::RopeK: {
            const int64_t rows = int64_t(a.batch) * a.n_kv_heads * a.n_tokens;
            rope_rows_kernel<T><<<grid_for(rows * a.d_head / 2), kBlock, 0, stream>>>(
                static_cast<T*>(a.keys), rows, a.n_tokens, a.d_head, a.pos0, a.inv_freq);
            break;
        }
        case PrefillStep::RopeQ: {
            const int64_t n = int64_t(a.batch) * a.n_tokens * a.n_heads * a.d_head / 2;
            rope_q_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(
                static_cast<const T*>(a.q), static_cast<T*>(a.qr), a.batch, a.n_tokens, a.n_heads,
                a.d_head, a.pos0, a.inv_freq);
            break;
        }
        case PrefillStep::Softmax: {
            const int64_t rows = int64_t(a.batch) * a.n_heads * a.n_tokens;
            const int warps = kBlock / 32;
            causal_softmax_kernel<T><<<unsigned((rows + warps - 1) / warps), kBlock, 0, stream>>>(
                a.scores, static_cast<T*>(a.probs), rows, a.n_tokens);
            break;
        }
        case PrefillStep::TransposeOut: {
            const int64_t n = int64_t(a.batch) * a.n_heads * a.n_tokens * a.d_head;
            transpose_out_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(
                static_cast<const T*>(a.heads_out), static_cast<T*>(a.out), a.batch, a.n_heads,
                a.n_tokens, a.d_head);
            break;
        }
    }
    return cudaGetLastError();
}

}  // namespace

cudaError_t launch_prefill_step(PrefillStep step, const PrefillArgs& a, cudaStream_t stream) {
    return a.bf16 ? launch_all<__nv_bfloat16>(step, a, stream)
                  : launch_all<__half>(step, a, stream);
}

}  // namespace palu::cuda::detail
