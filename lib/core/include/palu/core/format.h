// palu core: printf-style string formatting with compile-time format checking, and shape printing.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace palu {

/// printf-style formatting into a std::string.
std::string strfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string strfmt() {
    return {};
}

/// "[4096,4096]" for a shape.
std::string shape_str(std::span<const int64_t> shape);
inline std::string shape_str(const std::vector<int64_t>& shape) {
    return shape_str(std::span<const int64_t>(shape.data(), shape.size()));
}

/// Human readable byte count: "1.50 MiB".
std::string bytes_str(double n_bytes);

}  // namespace palu
