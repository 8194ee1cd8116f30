// palu linalg: Cholesky with explicit damping and the reference's eigen-shift fallback (§3.3).
//
// A row-major lower-triangular factor is, byte for byte, a column-major upper-triangular one:
// calling column-major dpotrf with uplo='U' on the row-major buffer yields S with G = S·Sᵀ without
// any transposition copy (G is symmetric, so its buffer reads the same in both layouts).
#include "palu/linalg/cholesky.h"

#include <cmath>

#include "lapack_util.h"
#include "palu/core/log.h"
#include "palu/linalg/decompositions.h"

namespace palu::linalg {

namespace {

/// Factors `a` in place; returns potrf's info (0 = success, k > 0 = leading minor k not PD).
lapack_int potrf_lower_rowmajor(RowMatrixXd& a, const std::string& name) {
    const lapack_int n = detail::to_lapack_int(a.rows(), name);
    const lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', n, a.data(), n);
    PALU_ASSERT(info >= 0, "dpotrf argument error %d", static_cast<int>(info));
    if (info == 0) a.triangularView<Eigen::StrictlyUpper>().setZero();
    return info;
}

}  // namespace

CholeskyResult cholesky(const RowMatrixXd& gram, const CholeskyOptions& opts,
                        const std::string& name) {
    detail::check_square(gram, name);
    detail::check_finite(gram, name);
    PALU_CHECK(opts.damp >= 0.0 && std::isfinite(opts.damp), UsageError,
               "linalg: %s damping: expected a finite value >= 0, got %g", name.c_str(), opts.damp);
    const int64_t n = gram.rows();

    CholeskyResult res;
    RowMatrixXd a = gram;
    // Symmetrize from the lower triangle so that the fallback's eigen-solver and potrf see the
    // same matrix whatever the upper triangle holds.
    a.triangularView<Eigen::StrictlyUpper>() = a.transpose().triangularView<Eigen::StrictlyUpper>();
    if (opts.damp > 0.0) a.diagonal().array() += opts.damp;
    res.shift = opts.damp;

    RowMatrixXd f = a;
    res.potrf_info = potrf_lower_rowmajor(f, name);
    if (res.potrf_info == 0) {
        res.factor = std::move(f);
        return res;
    }
    PALU_CHECK(opts.eig_fallback, NumericalError,
               "linalg: %s [%lldx%lld] not positive definite: potrf info=%lld (leading minor "
               "%lld); hint: enable the eigenvalue-shift fallback or raise the damping (now %g), "
               "or calibrate on more tokens",
               name.c_str(), static_cast<long long>(n), static_cast<long long>(n),
               static_cast<long long>(res.potrf_info), static_cast<long long>(res.potrf_info),
               opts.damp);

    // Reference §3.3: G ← G + (−λ_min + ε)·I with an absolute ε, then factor again.
    res.lambda_min = symmetric_min_eigenvalue(a, name);
    const double extra = -res.lambda_min + opts.fallback_eps;
    a.diagonal().array() += extra;
    res.shift += extra;
    res.fallback = true;
    const lapack_int info2 = potrf_lower_rowmajor(a, name);
    PALU_CHECK(info2 == 0, NumericalError,
               "linalg: %s [%lldx%lld] not positive definite even after the eigenvalue shift "
               "%g (lambda_min=%g): potrf info=%lld; hint: raise the fallback epsilon (now %g)",
               name.c_str(), static_cast<long long>(n), static_cast<long long>(n), extra,
               res.lambda_min, static_cast<long long>(info2), opts.fallback_eps);
    PALU_LOG_DEBUG("linalg", "%s: Cholesky fallback, lambda_min=%g, shift=%g", name.c_str(),
                   res.lambda_min, res.shift);
    res.factor = std::move(a);
    return res;
}

}  // namespace palu::linalg
