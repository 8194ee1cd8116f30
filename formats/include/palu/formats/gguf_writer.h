// palu formats: a small GGUF (v3, or v2 on request) writer: metadata of every value type and
// F32/F16/BF16/Q8_0/Q4_0/Q4_1 tensors (simple reference quantizers), aligned data section.
// Used by the tests (round trips, corruption cases, fuzz seeds) and, later, the GGUF export.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "palu/formats/gguf.h"

namespace palu::formats {

/// Metadata value constructors.
GgufValue gguf_u8(uint8_t v);
GgufValue gguf_i8(int8_t v);
GgufValue gguf_u16(uint16_t v);
GgufValue gguf_i16(int16_t v);
GgufValue gguf_u32(uint32_t v);
GgufValue gguf_i32(int32_t v);
GgufValue gguf_u64(uint64_t v);
GgufValue gguf_i64(int64_t v);
GgufValue gguf_f32(float v);
GgufValue gguf_f64(double v);
GgufValue gguf_bool(bool v);
GgufValue gguf_str(std::string v);
/// Array of `elems`, each of type `elem_type` (may itself be ARRAY).
GgufValue gguf_array(GgufValueType elem_type, std::vector<GgufValue> elems);
GgufValue gguf_str_array(const std::vector<std::string>& v);
GgufValue gguf_i32_array(const std::vector<int32_t>& v);
GgufValue gguf_f32_array(const std::vector<float>& v);

/// Reference quantizers (round to nearest). `n` is a multiple of 32; `dst` holds
/// ggml_nbytes(type, n) bytes.
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n);
void quantize_q4_0(const float* src, uint8_t* dst, int64_t n);
void quantize_q4_1(const float* src, uint8_t* dst, int64_t n);

class GgufWriter {
   public:
    /// version 2 or 3 (UsageError otherwise).
    explicit GgufWriter(uint32_t version = 3);

    /// Adds (or replaces) a metadata key; keys are written in first-insertion order.
    void set(const std::string& key, GgufValue value);
    /// Sets general.alignment (u32, a power of two; UsageError otherwise).
    void set_alignment(uint32_t alignment);

    /// Adds a tensor from f32 values in ggml order (ne[0] fastest), converted or quantized to
    /// `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_1; UsageError otherwise). values.size() must equal
    /// the product of ne and ne[0] must be a multiple of the block size (ShapeError otherwise).
    void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                    const std::vector<float>& values);
    /// Adds a tensor from raw bytes already in `type`'s layout (size checked).
    void add_tensor_raw(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                        std::vector<uint8_t> bytes);

    /// The whole file image.
    std::vector<uint8_t> to_bytes() const;
    /// Writes the file atomically (temporary name, then rename). IoError on failure.
    void write(const std::filesystem::path& path) const;

   private:
    struct PendingTensor {
        std::string name;
        std::vector<int64_t> ne;
        GgmlType type;
        std::vector<uint8_t> bytes;
    };
    uint32_t version_;
    uint64_t alignment_ = 32;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace palu::formats
