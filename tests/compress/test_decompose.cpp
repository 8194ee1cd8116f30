// palu compress tests: whitened / plain group SVD properties (faiss style) and Hadamard fusion.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../linalg/test_linalg_support.h"
#include "palu/compress/decompose.h"
#include "palu/core/error.h"
#include "palu/linalg/cholesky.h"

using namespace palu;
using namespace palu::compress;

namespace {

struct Problem {
    RowMatrixXd x;  // [n_tokens, d] calibration activations
    RowMatrixXd s;  // [d, d] chol(XᵀX)
    RowMatrixXd w;  // [m, d]
};

Problem make_problem(int64_t m, int64_t d, int64_t n_tokens, uint64_t seed) {
    Problem p;
    p.x = test::correlated_activations(n_tokens, d, seed);
    p.s = linalg::cholesky(p.x.transpose() * p.x, {}, "test Gram").factor;
    p.w = test::random_gaussian(m, d, seed + 7);
    return p;
}

double activation_error(const Problem& p, const GroupFactors& f) {
    return (p.x * (p.w - f.left * f.right).transpose()).squaredNorm();
}

}  // namespace

TEST(DecomposeGroup, FullRank_ExactReconstruction) {
    Problem p = make_problem(24, 40, 300, 1);
    for (auto method : {DecomposeMethod::Whitened, DecomposeMethod::Plain}) {
        GroupFactors f = decompose_group(p.w, 24, method, &p.s, "g");
        EXPECT_EQ(f.left.rows(), 24);
        EXPECT_EQ(f.left.cols(), 24);
        EXPECT_EQ(f.right.rows(), 24);
        EXPECT_EQ(f.right.cols(), 40);
        EXPECT_LT((f.left * f.right - p.w).norm() / p.w.norm(), 1e-10);
        EXPECT_LT(f.error.plain_rel, 1e-20);
    }
}

TEST(DecomposeGroup, WhitenedErrorIsActivationError_AndBeatsPlainSvd) {
    Problem p = make_problem(24, 40, 300, 2);
    for (int64_t r = 1; r < 24; ++r) {
        GroupFactors wf = decompose_group(p.w, r, DecomposeMethod::Whitened, &p.s, "g");
        GroupFactors pf = decompose_group(p.w, r, DecomposeMethod::Plain, &p.s, "g");
        const double ew = activation_error(p, wf);
        const double ep = activation_error(p, pf);
        // Reported whitened errors equal the error on the calibration activations.
        EXPECT_NEAR(wf.error.whitened_abs, ew, 1e-9 * ew) << r;
        EXPECT_NEAR(pf.error.whitened_abs, ep, 1e-9 * ep) << r;
        EXPECT_NEAR(wf.error.whitened_rel, ew / (p.x * p.w.transpose()).squaredNorm(), 1e-9) << r;
        // Whitening is optimal on X: never worse than the plain SVD (here much better).
        EXPECT_LE(ew, ep) << r;
        // And the plain SVD is optimal on the weights.
        EXPECT_LE(pf.error.plain_abs, wf.error.plain_abs * (1 + 1e-12)) << r;
    }
    GroupFactors wf = decompose_group(p.w, 8, DecomposeMethod::Whitened, &p.s, "g");
    GroupFactors pf = decompose_group(p.w, 8, DecomposeMethod::Plain, &p.s, "g");
    EXPECT_LT(activation_error(p, wf), 0.5 * activation_error(p, pf));
}

TEST(DecomposeGroup, ErrorNonIncreasingInRank) {
    Problem p = make_problem(32, 48, 400, 3);
    for (auto method : {DecomposeMethod::Whitened, DecomposeMethod::Plain}) {
        double prev_act = INFINITY, prev_rep = INFINITY;
        for (int64_t r = 1; r <= 32; ++r) {
            GroupFactors f = decompose_group(p.w, r, method, &p.s, "g");
            const double act = activation_error(p, f);
            const double rep =
                method == DecomposeMethod::Whitened ? f.error.whitened_abs : f.error.plain_abs;
            // 1e-9 relative: f64 rounding of the explicit products, not of the method.
            EXPECT_LE(act, prev_act * (1 + 1e-9) + 1e-9) << r;
            EXPECT_LE(rep, prev_rep) << r;
            prev_act = act;
            prev_rep = rep;
        }
    }
}

