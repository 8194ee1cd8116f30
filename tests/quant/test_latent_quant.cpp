// palu quant tests: latent quantizer (grid exactness, s/2 bound, half-to-even, reference
// clipping quirk, symmetric mode) and the 2/3/4/8-bit packing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "palu/core/dtype.h"
#include "palu/core/error.h"
#include "palu/quant/latent_quant.h"

using namespace palu;
using namespace palu::quant;

namespace {

std::vector<float> random_rows(int64_t n, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = nd(gen);
    return v;
}

}  // namespace

TEST(LatentQuant, ValuesOnTheGrid_AreExact) {
    // 4-bit asymmetric, s = 0.25, z = 5: x = (q − 5)·0.25 for every code q (min and max included).
    std::vector<float> x;
    for (int q = 15; q >= 0; --q) x.push_back(static_cast<float>(q - 5) * 0.25f);
    LatentQuantSpec spec;
    spec.bits = 4;
    QuantizedRows q = quantize_rows(x.data(), 1, 16, spec);
    EXPECT_EQ(f16_to_f32(q.scales[0]), 0.25f);
    EXPECT_EQ(f16_to_f32(q.zeros[0]), 5.0f);
    std::vector<float> y(16);
    dequantize_rows(q, y.data());
    EXPECT_EQ(y, x);
}

TEST(LatentQuant, ErrorWithinHalfScale_AllBitsAndGroupings) {
    // The s/2 bound holds for every chunk whose range contains 0 (always for symmetric and with
    // include_zero; the reference's asymmetric zero-point clips one-signed chunks, tested below).
    const int64_t n_rows = 37, n_cols = 48;
    std::vector<float> x = random_rows(n_rows * n_cols, 3);
    int64_t n_checked = 0, n_one_signed = 0;
    for (int bits : {2, 3, 4, 8}) {
        for (int64_t gs : {0, 8, 16}) {
            for (int mode = 0; mode < 3; ++mode) {
                LatentQuantSpec spec;
                spec.bits = bits;
                spec.group_size = gs;
                spec.symmetric = mode == 1;
                spec.include_zero = mode == 2;
                QuantizedRows q = quantize_rows(x.data(), n_rows, n_cols, spec);
                std::vector<float> y(x.size());
                dequantize_rows(q, y.data());
                const int64_t chunk = gs == 0 ? n_cols : gs;
                for (int64_t t = 0; t < n_rows; ++t) {
                    for (int64_t c = 0; c < n_cols / chunk; ++c) {
                        const float* xs = x.data() + t * n_cols + c * chunk;
                        const float mn = *std::min_element(xs, xs + chunk);
                        const float mx = *std::max_element(xs, xs + chunk);
                        if (mode == 0 && (mn > 0 || mx < 0)) {
                            ++n_one_signed;
                            continue;
                        }
                        const float s = f16_to_f32(q.scales[t * (n_cols / chunk) + c]);
                        for (int64_t i = 0; i < chunk; ++i) {
                            const size_t k = static_cast<size_t>(t * n_cols + c * chunk + i);
                            // s/2 plus f32 rounding of x/s and (q − z)·s.
                            const float tol = 0.5f * s + 4e-7f * std::fabs(x[k]) + 1e-7f * s;
                            ASSERT_LE(std::fabs(y[k] - x[k]), tol)
                                << "bits " << bits << " gs " << gs << " mode " << mode;
                            ++n_checked;
                        }
                    }
                }
                // fake_quantize_rows is quantize→dequantize.
                std::vector<float> z = x;
                fake_quantize_rows(z.data(), n_rows, n_cols, spec);
                EXPECT_EQ(z, y);
            }
        }
    }
    EXPECT_GT(n_checked, 3 * 4 * 3 * n_rows * n_cols * 9 / 10);
    EXPECT_GT(n_one_signed, 0);
}

TEST(LatentQuant, RoundsHalfToEven) {
    // Symmetric 4-bit, absmax 3.5 → s = 0.5: x/s = 0.5, 1.5, 2.5, −0.5, −1.5 round to 0, 2, 2, 0,
    // −2.
    std::vector<float> x = {3.5f, 0.25f, 0.75f, 1.25f, -0.25f, -0.75f};
    LatentQuantSpec spec;
    spec.bits = 4;
    spec.symmetric = true;
    QuantizedRows q = quantize_rows(x.data(), 1, 6, spec);
    EXPECT_EQ(f16_to_f32(q.scales[0]), 0.5f);
    std::vector<float> y(6);
    dequantize_rows(q, y.data());
    EXPECT_EQ(y, (std::vector<float>{3.5f, 0.0f, 1.0f, 1.0f, 0.0f, -1.0f}));
}

