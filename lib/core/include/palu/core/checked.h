// palu core: overflow-checked size arithmetic for byte counts computed from untrusted headers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace palu {

/// a*b, or nullopt when it overflows uint64.
inline std::optional<uint64_t> mul_no_overflow(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}

/// a+b, or nullopt when it overflows uint64.
inline std::optional<uint64_t> add_no_overflow(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
    return r;
}

/// Product of non-negative dims, or nullopt on a negative dim or overflow.
inline std::optional<uint64_t> numel_no_overflow(std::span<const int64_t> shape) {
    uint64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0) return std::nullopt;
        auto r = mul_no_overflow(n, static_cast<uint64_t>(d));
        if (!r) return std::nullopt;
        n = *r;
    }
    return n;
}

}  // namespace palu
