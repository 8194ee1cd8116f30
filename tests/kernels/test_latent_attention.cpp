// palu kernels tests: fused latent decode attention against the double-precision CPU reference
// (relative Frobenius error <= 1e-3 for f16, 1e-2 for bf16; NaN-poisoned outputs), plus
// GPU-free checks of the reference and of the host API's validation. Device tests skip with a
// message when no CUDA device is visible (CI builds this without a GPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "latent_attention_reference.h"
#include "palu/core/error.h"

using namespace palu::cuda;
using namespace palu::cuda::testing;

namespace {

#define SKIP_WITHOUT_GPU()                                                                    \
    do {                                                                                      \
        std::string why_;                                                                     \
        if (!cuda_device_available(&why_)) GTEST_SKIP() << "no CUDA device (" << why_ << ")"; \
    } while (0)

struct DeviceCase {
    const char* name;
    int32_t n_heads, n_kv, s, d, r_k, r_v, bits_k, bits_v;
    LatentDType dtype;
    int32_t n_splits;
    LatentKernel kernel = LatentKernel::Block;
};

void PrintTo(const DeviceCase& c, std::ostream* os) {
    *os << c.name;
}

class LatentAttentionDevice : public ::testing::TestWithParam<DeviceCase> {};

TEST_P(LatentAttentionDevice, MatchesReference_RaggedBatch) {
    SKIP_WITHOUT_GPU();
    const DeviceCase& c = GetParam();
    ProblemShape s;
    s.n_heads = c.n_heads;
    s.n_kv_heads = c.n_kv;
    s.group_size = c.s;
    s.d_head = c.d;
    s.r_k = c.r_k;
    s.r_v = c.r_v;
    s.bits_k = c.bits_k;
    s.bits_v = c.bits_v;
    s.dtype = c.dtype;
    s.batch = 2;
    s.capacity = 272;
    s.seq_lens = {272, 77};
    s.rope_theta = 500000.0;
    s.llama3_scaling = true;
    const uint64_t seed =
        0x5eed0000u + uint64_t(c.r_k) * 131 + uint64_t(c.bits_k) * 7 + uint64_t(c.dtype);
    const HostProblem pb = make_random_problem(s, seed);
    const AttentionOutputs ref = reference_latent_attention(pb);
    ASSERT_TRUE(latent_kernel_applies(pb, c.kernel))
        << kernel_name(c.kernel) << " on " << s.describe();
    const AttentionOutputs got = run_latent_attention_device(pb, c.n_splits, c.kernel);
    const double tol = tolerance_for(c.dtype);
    EXPECT_LE(rel_frobenius_error(got.out_latent, ref.out_latent), tol)
        << s.describe() << " seed " << seed;
    EXPECT_LE(rel_frobenius_error(got.out, ref.out), tol) << s.describe() << " seed " << seed;
    for (size_t i = 0; i < 4 && i < got.out.size(); ++i)
        if (std::abs(got.out[i] - ref.out[i]) > 10 * tol * (1e-2 + std::abs(ref.out[i])))
            ADD_FAILURE() << "out[" << i << "] = " << got.out[i] << ", reference " << ref.out[i];
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LatentAttentionDevice,
    ::testing::Values(
        DeviceCase{"mha_s1_f16", 4, 4, 1, 128, 64, 64, 16, 16, LatentDType::F16, 0},
        DeviceCase{"mha_s4_bf16", 4, 4, 4, 128, 256, 256, 16, 16, LatentDType::BF16, 0},
        DeviceCase{"gqa_s4_f16_q4", 16, 4, 4, 128, 160, 160, 4, 4, LatentDType::F16, 2},
        DeviceCase{"gqa_s1_bf16_q3", 8, 4, 1, 128, 32, 64, 3, 3, LatentDType::BF16, 0},
        DeviceCase{"d64_s2_f16_q2", 8, 4, 2, 64, 96, 64, 2, 2, LatentDType::F16, 1},
        DeviceCase{"d64_s2_bf16_k16_v4", 12, 2, 2, 64, 128, 96, 16, 4, LatentDType::BF16, 0}),
    [](const ::testing::TestParamInfo<DeviceCase>& i) { return std::string(i.param.name); });

// The warp kernel (v9) on its compile-time variants: n_rep 1 / ≤ 4 / ≤ 8; constant-folded ranks
// (d_head 128, r_k = r_v = 32, 64, 128; 256 with the 1-stage ring) and the generic ones (r_v ≤ 64 /
// ≤ 128 / ≤ 256, r_k ≠ r_v, 96, 160);
// 16-bit and quantized caches, d_head 64 and 128, forced splits (some warps get no chunk).
constexpr LatentKernel kW = LatentKernel::Warp;
INSTANTIATE_TEST_SUITE_P(
    WarpKernel, LatentAttentionDevice,
    ::testing::Values(
        DeviceCase{"mha_s1_f16", 4, 4, 1, 128, 64, 64, 16, 16, LatentDType::F16, 0, kW},
        DeviceCase{"mha_s1_bf16_q4_r128", 4, 4, 1, 128, 128, 128, 4, 4, LatentDType::BF16, 0, kW},
        DeviceCase{"mha_s1_f16_r32_split2", 4, 4, 1, 128, 32, 32, 16, 16, LatentDType::F16, 2, kW},
        DeviceCase{"gqa4_s1_f16_q3_r96", 16, 4, 1, 128, 96, 96, 3, 3, LatentDType::F16, 0, kW},
        DeviceCase{"gqa4_s1_f16_split3", 16, 4, 1, 128, 64, 64, 16, 16, LatentDType::F16, 3, kW},
        DeviceCase{"gqa2_s1_bf16_q3", 8, 4, 1, 128, 32, 64, 3, 3, LatentDType::BF16, 0, kW},
        DeviceCase{"d64_s2_f16_q2", 8, 4, 2, 64, 96, 64, 2, 2, LatentDType::F16, 1, kW},
        DeviceCase{"gqa8_d64_f16_r128", 16, 2, 1, 64, 128, 128, 16, 16, LatentDType::F16, 2, kW},
        DeviceCase{"gqa6_s2_bf16_q4", 12, 2, 2, 64, 128, 96, 4, 4, LatentDType::BF16, 0, kW},
        DeviceCase{"mha_s4_f16_r256_1stage", 4, 4, 4, 128, 256, 256, 16, 16, LatentDType::F16, 0,
                   kW},
        DeviceCase{"gqa4_s4_bf16_q4_r160", 16, 4, 4, 128, 160, 160, 4, 4, LatentDType::BF16, 2, kW},
        DeviceCase{"gqa2_s2_d64_f16_r256x192", 8, 4, 2, 64, 256, 192, 16, 16, LatentDType::F16, 0,
                   kW}),
    [](const ::testing::TestParamInfo<DeviceCase>& i) { return std::string(i.param.name); });

// GPU-free: with one cached token the softmax weight is 1, so o_lat is that token's value latent.
TEST(LatentAttentionReference, SingleToken_OutLatentIsValueLatent) {
    ProblemShape s;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.group_size = 2;
    s.d_head = 64;
    s.r_k = 32;
    s.r_v = 64;
    s.bits_v = 3;
    s.capacity = 16;
    s.seq_lens = {1};
    const HostProblem pb = make_random_problem(s, 7);
    const AttentionOutputs ref = reference_latent_attention(pb);
    for (int32_t h = 0; h < s.n_heads; ++h)
        for (int32_t c = 0; c < s.r_v; ++c)
            EXPECT_DOUBLE_EQ(ref.out_latent[size_t(h) * s.r_v + c],
                             latent_value(pb, false, 0, 0, 0, c));
}

// GPU-free: a b-bit row dequantizes to at most 2^b distinct values, all finite, spanning the row.
TEST(LatentAttentionReference, Quantized_RowHasAtMost2PowBitsLevels) {
    for (int32_t bits : {2, 3, 4}) {
        ProblemShape s;
        s.n_heads = 2;
        s.n_kv_heads = 2;
        s.r_k = 64;
        s.r_v = 32;
        s.bits_k = bits;
        s.bits_v = bits;
        s.capacity = 16;
        const HostProblem pb = make_random_problem(s, 11 + uint64_t(bits));
        for (int32_t t = 0; t < s.capacity; ++t) {
            std::vector<double> levels;
            for (int32_t c = 0; c < s.r_k; ++c) {
                const double x = latent_value(pb, true, 0, 1, t, c);
                ASSERT_TRUE(std::isfinite(x));
                if (std::find(levels.begin(), levels.end(), x) == levels.end()) levels.push_back(x);
            }
            EXPECT_LE(levels.size(), size_t(1) << bits) << "bits " << bits << " token " << t;
            EXPECT_GE(levels.size(), size_t(2)) << "bits " << bits << " token " << t;
        }
    }
}

// GPU-free: shape validation happens before any device call.
TEST(LatentAttentionPlan, RejectsRankNotMultipleOf32) {
    LatentAttentionParams p;
    p.batch = 1;
    p.n_heads = 8;
    p.n_kv_heads = 8;
    p.group_size = 4;
    p.d_head = 128;
    p.capacity = 64;
    p.k.rank = 100;
    p.v.rank = 128;
    try {
        plan_latent_attention(p);
        FAIL() << "expected ShapeError";
    } catch (const palu::ShapeError& e) {
        EXPECT_NE(std::string(e.what()).find("key latent rank"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("got 100"), std::string::npos) << e.what();
    }
}

TEST(LatentAttentionPlan, RejectsGroupSizeNotDividingKvHeads) {
    LatentAttentionParams p;
    p.batch = 1;
    p.n_heads = 32;
    p.n_kv_heads = 8;
    p.group_size = 3;
    p.d_head = 128;
    p.capacity = 64;
    p.k.rank = 64;
    p.v.rank = 64;
    EXPECT_THROW(plan_latent_attention(p), palu::ShapeError);
}

// GPU-free: a forced warp kernel on a shape it does not support, or an unknown kernel value, is
// refused before the device is queried.
TEST(LatentAttentionPlan, RejectsUnsupportedKernelRequest) {
    LatentAttentionParams p;
    p.batch = 1;
    p.n_heads = 64;
    p.n_kv_heads = 4;  // 16 query heads per KV head
    p.group_size = 1;
    p.d_head = 128;
    p.capacity = 64;
    p.k.rank = p.v.rank = 64;
    p.kernel = LatentKernel::Warp;
    try {
        plan_latent_attention(p);
        FAIL() << "expected UsageError";
    } catch (const palu::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("n_heads/n_kv_heads <= 8 (got 16)"), std::string::npos)
            << e.what();
    }
    p.n_heads = 8;
    p.k.bits = 16;
    p.v.bits = 4;  // mixed caches
    EXPECT_THROW(plan_latent_attention(p), palu::UsageError);
    p.v.bits = 16;
    p.kernel = static_cast<LatentKernel>(7);
    try {
        plan_latent_attention(p);
        FAIL() << "expected UsageError";
    } catch (const palu::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("kernel: expected Auto, Block or Warp, got 7"),
                  std::string::npos)
            << e.what();
    }
}