TEST(LatentQuant, ReferenceZeroPointClipsOneSignedRows_IncludeZeroFixes) {
    // Reference formula: z = clamp(round(−min/s), 0, 2^b−1) = 0 for an all-positive row, so codes
    // saturate at 2^b − 1 and x̂ = (2^b − 1)·s ≈ max − min, far from x.
    std::vector<float> x = {10.0f, 11.0f};
    LatentQuantSpec spec;
    spec.bits = 2;
    std::vector<float> y = x;
    fake_quantize_rows(y.data(), 1, 2, spec);
    EXPECT_NEAR(y[0], 1.0f, 1e-3f);
    EXPECT_NEAR(y[1], 1.0f, 1e-3f);
    spec.include_zero = true;
    y = x;
    fake_quantize_rows(y.data(), 1, 2, spec);
    const float s = 11.0f / 3.0f;
    EXPECT_LE(std::fabs(y[0] - 10.0f), 0.5f * s * 1.001f);
    EXPECT_LE(std::fabs(y[1] - 11.0f), 0.5f * s * 1.001f);
}

TEST(LatentQuant, ClipRatioAndBadSpecs) {
    std::vector<float> x = {-4.0f, 4.0f, 1.0f, -1.0f};
    LatentQuantSpec spec;
    spec.bits = 8;
    spec.symmetric = true;
    spec.clip_ratio = 0.5;
    std::vector<float> y = x;
    fake_quantize_rows(y.data(), 1, 4, spec);
    EXPECT_NEAR(y[0], -2.0f, 0.02f);  // clipped to ±2
    EXPECT_NEAR(y[1], 2.0f, 0.02f);
    spec = {};
    spec.bits = 5;
    EXPECT_THROW(fake_quantize_rows(y.data(), 1, 4, spec), UsageError);
    spec.bits = 4;
    spec.group_size = 3;
    EXPECT_THROW(fake_quantize_rows(y.data(), 1, 4, spec), UsageError);
    spec.group_size = 0;
    spec.clip_ratio = 0.0;
    EXPECT_THROW(fake_quantize_rows(y.data(), 1, 4, spec), UsageError);
    spec = {};  // 16 bits: no-op
    y = x;
    fake_quantize_rows(y.data(), 1, 4, spec);
    EXPECT_EQ(y, x);
    spec.bits = 4;
    y[2] = NAN;
    EXPECT_THROW(fake_quantize_rows(y.data(), 1, 4, spec), NumericalError);
}

TEST(LatentPack, RoundTrip_OddLengths) {
    std::mt19937 gen(5);
    for (int bits : {2, 3, 4, 8}) {
        for (int64_t n : {1, 3, 7, 13, 33, 101}) {
            std::vector<uint8_t> codes(static_cast<size_t>(n));
            for (auto& c : codes) c = static_cast<uint8_t>(gen() & ((1u << bits) - 1u));
            std::vector<uint8_t> packed(static_cast<size_t>(packed_row_bytes(n, bits)), 0xAA);
            EXPECT_EQ(static_cast<int64_t>(packed.size()), (n * bits + 7) / 8);
            pack_codes(codes.data(), n, bits, packed.data());
            std::vector<uint8_t> back(static_cast<size_t>(n));
            unpack_codes(packed.data(), n, bits, back.data());
            EXPECT_EQ(back, codes) << "bits " << bits << " n " << n;
            // Unused high bits of the last byte are zero.
            const int used = static_cast<int>((n * bits) % 8);
            if (used != 0) {
                EXPECT_EQ(packed.back() >> used, 0);
            }
        }
    }
}

TEST(LatentPack, Layout_LittleEndianBitStream) {
    const uint8_t c3[] = {1, 2, 3};  // 001 010 011 → bits 0-2, 3-5, 6-8
    uint8_t out3[2];
    pack_codes(c3, 3, 3, out3);
    EXPECT_EQ(out3[0], 1 | (2 << 3) | ((3 << 6) & 0xFF));
    EXPECT_EQ(out3[1], 3 >> 2);
    const uint8_t c4[] = {0x1, 0xF, 0x7};
    uint8_t out4[2];
    pack_codes(c4, 3, 4, out4);
    EXPECT_EQ(out4[0], 0xF1);
    EXPECT_EQ(out4[1], 0x07);
}

TEST(LatentQuant, TokenByteAccounting) {
    LatentQuantSpec spec;
    EXPECT_EQ(latent_token_bytes(32, spec), 64);  // f16
    spec.bits = 4;
    EXPECT_EQ(latent_token_bytes(32, spec), 16 + 4);  // codes + f16 scale + f16 zero
    spec.symmetric = true;
    spec.group_size = 8;
    EXPECT_EQ(latent_token_bytes(32, spec), 16 + 4 * 2);
    spec = {};
    spec.bits = 3;
    EXPECT_EQ(latent_token_bytes(13, spec), 5 + 4);
}
