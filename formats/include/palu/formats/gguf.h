// palu formats: GGUF (v2, v3) reader: metadata, tensor infos, dequantization to f32.
// The public surface below is fixed; the implementation lives in formats/src/gguf*.cpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// Limits against hostile input (checked before any allocation):
//  - strings and array payloads must fit in the bytes left in the file;
//  - at most kGgufMaxArrayElements metadata array elements in total, nesting depth <= 8;
//  - tensors have 1..4 dims (GGML_MAX_DIMS), each >= 0, element count and bytes without overflow.

namespace palu::formats {

/// Upper bound on the total number of metadata array elements of one file (a 256k-token
/// vocabulary with scores and types needs under 1M); protects against absurd counts.
inline constexpr uint64_t kGgufMaxArrayElements = uint64_t(1) << 23;
/// Maximum nesting depth of metadata arrays.
inline constexpr int kGgufMaxArrayDepth = 8;
/// Maximum number of tensor dims (GGML_MAX_DIMS).
inline constexpr uint32_t kGgufMaxDims = 4;

/// GGUF metadata value types (gguf_type).
enum class GgufValueType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};

/// ggml tensor types palu knows (values as in ggml.h).
enum class GgmlType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    BF16 = 30,
};
const char* ggml_type_name(GgmlType t);

/// One metadata value; arrays hold their elements in `array` (element type in `array_type`).
struct GgufValue {
    GgufValueType type = GgufValueType::U8;
    uint64_t u = 0;  // unsigned integers and bool
    int64_t i = 0;   // signed integers
    double f = 0.0;  // floats
    std::string s;   // strings
    GgufValueType array_type = GgufValueType::U8;
    std::vector<GgufValue> array;
};

struct GgufTensorInfo {
    std::string name;         // GGUF name, e.g. blk.0.attn_k.weight
    std::vector<int64_t> ne;  // ggml dims, fastest first (ne[0] = row length)
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;  // relative to the data section
    uint64_t n_bytes = 0;
};

class GgufFile {
   public:
    /// mmaps and validates the whole header; throws FormatError/IoError naming the file.
    static std::unique_ptr<GgufFile> open(const std::filesystem::path& path);
    virtual ~GgufFile() = default;

    virtual uint32_t version() const = 0;
    virtual uint64_t alignment() const = 0;
    /// Metadata keys in file order.
    virtual const std::vector<std::string>& keys() const = 0;
    virtual const GgufValue* find(const std::string& key) const = 0;
    /// Typed getters; throw FormatError naming the key when absent or of another type.
    virtual std::string get_string(const std::string& key) const = 0;
    virtual int64_t get_int(const std::string& key) const = 0;   // any integer type
    virtual double get_float(const std::string& key) const = 0;  // f32/f64 (or integer)
    virtual std::vector<std::string> get_string_array(const std::string& key) const = 0;
    virtual std::vector<int64_t> get_int_array(const std::string& key) const = 0;
    virtual std::vector<double> get_float_array(const std::string& key) const = 0;

    /// Tensor infos in file order.
    virtual const std::vector<GgufTensorInfo>& tensor_infos() const = 0;
    /// Raw bytes of a tensor inside the mapping.
    virtual const uint8_t* tensor_data(const GgufTensorInfo& t) const = 0;
    /// Dequantized f32 values in ggml order (ne[0] fastest), no renaming or permutation.
    virtual std::vector<float> dequantize(const GgufTensorInfo& t) const = 0;
    virtual std::string path() const = 0;

    /// Parses a GGUF image held in memory (copied); `name` stands for the file in messages.
    /// Same validation and errors as open(); used by the fuzz target and tests.
    static std::unique_ptr<GgufFile> open_memory(const uint8_t* data, size_t size,
                                                 const std::string& name);
    /// Byte offset of the data section from the start of the file (aligned).
    virtual uint64_t data_offset() const = 0;
    /// Tensor info by GGUF name, nullptr when absent.
    virtual const GgufTensorInfo* find_tensor(const std::string& name) const = 0;
};

/// True for every ggml type id whose block layout palu knows (it can validate its size), including
/// types it cannot dequantize (Q2_K, Q3_K, IQ*, ...).
bool ggml_type_known(uint32_t id);
/// True for the types dequantize_row supports: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
/// Q4_K, Q5_K, Q6_K.
bool ggml_type_dequantizable(GgmlType t);
/// Elements per block (1 for F32/F16/BF16, 32 for Q4_0..Q8_0, 256 for the k-quants).
/// FormatError for an unknown type.
int64_t ggml_block_size(GgmlType t);
/// Bytes per block. FormatError for an unknown type.
uint64_t ggml_type_size(GgmlType t);

/// Dequantizes `n` values (a multiple of the type's block size) of type `t` from `src` to `dst`.
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);
/// Bytes for `n` elements of type t (n a multiple of the block size); FormatError otherwise.
uint64_t ggml_nbytes(GgmlType t, int64_t n);

}  // namespace palu::formats
