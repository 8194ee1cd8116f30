// palu core tests: dtype table and half conversions against exhaustive / known values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "palu/core/checked.h"
#include "palu/core/dtype.h"
#include "palu/core/error.h"
#include "palu/core/tensor.h"

using namespace palu;

TEST(DType, ParseAndSize_AllSafetensorsNames) {
    for (auto [n, sz] : std::vector<std::pair<const char*, size_t>>{{"F64", 8},
                                                                    {"F32", 4},
                                                                    {"F16", 2},
                                                                    {"BF16", 2},
                                                                    {"I64", 8},
                                                                    {"I32", 4},
                                                                    {"I16", 2},
                                                                    {"I8", 1},
                                                                    {"U8", 1},
                                                                    {"BOOL", 1}}) {
        auto t = parse_dtype(n);
        ASSERT_TRUE(t.has_value()) << n;
        EXPECT_EQ(dtype_size(*t), sz);
        EXPECT_STREQ(dtype_name(*t), n);
    }
    EXPECT_FALSE(parse_dtype("F8_E4M3").has_value());
    EXPECT_FALSE(parse_dtype("f32").has_value());
}

TEST(DType, F16_RoundTripEveryHalf) {
    // Every finite half converts to float and back unchanged (f16 -> f32 is exact).
    for (uint32_t h = 0; h < 65536; ++h) {
        uint16_t hv = static_cast<uint16_t>(h);
        float f = f16_to_f32(hv);
        if (std::isnan(f)) continue;
        ASSERT_EQ(f32_to_f16(f), hv) << h;
    }
    EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
    EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
    EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
}

TEST(DType, F16_RoundsHalfToEven) {
    // 1 + 2^-11 is halfway between 1 and 1+2^-10: ties to even (1.0).
    EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
    // 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: ties to even (1+2^-9 = 0x3c02).
    EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
    EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
}

TEST(DType, ConvertVectorized_MatchesScalarOnUnalignedBuffers) {
    std::vector<unsigned char> raw(2 * 1000 + 1);
    for (size_t i = 0; i < raw.size(); ++i)
        raw[i] = static_cast<unsigned char>((i * 37 + 11) & 0xff);
    std::vector<float> out(1000);
    convert_to_f32(DType::F16, raw.data() + 1, out.data(), out.size());  // odd address
    for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, raw.data() + 1 + 2 * i, 2);
        float ref = f16_to_f32(h);
        if (std::isnan(ref)) {
            EXPECT_TRUE(std::isnan(out[i]));
        } else {
            ASSERT_EQ(out[i], ref) << i;
        }
    }
    convert_to_f32(DType::BF16, raw.data() + 1, out.data(), out.size());
    for (size_t i = 0; i < out.size(); ++i) {
        uint16_t b;
        std::memcpy(&b, raw.data() + 1 + 2 * i, 2);
        uint32_t u = static_cast<uint32_t>(b) << 16, got;
        std::memcpy(&got, &out[i], 4);
        ASSERT_EQ(got, u) << i;
    }
}

TEST(DType, BF16_RoundToNearestEven) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    float halfway;
    uint32_t u = 0x3f808000u;  // exactly between 0x3f80 and 0x3f81: ties to even
    std::memcpy(&halfway, &u, 4);
    EXPECT_EQ(f32_to_bf16(halfway), 0x3f80);
    u = 0x3f818000u;
    std::memcpy(&halfway, &u, 4);
    EXPECT_EQ(f32_to_bf16(halfway), 0x3f82);
}

TEST(Checked, MulOverflowDetected) {
    EXPECT_FALSE(mul_no_overflow(1ull << 40, 1ull << 30).has_value());
    EXPECT_EQ(*mul_no_overflow(1ull << 20, 1ull << 20), 1ull << 40);
    std::vector<int64_t> bad{-1, 4};
    EXPECT_FALSE(numel_no_overflow(bad).has_value());
    std::vector<int64_t> big{1ll << 40, 1ll << 40};
    EXPECT_FALSE(numel_no_overflow(big).has_value());
}

TEST(Tensor, ShapeMismatchThrowsShapeError) {
    EXPECT_THROW(Tensor({2, 3}, std::vector<float>(5)), ShapeError);
    Tensor t({2, 3});
    EXPECT_THROW(t.reshape({4, 2}), ShapeError);
    t.reshape({3, 2});
    EXPECT_EQ(t.dim(0), 3);
}
