// palu kernels tests (GPU-free): the FP8 (e4m3) / INT8 rounding helpers and the emulated
// low-precision key reconstruction of low_precision_study.h. The e4m3 grid is rebuilt here from the
// bit layout (bias 7, 3 mantissa bits, S.1111.111 = NaN) independently of the implementation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "latent_attention_reference.h"
#include "low_precision_study.h"
#include "palu/core/dtype.h"

using namespace palu::cuda;
using namespace palu::cuda::testing;

namespace {

// Every finite non-negative e4m3 value, ascending (exponent field 0 = subnormals m·2^-9).
std::vector<double> e4m3_grid() {
    std::vector<double> g;
    for (int e = 0; e < 16; ++e)
        for (int m = 0; m < 8; ++m) {
            if (e == 15 && m == 7) continue;  // NaN encoding
            g.push_back(e == 0 ? std::ldexp(double(m), -9) : std::ldexp(1.0 + m / 8.0, e - 7));
        }
    return g;
}

// Mantissa field of a grid value (parity decides ties).
int e4m3_mantissa(double v) {
    if (v < std::ldexp(1.0, -6)) return int(std::lround(std::ldexp(v, 9)));
    int e = 0;
    const double m = std::frexp(v, &e);  // v = m · 2^e, m in [0.5, 1)
    return int(std::lround((2.0 * m - 1.0) * 8.0));
}

ProblemShape small_shape() {
    ProblemShape s;
    s.batch = 2;
    s.n_heads = 8;
    s.n_kv_heads = 4;
    s.group_size = 2;
    s.d_head = 64;
    s.r_k = 64;
    s.r_v = 32;
    s.capacity = 48;
    s.seq_lens = {48, 19};
    return s;
}

void set_f16(std::vector<uint8_t>& bytes, size_t index, float v) {
    const uint16_t h = palu::f32_to_f16(v);
    bytes[2 * index] = uint8_t(h & 0xff);
    bytes[2 * index + 1] = uint8_t(h >> 8);
}

// Replaces the key latents (bits 16, f16) and B_k of `pb`: every latent row holds integers drawn
// from `latent(rng)` with its first channel set to `latent_amax`, every B_k row values from
// `up(rng)` with its first column set to `up_amax`.
template <typename LatentFn, typename UpFn>
void set_key_operands(HostProblem& pb, LatentFn latent, float latent_amax, UpFn up, float up_amax,
                      uint64_t seed) {
    const ProblemShape& s = pb.shape;
    std::mt19937_64 rng(seed);
    const size_t rows = pb.k_data.size() / (2 * size_t(s.r_k));
    for (size_t row = 0; row < rows; ++row)
        for (int32_t c = 0; c < s.r_k; ++c)
            set_f16(pb.k_data, row * s.r_k + c, c == 0 ? latent_amax : latent(rng));
    for (size_t row = 0; row < pb.k_up.size() / size_t(s.r_k); ++row)
        for (int32_t c = 0; c < s.r_k; ++c)
            pb.k_up[row * s.r_k + c] = palu::f32_to_f16(c == 0 ? up_amax : up(rng));
}

// Multiplies the queries by `factor` (keeps the logits O(1) when the test keys are large, so the
// softmax is not one-hot and key errors reach the output).
void scale_queries(HostProblem& pb, float factor) {
    for (auto& q : pb.q) q = palu::f32_to_f16(palu::f16_to_f32(q) * factor);
}

double lowp_error(const HostProblem& pb, LowpMode mode) {
    return rel_frobenius_error(reference_latent_attention_lowp(pb, mode).out,
                               reference_latent_attention(pb).out);
}

}  // namespace

