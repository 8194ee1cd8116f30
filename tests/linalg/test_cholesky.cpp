// palu linalg tests: Cholesky with damping / eigen-shift fallback, eigen, SVD, solves, lstsq.
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <string>

#include "palu/core/error.h"
#include "palu/linalg/cholesky.h"
#include "palu/linalg/decompositions.h"
#include "palu/linalg/solve.h"
#include "test_linalg_support.h"

using namespace palu;
using namespace palu::linalg;

namespace {

RowMatrixXd spd(int64_t n, uint64_t seed) {
    RowMatrixXd x = test::random_gaussian(3 * n, n, seed);
    return x.transpose() * x;
}

/// Gram of n_tokens < d tokens: positive semi-definite with rank n_tokens.
RowMatrixXd rank_deficient_gram(int64_t d, int64_t n_tokens, uint64_t seed) {
    RowMatrixXd x = test::random_gaussian(n_tokens, d, seed);
    return x.transpose() * x;
}

}  // namespace

TEST(LinalgCholesky, Factor_ReconstructsSpdMatrix) {
    RowMatrixXd g = spd(40, 1);
    CholeskyResult r = cholesky(g, {}, "test Gram");
    EXPECT_FALSE(r.fallback);
    EXPECT_EQ(r.potrf_info, 0);
    EXPECT_EQ(r.shift, 0.0);
    EXPECT_TRUE(r.factor.isLowerTriangular());
    EXPECT_LT((r.factor * r.factor.transpose() - g).norm() / g.norm(), 1e-14);
}

TEST(LinalgCholesky, ReadsOnlyLowerTriangle) {
    RowMatrixXd g = spd(10, 2);
    RowMatrixXd garbage = g;
    garbage.triangularView<Eigen::StrictlyUpper>().setConstant(1e6);
    EXPECT_EQ(cholesky(garbage, {}, "g").factor, cholesky(g, {}, "g").factor);
}

TEST(LinalgCholesky, RankDeficient_ThrowsNumericalErrorNamingMatrix) {
    RowMatrixXd g = rank_deficient_gram(32, 8, 3);
    try {
        cholesky(g, {}, "layer 3 (k/v input) Gram");
        FAIL() << "expected NumericalError";
    } catch (const NumericalError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("layer 3 (k/v input) Gram [32x32] not positive definite"),
                  std::string::npos)
            << msg;
        EXPECT_NE(msg.find("potrf info="), std::string::npos) << msg;
        EXPECT_NE(msg.find("hint:"), std::string::npos) << msg;
    }
}

TEST(LinalgCholesky, RankDeficient_FallbackShiftsByMinusLambdaMinPlusEps) {
    RowMatrixXd g = rank_deficient_gram(32, 8, 3);
    CholeskyOptions opts;
    opts.eig_fallback = true;
    opts.fallback_eps = 1e-3;
    CholeskyResult r = cholesky(g, opts, "g");
    EXPECT_TRUE(r.fallback);
    EXPECT_GT(r.potrf_info, 0);
    const double lmin = symmetric_min_eigenvalue(g, "g");
    EXPECT_DOUBLE_EQ(r.lambda_min, lmin);
    EXPECT_DOUBLE_EQ(r.shift, -lmin + 1e-3);
    RowMatrixXd shifted = g;
    shifted.diagonal().array() += r.shift;
    EXPECT_LT((r.factor * r.factor.transpose() - shifted).norm() / shifted.norm(), 1e-13);
}

TEST(LinalgCholesky, RankDeficient_DampingMakesItPd) {
    RowMatrixXd g = rank_deficient_gram(32, 8, 3);
    CholeskyOptions opts;
    opts.damp = 1e-2;
    CholeskyResult r = cholesky(g, opts, "g");
    EXPECT_FALSE(r.fallback);
    EXPECT_EQ(r.shift, 1e-2);
    RowMatrixXd damped = g + 1e-2 * RowMatrixXd::Identity(32, 32);
    EXPECT_LT((r.factor * r.factor.transpose() - damped).norm() / damped.norm(), 1e-13);
}

TEST(LinalgCholesky, NonFiniteOrNonSquare_TypedErrors) {
    RowMatrixXd g = spd(4, 5);
    g(1, 2) = std::nan("");
    EXPECT_THROW(cholesky(g, {}, "g"), NumericalError);
    EXPECT_THROW(cholesky(RowMatrixXd(3, 4), {}, "g"), ShapeError);
    CholeskyOptions bad;
    bad.damp = -1.0;
    EXPECT_THROW(cholesky(spd(4, 5), bad, "g"), UsageError);
}

