// palu core: element types of checkpoint tensors and conversion of half types to f32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace palu {

/// Element types of dense (unquantized) tensors, named as in safetensors.
enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

/// Size of one element in bytes.
size_t dtype_size(DType t);
/// "F32", "BF16", ... (safetensors spelling).
const char* dtype_name(DType t);
/// Parses a safetensors dtype string; nullopt when unknown.
std::optional<DType> parse_dtype(std::string_view s);

/// IEEE half -> float (exact).
float f16_to_f32(uint16_t h);
/// float -> IEEE half, round to nearest even (overflow -> inf, NaN kept).
uint16_t f32_to_f16(float f);
/// bfloat16 -> float (exact).
inline float bf16_to_f32(uint16_t b) {
    uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
/// float -> bfloat16, round to nearest even (NaN kept quiet).
uint16_t f32_to_bf16(float f);

/// Converts n elements of the raw little-endian buffer `src` of type `t` to f32 (`dst` holds n).
/// Vectorized for F16 (F16C) and BF16. Integer and bool types convert by value.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);

/// Rounds n f32 values in place to what `storage` (F16 or BF16; others: unchanged) keeps: round to
/// nearest even, read back — the values a checkpoint stored in that dtype gives the engine.
void round_to_storage(float* v, size_t n, DType storage);

}  // namespace palu
