// palu linalg: triangular solves (BLAS dtrsm), triangular inverse (dtrtri), least squares (dgels).
#include "palu/linalg/solve.h"

#include <cblas.h>

#include <cmath>

#include "lapack_util.h"

namespace palu::linalg {

namespace {

void check_triangular_diag(const RowMatrixXd& l, const std::string& name) {
    detail::check_square(l, name);
    for (int64_t i = 0; i < l.rows(); ++i) {
        const double d = l(i, i);
        PALU_CHECK(std::isfinite(d) && d != 0.0, NumericalError,
                   "linalg: %s %s is singular: diagonal entry %lld is %g; hint: the Gram matrix "
                   "is rank deficient, enable damping or the Cholesky fallback",
                   name.c_str(), detail::dims_str(l).c_str(), static_cast<long long>(i), d);
    }
}

}  // namespace

RowMatrixXd solve_lower_right(const RowMatrixXd& lower, const RowMatrixXd& b,
                              const std::string& name) {
    check_triangular_diag(lower, name);
    PALU_CHECK(b.cols() == lower.rows(), ShapeError,
               "linalg: %s right-hand side has wrong shape: expected [m,%lld], got %s",
               name.c_str(), static_cast<long long>(lower.rows()), detail::dims_str(b).c_str());
    RowMatrixXd x = b;
    if (x.rows() == 0) return x;
    const auto m = detail::to_lapack_int(x.rows(), name);
    const auto n = detail::to_lapack_int(x.cols(), name);
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, m, n, 1.0,
                lower.data(), n, x.data(), n);
    return x;
}

RowMatrixXd solve_lower_left(const RowMatrixXd& lower, const RowMatrixXd& b,
                             const std::string& name) {
    check_triangular_diag(lower, name);
    PALU_CHECK(b.rows() == lower.rows(), ShapeError,
               "linalg: %s right-hand side has wrong shape: expected [%lld,m], got %s",
               name.c_str(), static_cast<long long>(lower.rows()), detail::dims_str(b).c_str());
    RowMatrixXd x = b;
    if (x.cols() == 0) return x;
    const auto n = detail::to_lapack_int(x.rows(), name);
    const auto m = detail::to_lapack_int(x.cols(), name);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, m, 1.0,
                lower.data(), n, x.data(), m);
    return x;
}

RowMatrixXd multiply_lower_right(const RowMatrixXd& b, const RowMatrixXd& lower,
                                 const std::string& name) {
    detail::check_square(lower, name);
    PALU_CHECK(b.cols() == lower.rows(), ShapeError,
               "linalg: %s left operand has wrong shape: expected [m,%lld], got %s", name.c_str(),
               static_cast<long long>(lower.rows()), detail::dims_str(b).c_str());
    RowMatrixXd x = b;
    if (x.rows() == 0) return x;
    const auto m = detail::to_lapack_int(x.rows(), name);
    const auto n = detail::to_lapack_int(x.cols(), name);
    cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, m, n, 1.0,
                lower.data(), n, x.data(), n);
    return x;
}

RowMatrixXd matmul(const RowMatrixXd& a, const RowMatrixXd& b, const std::string& name) {
    PALU_CHECK(a.cols() == b.rows(), ShapeError,
               "linalg: %s product has mismatched shapes: %s x %s", name.c_str(),
               detail::dims_str(a).c_str(), detail::dims_str(b).c_str());
    RowMatrixXd c(a.rows(), b.cols());
    if (c.size() == 0) return c;
    if (a.cols() == 0) {
        c.setZero();
        return c;
    }
    const auto m = detail::to_lapack_int(a.rows(), name);
    const auto k = detail::to_lapack_int(a.cols(), name);
    const auto n = detail::to_lapack_int(b.cols(), name);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a.data(), k, b.data(), n,
                0.0, c.data(), n);
    return c;
}

RowMatrixXd invert_lower(const RowMatrixXd& lower, const std::string& name) {
    detail::check_square(lower, name);
    detail::check_finite(lower, name);
    RowMatrixXd inv = lower;
    inv.triangularView<Eigen::StrictlyUpper>().setZero();
    const auto n = detail::to_lapack_int(inv.rows(), name);
    // Row-major lower == column-major upper (see cholesky.cpp).
    const lapack_int info = LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', n, inv.data(), n);
    PALU_ASSERT(info >= 0, "dtrtri argument error %d", static_cast<int>(info));
    PALU_CHECK(info == 0, NumericalError,
               "linalg: %s %s is singular: dtrtri info=%d (zero diagonal entry %d)", name.c_str(),
               detail::dims_str(lower).c_str(), static_cast<int>(info), static_cast<int>(info - 1));
    return inv;
}

RowMatrixXd least_squares(const RowMatrixXd& a, const RowMatrixXd& b, const std::string& name) {
    PALU_CHECK(a.rows() >= a.cols() && a.cols() > 0, ShapeError,
               "linalg: %s least squares needs a tall matrix: expected [m,n] with m >= n > 0, "
               "got %s",
               name.c_str(), detail::dims_str(a).c_str());
    PALU_CHECK(b.rows() == a.rows(), ShapeError,
               "linalg: %s right-hand side has wrong shape: expected [%lld,k], got %s",
               name.c_str(), static_cast<long long>(a.rows()), detail::dims_str(b).c_str());
    detail::check_finite(a, name);
    detail::check_finite(b, name);
    RowMatrixXd abuf = a;
    RowMatrixXd bbuf = b;
    const auto m = detail::to_lapack_int(a.rows(), name);
    const auto n = detail::to_lapack_int(a.cols(), name);
    const auto k = detail::to_lapack_int(b.cols(), name);
    if (k == 0) return RowMatrixXd(a.cols(), 0);
    const lapack_int info =
        LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', m, n, k, abuf.data(), n, bbuf.data(), k);
    PALU_ASSERT(info >= 0, "dgels argument error %d", static_cast<int>(info));
    PALU_CHECK(info == 0, NumericalError,
               "linalg: %s %s is rank deficient: dgels info=%d (R diagonal entry %d is zero); "
               "hint: add damping or use fewer columns",
               name.c_str(), detail::dims_str(a).c_str(), static_cast<int>(info),
               static_cast<int>(info - 1));
    return bbuf.topRows(a.cols());
}

}  // namespace palu::linalg