TEST(RoundE4m3, KnownValues) {
    EXPECT_EQ(round_e4m3(0.0f), 0.0f);
    EXPECT_TRUE(std::signbit(round_e4m3(-0.0f)));
    EXPECT_EQ(round_e4m3(1.0f), 1.0f);
    EXPECT_EQ(round_e4m3(448.0f), 448.0f);
    EXPECT_EQ(round_e4m3(-448.0f), -448.0f);
    EXPECT_EQ(round_e4m3(449.0f), 448.0f);  // saturates (satfinite)
    EXPECT_EQ(round_e4m3(464.0f), 448.0f);  // the tie above 448 would round to 480: saturates
    EXPECT_EQ(round_e4m3(1e9f), 448.0f);
    EXPECT_EQ(round_e4m3(-1e9f), -448.0f);
    EXPECT_EQ(round_e4m3(std::numeric_limits<float>::infinity()), 448.0f);
    EXPECT_EQ(round_e4m3(-std::numeric_limits<float>::infinity()), -448.0f);
    EXPECT_TRUE(std::isnan(round_e4m3(std::numeric_limits<float>::quiet_NaN())));
    EXPECT_EQ(round_e4m3(1.0625f), 1.0f);   // tie between 1.0 (m 000) and 1.125 (m 001): even
    EXPECT_EQ(round_e4m3(1.1875f), 1.25f);  // tie between 1.125 (001) and 1.25 (010): even
    EXPECT_EQ(round_e4m3(1.07f), 1.125f);   // above the tie
    EXPECT_EQ(round_e4m3(-1.0625f), -1.0f);
    EXPECT_EQ(round_e4m3(17.0f), 16.0f);  // step 2 in [16, 32): tie, even
    EXPECT_EQ(round_e4m3(19.0f), 20.0f);
    EXPECT_EQ(round_e4m3(0.3f), 0.3125f);    // step 2^-5 in [0.25, 0.5)
    const float sub = std::ldexp(1.0f, -9);  // smallest subnormal
    EXPECT_EQ(round_e4m3(sub), sub);
    EXPECT_EQ(round_e4m3(-sub), -sub);
    EXPECT_EQ(round_e4m3(0.5f * sub), 0.0f);  // tie between 0 and 2^-9: even (0)
    EXPECT_EQ(round_e4m3(0.49f * sub), 0.0f);
    EXPECT_EQ(round_e4m3(0.51f * sub), sub);
    EXPECT_EQ(round_e4m3(1.5f * sub), 2.0f * sub);                      // subnormal tie: even
    EXPECT_EQ(round_e4m3(std::ldexp(1.0f, -6)), std::ldexp(1.0f, -6));  // smallest normal
    EXPECT_EQ(round_e4m3(std::ldexp(1.0f, -20)), 0.0f);
}

// The grid maps to itself, every midpoint goes to the neighbour with the even mantissa, and every
// other value to its nearest grid value.
TEST(RoundE4m3, GridFixedPointsAndTiesToEven) {
    const std::vector<double> g = e4m3_grid();
    ASSERT_EQ(g.size(), 127u);
    ASSERT_EQ(g.back(), 448.0);
    for (size_t i = 0; i < g.size(); ++i) {
        EXPECT_EQ(double(round_e4m3(float(g[i]))), g[i]);
        EXPECT_EQ(double(round_e4m3(float(-g[i]))), -g[i]);
        if (i + 1 == g.size()) break;
        const double lo = g[i], hi = g[i + 1], mid = 0.5 * (lo + hi);
        const double even = e4m3_mantissa(lo) % 2 == 0 ? lo : hi;
        EXPECT_EQ(double(round_e4m3(float(mid))), even) << "tie " << mid;
        EXPECT_EQ(double(round_e4m3(float(lo + 0.25 * (hi - lo)))), lo);
        EXPECT_EQ(double(round_e4m3(float(hi - 0.25 * (hi - lo)))), hi);
    }
}

TEST(RoundInt8, KnownValues) {
    EXPECT_EQ(round_int8(0.0f), 0);
    EXPECT_EQ(round_int8(0.49f), 0);
    EXPECT_EQ(round_int8(0.5f), 0);  // ties to even
    EXPECT_EQ(round_int8(1.5f), 2);
    EXPECT_EQ(round_int8(2.5f), 2);
    EXPECT_EQ(round_int8(3.5f), 4);
    EXPECT_EQ(round_int8(-2.5f), -2);
    EXPECT_EQ(round_int8(-3.5f), -4);
    EXPECT_EQ(round_int8(126.6f), 127);
    EXPECT_EQ(round_int8(127.5f), 127);  // saturates
    EXPECT_EQ(round_int8(200.0f), 127);
    EXPECT_EQ(round_int8(-128.0f), -127);  // symmetric range: −128 is never produced
    EXPECT_EQ(round_int8(-1e9f), -127);
    EXPECT_EQ(round_int8(std::numeric_limits<float>::quiet_NaN()), 0);
}

