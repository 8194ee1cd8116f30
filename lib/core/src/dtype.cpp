// palu core: dtype table and half-precision conversion.
// F16 -> f32 uses the F16C instruction (vcvtph2ps) when the CPU has it, checked at run time;
// BF16 -> f32 is a 16-bit shift, written so the compiler vectorizes it.
#include "palu/core/dtype.h"

#include <cpuid.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "palu/core/error.h"

namespace palu {

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F64:
        case DType::I64: return 8;
        case DType::F32:
        case DType::I32: return 4;
        case DType::F16:
        case DType::BF16:
        case DType::I16: return 2;
        case DType::I8:
        case DType::U8:
        case DType::BOOL: return 1;
    }
    PALU_ASSERT(false, "bad dtype");
    return 0;
}

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F64: return "F64";
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::I64: return "I64";
        case DType::I32: return "I32";
        case DType::I16: return "I16";
        case DType::I8: return "I8";
        case DType::U8: return "U8";
        case DType::BOOL: return "BOOL";
    }
    return "?";
}

std::optional<DType> parse_dtype(std::string_view s) {
    static const std::pair<const char*, DType> table[] = {
        {"F64", DType::F64}, {"F32", DType::F32},  {"F16", DType::F16}, {"BF16", DType::BF16},
        {"I64", DType::I64}, {"I32", DType::I32},  {"I16", DType::I16}, {"I8", DType::I8},
        {"U8", DType::U8},   {"BOOL", DType::BOOL}};
    for (auto& [name, t] : table)
        if (s == name) return t;
    return std::nullopt;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {  // subnormal: value = mant * 2^-24
            float f = static_cast<float>(mant) * 0x1p-24f;
            std::memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)
        return static_cast<uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (ax < 0x38800000u) {  // result is subnormal or zero: round(|f| * 2^24) half-to-even
        float af;
        std::memcpy(&af, &ax, 4);
        float scaled = af * 0x1p24f;
        uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
        return static_cast<uint16_t>(sign | m);
    }
    uint32_t exp = (ax >> 23) - 112;
    uint32_t mant = ax & 0x7fffffu;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
}

uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>((u + rounding) >> 16);
}

namespace {

inline uint16_t load_u16(const unsigned char* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

__attribute__((target("avx2,f16c"))) void f16_to_f32_f16c(const void* src, float* dst, size_t n) {
    const unsigned char* p = static_cast<const unsigned char*>(src);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) dst[i] = f16_to_f32(load_u16(p + 2 * i));
}

void f16_to_f32_scalar(const void* src, float* dst, size_t n) {
    const unsigned char* p = static_cast<const unsigned char*>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load_u16(p + 2 * i));
}

void bf16_to_f32_loop(const void* src, float* dst, size_t n) {
    const unsigned char* p = static_cast<const unsigned char*>(src);
    for (size_t i = 0; i < n; ++i) {
        uint32_t u = static_cast<uint32_t>(load_u16(p + 2 * i)) << 16;
        std::memcpy(dst + i, &u, 4);
    }
}

template <typename T>
void ints_to_f32(const void* src, float* dst, size_t n) {
    const unsigned char* p = static_cast<const unsigned char*>(src);
    for (size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, p + i * sizeof(T), sizeof(T));
        dst[i] = static_cast<float>(v);
    }
}

}  // namespace

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
    // Sources come from mmap'd files at arbitrary 8-byte-or-less alignment: all loads are
    // unaligned.
    if (n == 0) return;  // empty tensors may come with null pointers (memcpy forbids them)
    switch (t) {
        case DType::F32: std::memcpy(dst, src, n * 4); return;
        case DType::F64: ints_to_f32<double>(src, dst, n); return;
        case DType::F16: {
            // F16C via cpuid leaf 1 (ECX bit 29): clang 14 rejects __builtin_cpu_supports("f16c").
            static const bool has_f16c = [] {
                unsigned a = 0, b = 0, c = 0, d = 0;
                return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) &&
                       __builtin_cpu_supports("avx2");
            }();
            if (has_f16c)
                f16_to_f32_f16c(src, dst, n);
            else
                f16_to_f32_scalar(src, dst, n);
            return;
        }
        case DType::BF16: bf16_to_f32_loop(src, dst, n); return;
        case DType::I64: ints_to_f32<int64_t>(src, dst, n); return;
        case DType::I32: ints_to_f32<int32_t>(src, dst, n); return;
        case DType::I16: ints_to_f32<int16_t>(src, dst, n); return;
        case DType::I8: ints_to_f32<int8_t>(src, dst, n); return;
        case DType::U8: ints_to_f32<uint8_t>(src, dst, n); return;
        case DType::BOOL: ints_to_f32<uint8_t>(src, dst, n); return;
    }
}

void round_to_storage(float* v, size_t n, DType storage) {
    if (storage == DType::F16)
        for (size_t i = 0; i < n; ++i) v[i] = f16_to_f32(f32_to_f16(v[i]));
    else if (storage == DType::BF16)
        for (size_t i = 0; i < n; ++i) v[i] = bf16_to_f32(f32_to_bf16(v[i]));
}

}  // namespace palu
