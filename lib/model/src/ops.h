// palu model (private): the numeric kernels of the engine: BLAS wrappers, RMSNorm, SiLU, softmax.
#pragma once

#include <cstdint>

namespace palu::model::ops {

/// C[m, n] (ld ldc) = beta * C + A[m, k] (ld lda) · B[n, k]ᵀ (ld ldb): the nn.Linear product
/// x · Wᵀ with W [n_out, n_in] row-major.
void gemm_nt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, float beta = 0.0f);
/// C[m, n] = beta * C + A[m, k] · B[k, n] (all row-major with the given leading dimensions).
void gemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, float beta = 0.0f);
/// C[m, n] = beta * C + A[k, m]ᵀ · B[k, n].
void gemm_tn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, float beta = 0.0f);

/// y[r, :] = x[r, :] * w / sqrt(mean(x[r, :]²) + eps), rows of width d (x may equal y).
/// The sum of squares is accumulated in double (as HF's float32 path is exact enough at d <= 8192,
/// but the golden references are float64).
void rms_norm(const float* x, const float* w, float* y, int64_t n_rows, int64_t d, double eps);
/// x[i] = exp(x[i]) for n values (vectorizable, max relative error ~2e-7).
void exp_inplace(float* x, int64_t n);
/// In place: row r of s [n_rows, ld] becomes softmax(scale * s[r, 0:n_valid(r)]) and 0 after it,
/// where n_valid(r) = first_valid + r (causal mask).
void causal_softmax(float* s, int64_t n_rows, int64_t ld, int64_t first_valid, float scale);
/// out[i] = silu(gate[i]) * up[i].
void swiglu(const float* gate, const float* up, float* out, int64_t n);
/// y[r, :] += b for rows of width d.
void add_bias(float* y, const float* b, int64_t n_rows, int64_t d, int64_t ld);

}  // namespace palu::model::ops
