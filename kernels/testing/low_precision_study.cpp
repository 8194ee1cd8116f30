// palu kernels testing: CPU emulation of an FP8 (e4m3) / INT8 key reconstruction (see the header
// for the formula). Rounding is done on doubles so that x / scale is rounded once, straight to the
// low-precision grid (no intermediate f32 rounding that could move a tie).
#include "low_precision_study.h"

#include <algorithm>
#include <cmath>

#include "palu/core/dtype.h"
#include "palu/core/error.h"

namespace palu::cuda::testing {
namespace {

constexpr double kE4m3Max = 448.0;  // 1.75 · 2^8 (S.1111.111 is NaN, so .110 is the largest)
constexpr int kE4m3MinExp = -6;     // smallest normal 2^-6; below it the quantum stays 2^-9
constexpr int kE4m3Mantissa = 3;
constexpr double kInt8Max = 127.0;

// E4M3 round-to-nearest-even with saturation. Within a binade [2^e, 2^(e+1)) (e ≥ −6) the grid step
// is 2^(e−3); below 2^-6 it is 2^-9 (subnormals). Dividing by a power of two is exact, so
// nearbyint (ties to even in the default rounding mode) of x / step is the correctly rounded grid
// index; the result of a binade's top tie (e.g. 15.5·step) lands on 2^(e+1), which is on the grid.
double e4m3_rne(double x) {
    if (std::isnan(x)) return x;
    const double a = std::abs(x);
    if (a >= kE4m3Max) return std::copysign(kE4m3Max, x);
    if (a == 0.0) return x;
    int e = 0;
    (void)std::frexp(a, &e);  // a = m · 2^e, m in [0.5, 1): binade exponent e − 1
    const int binade = std::max(e - 1, kE4m3MinExp);
    const double step = std::ldexp(1.0, binade - kE4m3Mantissa);
    const double r = std::nearbyint(a / step) * step;
    return std::copysign(std::min(r, kE4m3Max), x);
}

double int8_rne(double x) {
    if (std::isnan(x)) return 0.0;
    return std::clamp(std::nearbyint(x), -kInt8Max, kInt8Max);
}

double decode_half(uint16_t x, LatentDType dt) {
    return dt == LatentDType::F16 ? double(f16_to_f32(x)) : double(bf16_to_f32(x));
}

// Rounds one row in place to the format with a per-row scale amax / M and returns the scale; the
// row then holds the grid values (integers for int8), so value ≈ grid · scale. An all-zero row
// keeps zeros (scale 1).
double quantize_row(std::vector<double>& row, LowpMode mode) {
    double amax = 0.0;
    for (double v : row) amax = std::max(amax, std::abs(v));
    const double m = mode == LowpMode::E4M3 ? kE4m3Max : kInt8Max;
    const double scale = amax > 0.0 ? amax / m : 1.0;
    for (double& v : row) v = mode == LowpMode::E4M3 ? e4m3_rne(v / scale) : int8_rne(v / scale);
    return scale;
}

}  // namespace

const char* lowp_mode_name(LowpMode mode) {
    return mode == LowpMode::E4M3 ? "e4m3" : "int8";
}

float round_e4m3(float x) {
    return static_cast<float>(e4m3_rne(static_cast<double>(x)));
}

int32_t round_int8(float x) {
    return static_cast<int32_t>(int8_rne(static_cast<double>(x)));
}

namespace {

// f_c = sqrt(max |h_k(c)|) over all cached tokens of group g (1 for an all-zero, e.g. padded,
// channel): dividing the latent by f_c and multiplying B_k's column by it leaves k unchanged and
// balances the channel magnitudes between the operands (SmoothQuant, α = 0.5). Palu latents are
// projections on singular directions, so their channels differ in scale by orders of magnitude.
std::vector<double> channel_factors(const HostProblem& pb, int32_t g) {
    const ProblemShape& s = pb.shape;
    std::vector<double> f(static_cast<size_t>(s.r_k), 0.0);
    for (int32_t b = 0; b < s.batch; ++b)
        for (int32_t t = 0; t < pb.seq_lens[size_t(b)]; ++t)
            for (int32_t c = 0; c < s.r_k; ++c)
                f[size_t(c)] = std::max(f[size_t(c)], std::abs(latent_value(pb, true, b, g, t, c)));
    for (double& v : f) v = v > 0.0 ? std::sqrt(v) : 1.0;
    return f;
}

}  // namespace

std::vector<double> reconstruct_keys_lowp(const HostProblem& pb, int32_t b, int32_t j, int32_t len,
                                          LowpMode mode, LowpOperands operands,
                                          LowpScaling scaling) {
    const ProblemShape& s = pb.shape;
    PALU_CHECK(mode == LowpMode::E4M3 || mode == LowpMode::INT8, UsageError,
               "kernels: lowp study: mode: expected e4m3 or int8, got %d", static_cast<int>(mode));
    const int32_t D = s.d_head, r = s.r_k, g = j / s.group_size;
    const bool round_h = operands != LowpOperands::UpOnly,
               round_b = operands != LowpOperands::LatentsOnly;
    const std::vector<double> f = scaling == LowpScaling::ChannelBalanced
                                      ? channel_factors(pb, g)
                                      : std::vector<double>(size_t(r), 1.0);
    // B_k rows of head j, [D, r] (row d = k_up row j·D + d), as grid values with one scale per row.
    std::vector<double> up(size_t(D) * r), up_scale(static_cast<size_t>(D), 1.0),
        row(static_cast<size_t>(r));
    for (int32_t d = 0; d < D; ++d) {
        const uint16_t* brow = pb.k_up.data() + (size_t(j) * D + d) * r;
        for (int32_t c = 0; c < r; ++c)
            row[size_t(c)] = decode_half(brow[c], s.dtype) * f[size_t(c)];
        if (round_b) up_scale[size_t(d)] = quantize_row(row, mode);
        std::copy(row.begin(), row.end(), up.begin() + ptrdiff_t(d) * r);
    }
    // keys [len, D]: per token, the latent row (dequantized as the reference does) with one scale.
    std::vector<double> keys(size_t(len) * D);
    for (int32_t t = 0; t < len; ++t) {
        for (int32_t c = 0; c < r; ++c)
            row[size_t(c)] = latent_value(pb, true, b, g, t, c) / f[size_t(c)];
        const double h_scale = round_h ? quantize_row(row, mode) : 1.0;
        for (int32_t d = 0; d < D; ++d) {
            const double* u = up.data() + size_t(d) * r;
            double acc =
                0.0;  // Both: exact (4-bit-mantissa or int8 products, ≤ 256 terms, 53-bit double)
            for (int32_t c = 0; c < r; ++c) acc += u[c] * row[size_t(c)];
            keys[size_t(t) * D + d] = acc * (up_scale[size_t(d)] * h_scale);
        }
    }
    return keys;
}

AttentionOutputs reference_latent_attention_lowp(const HostProblem& pb, LowpMode mode,
                                                 LowpOperands operands, LowpScaling scaling) {
    return reference_latent_attention(
        pb, [=](const HostProblem& p, int32_t b, int32_t j, int32_t len) {
            return reconstruct_keys_lowp(p, b, j, len, mode, operands, scaling);
        });
}

}  // namespace palu::cuda::testing
