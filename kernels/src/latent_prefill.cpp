// palu kernels: host side of the prefill attention (latent_prefill.h): validation, workspace
// layout, the cuBLAS GEMMs (key/value reconstruction, Q·Kᵀ, P·V), and the element-wise steps of
// latent_prefill.cu. Row-major [m, n] matrices are column-major [n, m] to cuBLAS; each call below
// states the row-major product it computes.
#include "palu/kernels/latent_prefill.h"

#include <cmath>
#include <vector>

#include "latent_prefill_launch.h"
#include "palu/core/error.h"

namespace palu::cuda {
namespace {

constexpr const char* kStage = "kernels: prefill";

size_t align256(size_t n) {
    return (n + 255) / 256 * 256;
}

struct Layout {  // byte offsets into the workspace
    size_t hk = 0, hv = 0, keys = 0, values = 0, qr = 0, scores = 0, probs = 0, heads_out = 0,
           total = 0;
};

Layout layout_of(const LatentPrefillParams& p) {
    const size_t e = 2;  // f16 / bf16
    const size_t b = size_t(p.batch), T = size_t(p.n_tokens), D = size_t(p.d_head),
                 H = size_t(p.n_heads);
    const size_t ng = size_t(p.n_kv_heads / p.group_size), nkv = size_t(p.n_kv_heads);
    Layout l;
    size_t off = 0;
    auto take = [&](size_t bytes) {
        const size_t at = off;
        off += align256(bytes);
        return at;
    };
    l.hk = take(p.k.bits == 16 ? 0 : b * ng * T * size_t(p.k.rank) * e);
    l.hv = take(p.v.bits == 16 ? 0 : b * ng * T * size_t(p.v.rank) * e);
    l.keys = take(b * nkv * T * D * e);
    l.values = take(b * nkv * T * D * e);
    l.qr = take(b * H * T * D * e);
    l.scores = take(b * H * T * T * sizeof(float));
    l.probs = take(b * H * T * T * e);
    l.heads_out = take(b * H * T * D * e);
    l.total = off;
    return l;
}

void validate(const LatentPrefillParams& p) {
    PALU_CHECK(p.batch >= 1, ShapeError, "%s: batch: expected >= 1, got %d", kStage, p.batch);
    PALU_CHECK(p.d_head >= 2 && p.d_head % 2 == 0, ShapeError,
               "%s: d_head: expected a positive even number, got %d", kStage, p.d_head);
    PALU_CHECK(p.n_kv_heads >= 1 && p.n_heads % p.n_kv_heads == 0, ShapeError,
               "%s: heads: expected n_heads a multiple of n_kv_heads, got n_heads=%d n_kv_heads=%d",
               kStage, p.n_heads, p.n_kv_heads);
    PALU_CHECK(p.group_size >= 1 && p.n_kv_heads % p.group_size == 0, ShapeError,
               "%s: group_size: expected a divisor of n_kv_heads=%d, got %d", kStage, p.n_kv_heads,
               p.group_size);
    PALU_CHECK(p.n_tokens >= 1 && p.n_tokens <= p.capacity, ShapeError,
               "%s: n_tokens: expected 1 .. capacity=%d, got %d", kStage, p.capacity, p.n_tokens);
    PALU_CHECK(p.dtype == LatentDType::F16 || p.dtype == LatentDType::BF16, UsageError,
               "%s: dtype: expected F16 or BF16, got %d", kStage, static_cast<int>(p.dtype));
    for (const LatentCacheView* c : {&p.k, &p.v}) {
        const char* name = c == &p.k ? "key" : "value";
        PALU_CHECK(c->rank > 0 && c->rank % 8 == 0, ShapeError,
                   "%s: %s latent rank: expected a positive multiple of 8, got %d", kStage, name,
                   c->rank);
        PALU_CHECK(c->bits == 16 || c->bits == 4 || c->bits == 3 || c->bits == 2, UsageError,
                   "%s: %s latent bits: expected 16, 4, 3 or 2, got %d", kStage, name, c->bits);
        PALU_CHECK(
            c->data != nullptr && (c->bits == 16 || (c->scales != nullptr && c->zeros != nullptr)),
            UsageError,
            "%s: %s latents: expected device pointers (data, and scales/zeros when quantized), got "
            "null",
            kStage, name);
    }
    PALU_CHECK(p.q && p.inv_freq && p.k_up && p.v_up && p.out, UsageError,
               "%s: q, inv_freq, k_up, v_up and out: expected device pointers, got null", kStage);
}

void check_cuda(cudaError_t e, const char* what) {
    PALU_CHECK(e == cudaSuccess, CudaError, "%s: %s failed: %s (%s)", kStage, what,
               cudaGetErrorName(e), cudaGetErrorString(e));
}

void check_cublas(cublasStatus_t s, const char* what) {
    PALU_CHECK(s == CUBLAS_STATUS_SUCCESS, CudaError, "%s: cuBLAS %s failed: %s (%s)", kStage, what,
               cublasGetStatusName(s), cublasGetStatusString(s));
}

}  // namespace

size_t latent_prefill_workspace_bytes(const LatentPrefillParams& p) {
    validate(p);
    return layout_of(p).total;
}

void latent_attention_prefill(const LatentPrefillParams& p, cublasHandle_t cublas,
                              cudaStream_t stream) {
    validate(p);
    const Layout l = layout_of(p);
    PALU_CHECK(
        p.workspace != nullptr && p.workspace_bytes >= l.total, UsageError,
        "%s: workspace: expected >= %zu bytes, got %zu; hint: latent_prefill_workspace_bytes()",
        kStage, l.total, p.workspace_bytes);
    check_cublas(cublasSetStream(cublas, stream), "set stream");
    char* ws = static_cast<char*>(p.workspace);
    const int32_t ng = p.n_kv_heads / p.group_size, s = p.group_size, D = p.d_head, T = p.n_tokens;
    const int32_t n_rep = p.n_heads / p.n_kv_heads;
    const cudaDataType_t dt = p.dtype == LatentDType::F16 ? CUDA_R_16F : CUDA_R_16BF;
    const int64_t e = 2;

    detail::PrefillArgs a{};
    a.batch = p.batch;
    a.n_heads = p.n_heads;
    a.n_kv_heads = p.n_kv_heads;
    a.n_groups = ng;
    a.d_head = D;
    a.capacity = p.capacity;
    a.n_tokens = T;
    a.pos0 = p.pos0;
    a.r_k = p.k.rank;
    a.r_v = p.v.rank;
    a.bits_k = p.k.bits;
    a.bits_v = p.v.bits;
    a.bf16 = p.dtype == LatentDType::BF16;
    a.k_data = static_cast<const uint8_t*>(p.k.data);
    a.k_scales = static_cast<const uint16_t*>(p.k.scales);
    a.k_zeros = static_cast<const uint16_t*>(p.k.zeros);
    a.v_data = static_cast<const uint8_t*>(p.v.data);
    a.v_scales = static_cast<const uint16_t*>(p.v.scales);
    a.v_zeros = static_cast<const uint16_t*>(p.v.zeros);
    a.q = p.q;
    a.inv_freq = p.inv_freq;
    a.hk = ws + l.hk;
    a.hv = ws + l.hv;
    a.keys = ws + l.keys;
    a.qr = ws + l.qr;
    a.scores = reinterpret_cast<float*>(ws + l.scores);
    a.probs = ws + l.probs;
    a.heads_out = ws + l.heads_out;
    a.out = p.out;
    auto step = [&](detail::PrefillStep st, const char* what) {
        check_cuda(detail::launch_prefill_step(st, a, stream), what);
    };

    // 1. Latents of tokens 0 … T−1: the cache itself (16-bit; rows of (b, g) `capacity` apart) or
    //    dequantized into the workspace (rows T apart).
    if (p.k.bits != 16) step(detail::PrefillStep::DequantK, "dequantize key latents");
    if (p.v.bits != 16) step(detail::PrefillStep::DequantV, "dequantize value latents");
    const float one = 1.0f, zero = 0.0f;
    for (int which = 0; which < 2; ++which) {
        const LatentCacheView& c = which == 0 ? p.k : p.v;
        const char* h =
            c.bits == 16 ? static_cast<const char*>(c.data) : ws + (which == 0 ? l.hk : l.hv);
        const int64_t bg_stride =
            int64_t(c.bits == 16 ? p.capacity : T) * c.rank;  // elements per (b, g)
        const char* up = static_cast<const char*>(which == 0 ? p.k_up : p.v_up);
        char* dst = ws + (which == 0 ? l.keys : l.values);
        // 2. Per sequence b and head i of a group, batched over groups g (KV head j = g·s + i):
        //    K_j [T, D] = H[b, g] [T, r] · B[g](i)ᵀ, B[g](i) = rows i·D … of U[g] [s·D, r].
        for (int32_t b = 0; b < p.batch; ++b)
            for (int32_t i = 0; i < s; ++i)
                check_cublas(
                    cublasGemmStridedBatchedEx(
                        cublas, CUBLAS_OP_T, CUBLAS_OP_N, D, T, c.rank, &one,
                        up + int64_t(i) * D * c.rank * e, dt, c.rank, int64_t(s) * D * c.rank,
                        h + int64_t(b) * ng * bg_stride * e, dt, c.rank, bg_stride, &zero,
                        dst + (int64_t(b) * p.n_kv_heads + i) * T * D * e, dt, D,
                        int64_t(s) * T * D, ng, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    which == 0 ? "key reconstruction" : "value reconstruction");
    }
    // 3. RoPE: keys in place, queries into [b, H, T, D].
    step(detail::PrefillStep::RopeK, "key RoPE");
    step(detail::PrefillStep::RopeQ, "query RoPE");
    // 4. Per (b, KV head j), the n_rep query heads of j stacked: S [n_rep·T, T] f32 = Q_j · K_jᵀ ·
    // scale.
    const float scale = p.softmax_scale > 0.0f ? p.softmax_scale : 1.0f / std::sqrt(float(D));
    const int32_t M = n_rep * T, batches = p.batch * p.n_kv_heads;
    check_cublas(
        cublasGemmStridedBatchedEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, T, M, D, &scale, ws + l.keys,
                                   dt, D, int64_t(T) * D, ws + l.qr, dt, D, int64_t(M) * D, &zero,
                                   ws + l.scores, CUDA_R_32F, T, int64_t(M) * T, batches,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "scores");
    // 5. P = causal softmax(S) in dtype; 6. O_j [n_rep·T, D] = P · V_j.
    step(detail::PrefillStep::Softmax, "causal softmax");
    check_cublas(cublasGemmStridedBatchedEx(
                     cublas, CUBLAS_OP_N, CUBLAS_OP_N, D, M, T, &one, ws + l.values, dt, D,
                     int64_t(T) * D, ws + l.probs, dt, T, int64_t(M) * T, &zero, ws + l.heads_out,
                     dt, D, int64_t(M) * D, batches, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "P·V");
    // 7. [b, H, T, D] → [b, T, H, D].
    step(detail::PrefillStep::TransposeOut, "output transpose");
}

}  // namespace palu::cuda