// The plan needs the device's limits, so these skip without a GPU.
TEST(LatentAttentionPlan, KernelChoice) {
    SKIP_WITHOUT_GPU();
    LatentAttentionParams p;
    p.batch = 1;
    p.n_heads = 32;
    p.n_kv_heads = 32;
    p.group_size = 1;
    p.d_head = 128;
    p.capacity = 4096;
    p.k.rank = p.v.rank = 64;
    LatentAttentionPlan plan =
        plan_latent_attention(p);  // Llama-2 M-LRD: the warp kernel, 2-stage ring
    EXPECT_EQ(plan.kernel, LatentKernel::Warp);
    EXPECT_EQ(plan.kv_heads_per_block, 1);
    EXPECT_EQ(plan.n_stages, 2);
    EXPECT_EQ(plan.n_partials, plan.n_splits);
    EXPECT_EQ(plan.workspace_bytes, size_t(plan.n_partials) * 32 * (2 + 64) * sizeof(float));
    p.group_size = 4;
    p.k.rank = p.v.rank = 256;  // G-LRD s = 4: r_v = 256, the warp kernel's 1-stage variant
    plan = plan_latent_attention(p);
    EXPECT_EQ(plan.kernel, LatentKernel::Warp);
    EXPECT_EQ(plan.n_stages, 1);
    p.k.bits = p.v.bits = 4;
    EXPECT_EQ(plan_latent_attention(p).kernel, LatentKernel::Warp);
    p.k.rank = p.v.rank = 160;  // 1-stage, generic ranks, quantized: Auto prefers the block kernel
    EXPECT_EQ(plan_latent_attention(p).kernel, LatentKernel::Block);
    p.kernel = LatentKernel::Warp;  // still available on request
    EXPECT_EQ(plan_latent_attention(p).kernel, LatentKernel::Warp);
    EXPECT_EQ(plan_latent_attention(p).n_stages, 1);
    p.kernel = LatentKernel::Auto;
    p.k.bits = p.v.bits = 16;
    EXPECT_EQ(plan_latent_attention(p).kernel, LatentKernel::Warp);
    p.k.rank = p.v.rank = 256;
    p.n_heads = 64;
    p.n_kv_heads = 4;  // 16 query heads per KV head: block kernel only
    p.group_size = 4;
    EXPECT_EQ(plan_latent_attention(p).kernel, LatentKernel::Block);
    p.kernel = LatentKernel::Warp;
    try {
        plan_latent_attention(p);
        FAIL() << "expected UsageError";
    } catch (const palu::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("n_heads/n_kv_heads <= 8 (got 16)"), std::string::npos)
            << e.what();
    }
    p.n_heads = p.n_kv_heads = 32;
    p.group_size = 1;
    p.k.rank = p.v.rank = 64;
    p.k.bits = 16;
    p.v.bits = 4;  // mixed 16-bit keys, 4-bit values: block kernel only
    p.kernel = LatentKernel::Auto;
    EXPECT_EQ(plan_latent_attention(p).kernel, LatentKernel::Block);
    p.kernel = LatentKernel::Block;
    p.v.bits = 16;
    EXPECT_EQ(plan_latent_attention(p).kernel, LatentKernel::Block);
}

}  // namespace