// The key-reconstruction hook with exact keys reproduces the reference bit for bit.
TEST(LowPrecisionStudy, ExactHook_IsTheReference) {
    ProblemShape s = small_shape();
    s.bits_k = 4;
    const HostProblem pb = make_random_problem(s, 21);
    const AttentionOutputs a = reference_latent_attention(pb);
    const AttentionOutputs b = reference_latent_attention(pb, reconstruct_keys_exact);
    ASSERT_EQ(a.out.size(), b.out.size());
    for (size_t i = 0; i < a.out.size(); ++i) ASSERT_EQ(a.out[i], b.out[i]) << i;
    for (size_t i = 0; i < a.out_latent.size(); ++i)
        ASSERT_EQ(a.out_latent[i], b.out_latent[i]) << i;
}

// Each emulated key is within the rounding bound of its operands: with x̂ = x + δ,
// |δ| ≤ 2^-4·|x| + 2^-10·scale (e4m3: half an ulp of a normal, or of the 2^-9 subnormal step) or
// |δ| ≤ scale / 2 (int8), and |b̂ĥ − bh| ≤ |δ_b||h| + |b||δ_h| + |δ_b||δ_h|. Random f16 and 3-bit
// latents; the error is also required to be non-zero (the emulation does round).
TEST(LowPrecisionStudy, KeysWithinOperandRoundingBound) {
    for (const int32_t bits : {16, 3}) {
        ProblemShape s = small_shape();
        s.bits_k = bits;
        const HostProblem pb = make_random_problem(s, 33 + uint64_t(bits));
        for (const LowpMode mode : {LowpMode::E4M3, LowpMode::INT8}) {
            const double m = mode == LowpMode::E4M3 ? 448.0 : 127.0;
            auto delta = [&](double x, double scale) {
                return mode == LowpMode::E4M3 ? std::ldexp(std::abs(x), -4) + std::ldexp(scale, -10)
                                              : 0.5 * scale;
            };
            double max_diff = 0.0;
            for (int32_t b = 0; b < s.batch; ++b)
                for (int32_t j = 0; j < s.n_kv_heads; ++j) {
                    const int32_t len = pb.seq_lens[size_t(b)], g = j / s.group_size, D = s.d_head,
                                  r = s.r_k;
                    const std::vector<double> exact = reconstruct_keys_exact(pb, b, j, len);
                    const std::vector<double> lowp = reconstruct_keys_lowp(pb, b, j, len, mode);
                    ASSERT_EQ(lowp.size(), exact.size());
                    for (int32_t t = 0; t < len; ++t) {
                        std::vector<double> h(size_t(r), 0.0);
                        double h_amax = 0.0;
                        for (int32_t c = 0; c < r; ++c) {
                            h[size_t(c)] = latent_value(pb, true, b, g, t, c);
                            h_amax = std::max(h_amax, std::abs(h[size_t(c)]));
                        }
                        for (int32_t d = 0; d < D; ++d) {
                            const uint16_t* row = pb.k_up.data() + (size_t(j) * D + d) * r;
                            double b_amax = 0.0;
                            for (int32_t c = 0; c < r; ++c)
                                b_amax =
                                    std::max(b_amax, std::abs(double(palu::f16_to_f32(row[c]))));
                            double bound = 0.0;
                            for (int32_t c = 0; c < r; ++c) {
                                const double bv = palu::f16_to_f32(row[c]), hv = h[size_t(c)];
                                const double db = delta(bv, b_amax / m), dh = delta(hv, h_amax / m);
                                bound += db * std::abs(hv) + std::abs(bv) * dh + db * dh;
                            }
                            const size_t i = size_t(t) * D + d;
                            const double diff = std::abs(lowp[i] - exact[i]);
                            max_diff = std::max(max_diff, diff);
                            ASSERT_LE(diff, bound * (1 + 1e-12) + 1e-300)
                                << lowp_mode_name(mode) << " bits " << bits << " b " << b << " j "
                                << j << " t " << t << " d " << d;
                        }
                    }
                }
            EXPECT_GT(max_diff, 0.0) << lowp_mode_name(mode) << " bits " << bits;
        }
    }
}

