// palu linalg: triangular solves / products / inverse, dense products and least squares
// (BLAS trsm, trmm, gemm; LAPACK trtri, gels).
// The whitening un-whitening step R = √Σ·Vᵀ·S⁻¹ uses solve_lower_right instead of forming S⁻¹.
#pragma once

#include <string>

#include "palu/linalg/matrix.h"

namespace palu::linalg {

/// X·L = B for lower-triangular L [n, n], B [m, n]; returns X [m, n].
/// Throws ShapeError on mismatched sizes, NumericalError when L has a zero or non-finite diagonal.
RowMatrixXd solve_lower_right(const RowMatrixXd& lower, const RowMatrixXd& b,
                              const std::string& name);

/// L·X = B for lower-triangular L [n, n], B [n, m]; returns X [n, m]. Errors as above.
RowMatrixXd solve_lower_left(const RowMatrixXd& lower, const RowMatrixXd& b,
                             const std::string& name);

/// L⁻¹ of a lower-triangular L [n, n] (dtrtri). NumericalError when L is singular.
RowMatrixXd invert_lower(const RowMatrixXd& lower, const std::string& name);

/// B·L for lower-triangular L [n, n] and B [m, n] (BLAS dtrmm); only L's lower triangle is read.
/// Throws ShapeError on mismatched sizes.
RowMatrixXd multiply_lower_right(const RowMatrixXd& b, const RowMatrixXd& lower,
                                 const std::string& name);

/// A·B through BLAS dgemm (Eigen's own product is not built with AVX here). ShapeError on
/// mismatched inner dimensions.
RowMatrixXd matmul(const RowMatrixXd& a, const RowMatrixXd& b, const std::string& name);

/// argmin_X ‖A·X − B‖_F for A [m, n] with m ≥ n and full column rank, B [m, k] (dgels, QR).
/// Throws ShapeError on mismatched sizes or m < n, NumericalError when A is rank deficient.
RowMatrixXd least_squares(const RowMatrixXd& a, const RowMatrixXd& b, const std::string& name);

}  // namespace palu::linalg