TEST(LinalgEigen, SymmetricEigen_ReconstructsAndSortsAscending) {
    RowMatrixXd a = spd(30, 7);
    a.diagonal().array() -= 50.0;  // indefinite
    SymmetricEigen e = symmetric_eigen(a, "a");
    for (int i = 1; i < 30; ++i) EXPECT_LE(e.values(i - 1), e.values(i));
    RowMatrixXd rec = e.vectors * e.values.asDiagonal() * e.vectors.transpose();
    EXPECT_LT((rec - a).norm() / a.norm(), 1e-13);
    EXPECT_LT((e.vectors.transpose() * e.vectors - RowMatrixXd::Identity(30, 30)).norm(), 1e-12);
    // symmetric_min_eigenvalue (dsyevd 'N': tridiagonal QR) and symmetric_eigen (dsyevd 'V':
    // divide and conquer) take different LAPACK paths, over BLAS kernels that differ between
    // OpenBLAS builds (Zen vs SkylakeX): both are backward stable, so each
    // eigenvalue is within c·n·eps·‖A‖₂ of the exact one, not bit-equal (seen on an AMD EPYC:
    // −32.186035795576146 vs −32.186035795576224). 1e-12·‖A‖_F is ~150 n·eps·‖A‖ at n = 30.
    EXPECT_NEAR(symmetric_min_eigenvalue(a, "a"), e.values(0), 1e-12 * a.norm());
}

TEST(LinalgSvd, ThinSvd_WideAndTall_ReconstructDescending) {
    for (auto [m, n] : {std::pair<int64_t, int64_t>{12, 50}, {50, 12}, {17, 17}}) {
        RowMatrixXd a = test::random_gaussian(m, n, 11);
        ThinSvd s = thin_svd(a, "a");
        const int64_t k = std::min(m, n);
        ASSERT_EQ(s.u.rows(), m);
        ASSERT_EQ(s.u.cols(), k);
        ASSERT_EQ(s.vt.rows(), k);
        ASSERT_EQ(s.vt.cols(), n);
        for (int64_t i = 1; i < k; ++i) EXPECT_GE(s.s(i - 1), s.s(i));
        EXPECT_LT((s.u * s.s.asDiagonal() * s.vt - a).norm() / a.norm(), 1e-13);
        EXPECT_LT((s.u.transpose() * s.u - RowMatrixXd::Identity(k, k)).norm(), 1e-12);
        EXPECT_LT((s.vt * s.vt.transpose() - RowMatrixXd::Identity(k, k)).norm(), 1e-12);
    }
}

TEST(LinalgSvd, NonFinite_ThrowsNumericalError) {
    RowMatrixXd a = test::random_gaussian(4, 4, 1);
    a(0, 0) = INFINITY;
    EXPECT_THROW(thin_svd(a, "a"), NumericalError);
    EXPECT_THROW(thin_svd(RowMatrixXd(0, 3), "a"), ShapeError);
}

TEST(LinalgSolve, TriangularSolvesAndInverse) {
    RowMatrixXd l = cholesky(spd(20, 13), {}, "g").factor;
    RowMatrixXd b = test::random_gaussian(7, 20, 14);
    RowMatrixXd x = solve_lower_right(l, b, "l");
    EXPECT_LT((x * l - b).norm() / b.norm(), 1e-13);
    RowMatrixXd bt = b.transpose();
    RowMatrixXd y = solve_lower_left(l, bt, "l");
    EXPECT_LT((l * y - bt).norm() / bt.norm(), 1e-13);
    RowMatrixXd inv = invert_lower(l, "l");
    EXPECT_TRUE(inv.isLowerTriangular());
    EXPECT_LT((inv * l - RowMatrixXd::Identity(20, 20)).norm(), 1e-12);
}

TEST(LinalgSolve, SingularTriangular_ThrowsNumericalError) {
    RowMatrixXd l = RowMatrixXd::Identity(5, 5);
    l(3, 3) = 0.0;
    try {
        solve_lower_right(l, RowMatrixXd::Ones(2, 5), "whitening factor S");
        FAIL();
    } catch (const NumericalError& e) {
        EXPECT_NE(std::string(e.what()).find("whitening factor S [5x5] is singular"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(invert_lower(l, "l"), NumericalError);
    EXPECT_THROW(solve_lower_right(RowMatrixXd::Identity(5, 5), RowMatrixXd::Ones(2, 4), "l"),
                 ShapeError);
}

TEST(LinalgLstsq, MatchesNormalEquations_AndRejectsRankDeficient) {
    RowMatrixXd a = test::random_gaussian(40, 6, 21);
    RowMatrixXd b = test::random_gaussian(40, 3, 22);
    RowMatrixXd x = least_squares(a, b, "a");
    RowMatrixXd ref = (a.transpose() * a).ldlt().solve(a.transpose() * b);
    EXPECT_LT((x - ref).norm() / ref.norm(), 1e-12);
    RowMatrixXd def = a;
    def.col(2).setZero();
    EXPECT_THROW(least_squares(def, b, "a"), NumericalError);
    EXPECT_THROW(least_squares(a.transpose(), b, "a"), ShapeError);
}
