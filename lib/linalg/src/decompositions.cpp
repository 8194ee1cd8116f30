// palu linalg: symmetric eigendecomposition (dsyevd) and thin SVD (dgesdd, dgesvd fallback).
//
// Row-major buffers are handed to column-major LAPACK as the transposed matrix, which avoids the
// transposition copies LAPACKE's row-major wrappers make: a symmetric matrix reads the same, and
// the SVD of Aᵀ = V·Σ·Uᵀ returns, in column-major, exactly the row-major buffers of VT and U.
#include "palu/linalg/decompositions.h"

#include <vector>

#include "lapack_util.h"

namespace palu::linalg {

namespace {

RowMatrixXd symmetrized(const RowMatrixXd& a) {
    RowMatrixXd s = a;
    s.triangularView<Eigen::StrictlyUpper>() = s.transpose().triangularView<Eigen::StrictlyUpper>();
    return s;
}

}  // namespace

SymmetricEigen symmetric_eigen(const RowMatrixXd& a, const std::string& name) {
    detail::check_square(a, name);
    detail::check_finite(a, name);
    const lapack_int n = detail::to_lapack_int(a.rows(), name);
    RowMatrixXd buf = symmetrized(a);
    SymmetricEigen res;
    res.values.resize(n);
    const lapack_int info =
        LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', n, buf.data(), n, res.values.data());
    PALU_ASSERT(info >= 0, "dsyevd argument error %d", static_cast<int>(info));
    PALU_CHECK(info == 0, NumericalError,
               "linalg: %s %s eigendecomposition did not converge: dsyevd info=%d", name.c_str(),
               detail::dims_str(a).c_str(), static_cast<int>(info));
    // Column-major eigenvector matrix (columns = vectors) into our row-major type.
    res.vectors = Eigen::Map<const Eigen::MatrixXd>(buf.data(), n, n);
    return res;
}

double symmetric_min_eigenvalue(const RowMatrixXd& a, const std::string& name) {
    detail::check_square(a, name);
    detail::check_finite(a, name);
    const lapack_int n = detail::to_lapack_int(a.rows(), name);
    RowMatrixXd buf = symmetrized(a);
    Eigen::VectorXd w(n);
    const lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'U', n, buf.data(), n, w.data());
    PALU_ASSERT(info >= 0, "dsyevd argument error %d", static_cast<int>(info));
    PALU_CHECK(info == 0, NumericalError,
               "linalg: %s %s eigenvalues did not converge: dsyevd info=%d", name.c_str(),
               detail::dims_str(a).c_str(), static_cast<int>(info));
    return w(0);
}

ThinSvd thin_svd(const RowMatrixXd& a, const std::string& name) {
    PALU_CHECK(a.rows() > 0 && a.cols() > 0, ShapeError,
               "linalg: %s has wrong shape: expected a non-empty matrix, got %s", name.c_str(),
               detail::dims_str(a).c_str());
    detail::check_finite(a, name);
    const lapack_int m = detail::to_lapack_int(a.rows(), name);
    const lapack_int n = detail::to_lapack_int(a.cols(), name);
    const lapack_int k = std::min(m, n);

    // Column-major view of the row-major A is Aᵀ [n, m]; its SVD is V·Σ·Uᵀ.
    ThinSvd res;
    res.s.resize(k);
    res.vt.resize(k, n);  // column-major "U" of Aᵀ: [n, k], ld n
    res.u.resize(m, k);   // column-major "VT" of Aᵀ: [k, m], ld k
    RowMatrixXd buf = a;
    lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', n, m, buf.data(), n, res.s.data(),
                                     res.vt.data(), n, res.u.data(), k);
    PALU_ASSERT(info >= 0, "dgesdd argument error %d", static_cast<int>(info));
    if (info > 0) {
        // Divide and conquer did not converge; the QR-iteration driver is slower but more robust.
        buf = a;
        std::vector<double> superb(static_cast<size_t>(std::max<lapack_int>(k - 1, 1)));
        info = LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'S', 'S', n, m, buf.data(), n, res.s.data(),
                              res.vt.data(), n, res.u.data(), k, superb.data());
        PALU_ASSERT(info >= 0, "dgesvd argument error %d", static_cast<int>(info));
        PALU_CHECK(info == 0, NumericalError,
                   "linalg: %s %s SVD did not converge: dgesdd and dgesvd info=%d", name.c_str(),
                   detail::dims_str(a).c_str(), static_cast<int>(info));
    }
    return res;
}

}  // namespace palu::linalg
