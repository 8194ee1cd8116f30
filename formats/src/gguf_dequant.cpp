// palu formats: ggml tensor types (block sizes, names) and their dequantization to f32.
// Input: raw blocks as stored in a GGUF data section; output: f32 values in ggml order.
// The block layouts are ggml's (ggml-common.h); the arithmetic follows the order of operations
// of ggml's reference dequantizers and of gguf-py's numpy ones ((d*sc)*q - dmin*m in f32,
// no fused multiply-add: this file is compiled with -ffp-contract=off) so the results are
// bit-identical to theirs, which tests/reference/gguf_reference.py checks on a real file.
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "palu/core/checked.h"
#include "palu/core/dtype.h"
#include "palu/core/error.h"
#include "palu/formats/gguf.h"

namespace palu::formats {

namespace {

struct TypeTraits {
    uint32_t id;
    const char* name;
    int64_t block_size;  // elements per block
    uint64_t type_size;  // bytes per block
    bool dequantizable;  // palu can convert it to f32
};

constexpr int64_t kQK = 32;    // elements per block of the legacy quants (Q4_0 ... Q8_1)
constexpr int64_t kQKK = 256;  // elements per super-block of the k-quants

// Sizes as in ggml's type traits (and gguf-py's GGML_QUANT_SIZES). Types palu cannot dequantize
// are listed so that files holding them still open (their offsets and sizes are validated).
constexpr TypeTraits kTypes[] = {
    {0, "F32", 1, 4, true},
    {1, "F16", 1, 2, true},
    {2, "Q4_0", kQK, 2 + 16, true},
    {3, "Q4_1", kQK, 2 + 2 + 16, true},
    {6, "Q5_0", kQK, 2 + 4 + 16, true},
    {7, "Q5_1", kQK, 2 + 2 + 4 + 16, true},
    {8, "Q8_0", kQK, 2 + 32, true},
    {9, "Q8_1", kQK, 4 + 4 + 32, false},
    {10, "Q2_K", kQKK, 2 + 2 + kQKK / 16 + kQKK / 4, false},
    {11, "Q3_K", kQKK, 2 + kQKK / 4 + kQKK / 8 + 12, false},
    {12, "Q4_K", kQKK, 2 + 2 + 12 + kQKK / 2, true},
    {13, "Q5_K", kQKK, 2 + 2 + 12 + kQKK / 8 + kQKK / 2, true},
    {14, "Q6_K", kQKK, kQKK / 2 + kQKK / 4 + kQKK / 16 + 2, true},
    {15, "Q8_K", kQKK, 4 + kQKK + kQKK / 8, false},
    {16, "IQ2_XXS", kQKK, 2 + kQKK / 4, false},
    {17, "IQ2_XS", kQKK, 2 + kQKK / 4 + kQKK / 32, false},
    {18, "IQ3_XXS", kQKK, 2 + kQKK / 4 + kQKK / 8, false},
    {19, "IQ1_S", kQKK, 2 + kQKK / 8 + kQKK / 16, false},
    {20, "IQ4_NL", kQK, 2 + 16, false},
    {21, "IQ3_S", kQKK, 2 + kQKK / 4 + kQKK / 8 + kQKK / 32 + 4, false},
    {22, "IQ2_S", kQKK, 2 + kQKK / 4 + kQKK / 16, false},
    {23, "IQ4_XS", kQKK, 2 + 2 + kQKK / 2 + kQKK / 64, false},
    {24, "I8", 1, 1, false},
    {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},
    {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, false},
    {29, "IQ1_M", kQKK, kQKK / 8 + kQKK / 16 + kQKK / 32, false},
    {30, "BF16", 1, 2, true},
    {34, "TQ1_0", kQKK, 2 + 4 * 13, false},
    {35, "TQ2_0", kQKK, 2 + 64, false},
    {39, "MXFP4", kQK, 1 + 16, false},
};

const TypeTraits* find_traits(uint32_t id) {
    for (const auto& t : kTypes)
        if (t.id == id) return &t;
    return nullptr;
}

// Block scales are f16. Normal halves are decoded inline (rebias the exponent, widen the
// mantissa: exact); zeros, subnormals, inf and NaN take core's general conversion. The inline
// path matters for the 32-element formats, which read one or two scales per 32 outputs.
inline float load_f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    const uint32_t exp = (h >> 10) & 0x1F;
    if (exp == 0 || exp == 0x1F) [[unlikely]]
        return f16_to_f32(h);
    const uint32_t bits =
        (uint32_t(h & 0x8000) << 16) | ((exp + 112) << 23) | (uint32_t(h & 0x3FF) << 13);
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// 16 small values (one byte each, 0..63) -> y = scale*(q + offset) + add, or with `sub` set
// y = scale*q - add. The SSE2 path (baseline on x86-64) does exactly the scalar float operations
// (int -> float conversion, one multiply, one add/subtract), so both give identical bits.
inline void nibbles_to_f32(const uint8_t* q, int offset, float scale, float add, bool sub,
                           float* dst) {
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m128i w0 = _mm_unpacklo_epi8(raw, zero), w1 = _mm_unpackhi_epi8(raw, zero);
    const __m128i vo = _mm_set1_epi32(offset);
    const __m128 vs = _mm_set1_ps(scale), va = _mm_set1_ps(add);
    const __m128i x[4] = {_mm_unpacklo_epi16(w0, zero), _mm_unpackhi_epi16(w0, zero),
                          _mm_unpacklo_epi16(w1, zero), _mm_unpackhi_epi16(w1, zero)};
    for (int k = 0; k < 4; ++k) {
        const __m128 p = _mm_mul_ps(vs, _mm_cvtepi32_ps(_mm_add_epi32(x[k], vo)));
        _mm_storeu_ps(dst + 4 * k, sub ? _mm_sub_ps(p, va) : _mm_add_ps(p, va));
    }
#else
    for (int j = 0; j < 16; ++j) {
        const float p = scale * static_cast<float>(q[j] + offset);
        dst[j] = sub ? p - add : p + add;
    }
#endif
}

// Splits 16 packed bytes into their low nibbles (lo[0..16)) and high nibbles (hi[0..16)).
inline void split_nibbles(const uint8_t* qs, uint8_t* lo, uint8_t* hi) {
    for (int j = 0; j < 16; ++j) {
        lo[j] = qs[j] & 0x0F;
        hi[j] = qs[j] >> 4;
    }
}

// ---- legacy 32-element blocks -------------------------------------------------------------
// Low nibbles of qs[0..16) hold elements 0..15, high nibbles elements 16..31.

void dequant_q4_0(const uint8_t* src, float* dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += 18, dst += kQK) {
        const float d = load_f16(src);
        alignas(16) uint8_t lo[16], hi[16];
        split_nibbles(src + 2, lo, hi);
        // y = d*(q - 8) - 0.0f: subtracting +0 is the identity on every float (adding it would
        // turn -0 into +0), so this is exactly d*(q - 8).
        nibbles_to_f32(lo, -8, d, 0.0f, /*sub=*/true, dst);
        nibbles_to_f32(hi, -8, d, 0.0f, /*sub=*/true, dst + 16);
    }
}

void dequant_q4_1(const uint8_t* src, float* dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += 20, dst += kQK) {
        const float d = load_f16(src);
        const float m = load_f16(src + 2);
        alignas(16) uint8_t lo[16], hi[16];
        split_nibbles(src + 4, lo, hi);
        nibbles_to_f32(lo, 0, d, m, /*sub=*/false, dst);
        nibbles_to_f32(hi, 0, d, m, /*sub=*/false, dst + 16);
    }
}

