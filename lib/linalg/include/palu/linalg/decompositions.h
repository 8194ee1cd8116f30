// palu linalg: symmetric eigendecomposition and thin SVD through LAPACK (f64), every `info`
// checked. Used by the whitening fallback (λ_min) and the per-group SVDs of Palu (reference §3.4).
#pragma once

#include <string>

#include "palu/linalg/matrix.h"

namespace palu::linalg {

/// A = V·diag(values)·Vᵀ for symmetric A.
struct SymmetricEigen {
    Eigen::VectorXd values;  ///< [n] ascending
    RowMatrixXd vectors;     ///< [n, n] column j is the unit eigenvector of values[j]
};

/// Eigen-decomposition of a symmetric matrix (dsyevd; lower triangle read).
/// Throws ShapeError if A is not square/empty, NumericalError on non-finite input or info != 0.
SymmetricEigen symmetric_eigen(const RowMatrixXd& a, const std::string& name);

/// Smallest eigenvalue of a symmetric matrix (dsyevd without vectors). Same errors.
double symmetric_min_eigenvalue(const RowMatrixXd& a, const std::string& name);

/// Thin SVD A = U·diag(s)·VT, k = min(m, n).
struct ThinSvd {
    RowMatrixXd u;      ///< [m, k] orthonormal columns
    Eigen::VectorXd s;  ///< [k] descending, ≥ 0
    RowMatrixXd vt;     ///< [k, n] orthonormal rows
};

/// Thin SVD of A [m, n] (dgesdd; falls back to dgesvd if the divide-and-conquer iteration does
/// not converge). Throws ShapeError on an empty matrix, NumericalError on non-finite input or
/// when both LAPACK drivers fail.
ThinSvd thin_svd(const RowMatrixXd& a, const std::string& name);

}  // namespace palu::linalg
