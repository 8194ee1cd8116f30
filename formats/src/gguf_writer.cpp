// palu formats: GGUF writer (tests, fuzz seeds, later the GGUF export). Input: metadata values
// and f32 tensors; output: a GGUF v3 (or v2) image with an aligned data section, tensors in
// insertion order, each padded to the alignment (the layout llama.cpp's writer produces).
#include "palu/formats/gguf_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io_util.h"
#include "palu/core/checked.h"
#include "palu/core/dtype.h"
#include "palu/core/error.h"

namespace palu::formats {

namespace {

GgufValue make_u(GgufValueType t, uint64_t u) {
    GgufValue v;
    v.type = t;
    v.u = u;
    return v;
}
GgufValue make_i(GgufValueType t, int64_t i) {
    GgufValue v;
    v.type = t;
    v.i = i;
    return v;
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

void put_value(std::vector<uint8_t>& out, const GgufValue& v) {
    switch (v.type) {
        case GgufValueType::U8: put<uint8_t>(out, uint8_t(v.u)); break;
        case GgufValueType::U16: put<uint16_t>(out, uint16_t(v.u)); break;
        case GgufValueType::U32: put<uint32_t>(out, uint32_t(v.u)); break;
        case GgufValueType::U64: put<uint64_t>(out, v.u); break;
        case GgufValueType::BOOL: put<uint8_t>(out, v.u ? 1 : 0); break;
        case GgufValueType::I8: put<int8_t>(out, int8_t(v.i)); break;
        case GgufValueType::I16: put<int16_t>(out, int16_t(v.i)); break;
        case GgufValueType::I32: put<int32_t>(out, int32_t(v.i)); break;
        case GgufValueType::I64: put<int64_t>(out, v.i); break;
        case GgufValueType::F32: put<float>(out, float(v.f)); break;
        case GgufValueType::F64: put<double>(out, v.f); break;
        case GgufValueType::STRING: put_string(out, v.s); break;
        case GgufValueType::ARRAY:
            put<uint32_t>(out, uint32_t(v.array_type));
            put<uint64_t>(out, v.array.size());
            for (const auto& e : v.array) {
                PALU_CHECK(e.type == v.array_type, UsageError,
                           "formats: GgufWriter: array element of type %u in an array of type %u",
                           unsigned(e.type), unsigned(v.array_type));
                put_value(out, e);
            }
            break;
    }
}

void put_f16(uint8_t* dst, float f) {
    const uint16_t h = f32_to_f16(f);
    std::memcpy(dst, &h, 2);
}

}  // namespace

GgufValue gguf_u8(uint8_t v) {
    return make_u(GgufValueType::U8, v);
}
GgufValue gguf_u16(uint16_t v) {
    return make_u(GgufValueType::U16, v);
}
GgufValue gguf_u32(uint32_t v) {
    return make_u(GgufValueType::U32, v);
}
GgufValue gguf_u64(uint64_t v) {
    return make_u(GgufValueType::U64, v);
}
GgufValue gguf_bool(bool v) {
    return make_u(GgufValueType::BOOL, v ? 1 : 0);
}
GgufValue gguf_i8(int8_t v) {
    return make_i(GgufValueType::I8, v);
}
GgufValue gguf_i16(int16_t v) {
    return make_i(GgufValueType::I16, v);
}
GgufValue gguf_i32(int32_t v) {
    return make_i(GgufValueType::I32, v);
}
GgufValue gguf_i64(int64_t v) {
    return make_i(GgufValueType::I64, v);
}
GgufValue gguf_f32(float f) {
    GgufValue v;
    v.type = GgufValueType::F32;
    v.f = f;
    return v;
}
GgufValue gguf_f64(double f) {
    GgufValue v;
    v.type = GgufValueType::F64;
    v.f = f;
    return v;
}
GgufValue gguf_str(std::string s) {
    GgufValue v;
    v.type = GgufValueType::STRING;
    v.s = std::move(s);
    return v;
}
GgufValue gguf_array(GgufValueType elem_type, std::vector<GgufValue> elems) {
    GgufValue v;
    v.type = GgufValueType::ARRAY;
    v.array_type = elem_type;
    v.array = std::move(elems);
    return v;
}
GgufValue gguf_str_array(const std::vector<std::string>& xs) {
    std::vector<GgufValue> e;
    e.reserve(xs.size());
    for (const auto& x : xs) e.push_back(gguf_str(x));
    return gguf_array(GgufValueType::STRING, std::move(e));
}
GgufValue gguf_i32_array(const std::vector<int32_t>& xs) {
    std::vector<GgufValue> e;
    e.reserve(xs.size());
    for (auto x : xs) e.push_back(gguf_i32(x));
    return gguf_array(GgufValueType::I32, std::move(e));
}
GgufValue gguf_f32_array(const std::vector<float>& xs) {
    std::vector<GgufValue> e;
    e.reserve(xs.size());
    for (auto x : xs) e.push_back(gguf_f32(x));
    return gguf_array(GgufValueType::F32, std::move(e));
}

// Q8_0: d = max|x| / 127, q = round(x / d).
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, src += 32, dst += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(src[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        for (int j = 0; j < 32; ++j)
            dst[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(src[j] * id)));
    }
}

// Q4_0: d = (signed value of largest magnitude) / -8, q = clamp(round(x / d) + 8, 0, 15).
void quantize_q4_0(const float* src, uint8_t* dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, src += 32, dst += 18) {
        float amax = 0.0f, vmax = 0.0f;
        for (int j = 0; j < 32; ++j)
            if (std::fabs(src[j]) > amax) {
                amax = std::fabs(src[j]);
                vmax = src[j];
            }
        const float d = vmax / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        for (int j = 0; j < 16; ++j) {
            const long q0 = std::clamp(std::lround(src[j] * id) + 8, 0L, 15L);
            const long q1 = std::clamp(std::lround(src[j + 16] * id) + 8, 0L, 15L);
            dst[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
}

// Q4_1: m = min, d = (max - min) / 15, q = clamp(round((x - m) / d), 0, 15).
void quantize_q4_1(const float* src, uint8_t* dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, src += 32, dst += 20) {
        float lo = src[0], hi = src[0];
        for (int j = 1; j < 32; ++j) {
            lo = std::min(lo, src[j]);
            hi = std::max(hi, src[j]);
        }
        const float d = (hi - lo) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        put_f16(dst + 2, lo);
        for (int j = 0; j < 16; ++j) {
            const long q0 = std::clamp(std::lround((src[j] - lo) * id), 0L, 15L);
            const long q1 = std::clamp(std::lround((src[j + 16] - lo) * id), 0L, 15L);
            dst[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
}

GgufWriter::GgufWriter(uint32_t version) : version_(version) {
    PALU_CHECK(version == 2 || version == 3, UsageError,
               "formats: GgufWriter: version: expected 2 or 3, got %u", version);
}

void GgufWriter::set(const std::string& key, GgufValue value) {
    for (auto& kv : kv_)
        if (kv.first == key) {
            kv.second = std::move(value);
            return;
        }
    kv_.emplace_back(key, std::move(value));
}

void GgufWriter::set_alignment(uint32_t alignment) {
    PALU_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0, UsageError,
               "formats: GgufWriter: alignment: expected a power of two, got %u", alignment);
    alignment_ = alignment;
    set("general.alignment", gguf_u32(alignment));
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                            const std::vector<float>& values) {
    const auto numel = numel_no_overflow(ne);
    PALU_CHECK(numel && *numel == values.size(), ShapeError,
               "formats: GgufWriter: tensor '%s' shape %s: expected %zu values to match, got "
               "another count",
               name.c_str(), shape_str(ne).c_str(), values.size());
    PALU_CHECK(!ne.empty() && ne[0] % ggml_block_size(type) == 0, ShapeError,
               "formats: GgufWriter: tensor '%s' ne[0]: expected a multiple of %lld (%s), got %s",
               name.c_str(), (long long)ggml_block_size(type), ggml_type_name(type),
               shape_str(ne).c_str());
    const int64_t n = static_cast<int64_t>(values.size());
    std::vector<uint8_t> bytes(ggml_nbytes(type, n));
    switch (type) {
        case GgmlType::F32:
            if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
            break;
        case GgmlType::F16:
            for (int64_t k = 0; k < n; ++k) put_f16(bytes.data() + 2 * k, values[k]);
            break;
        case GgmlType::BF16:
            for (int64_t k = 0; k < n; ++k) {
                const uint16_t h = f32_to_bf16(values[k]);
                std::memcpy(bytes.data() + 2 * k, &h, 2);
            }
            break;
        case GgmlType::Q8_0: quantize_q8_0(values.data(), bytes.data(), n); break;
        case GgmlType::Q4_0: quantize_q4_0(values.data(), bytes.data(), n); break;
        case GgmlType::Q4_1: quantize_q4_1(values.data(), bytes.data(), n); break;
        default:
            PALU_THROW(UsageError,
                       "formats: GgufWriter: tensor '%s': expected type F32, F16, BF16, Q8_0, "
                       "Q4_0 or Q4_1, got %s",
                       name.c_str(), ggml_type_name(type));
    }
    tensors_.push_back({name, std::move(ne), type, std::move(bytes)});
}

void GgufWriter::add_tensor_raw(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                                std::vector<uint8_t> bytes) {
    const auto numel = numel_no_overflow(ne);
    PALU_CHECK(numel.has_value(), ShapeError, "formats: GgufWriter: tensor '%s': bad shape %s",
               name.c_str(), shape_str(ne).c_str());
    const uint64_t need = ggml_nbytes(type, static_cast<int64_t>(*numel));
    PALU_CHECK(need == bytes.size(), ShapeError,
               "formats: GgufWriter: tensor '%s' shape %s %s: expected %llu bytes, got %zu",
               name.c_str(), shape_str(ne).c_str(), ggml_type_name(type), (unsigned long long)need,
               bytes.size());
    tensors_.push_back({name, std::move(ne), type, std::move(bytes)});
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
    std::vector<uint8_t> out;
    out.reserve(1 << 16);
    put<uint32_t>(out, 0x46554747u);  // "GGUF" read as a little-endian u32
    put<uint32_t>(out, version_);
    put<uint64_t>(out, tensors_.size());
    put<uint64_t>(out, kv_.size());
    for (const auto& [key, value] : kv_) {
        put_string(out, key);
        put<uint32_t>(out, uint32_t(value.type));
        put_value(out, value);
    }
    auto padded = [&](uint64_t n) { return (n + alignment_ - 1) / alignment_ * alignment_; };
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        put_string(out, t.name);
        put<uint32_t>(out, uint32_t(t.ne.size()));
        for (int64_t d : t.ne) put<uint64_t>(out, uint64_t(d));
        put<uint32_t>(out, uint32_t(t.type));
        put<uint64_t>(out, offset);
        offset += padded(t.bytes.size());
    }
    out.resize(padded(out.size()), 0);
    for (const auto& t : tensors_) {
        out.insert(out.end(), t.bytes.begin(), t.bytes.end());
        out.resize(padded(out.size()), 0);
    }
    return out;
}

void GgufWriter::write(const std::filesystem::path& path) const {
    const std::vector<uint8_t> bytes = to_bytes();
    detail::TempFile f(path);
    f.write(bytes.data(), bytes.size());
    f.commit();
}

}  // namespace palu::formats