// Q5: the fifth bit of element j is bit j of the little-endian uint32 qh.
inline void q5_values(const uint8_t* qs, uint32_t qh, uint8_t* lo, uint8_t* hi) {
#if defined(__SSE2__)
    // Byte j of `spread` holds qh byte j/8; testing it against 1 << (j%8) gives bit j.
    const __m128i bit = _mm_set_epi8(-128, 64, 32, 16, 8, 4, 2, 1, -128, 64, 32, 16, 8, 4, 2, 1);
    const __m128i nib = _mm_set1_epi8(0x0F), b4 = _mm_set1_epi8(0x10);
    __m128i v = _mm_cvtsi32_si128(static_cast<int>(qh));
    v = _mm_unpacklo_epi8(v, v);
    v = _mm_unpacklo_epi16(v, v);
    const __m128i spread_lo = _mm_unpacklo_epi32(v, v), spread_hi = _mm_unpackhi_epi32(v, v);
    const __m128i f_lo = _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread_lo, bit), bit), b4);
    const __m128i f_hi = _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread_hi, bit), bit), b4);
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo), _mm_or_si128(_mm_and_si128(raw, nib), f_lo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi),
                     _mm_or_si128(_mm_and_si128(_mm_srli_epi16(raw, 4), nib), f_hi));