// On a random problem both emulations move the output (error > 0) by a small amount.
TEST(LowPrecisionStudy, RandomProblem_ErrorPositiveAndSmall) {
    const HostProblem pb = make_random_problem(small_shape(), 5);
    const double e4m3 = lowp_error(pb, LowpMode::E4M3), int8 = lowp_error(pb, LowpMode::INT8);
    EXPECT_GT(e4m3, 1e-6);
    EXPECT_GT(int8, 1e-6);
    EXPECT_LT(e4m3, 0.1);
    EXPECT_LT(int8, 0.1);
    // Only one operand rounded: also non-zero, and the rounded operand matters.
    const AttentionOutputs ref = reference_latent_attention(pb);
    EXPECT_GT(
        rel_frobenius_error(
            reference_latent_attention_lowp(pb, LowpMode::E4M3, LowpOperands::UpOnly).out, ref.out),
        0.0);
    EXPECT_GT(
        rel_frobenius_error(
            reference_latent_attention_lowp(pb, LowpMode::E4M3, LowpOperands::LatentsOnly).out,
            ref.out),
        0.0);
}

// Operands on the e4m3 grid after scaling: latent rows of integers in [−7, 7] with amax 7 (scale
// 7/448 = 2^-6, so x/scale = 64·x, exact) and B_k rows of ±2^k, k in [−4, 0], with amax 1
// (x/scale = 448·2^k = 1.75·2^(8+k), exact). E4M3 is then exact; INT8 is not (127·x/7 is no
// integer).
TEST(LowPrecisionStudy, E4m3ExactOperands_NoError) {
    HostProblem pb = make_random_problem(small_shape(), 9);
    std::uniform_int_distribution<int> li(-7, 7), ki(-4, 0), sign(0, 1);
    set_key_operands(
        pb, [&](std::mt19937_64& rng) { return float(li(rng)); }, 7.0f,
        [&](std::mt19937_64& rng) {
            return (sign(rng) ? 1.0f : -1.0f) * std::ldexp(1.0f, ki(rng));
        },
        1.0f, 99);
    scale_queries(pb, 1.0f / 16.0f);
    EXPECT_LE(lowp_error(pb, LowpMode::E4M3), 1e-12);
    EXPECT_GT(lowp_error(pb, LowpMode::INT8), 1e-6);
}

// Operands on the int8 grid after scaling: latent rows of integers in [−127, 127] with amax 127
// (scale 1) and B_k rows n/128, n in [−127, 127], with amax 127/128 (x/scale = n). INT8 is then
// exact; E4M3 is not (integers above 16 need more than 3 mantissa bits).
TEST(LowPrecisionStudy, Int8ExactOperands_NoError) {
    HostProblem pb = make_random_problem(small_shape(), 10);
    std::uniform_int_distribution<int> ni(-127, 127);
    set_key_operands(
        pb, [&](std::mt19937_64& rng) { return float(ni(rng)); }, 127.0f,
        [&](std::mt19937_64& rng) { return float(ni(rng)) / 128.0f; }, 127.0f / 128.0f, 98);
    scale_queries(pb, 1.0f / 256.0f);
    EXPECT_LE(lowp_error(pb, LowpMode::INT8), 1e-12);
    EXPECT_GT(lowp_error(pb, LowpMode::E4M3), 1e-6);
}

// Latent channels whose scale decays geometrically (as singular directions do, here 2^(2 − c/4)):
// int8's fixed-point grid under one per-row scale leaves the small channels few levels; the
// per-channel balancing spreads the range over both operands, so its error is clearly lower (and
// still non-zero). (e4m3, a floating format, gains little here: measured 4.5e-2 → 4.3e-2.)
TEST(LowPrecisionStudy, ChannelBalanced_HelpsInt8OnDecayingChannels) {
    ProblemShape s = small_shape();
    HostProblem pb = make_random_problem(s, 12);
    std::mt19937_64 rng(77);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const size_t rows = pb.k_data.size() / (2 * size_t(s.r_k));
    for (size_t row = 0; row < rows; ++row)
        for (int32_t c = 0; c < s.r_k; ++c)
            set_f16(pb.k_data, row * s.r_k + c, nd(rng) * std::ldexp(4.0f, -c / 4));
    const AttentionOutputs ref = reference_latent_attention(pb);
    const double per_row =
        rel_frobenius_error(reference_latent_attention_lowp(pb, LowpMode::INT8).out, ref.out);
    const double balanced =
        rel_frobenius_error(reference_latent_attention_lowp(pb, LowpMode::INT8, LowpOperands::Both,
                                                            LowpScaling::ChannelBalanced)
                                .out,
                            ref.out);
    EXPECT_GT(balanced, 0.0);
    EXPECT_LT(balanced, 0.8 * per_row) << "per-row " << per_row;
}
