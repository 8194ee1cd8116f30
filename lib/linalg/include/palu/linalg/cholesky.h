// palu linalg: Cholesky factor of a (calibration) Gram matrix with explicit damping and the
// reference's opt-in eigenvalue-shift fallback (Palu / SVD-LLM whitening, reference §3.3).
//
// Input  G [n, n] row-major f64, symmetric (only the lower triangle is read).
// Output S [n, n] row-major f64, lower triangular, G + shift·I = S·Sᵀ.
#pragma once

#include <cstdint>
#include <string>

#include "palu/linalg/matrix.h"

namespace palu::linalg {

/// How to factor a Gram matrix that may not be positive definite. Nothing is regularized
/// silently: `damp` is always added, the fallback only runs when `eig_fallback` is set.
struct CholeskyOptions {
    /// Absolute value added to the diagonal before the first attempt (0 = exact factor).
    double damp = 0.0;
    /// When potrf fails: G ← G + (−λ_min(G) + fallback_eps)·I and factor again (reference §3.3).
    bool eig_fallback = false;
    /// ε of the fallback shift; the reference (Palu) uses 1e−3, SVD-LLM 1e−6.
    double fallback_eps = 1e-3;
};

/// Factor plus what happened on the way (written to reports and checkpoint metadata).
struct CholeskyResult {
    RowMatrixXd factor;       ///< [n, n] lower triangular, G + shift·I = factor·factorᵀ
    bool fallback = false;    ///< true when the eigenvalue-shift fallback ran
    double shift = 0.0;       ///< total value added to the diagonal (damp + fallback shift)
    double lambda_min = 0.0;  ///< smallest eigenvalue of G + damp·I, only set when fallback ran
    int64_t potrf_info = 0;   ///< info of the first potrf attempt (0 = success, k = minor k)
};

/// Cholesky factor G + damp·I = S·Sᵀ (LAPACK dpotrf), with the optional eigen-shift fallback.
/// `name` identifies the matrix in error messages, e.g. "layer 3 (k/v input) Gram".
/// Throws ShapeError if G is not square or empty; NumericalError if G has a non-finite entry,
/// or it is not positive definite and the fallback is disabled (or fails as well).
CholeskyResult cholesky(const RowMatrixXd& gram, const CholeskyOptions& opts,
                        const std::string& name);

}  // namespace palu::linalg