#else
    for (int j = 0; j < 16; ++j) {
        lo[j] = uint8_t((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4));
        hi[j] = uint8_t((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
    }
#endif
}

void dequant_q5_0(const uint8_t* src, float* dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += 22, dst += kQK) {
        const float d = load_f16(src);
        uint32_t qh;
        std::memcpy(&qh, src + 2, 4);
        alignas(16) uint8_t lo[16], hi[16];
        q5_values(src + 6, qh, lo, hi);
        // y = d*(q - 16) - 0.0f (the identity; see dequant_q4_0).
        nibbles_to_f32(lo, -16, d, 0.0f, /*sub=*/true, dst);
        nibbles_to_f32(hi, -16, d, 0.0f, /*sub=*/true, dst + 16);
    }
}

void dequant_q5_1(const uint8_t* src, float* dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += 24, dst += kQK) {
        const float d = load_f16(src);
        const float m = load_f16(src + 2);
        uint32_t qh;
        std::memcpy(&qh, src + 4, 4);
        alignas(16) uint8_t lo[16], hi[16];
        q5_values(src + 8, qh, lo, hi);
        nibbles_to_f32(lo, 0, d, m, /*sub=*/false, dst);
        nibbles_to_f32(hi, 0, d, m, /*sub=*/false, dst + 16);
    }
}

void dequant_q8_0(const uint8_t* src, float* dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += 34, dst += kQK) {
        const float d = load_f16(src);
        const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
        for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(qs[j]) * d;
    }
}

// ---- k-quants: 256-element super-blocks of 8 (Q4_K, Q5_K) or 16 (Q6_K) sub-blocks ------------

// The 8 six-bit scales and 8 six-bit mins of Q4_K/Q5_K packed in 12 bytes: sub-blocks 0..3 keep
// their low 6 bits in bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 keep their low 4 bits
// in the nibbles of bytes 8..11 and their top 2 bits in the top bits of bytes 0..7.
inline void k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Q4_K block: f16 d, f16 dmin, scales[12], qs[128]. Each 64 elements share 32 bytes of qs: the
// low nibbles are sub-block 2k, the high nibbles sub-block 2k+1. y = (d*sc)*q - (dmin*m).
void dequant_q4_k(const uint8_t* src, float* dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += 144) {
        const float d = load_f16(src);
        const float dmin = load_f16(src + 2);
        const uint8_t* scales = src + 4;
        const uint8_t* qs = src + 16;
        for (int s = 0; s < 8; s += 2, qs += 32) {
            uint8_t sc0, m0, sc1, m1;
            k_scale_min(s, scales, &sc0, &m0);
            k_scale_min(s + 1, scales, &sc1, &m1);
            const float d0 = d * static_cast<float>(sc0), dm0 = dmin * static_cast<float>(m0);
            const float d1 = d * static_cast<float>(sc1), dm1 = dmin * static_cast<float>(m1);
            alignas(16) uint8_t lo[32], hi[32];
            split_nibbles(qs, lo, hi);
            split_nibbles(qs + 16, lo + 16, hi + 16);
            nibbles_to_f32(lo, 0, d0, dm0, /*sub=*/true, dst);
            nibbles_to_f32(lo + 16, 0, d0, dm0, /*sub=*/true, dst + 16);
            nibbles_to_f32(hi, 0, d1, dm1, /*sub=*/true, dst + 32);
            nibbles_to_f32(hi + 16, 0, d1, dm1, /*sub=*/true, dst + 48);
            dst += 64;
        }
    }
}

