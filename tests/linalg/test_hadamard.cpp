// palu linalg tests: Hadamard construction (H·Hᵀ = n·I for every supported size), the reference's
// size rule, fast transform = explicit matrix, and the orthogonal fallback.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "palu/core/error.h"
#include "palu/linalg/hadamard.h"
#include "test_linalg_support.h"

using namespace palu;
using namespace palu::linalg;

namespace {

void expect_hadamard(const RowMatrixXd& h, int64_t n) {
    ASSERT_EQ(h.rows(), n);
    ASSERT_EQ(h.cols(), n);
    EXPECT_TRUE((h.array().abs() == 1.0).all()) << "n=" << n;
    const RowMatrixXd hht = h * h.transpose();
    EXPECT_EQ((hht - n * RowMatrixXd::Identity(n, n)).cwiseAbs().maxCoeff(), 0.0) << "n=" << n;
}

}  // namespace

TEST(LinalgHadamard, EveryBaseOrder_HHt_EqualsNI) {
    const std::vector<int64_t> constructible = {12, 20, 28, 36,  40,  44,  52, 60,
                                                68, 76, 84, 108, 140, 180, 244};
    for (int64_t k : constructible) {
        EXPECT_EQ(hadamard_base_order(k), k);
        ASSERT_TRUE(hadamard_supported(k)) << k;
        expect_hadamard(hadamard_matrix(k), k);
    }
    for (int64_t k : {92, 156, 172}) {
        EXPECT_EQ(hadamard_base_order(k), k);
        EXPECT_FALSE(hadamard_supported(k)) << k;
        EXPECT_THROW(hadamard_matrix(k), UsageError);
    }
}

TEST(LinalgHadamard, EverySupportedSizeUpTo512_AndLargeProducts_AreHadamard) {
    int n_checked = 0;
    for (int64_t n = 1; n <= 512; ++n) {
        if (!hadamard_supported(n)) continue;
        expect_hadamard(hadamard_matrix(n), n);
        ++n_checked;
    }
    EXPECT_GT(n_checked, 40);
    for (int64_t n : {720, 976, 1024}) expect_hadamard(hadamard_matrix(n), n);
}

TEST(LinalgHadamard, BaseOrderRule_MatchesReference) {
    // Powers of two, the reference's list order (first divisor wins), and its failures (§5.2).
    EXPECT_EQ(hadamard_base_order(1), 1);
    EXPECT_EQ(hadamard_base_order(2), 1);
    EXPECT_EQ(hadamard_base_order(512), 1);
    EXPECT_EQ(hadamard_base_order(80), 40);  // 40 precedes 20 in the list
    EXPECT_EQ(hadamard_base_order(96), 12);
    EXPECT_EQ(hadamard_base_order(480), 60);
    EXPECT_EQ(hadamard_base_order(736), 92);
    EXPECT_EQ(hadamard_base_order(6), 0);  // ≡ 2 mod 4: no Hadamard matrix exists
    for (int64_t n : {800, 928, 992, 1056, 1184, 1312, 1504, 1568, 1600, 1632, 1696, 1760, 1824,
                      1856, 1888, 1984, 2016})
        EXPECT_EQ(hadamard_base_order(n), 0) << n;
    // Every multiple of 32 up to 768 has a Hadamard size in the reference.
    for (int64_t n = 32; n <= 768; n += 32) EXPECT_NE(hadamard_base_order(n), 0) << n;
}

TEST(LinalgHadamard, FastRows_EqualExplicitMatrix_AndInverse) {
    for (int64_t n : {1, 2, 8, 12, 24, 40, 96, 160, 244, 256, 488}) {
        RowMatrixXd x = test::random_gaussian(5, n, 100 + n);
        RowMatrixXd y = x;
        apply_hadamard_rows(y);
        const RowMatrixXd m = hadamard_matrix(n) / std::sqrt(static_cast<double>(n));
        EXPECT_LT((y - x * m).norm() / x.norm(), 1e-14) << n;
        // Apply then inverse (x·M·Mᵀ) is the identity.
        RowMatrixXd back = y * m.transpose();
        EXPECT_LT((back - x).norm() / x.norm(), 1e-14) << n;
    }
}

TEST(LinalgHadamard, Fwht_TwiceIsNTimesIdentity) {
    std::vector<float> x(64);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
    std::vector<float> y = x;
    fwht(y.data(), 64);
    fwht(y.data(), 64);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], 64.0f * x[i]);
}

TEST(LinalgRotation, Fallback_IsSeededOrthogonal) {
    for (int64_t n : {6, 10, 92, 184, 800}) {
        LatentRotation r = make_latent_rotation(n, 42);
        EXPECT_EQ(r.kind, RotationKind::RandomOrthogonal) << n;
        EXPECT_EQ(r.seed, 42u);
        EXPECT_LT((r.matrix * r.matrix.transpose() - RowMatrixXd::Identity(n, n)).norm(), 1e-12);
        EXPECT_EQ(r.matrix, make_latent_rotation(n, 42).matrix);
        EXPECT_NE(r.matrix, make_latent_rotation(n, 43).matrix);
    }
    LatentRotation h = make_latent_rotation(48, 1);
    EXPECT_EQ(h.kind, RotationKind::Hadamard);
    EXPECT_EQ(h.base_order, 12);
    EXPECT_LT((h.matrix * h.matrix.transpose() - RowMatrixXd::Identity(48, 48)).norm(), 1e-13);
}