TEST(DecomposeGroup, IdentityGram_WhitenedEqualsPlain) {
    RowMatrixXd w = test::random_gaussian(16, 30, 4);
    RowMatrixXd eye = RowMatrixXd::Identity(30, 30);
    for (int64_t r : {1, 5, 16}) {
        GroupFactors a = decompose_group(w, r, DecomposeMethod::Whitened, &eye, "g");
        GroupFactors b = decompose_group(w, r, DecomposeMethod::Plain, nullptr, "g");
        EXPECT_LT((a.left - b.left).norm(), 1e-12 * b.left.norm()) << r;
        EXPECT_LT((a.right - b.right).norm(), 1e-12 * b.right.norm()) << r;
        EXPECT_NEAR(a.error.whitened_abs, b.error.plain_abs, 1e-12 * w.squaredNorm());
    }
}

TEST(DecomposeGroup, BadInput_TypedErrors) {
    RowMatrixXd w = test::random_gaussian(8, 12, 5);
    EXPECT_THROW(decompose_group(w, 0, DecomposeMethod::Plain, nullptr, "g"), UsageError);
    EXPECT_THROW(decompose_group(w, 9, DecomposeMethod::Plain, nullptr, "g"), UsageError);
    try {
        decompose_group(w, 4, DecomposeMethod::Whitened, nullptr, "layer 2 k_proj group 0");
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("layer 2 k_proj group 0 whitened SVD needs"),
                  std::string::npos);
    }
    RowMatrixXd wrong = RowMatrixXd::Identity(10, 10);
    EXPECT_THROW(decompose_group(w, 4, DecomposeMethod::Whitened, &wrong, "g"), ShapeError);
}

TEST(DecomposeGroup, RankDeficientGram_NeedsFallbackWhichIsCounted) {
    // 20 tokens for d_model 40: the Gram is singular.
    RowMatrixXd x = test::correlated_activations(20, 40, 6);
    RowMatrixXd gram = x.transpose() * x;
    EXPECT_THROW(linalg::cholesky(gram, {}, "layer 0 (k/v input) Gram"), NumericalError);
    linalg::CholeskyOptions opts;
    opts.eig_fallback = true;
    const linalg::CholeskyResult c = linalg::cholesky(gram, opts, "layer 0 (k/v input) Gram");
    EXPECT_TRUE(c.fallback);
    EXPECT_GT(c.shift, 0.0);
    RowMatrixXd w = test::random_gaussian(16, 40, 8);
    GroupFactors f = decompose_group(w, 16, DecomposeMethod::Whitened, &c.factor, "g");
    EXPECT_LT((f.left * f.right - w).norm() / w.norm(), 1e-8);
}

