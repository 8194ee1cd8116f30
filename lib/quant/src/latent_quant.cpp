// palu quant: latent quantizer (reference §5.3 quantize_tensor, per token per group) and the
// bit packing of the latent KV cache. Header comment documents formulas, deviations and layout.
#include "palu/quant/latent_quant.h"

#include <algorithm>
#include <cmath>

#include "palu/core/dtype.h"
#include "palu/core/error.h"

namespace palu::quant {

namespace {

/// Smallest f16 ≥ s (s > 0 finite). Rounding the scale up keeps (2^b − 1)·s ≥ max − min.
uint16_t f16_round_up(float s) {
    uint16_t h = f32_to_f16(s);
    if (f16_to_f32(h) < s) ++h;  // positive halves are ordered like their bit patterns
    return h;
}

float round_half_even(float x) {
    return std::nearbyint(x);
}

}  // namespace

void validate_quant_spec(const LatentQuantSpec& spec, int64_t n_cols) {
    PALU_CHECK(
        spec.bits == 2 || spec.bits == 3 || spec.bits == 4 || spec.bits == 8 || spec.bits == 16,
        UsageError, "quant: latent bits: expected 2, 3, 4, 8 or 16, got %d", spec.bits);
    PALU_CHECK(spec.group_size >= 0, UsageError,
               "quant: latent group size: expected >= 0 (0 = whole latent group), got %lld",
               static_cast<long long>(spec.group_size));
    PALU_CHECK(n_cols <= 0 || spec.group_size == 0 || n_cols % spec.group_size == 0, UsageError,
               "quant: latent group size does not divide the latent rank: expected a divisor of "
               "%lld, got %lld",
               static_cast<long long>(n_cols), static_cast<long long>(spec.group_size));
    PALU_CHECK(spec.clip_ratio > 0.0 && spec.clip_ratio <= 1.0, UsageError,
               "quant: clip ratio outside (0,1]: got %g", spec.clip_ratio);
}

QuantizedRows quantize_rows(const float* x, int64_t n_rows, int64_t n_cols,
                            const LatentQuantSpec& spec) {
    validate_quant_spec(spec, n_cols);
    PALU_CHECK(spec.quantized(), UsageError,
               "quant: quantize_rows: expected bits < 16, got %d (f16 latents are not quantized)",
               spec.bits);
    PALU_CHECK(n_rows >= 0 && n_cols > 0, ShapeError,
               "quant: latents have wrong shape: expected [n_tokens >= 0, r > 0], got [%lld,%lld]",
               static_cast<long long>(n_rows), static_cast<long long>(n_cols));
    QuantizedRows q;
    q.n_rows = n_rows;
    q.n_cols = n_cols;
    q.chunk = spec.group_size == 0 ? n_cols : spec.group_size;
    q.bits = spec.bits;
    q.symmetric = spec.symmetric;
    const int64_t n_chunks = n_cols / q.chunk;
    q.codes.resize(static_cast<size_t>(n_rows * n_cols));
    q.scales.resize(static_cast<size_t>(n_rows * n_chunks));
    if (!spec.symmetric) q.zeros.resize(q.scales.size());
    const auto clip = static_cast<float>(spec.clip_ratio);

    for (int64_t t = 0; t < n_rows; ++t) {
        for (int64_t c = 0; c < n_chunks; ++c) {
            const float* xs = x + t * n_cols + c * q.chunk;
            uint8_t* codes = q.codes.data() + t * n_cols + c * q.chunk;
            const size_t pi = static_cast<size_t>(t * n_chunks + c);
            float mn = xs[0], mx = xs[0], amax = 0.0f;
            for (int64_t i = 0; i < q.chunk; ++i) {
                PALU_CHECK(std::isfinite(xs[i]), NumericalError,
                           "quant: latent row %lld channel %lld is not finite (%g)",
                           static_cast<long long>(t), static_cast<long long>(c * q.chunk + i),
                           static_cast<double>(xs[i]));
                mn = std::min(mn, xs[i]);
                mx = std::max(mx, xs[i]);
                amax = std::max(amax, std::fabs(xs[i]));
            }
            float scale = 0.0f;
            if (spec.symmetric) {
                const float qmax = static_cast<float>((1 << (spec.bits - 1)) - 1);
                const float qmin = -static_cast<float>(1 << (spec.bits - 1));
                const float a = std::max(amax, 1e-5f) * clip;
                const uint16_t s16 = f16_round_up(a / qmax);
                scale = f16_to_f32(s16);
                PALU_CHECK(std::isfinite(scale), NumericalError,
                           "quant: latent row %lld scale %g exceeds the f16 range",
                           static_cast<long long>(t), static_cast<double>(a / qmax));
                q.scales[pi] = s16;
                for (int64_t i = 0; i < q.chunk; ++i) {
                    const float v = std::clamp(round_half_even(xs[i] / scale), qmin, qmax);
                    codes[i] = static_cast<uint8_t>(static_cast<int>(v) - static_cast<int>(qmin));
                }
            } else {
                const float qmax = static_cast<float>((1 << spec.bits) - 1);
                if (spec.include_zero) {
                    mn = std::min(mn, 0.0f);
                    mx = std::max(mx, 0.0f);
                }
                mx *= clip;
                mn *= clip;
                const uint16_t s16 = f16_round_up(std::max(mx - mn, 1e-5f) / qmax);
                scale = f16_to_f32(s16);
                PALU_CHECK(std::isfinite(scale), NumericalError,
                           "quant: latent row %lld scale %g exceeds the f16 range",
                           static_cast<long long>(t),
                           static_cast<double>(std::max(mx - mn, 1e-5f) / qmax));
                const float z = std::clamp(round_half_even(-mn / scale), 0.0f, qmax);
                q.scales[pi] = s16;
                q.zeros[pi] = f32_to_f16(z);  // integer ≤ 255: exact in f16
                for (int64_t i = 0; i < q.chunk; ++i) {
                    const float v = std::clamp(round_half_even(xs[i] / scale) + z, 0.0f, qmax);
                    codes[i] = static_cast<uint8_t>(v);
                }
            }
        }
    }
    return q;
}

void dequantize_rows(const QuantizedRows& q, float* out) {
    const int64_t n_chunks = q.n_cols / q.chunk;
    const int offset = q.symmetric ? (1 << (q.bits - 1)) : 0;
    for (int64_t t = 0; t < q.n_rows; ++t) {
        for (int64_t c = 0; c < n_chunks; ++c) {
            const size_t pi = static_cast<size_t>(t * n_chunks + c);
            const float scale = f16_to_f32(q.scales[pi]);
            const float z = q.symmetric ? static_cast<float>(offset) : f16_to_f32(q.zeros[pi]);
            const uint8_t* codes = q.codes.data() + t * q.n_cols + c * q.chunk;
            float* o = out + t * q.n_cols + c * q.chunk;
            for (int64_t i = 0; i < q.chunk; ++i) o[i] = (static_cast<float>(codes[i]) - z) * scale;
        }
    }
}

void fake_quantize_rows(float* x, int64_t n_rows, int64_t n_cols, const LatentQuantSpec& spec) {
    validate_quant_spec(spec, n_cols);
    if (!spec.quantized()) return;
    const QuantizedRows q = quantize_rows(x, n_rows, n_cols, spec);
    dequantize_rows(q, x);
}

int64_t packed_row_bytes(int64_t n, int bits) {
    return (n * bits + 7) / 8;
}

void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out) {
    PALU_ASSERT(bits >= 1 && bits <= 8, "code width %d bits", bits);
    const int64_t n_bytes = packed_row_bytes(n, bits);
    std::fill(out, out + n_bytes, uint8_t{0});
    const unsigned mask = (1u << bits) - 1u;
    for (int64_t j = 0; j < n; ++j) {
        const unsigned v = codes[j] & mask;
        PALU_ASSERT(v == codes[j], "code %u does not fit in %d bits", codes[j], bits);
        const int64_t bit = j * bits;
        const int64_t byte = bit / 8;
        const int shift = static_cast<int>(bit % 8);
        out[byte] = static_cast<uint8_t>(out[byte] | (v << shift));
        if (shift + bits > 8)
            out[byte + 1] = static_cast<uint8_t>(out[byte + 1] | (v >> (8 - shift)));
    }
}

void unpack_codes(const uint8_t* packed, int64_t n, int bits, uint8_t* codes) {
    PALU_ASSERT(bits >= 1 && bits <= 8, "code width %d bits", bits);
    const unsigned mask = (1u << bits) - 1u;
    for (int64_t j = 0; j < n; ++j) {
        const int64_t bit = j * bits;
        const int64_t byte = bit / 8;
        const int shift = static_cast<int>(bit % 8);
        unsigned v = static_cast<unsigned>(packed[byte]) >> shift;
        if (shift + bits > 8) v |= static_cast<unsigned>(packed[byte + 1]) << (8 - shift);
        codes[j] = static_cast<uint8_t>(v & mask);
    }
}

int64_t latent_token_bytes(int64_t r, const LatentQuantSpec& spec) {
    validate_quant_spec(spec, r);
    if (!spec.quantized()) return 2 * r;
    const int64_t n_chunks = spec.group_size == 0 ? 1 : r / spec.group_size;
    const int64_t param_bytes = spec.symmetric ? 2 : 4;
    return packed_row_bytes(r, spec.bits) + n_chunks * param_bytes;
}

}  // namespace palu::quant
