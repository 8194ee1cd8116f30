// palu model: numeric kernels (BLAS wrappers, norms, activations, softmax).
#include "ops.h"

#include <cblas.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

// Element-wise kernels are compiled for AVX-512, AVX2 and the baseline; the loader picks the best
// the CPU supports (GCC function multiversioning), so a portable build still runs wide vectors.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PALU_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PALU_SIMD_CLONES
#endif

namespace palu::model::ops {

void gemm_nt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, float beta) {
    if (m == 1) {
        // One row (decode): c = B·a as a matrix-vector product; OpenBLAS's sgemm path would pack
        // the whole weight matrix for a single row.
        cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), 1.0f, b,
                    static_cast<int>(ldb), a, 1, beta, c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
                c, static_cast<int>(ldc));
}

void gemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
                c, static_cast<int>(ldc));
}

void gemm_tn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, float beta) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
                c, static_cast<int>(ldc));
}

void rms_norm(const float* x, const float* w, float* y, int64_t n_rows, int64_t d, double eps) {
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * d;
        float* yr = y + r * d;
        double ss = 0.0;
        for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
        for (int64_t i = 0; i < d; ++i) yr[i] = w[i] * (xr[i] * inv);
    }
}

// exp(x) = 2^n * exp(r), n = round(x / ln2), r = x - n ln2 in [-ln2/2, ln2/2] (Cody-Waite split of
// ln2), exp(r) by its degree-6 Taylor polynomial (truncation error < 2e-8 relative). Rounding uses
// the 1.5·2^23 trick instead of nearbyint (a libm call that blocks vectorization). Written
// branch-free so GCC vectorizes it; inputs below -87 flush to 0 (softmax only feeds x <= 0).
PALU_SIMD_CLONES void exp_inplace(float* x, int64_t n) {
    constexpr float log2e = 1.44269504088896341f;
    constexpr float ln2_hi = 0.693359375f;
    constexpr float ln2_lo = -2.12194440e-4f;
    constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const float x0 = x[i];
        float v = x0 < -87.0f ? -87.0f : x0;
        v = v > 88.0f ? 88.0f : v;
        const float fn = (v * log2e + round_magic) - round_magic;
        float r = v - fn * ln2_hi;
        r = r - fn * ln2_lo;
        float p = 1.0f / 720.0f;
        p = p * r + 1.0f / 120.0f;
        p = p * r + 1.0f / 24.0f;
        p = p * r + 1.0f / 6.0f;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        const float scale = std::bit_cast<float>((static_cast<int32_t>(fn) + 127) << 23);
        x[i] = x0 < -87.0f ? 0.0f : p * scale;
    }
}

PALU_SIMD_CLONES void causal_softmax(float* s, int64_t n_rows, int64_t ld, int64_t first_valid,
                                     float scale) {
    for (int64_t r = 0; r < n_rows; ++r) {
        float* row = s + r * ld;
        const int64_t n_valid = first_valid + r;
        float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < n_valid; ++j) mx = row[j] > mx ? row[j] : mx;
#pragma omp simd
        for (int64_t j = 0; j < n_valid; ++j) row[j] = (row[j] - mx) * scale;
        exp_inplace(row, n_valid);
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < n_valid; ++j) sum += row[j];
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int64_t j = 0; j < n_valid; ++j) row[j] *= inv;
        for (int64_t j = n_valid; j < ld; ++j) row[j] = 0.0f;
    }
}

PALU_SIMD_CLONES void swiglu(const float* gate, const float* up, float* out, int64_t n) {
    constexpr int64_t chunk = 4096;
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        const int64_t c1 = c0 + chunk < n ? c0 + chunk : n;
        float e[chunk];
        for (int64_t i = c0; i < c1; ++i) e[i - c0] = -gate[i];
        exp_inplace(e, c1 - c0);
        for (int64_t i = c0; i < c1; ++i) out[i] = gate[i] / (1.0f + e[i - c0]) * up[i];
    }
}

void add_bias(float* y, const float* b, int64_t n_rows, int64_t d, int64_t ld) {
    for (int64_t r = 0; r < n_rows; ++r)
        for (int64_t i = 0; i < d; ++i) y[r * ld + i] += b[i];
}

}  // namespace palu::model::ops