// Q5_K block: f16 d, f16 dmin, scales[12], qh[32], qs[128]. As Q4_K, plus the fifth bit of
// element l of sub-block s in bit s of qh[l].
void dequant_q5_k(const uint8_t* src, float* dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += 176) {
        const float d = load_f16(src);
        const float dmin = load_f16(src + 2);
        const uint8_t* scales = src + 4;
        const uint8_t* qh = src + 16;
        const uint8_t* qs = src + 48;
        for (int s = 0; s < 8; s += 2, qs += 32) {
            uint8_t sc0, m0, sc1, m1;
            k_scale_min(s, scales, &sc0, &m0);
            k_scale_min(s + 1, scales, &sc1, &m1);
            const float d0 = d * static_cast<float>(sc0), dm0 = dmin * static_cast<float>(m0);
            const float d1 = d * static_cast<float>(sc1), dm1 = dmin * static_cast<float>(m1);
            for (int l = 0; l < 32; ++l) {
                const int q = (qs[l] & 0x0F) | (((qh[l] >> s) & 1) << 4);
                dst[l] = d0 * static_cast<float>(q) - dm0;
            }
            for (int l = 0; l < 32; ++l) {
                const int q = (qs[l] >> 4) | (((qh[l] >> (s + 1)) & 1) << 4);
                dst[32 + l] = d1 * static_cast<float>(q) - dm1;
            }
            dst += 64;
        }
    }
}

// Q6_K block: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d.
// Each half (128 elements) uses 64 bytes of ql and 32 of qh: element 32*k + l takes the low
// (k even) or high (k odd) nibble of ql[l + 32*(k&1)] and bits 2k..2k+1 of qh[l]; 16 elements
// share one scale. y = (d*scale)*(q - 32).
void dequant_q6_k(const uint8_t* src, float* dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += 210) {
        const uint8_t* ql = src;
        const uint8_t* qh = src + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
        const float d = load_f16(src + 208);
        for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, dst += 128) {
            // The four 6-bit quant groups of this half, as bytes 0..63 (byte-wise, vectorizable).
            alignas(16) uint8_t q[4][32];
            for (int l = 0; l < 32; ++l) {
                q[0][l] = uint8_t((ql[l] & 0x0F) | ((qh[l] & 0x03) << 4));
                q[1][l] = uint8_t((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 0x03) << 4));
                q[2][l] = uint8_t((ql[l] >> 4) | (((qh[l] >> 4) & 0x03) << 4));
                q[3][l] = uint8_t((ql[l + 32] >> 4) | (((qh[l] >> 6) & 0x03) << 4));
            }
            // y = (d*scale)*(q - 32) - 0.0f (the identity; see dequant_q4_0).
            for (int k = 0; k < 4; ++k)
                for (int h = 0; h < 2; ++h)
                    nibbles_to_f32(q[k] + 16 * h, -32, d * static_cast<float>(sc[2 * k + h]), 0.0f,
                                   /*sub=*/true, dst + 32 * k + 16 * h);
        }
    }
}

}  // namespace