TEST(DecomposeProjection, GroupsBiasAndFullRankReconstruction) {
    // GQA-like: 4 KV heads of d_head 8, d_model 48; M-LRD, G-LRD and J-LRD.
    const int64_t d_head = 8, n_kv = 4, d = 48;
    RowMatrixXd x = test::correlated_activations(500, d, 9);
    RowMatrixXd s = linalg::cholesky(x.transpose() * x, {}, "g").factor;
    RowMatrixXf w = test::random_gaussian(n_kv * d_head, d, 10).cast<float>();
    std::vector<float> bias(n_kv * d_head);
    for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * static_cast<float>(i);
    for (int64_t gs : {1, 2, 4}) {
        const int64_t n_groups = n_kv / gs;
        std::vector<int64_t> full(n_groups, gs * d_head);
        LowRankKV kv = decompose_projection(w, bias, full, d_head, gs, DecomposeMethod::Whitened,
                                            &s, "layer 0 k_proj");
        ASSERT_EQ(kv.n_groups(), n_groups);
        EXPECT_EQ(kv.vt.rows(), n_kv * d_head);
        EXPECT_EQ(kv.vt.cols(), d);
        ASSERT_EQ(kv.bias.size(), static_cast<size_t>(n_groups));
        for (int64_t g = 0; g < n_groups; ++g) {
            EXPECT_EQ(kv.u[g].rows(), gs * d_head);
            EXPECT_EQ(kv.bias[g][0], bias[g * gs * d_head]);
        }
        const RowMatrixXf rec = kv.reconstruct();
        EXPECT_LT((rec - w).norm() / w.norm(), 1e-5) << gs;

        // Truncated: latent h = x·VTᵀ, group g output = h_g·U_gᵀ equals x·(U_g VT_g)ᵀ.
        std::vector<int64_t> ranks(n_groups);
        for (int64_t g = 0; g < n_groups; ++g) ranks[g] = std::max<int64_t>(1, gs * d_head / 2 - g);
        LowRankKV t = decompose_projection(w, {}, ranks, d_head, gs, DecomposeMethod::Whitened, &s,
                                           "layer 0 k_proj");
        EXPECT_TRUE(t.bias.empty());
        for (int64_t g = 0; g < n_groups; ++g) {
            EXPECT_EQ(t.vt.middleRows(t.rank_offset(g), ranks[g]).rows(), ranks[g]);
            EXPECT_GT(t.errors[g].whitened_rel, 0.0);
            EXPECT_LT(t.errors[g].whitened_rel, 1.0);
        }
    }
    EXPECT_THROW(
        decompose_projection(w, {}, {8, 8}, d_head, 3, DecomposeMethod::Plain, nullptr, "l"),
        UsageError);
    EXPECT_THROW(
        decompose_projection(w, {}, {8, 8, 8}, d_head, 2, DecomposeMethod::Plain, nullptr, "l"),
        ShapeError);
}

TEST(HadamardFusion, F64_ReconstructionPreservedAndLatentRotated) {
    Problem p = make_problem(32, 40, 200, 11);
    for (int64_t r : {1, 4, 12, 20, 6 /* fallback */, 24, 32}) {
        GroupFactors f = decompose_group(p.w, r, DecomposeMethod::Whitened, &p.s, "g");
        const RowMatrixXd before = f.left * f.right;
        const RowMatrixXd latent = p.x * f.right.transpose();
        const linalg::LatentRotation rot = linalg::make_latent_rotation(r, 5);
        rotate_group_factors(f.left, f.right, rot.matrix);
        EXPECT_LT((f.left * f.right - before).norm() / before.norm(), 1e-12) << r;
        const RowMatrixXd latent2 = p.x * f.right.transpose();
        EXPECT_LT((latent2 - latent * rot.matrix).norm() / latent.norm(), 1e-12) << r;
    }
}

TEST(HadamardFusion, F32_LowRankKVPreservesReconstruction) {
    const int64_t d_head = 8, n_kv = 4, d = 48;
    RowMatrixXd x = test::correlated_activations(300, d, 12);
    RowMatrixXd s = linalg::cholesky(x.transpose() * x, {}, "g").factor;
    RowMatrixXf w = test::random_gaussian(n_kv * d_head, d, 13).cast<float>();
    LowRankKV kv =
        decompose_projection(w, {}, {16, 12}, d_head, 2, DecomposeMethod::Whitened, &s, "l");
    const RowMatrixXf before = kv.reconstruct();
    fuse_hadamard(kv, 99);
    ASSERT_EQ(kv.rotations.size(), 2u);
    EXPECT_EQ(kv.rotations[0].kind, linalg::RotationKind::Hadamard);
    EXPECT_EQ(kv.rotations[0].base_order, 1);
    EXPECT_EQ(kv.rotations[1].kind, linalg::RotationKind::Hadamard);
    EXPECT_EQ(kv.rotations[1].base_order, 12);
    EXPECT_LT((kv.reconstruct() - before).norm() / before.norm(), 1e-6);
    EXPECT_THROW(fuse_hadamard(kv, 99), UsageError);

    LowRankKV odd =
        decompose_projection(w, {}, {10, 6}, d_head, 2, DecomposeMethod::Whitened, &s, "l");
    const RowMatrixXf odd_before = odd.reconstruct();
    fuse_hadamard(odd, 7);
    EXPECT_EQ(odd.rotations[0].kind, linalg::RotationKind::RandomOrthogonal);
    EXPECT_EQ(odd.rotations[1].seed, 8u);
    EXPECT_LT((odd.reconstruct() - odd_before).norm() / odd_before.norm(), 1e-6);
}
