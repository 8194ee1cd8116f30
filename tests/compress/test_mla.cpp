// palu compress tests: the MLA rewrite of one layer (compress/mla.h). The algebra is checked
// against the Llama attention score written out independently here (complex RoPE per frequency):
// the split k = u·k_pe + k_res is exact, the rotary query rows give exactly the rotary part's
// score at every pair of positions, one KV head (or proportional heads) leaves no residual, a
// full-rank joint latent reproduces [K_res; V], the refit recovers a linear map, and bad rope
// dims are refused with a reason.
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <cmath>
#include <complex>
#include <random>

#include "palu/compress/mla.h"
#include "palu/core/error.h"

namespace palu::compress {
namespace {

using cd = std::complex<double>;

RowMatrixXd randn(int64_t r, int64_t c, std::mt19937& rng, double sd = 1.0) {
    std::normal_distribution<double> n(0.0, sd);
    RowMatrixXd m(r, c);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
    return m;
}

// A Gram matrix Σ x xᵀ of `n` correlated samples.
RowMatrixXd random_gram(int64_t d, std::mt19937& rng) {
    const RowMatrixXd mix = randn(d, d, rng);
    const RowMatrixXd x = randn(4 * d, d, rng) * mix;
    return x.transpose() * x;
}

// Llama score of query head h at position m against key head j at position n, rotate-half pairs
// (i, i + d/2) rotated by ω_i = θ^(−2i/d).
double llama_score(const Eigen::VectorXd& q, const Eigen::VectorXd& k, int64_t d, double theta,
                   double m, double n) {
    double s = 0.0;
    for (int64_t i = 0; i < d / 2; ++i) {
        const double w = std::pow(theta, -2.0 * i / d);
        const cd qc(q(i), q(i + d / 2)), kc(k(i), k(i + d / 2));
        s += std::real(std::conj(qc * std::polar(1.0, w * m)) * kc * std::polar(1.0, w * n));
    }
    return s;
}

// Score of interleaved rotary pairs (re, im) at rows 2g, 2g+1 rotated by θ'^(−2g/d_r).
double rotary_score(const Eigen::VectorXd& q, const Eigen::VectorXd& k, int64_t dr, double theta,
                    double m, double n) {
    double s = 0.0;
    for (int64_t g = 0; g < dr / 2; ++g) {
        const double w = std::pow(theta, -2.0 * g / dr);
        const cd qc(q(2 * g), q(2 * g + 1)), kc(k(2 * g), k(2 * g + 1));
        s += std::real(std::conj(qc * std::polar(1.0, w * m)) * kc * std::polar(1.0, w * n));
    }
    return s;
}

struct Layer {
    MlaShape s;
    RowMatrixXd wq, wk, wv, wo, gram;
};

Layer random_layer(int64_t n_heads, int64_t n_kv, int64_t d, int64_t dm, uint32_t seed) {
    std::mt19937 rng(seed);
    Layer l;
    l.s = {dm, n_heads, n_kv, d};
    l.wq = randn(n_heads * d, dm, rng, 0.3);
    l.wk = randn(n_kv * d, dm, rng, 0.3);
    l.wv = randn(n_kv * d, dm, rng, 0.3);
    l.wo = randn(dm, n_heads * d, rng, 0.3);
    l.gram = random_gram(dm, rng);
    return l;
}

// The Llama score = rotary part (MLA q_pe·k_pe) + the residual keys still rotated, exactly.
void expect_split_exact(const Layer& l, int64_t dr, RopeSelect sel, bool query_weighted) {
    const int64_t d = l.s.d_head, per_kv = l.s.n_heads / l.s.n_kv_heads;
    const double theta = 10000.0;
    const RopeDecoupling rope =
        decouple_rope(l.wk, l.gram, l.s, dr, sel, query_weighted ? &l.wq : nullptr);
    ASSERT_EQ(rope.k_pe.rows(), dr);
    const RowMatrixXd q_mla = mla_q_proj(l.wq, rope, l.s, 1.0);
    const double theta_r = mla_rope_theta(theta, d, dr, sel);
    std::mt19937 rng(7);
    for (int trial = 0; trial < 4; ++trial) {
        const Eigen::VectorXd xq = randn(l.s.d_model, 1, rng), xk = randn(l.s.d_model, 1, rng);
        const double m = 37.0 + 11 * trial, n = 5.0 + 3 * trial;
        for (int64_t h = 0; h < l.s.n_heads; ++h) {
            const int64_t j = h / per_kv;
            const Eigen::VectorXd q = l.wq.middleRows(h * d, d) * xq;
            const Eigen::VectorXd k = l.wk.middleRows(j * d, d) * xk;
            const Eigen::VectorXd k_res = rope.k_res.middleRows(j * d, d) * xk;
            const Eigen::VectorXd q_pe = q_mla.middleRows(h * (d + dr) + d, dr) * xq;
            const Eigen::VectorXd k_pe = rope.k_pe * xk;
            // With Fold at rope_dim = d (one pair per frequency) the split is exact at any
            // positions; the NoPE rows are the original query rows.
            EXPECT_TRUE(q_mla.middleRows(h * (d + dr), d).isApprox(l.wq.middleRows(h * d, d)));
            const double want = llama_score(q, k, d, theta, m, n);
            const double got =
                rotary_score(q_pe, k_pe, dr, theta_r, m, n) + llama_score(q, k_res, d, theta, m, n);
            EXPECT_NEAR(got, want, 1e-9 * (1.0 + std::abs(want))) << "head " << h;
        }
    }
}

TEST(Mla, RotaryPartIsExact_KeyPca) {
    expect_split_exact(random_layer(6, 3, 8, 24, 1), 8, RopeSelect::Fold, false);
}

TEST(Mla, RotaryPartIsExact_QueryWeightedPca) {
    expect_split_exact(random_layer(6, 3, 8, 24, 2), 8, RopeSelect::Fold, true);
}

TEST(Mla, RotaryPartIsExact_HighFrequencies) {
    // High keeps the first rope_dim/2 frequencies with θ' = θ^(d_r/d): the same angles.
    expect_split_exact(random_layer(4, 2, 8, 24, 3), 4, RopeSelect::High, false);
}

TEST(Mla, OneKvHeadLeavesNoResidual) {
    const Layer l = random_layer(4, 1, 8, 24, 4);
    const RopeDecoupling rope = decouple_rope(l.wk, l.gram, l.s, 8, RopeSelect::Fold);
    EXPECT_LT(rope.k_res.norm(), 1e-10 * l.wk.norm());
    EXPECT_NEAR(rope.kept_energy / rope.key_energy, 1.0, 1e-10);
}

TEST(Mla, ProportionalKvHeadsLeaveNoResidual) {
    Layer l = random_layer(4, 2, 8, 24, 5);
    l.wk.middleRows(8, 8) = -0.5 * l.wk.middleRows(0, 8);  // head 1 = −½ head 0
    const RopeDecoupling rope = decouple_rope(l.wk, l.gram, l.s, 8, RopeSelect::Fold);
    EXPECT_LT(rope.k_res.norm(), 1e-9 * l.wk.norm());
}

TEST(Mla, KeyPcaKeepsTheTopEnergy) {
    // Each pair keeps at least its share of an equal split across KV heads (the top eigenvalue
    // is ≥ the mean), and never more than everything.
    const Layer l = random_layer(6, 3, 8, 24, 6);
    const RopeDecoupling rope = decouple_rope(l.wk, l.gram, l.s, 8, RopeSelect::Fold);
    EXPECT_GE(rope.kept_energy, rope.key_energy / 3.0 * (1 - 1e-12));
    EXPECT_LE(rope.kept_energy, rope.key_energy * (1 + 1e-12));
}

TEST(Mla, FoldedFrequenciesShareOnePair) {
    const Layer l = random_layer(4, 2, 8, 24, 7);
    const RopeDecoupling rope = decouple_rope(l.wk, l.gram, l.s, 4, RopeSelect::Fold);
    EXPECT_EQ(rope.group, (std::vector<int64_t>{0, 0, 1, 1}));
    EXPECT_DOUBLE_EQ(mla_rope_theta(1e4, 8, 4, RopeSelect::Fold), 1e4);
    EXPECT_NEAR(mla_rope_theta(1e4, 8, 4, RopeSelect::High), 100.0, 1e-9);
    // k = u·k_pe + k_res still holds exactly (the split itself is exact; only the rotation of
    // the second frequency in a fold is approximated).
    const RopeDecoupling high = decouple_rope(l.wk, l.gram, l.s, 4, RopeSelect::High);
    EXPECT_EQ(high.group, (std::vector<int64_t>{0, 1, -1, -1}));
}

TEST(Mla, FullRankJointLatentIsExact) {
    const Layer l = random_layer(4, 2, 4, 24, 8);  // 2·2·4 = 16 ≤ d_model
    const RopeDecoupling rope = decouple_rope(l.wk, l.gram, l.s, 4, RopeSelect::Fold);
    const Eigen::LLT<Eigen::MatrixXd> llt(l.gram);
    const RowMatrixXd chol = RowMatrixXd(llt.matrixL());
    RowMatrixXd f(16, 24);
    f.topRows(8) = rope.k_res;
    f.bottomRows(8) = l.wv;
    for (const bool metric : {false, true}) {
        const OutputMetric om = output_metric(l.wq, l.wo, l.gram, l.s);
        const JointLatent jl =
            joint_latent(rope.k_res, l.wv, chol, 16, 0.0, "test", metric ? &om : nullptr, &l.s);
        EXPECT_TRUE((jl.up * jl.down).isApprox(f, 1e-9)) << "metric " << metric;
        EXPECT_GT(jl.alpha, 0.0);
        // Rank 8 keeps less, with a whitened error in (0, 1).
        const JointLatent half =
            joint_latent(rope.k_res, l.wv, chol, 8, 0.0, "test", metric ? &om : nullptr, &l.s);
        EXPECT_GT(half.error.whitened_rel, 0.0);
        EXPECT_LT(half.error.whitened_rel, 1.0);
    }
}

TEST(Mla, KvBRowsFollowTheQueryHeadsKvHead) {
    std::mt19937 rng(9);
    const MlaShape s{24, 4, 2, 3};
    const RowMatrixXd up = randn(2 * 2 * 3, 5, rng);
    const RowMatrixXd kv_b = mla_kv_b(up, s);
    ASSERT_EQ(kv_b.rows(), 4 * 6);
    for (int64_t h = 0; h < 4; ++h) {
        const int64_t j = h / 2;
        EXPECT_EQ(kv_b.middleRows(h * 6, 3), up.middleRows(j * 3, 3));
        EXPECT_EQ(kv_b.middleRows(h * 6 + 3, 3), up.middleRows(6 + j * 3, 3));
    }
}

TEST(Mla, RefitRecoversALinearLatentMap) {
    // When ĉ = M·x exactly, the least-squares up' reproduces F·x from ĉ.
    std::mt19937 rng(10);
    const RowMatrixXd k_res = randn(6, 12, rng), wv = randn(6, 12, rng);
    const RowMatrixXd m = randn(12, 12, rng);  // full rank: F·x is a linear function of ĉ
    const RowMatrixXd x = randn(12, 200, rng);
    const RowMatrixXd c = m * x;
    const RowMatrixXd up = refit_up(k_res, wv, x * c.transpose(), c * c.transpose());
    RowMatrixXd f(12, 12);
    f.topRows(6) = k_res;
    f.bottomRows(6) = wv;
    EXPECT_TRUE((up * c).isApprox(f * x, 1e-6));
}

TEST(Mla, RopeDimChecksNameTheReason) {
    EXPECT_EQ(check_rope_dim(64, 64, RopeSelect::Fold), "");
    EXPECT_EQ(check_rope_dim(64, 32, RopeSelect::Fold), "");
    EXPECT_EQ(check_rope_dim(64, 48, RopeSelect::High), "");
    EXPECT_NE(check_rope_dim(64, 48, RopeSelect::Fold).find("divides"), std::string::npos);
    EXPECT_NE(check_rope_dim(64, 7, RopeSelect::High).find("even"), std::string::npos);
    EXPECT_NE(check_rope_dim(64, 128, RopeSelect::High).find("larger than the head"),
              std::string::npos);
    const Layer l = random_layer(4, 2, 8, 24, 11);
    EXPECT_THROW(decouple_rope(l.wk, l.gram, l.s, 10, RopeSelect::High), UsageError);
}

}  // namespace
}  // namespace palu::compress