const char* ggml_type_name(GgmlType t) {
    const TypeTraits* tr = find_traits(static_cast<uint32_t>(t));
    return tr ? tr->name : "unknown";
}

bool ggml_type_known(uint32_t id) {
    return find_traits(id) != nullptr;
}

bool ggml_type_dequantizable(GgmlType t) {
    const TypeTraits* tr = find_traits(static_cast<uint32_t>(t));
    return tr && tr->dequantizable;
}

int64_t ggml_block_size(GgmlType t) {
    const TypeTraits* tr = find_traits(static_cast<uint32_t>(t));
    PALU_CHECK(tr, FormatError, "formats: ggml type %u is unknown", static_cast<unsigned>(t));
    return tr->block_size;
}

uint64_t ggml_type_size(GgmlType t) {
    const TypeTraits* tr = find_traits(static_cast<uint32_t>(t));
    PALU_CHECK(tr, FormatError, "formats: ggml type %u is unknown", static_cast<unsigned>(t));
    return tr->type_size;
}

uint64_t ggml_nbytes(GgmlType t, int64_t n) {
    const TypeTraits* tr = find_traits(static_cast<uint32_t>(t));
    PALU_CHECK(tr, FormatError, "formats: ggml type %u is unknown", static_cast<unsigned>(t));
    PALU_CHECK(n >= 0 && n % tr->block_size == 0, FormatError,
               "formats: %lld %s elements: expected a non-negative multiple of the block size "
               "%lld, got %lld",
               static_cast<long long>(n), tr->name, static_cast<long long>(tr->block_size),
               static_cast<long long>(n));
    auto bytes = mul_no_overflow(static_cast<uint64_t>(n / tr->block_size), tr->type_size);
    PALU_CHECK(bytes.has_value(), FormatError, "formats: %lld %s elements: byte count overflows",
               static_cast<long long>(n), tr->name);
    return *bytes;
}

void dequantize_row(GgmlType t, const void* src_v, float* dst, int64_t n) {
    const TypeTraits* tr = find_traits(static_cast<uint32_t>(t));
    PALU_CHECK(tr && tr->dequantizable, FormatError,
               "formats: dequantize: ggml type %s (%u) is not supported; supported: F32, F16, "
               "BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K",
               tr ? tr->name : "unknown", static_cast<unsigned>(t));
    PALU_CHECK(n >= 0 && n % tr->block_size == 0, FormatError,
               "formats: dequantize: %s element count: expected a multiple of %lld, got %lld",
               tr->name, static_cast<long long>(tr->block_size), static_cast<long long>(n));
    if (n == 0) return;  // (empty tensors: src/dst may be null)
    const auto* src = static_cast<const uint8_t*>(src_v);
    const int64_t n_blocks = n / tr->block_size;
    switch (t) {
        case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
        case GgmlType::F16: convert_to_f32(DType::F16, src, dst, static_cast<size_t>(n)); break;
        case GgmlType::BF16: convert_to_f32(DType::BF16, src, dst, static_cast<size_t>(n)); break;
        case GgmlType::Q4_0: dequant_q4_0(src, dst, n_blocks); break;
        case GgmlType::Q4_1: dequant_q4_1(src, dst, n_blocks); break;
        case GgmlType::Q5_0: dequant_q5_0(src, dst, n_blocks); break;
        case GgmlType::Q5_1: dequant_q5_1(src, dst, n_blocks); break;
        case GgmlType::Q8_0: dequant_q8_0(src, dst, n_blocks); break;
        case GgmlType::Q4_K: dequant_q4_k(src, dst, n_blocks); break;
        case GgmlType::Q5_K: dequant_q5_k(src, dst, n_blocks); break;
        case GgmlType::Q6_K: dequant_q6_k(src, dst, n_blocks); break;
        default: PALU_ASSERT(false, "dequantizable type %s without a kernel", tr->name);
    }
}

}  // namespace palu::formats
