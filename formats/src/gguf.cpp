// palu formats: GGUF (v2, v3) reader. Input: a .gguf file (mmap'd) or an in-memory image;
// output: metadata values, tensor infos and raw tensor bytes, all validated before use.
// Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv x (string key,
// u32 type, value), n_tensors x (string name, u32 n_dims, n_dims x u64 ne, u32 ggml type,
// u64 offset), padding to general.alignment (default 32), data section. Strings are u64 length
// + bytes (no terminator); arrays are u32 element type + u64 count + elements.
#include "palu/formats/gguf.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "io_util.h"
#include "palu/core/checked.h"
#include "palu/core/error.h"

namespace palu::formats {

namespace {

constexpr uint64_t kDefaultAlignment = 32;

const char* value_type_name(uint32_t t) {
    static const char* names[] = {"u8",   "i8",  "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "str", "array", "u64", "i64", "f64"};
    return t < 13 ? names[t] : "unknown";
}

// Smallest encoded size of one value of type t (used to bound counts before allocating).
uint64_t min_value_size(GgufValueType t) {
    switch (t) {
        case GgufValueType::U8:
        case GgufValueType::I8:
        case GgufValueType::BOOL: return 1;
        case GgufValueType::U16:
        case GgufValueType::I16: return 2;
        case GgufValueType::U32:
        case GgufValueType::I32:
        case GgufValueType::F32: return 4;
        case GgufValueType::U64:
        case GgufValueType::I64:
        case GgufValueType::F64:
        case GgufValueType::STRING: return 8;  // the length
        case GgufValueType::ARRAY: return 12;  // type + count
    }
    return 1;
}

// Bounds-checked little-endian reader over the file image. Every failure names the file, the
// object being read (`what`) and the offset, as a FormatError.
class Reader {
   public:
    Reader(const uint8_t* data, uint64_t size, const std::string& file)
        : data_(data), size_(size), file_(file) {}

    uint64_t pos() const { return pos_; }
    uint64_t left() const { return size_ - pos_; }
    const std::string& file() const { return file_; }

    void need(uint64_t n, const std::string& what) const {
        PALU_CHECK(n <= left(), FormatError,
                   "formats: %s: truncated header: %s needs %llu bytes at offset %llu, got %llu "
                   "bytes left; hint: incomplete download?",
                   file_.c_str(), what.c_str(), (unsigned long long)n, (unsigned long long)pos_,
                   (unsigned long long)left());
    }
    template <typename T>
    T read(const std::string& what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string read_string(const std::string& what) {
        const uint64_t n = read<uint64_t>(what + " length");
        PALU_CHECK(n <= left(), FormatError,
                   "formats: %s: %s length at offset %llu: expected <= %llu (bytes left in the "
                   "file), got %llu",
                   file_.c_str(), what.c_str(), (unsigned long long)(pos_ - 8),
                   (unsigned long long)left(), (unsigned long long)n);
        std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
        pos_ += n;
        return s;
    }

   private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string& file_;
};

class GgufFileImpl final : public GgufFile {
   public:
    GgufFileImpl(std::string path, const uint8_t* data, uint64_t size, detail::MappedFile map,
                 std::vector<uint8_t> owned)
        : path_(std::move(path)),
          data_(data),
          size_(size),
          map_(std::move(map)),
          owned_(std::move(owned)) {
        if (!owned_.empty()) data_ = owned_.data();
        parse();
    }
    GgufFileImpl(const GgufFileImpl&) = delete;
    GgufFileImpl& operator=(const GgufFileImpl&) = delete;

    uint32_t version() const override { return version_; }
    uint64_t alignment() const override { return alignment_; }
    uint64_t data_offset() const override { return data_offset_; }
    const std::vector<std::string>& keys() const override { return keys_; }
    const GgufValue* find(const std::string& key) const override {
        auto it = values_.find(key);
        return it == values_.end() ? nullptr : &it->second;
    }
    const std::vector<GgufTensorInfo>& tensor_infos() const override { return tensors_; }
    const GgufTensorInfo* find_tensor(const std::string& name) const override {
        auto it = tensor_index_.find(name);
        return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
    }
    std::string path() const override { return path_; }

    std::string get_string(const std::string& key) const override {
        const GgufValue& v = require(key, "a string");
        check_type(key, v, v.type == GgufValueType::STRING, "a string");
        return v.s;
    }
    int64_t get_int(const std::string& key) const override {
        const GgufValue& v = require(key, "an integer");
        return to_int(key, v);
    }
    double get_float(const std::string& key) const override {
        const GgufValue& v = require(key, "a number");
        return to_float(key, v);
    }
    std::vector<std::string> get_string_array(const std::string& key) const override {
        const GgufValue& v = require(key, "an array of strings");
        check_type(key, v, v.type == GgufValueType::ARRAY && v.array_type == GgufValueType::STRING,
                   "an array of strings");
        std::vector<std::string> out;
        out.reserve(v.array.size());
        for (const auto& e : v.array) out.push_back(e.s);
        return out;
    }
    std::vector<int64_t> get_int_array(const std::string& key) const override {
        const GgufValue& v = require(key, "an array of integers");
        check_type(key, v, v.type == GgufValueType::ARRAY && is_int(v.array_type),
                   "an array of integers");
        std::vector<int64_t> out;
        out.reserve(v.array.size());
        for (const auto& e : v.array) out.push_back(to_int(key, e));
        return out;
    }
    std::vector<double> get_float_array(const std::string& key) const override {
        const GgufValue& v = require(key, "an array of numbers");
        check_type(key, v,
                   v.type == GgufValueType::ARRAY &&
                       (is_int(v.array_type) || v.array_type == GgufValueType::F32 ||
                        v.array_type == GgufValueType::F64),
                   "an array of numbers");
        std::vector<double> out;
        out.reserve(v.array.size());
        for (const auto& e : v.array) out.push_back(to_float(key, e));
        return out;
    }

    const uint8_t* tensor_data(const GgufTensorInfo& t) const override {
        return data_ + data_offset_ + t.offset;
    }

    std::vector<float> dequantize(const GgufTensorInfo& t) const override {
        PALU_CHECK(ggml_type_dequantizable(t.type), FormatError,
                   "formats: %s: tensor '%s' has ggml type %s (%u), which palu cannot dequantize; "
                   "supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; "
                   "hint: re-quantize the model with one of these types",
                   path_.c_str(), t.name.c_str(), ggml_type_name(t.type),
                   static_cast<unsigned>(t.type));
        const int64_t n = static_cast<int64_t>(*numel_no_overflow(t.ne));
        std::vector<float> out(static_cast<size_t>(n));
        dequantize_row(t.type, tensor_data(t), out.data(), n);
        return out;
    }

   private:
    static bool is_int(GgufValueType t) {
        switch (t) {
            case GgufValueType::U8:
            case GgufValueType::I8:
            case GgufValueType::U16:
            case GgufValueType::I16:
            case GgufValueType::U32:
            case GgufValueType::I32:
            case GgufValueType::U64:
            case GgufValueType::I64: return true;
            default: return false;
        }
    }
    static bool is_unsigned(GgufValueType t) {
        return t == GgufValueType::U8 || t == GgufValueType::U16 || t == GgufValueType::U32 ||
               t == GgufValueType::U64;
    }
    std::string type_str(const GgufValue& v) const {
        if (v.type == GgufValueType::ARRAY)
            return std::string("array of ") + value_type_name(uint32_t(v.array_type));
        return value_type_name(uint32_t(v.type));
    }
    const GgufValue& require(const std::string& key, const char* expected) const {
        const GgufValue* v = find(key);
        PALU_CHECK(v, FormatError, "formats: %s: metadata key '%s': expected %s, got no such key",
                   path_.c_str(), key.c_str(), expected);
        return *v;
    }
    void check_type(const std::string& key, const GgufValue& v, bool ok,
                    const char* expected) const {
        PALU_CHECK(ok, FormatError, "formats: %s: metadata key '%s': expected %s, got %s",
                   path_.c_str(), key.c_str(), expected, type_str(v).c_str());
    }
    int64_t to_int(const std::string& key, const GgufValue& v) const {
        check_type(key, v, is_int(v.type), "an integer");
        if (is_unsigned(v.type)) {
            PALU_CHECK(v.u <= uint64_t(INT64_MAX), FormatError,
                       "formats: %s: metadata key '%s': expected an integer <= 2^63-1, got %llu",
                       path_.c_str(), key.c_str(), (unsigned long long)v.u);
            return static_cast<int64_t>(v.u);
        }
        return v.i;
    }
    double to_float(const std::string& key, const GgufValue& v) const {
        if (v.type == GgufValueType::F32 || v.type == GgufValueType::F64) return v.f;
        check_type(key, v, is_int(v.type), "a number");
        return is_unsigned(v.type) ? static_cast<double>(v.u) : static_cast<double>(v.i);
    }

    struct HeaderCounts {
        uint64_t n_tensors = 0;
        uint64_t n_kv = 0;
    };

    GgufValue read_value(Reader& r, GgufValueType type, const std::string& what, int depth);
    // parse() runs the phases below in file order.
    void parse();
    HeaderCounts read_header(Reader& r);
    void read_metadata(Reader& r, uint64_t n_kv);
    void read_alignment();
    GgufTensorInfo read_tensor_info(Reader& r, uint64_t k);
    void read_tensor_infos(Reader& r, uint64_t n_tensors);
    uint64_t locate_data_section(uint64_t header_end);
    void check_tensor_bounds(uint64_t data_size) const;

    std::string path_;
    const uint8_t* data_;
    uint64_t size_;
    detail::MappedFile map_;
    std::vector<uint8_t> owned_;

    uint32_t version_ = 0;
    uint64_t alignment_ = kDefaultAlignment;
    uint64_t data_offset_ = 0;
    uint64_t n_array_elements_ = 0;
    std::vector<std::string> keys_;
    std::unordered_map<std::string, GgufValue> values_;
    std::vector<GgufTensorInfo> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

GgufValue GgufFileImpl::read_value(Reader& r, GgufValueType type, const std::string& what,
                                   int depth) {
    GgufValue v;
    v.type = type;
    switch (type) {
        case GgufValueType::U8: v.u = r.read<uint8_t>(what); break;
        case GgufValueType::U16: v.u = r.read<uint16_t>(what); break;
        case GgufValueType::U32: v.u = r.read<uint32_t>(what); break;
        case GgufValueType::U64: v.u = r.read<uint64_t>(what); break;
        case GgufValueType::I8: v.i = r.read<int8_t>(what); break;
        case GgufValueType::I16: v.i = r.read<int16_t>(what); break;
        case GgufValueType::I32: v.i = r.read<int32_t>(what); break;
        case GgufValueType::I64: v.i = r.read<int64_t>(what); break;
        case GgufValueType::F32: v.f = r.read<float>(what); break;
        case GgufValueType::F64: v.f = r.read<double>(what); break;
        case GgufValueType::BOOL: {
            const uint8_t b = r.read<uint8_t>(what);
            PALU_CHECK(b <= 1, FormatError, "formats: %s: %s: expected a bool (0 or 1), got %u",
                       path_.c_str(), what.c_str(), unsigned(b));
            v.u = b;
            break;
        }
        case GgufValueType::STRING: v.s = r.read_string(what); break;
        case GgufValueType::ARRAY: {
            PALU_CHECK(depth < kGgufMaxArrayDepth, FormatError,
                       "formats: %s: %s: expected arrays nested at most %d deep, got deeper",
                       path_.c_str(), what.c_str(), kGgufMaxArrayDepth);
            const uint32_t et = r.read<uint32_t>(what + " array element type");
            PALU_CHECK(et <= uint32_t(GgufValueType::F64), FormatError,
                       "formats: %s: %s array element type: expected 0..12, got %u", path_.c_str(),
                       what.c_str(), et);
            v.array_type = static_cast<GgufValueType>(et);
            const uint64_t count = r.read<uint64_t>(what + " array count");
            const uint64_t max_count = r.left() / min_value_size(v.array_type);
            PALU_CHECK(count <= max_count, FormatError,
                       "formats: %s: %s array count: expected <= %llu (%llu bytes left, >= %llu "
                       "bytes per %s), got %llu",
                       path_.c_str(), what.c_str(), (unsigned long long)max_count,
                       (unsigned long long)r.left(),
                       (unsigned long long)min_value_size(v.array_type), value_type_name(et),
                       (unsigned long long)count);
            n_array_elements_ += count;
            PALU_CHECK(n_array_elements_ <= kGgufMaxArrayElements, FormatError,
                       "formats: %s: %s: expected at most %llu metadata array elements in the "
                       "file, got %llu so far",
                       path_.c_str(), what.c_str(), (unsigned long long)kGgufMaxArrayElements,
                       (unsigned long long)n_array_elements_);
            v.array.reserve(static_cast<size_t>(count));
            for (uint64_t k = 0; k < count; ++k)
                v.array.push_back(read_value(r, v.array_type, what, depth + 1));
            break;
        }
    }
    return v;
}

// Magic first (the most useful message for a file of another kind), then the version, then the
// two counts, each bounded by the bytes left before anything is reserved.
GgufFileImpl::HeaderCounts GgufFileImpl::read_header(Reader& r) {
    const char* f = path_.c_str();
    if (size_ >= 4) {
        PALU_CHECK(std::memcmp(data_, "GGUF", 4) == 0, FormatError,
                   "formats: %s: bad magic: expected 'GGUF' (47 47 55 46), got %02x %02x %02x %02x",
                   f, data_[0], data_[1], data_[2], data_[3]);
    }
    r.need(4, "magic");
    r.read<uint32_t>("magic");
    version_ = r.read<uint32_t>("version");
    PALU_CHECK(version_ == 2 || version_ == 3, FormatError,
               "formats: %s: unsupported GGUF version: expected 2 or 3, got %u%s", f, version_,
               version_ == 1 ? "; hint: GGUF v1 is obsolete, re-convert the model with a current "
                               "llama.cpp"
                             : "");
    HeaderCounts c;
    c.n_tensors = r.read<uint64_t>("tensor count");
    c.n_kv = r.read<uint64_t>("metadata key count");
    // Each key needs >= 8 + 4 + 1 bytes, each tensor info >= 8 + 4 + 8 + 4 + 8.
    PALU_CHECK(c.n_kv <= r.left() / 13, FormatError,
               "formats: %s: metadata key count: expected <= %llu (bytes left / 13), got %llu", f,
               (unsigned long long)(r.left() / 13), (unsigned long long)c.n_kv);
    PALU_CHECK(c.n_tensors <= r.left() / 32, FormatError,
               "formats: %s: tensor count: expected <= %llu (bytes left / 32), got %llu", f,
               (unsigned long long)(r.left() / 32), (unsigned long long)c.n_tensors);
    return c;
}

void GgufFileImpl::read_metadata(Reader& r, uint64_t n_kv) {
    const char* f = path_.c_str();
    keys_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
        const std::string what = strfmt("metadata key #%llu", (unsigned long long)k);
        std::string key = r.read_string(what);
        const std::string kwhat = strfmt("metadata key '%s'", key.c_str());
        PALU_CHECK(!values_.count(key), FormatError,
                   "formats: %s: %s: expected unique keys, got a duplicate", f, kwhat.c_str());
        const uint32_t type = r.read<uint32_t>(kwhat + " value type");
        PALU_CHECK(type <= uint32_t(GgufValueType::F64), FormatError,
                   "formats: %s: %s value type: expected 0..12, got %u", f, kwhat.c_str(), type);
        GgufValue v = read_value(r, static_cast<GgufValueType>(type), kwhat, 0);
        keys_.push_back(key);
        values_.emplace(std::move(key), std::move(v));
    }
}

// general.alignment, when present, must be a u32 power of two; tensor offsets are checked
// against it, so it is read before the tensor infos.
void GgufFileImpl::read_alignment() {
    const char* f = path_.c_str();
    if (const GgufValue* a = find("general.alignment")) {
        PALU_CHECK(a->type == GgufValueType::U32, FormatError,
                   "formats: %s: metadata key 'general.alignment': expected type u32, got %s", f,
                   type_str(*a).c_str());
        PALU_CHECK(a->u != 0 && (a->u & (a->u - 1)) == 0, FormatError,
                   "formats: %s: metadata key 'general.alignment': expected a power of two, got "
                   "%llu",
                   f, (unsigned long long)a->u);
        alignment_ = a->u;
    }
}

// Tensor info #k: name (unique), dims, ggml type, offset; then its element and byte counts
// without overflow and its offset aligned. Bounds against the data section come later.
GgufTensorInfo GgufFileImpl::read_tensor_info(Reader& r, uint64_t k) {
    const char* f = path_.c_str();
    GgufTensorInfo t;
    t.name = r.read_string(strfmt("tensor info #%llu name", (unsigned long long)k));
    const std::string what = strfmt("tensor '%s'", t.name.c_str());
    PALU_CHECK(!tensor_index_.count(t.name), FormatError,
               "formats: %s: %s: expected unique tensor names, got a duplicate", f, what.c_str());
    const uint32_t n_dims = r.read<uint32_t>(what + " n_dims");
    PALU_CHECK(n_dims >= 1 && n_dims <= kGgufMaxDims, FormatError,
               "formats: %s: %s n_dims: expected 1..%u, got %u", f, what.c_str(), kGgufMaxDims,
               n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t ne = r.read<uint64_t>(what + " dims");
        PALU_CHECK(ne <= uint64_t(INT64_MAX), FormatError,
                   "formats: %s: %s ne[%u]: expected a dim <= 2^63-1, got %llu", f, what.c_str(), d,
                   (unsigned long long)ne);
        t.ne.push_back(static_cast<int64_t>(ne));
    }
    const uint32_t type = r.read<uint32_t>(what + " type");
    PALU_CHECK(ggml_type_known(type), FormatError,
               "formats: %s: %s type: expected a known ggml type id, got %u", f, what.c_str(),
               type);
    t.type = static_cast<GgmlType>(type);
    t.offset = r.read<uint64_t>(what + " offset");

    const auto numel = numel_no_overflow(t.ne);
    PALU_CHECK(numel.has_value() && *numel <= uint64_t(INT64_MAX), FormatError,
               "formats: %s: %s shape %s: element count overflows", f, what.c_str(),
               shape_str(t.ne).c_str());
    const int64_t block = ggml_block_size(t.type);
    PALU_CHECK(t.ne[0] % block == 0, FormatError,
               "formats: %s: %s shape %s %s: expected ne[0] a multiple of the block size "
               "%lld, got %lld",
               f, what.c_str(), shape_str(t.ne).c_str(), ggml_type_name(t.type), (long long)block,
               (long long)t.ne[0]);
    const auto n_bytes = mul_no_overflow(*numel / uint64_t(block), ggml_type_size(t.type));
    PALU_CHECK(n_bytes.has_value(), FormatError,
               "formats: %s: %s shape %s %s: byte count overflows", f, what.c_str(),
               shape_str(t.ne).c_str(), ggml_type_name(t.type));
    t.n_bytes = *n_bytes;
    PALU_CHECK(t.offset % alignment_ == 0, FormatError,
               "formats: %s: %s offset: expected a multiple of the alignment %llu, got %llu", f,
               what.c_str(), (unsigned long long)alignment_, (unsigned long long)t.offset);
    return t;
}

void GgufFileImpl::read_tensor_infos(Reader& r, uint64_t n_tensors) {
    tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        GgufTensorInfo t = read_tensor_info(r, k);
        tensor_index_.emplace(t.name, tensors_.size());
        tensors_.push_back(std::move(t));
    }
}

// The data section starts at the next multiple of the alignment after the header. Returns its
// size (0 when it would start past the end of a file without tensors).
uint64_t GgufFileImpl::locate_data_section(uint64_t header_end) {
    const uint64_t pad = (alignment_ - header_end % alignment_) % alignment_;
    data_offset_ = header_end + pad;
    if (!tensors_.empty()) {
        PALU_CHECK(data_offset_ <= size_, FormatError,
                   "formats: %s: data section start: expected <= file size %llu, got %llu "
                   "(header ends at %llu, alignment %llu); hint: incomplete download?",
                   path_.c_str(), (unsigned long long)size_, (unsigned long long)data_offset_,
                   (unsigned long long)header_end, (unsigned long long)alignment_);
    }
    return data_offset_ <= size_ ? size_ - data_offset_ : 0;
}

// Every tensor inside the data section, and no two overlapping.
void GgufFileImpl::check_tensor_bounds(uint64_t data_size) const {
    const char* f = path_.c_str();
    std::vector<size_t> order(tensors_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    uint64_t prev_end = 0;
    const GgufTensorInfo* prev = nullptr;
    for (size_t k : order) {
        const GgufTensorInfo& t = tensors_[k];
        const auto end = add_no_overflow(t.offset, t.n_bytes);
        PALU_CHECK(end.has_value() && *end <= data_size, FormatError,
                   "formats: %s: tensor '%s' data [%llu, %llu) (shape %s %s, %llu bytes): expected "
                   "to end within the data section of %llu bytes, got past its end; hint: "
                   "truncated file or incomplete download?",
                   f, t.name.c_str(), (unsigned long long)t.offset,
                   (unsigned long long)(end ? *end : UINT64_MAX), shape_str(t.ne).c_str(),
                   ggml_type_name(t.type), (unsigned long long)t.n_bytes,
                   (unsigned long long)data_size);
        PALU_CHECK(!prev || t.n_bytes == 0 || t.offset >= prev_end, FormatError,
                   "formats: %s: tensor '%s' data [%llu, %llu): expected no overlap, got overlap "
                   "with tensor '%s' ending at %llu",
                   f, t.name.c_str(), (unsigned long long)t.offset, (unsigned long long)*end,
                   prev ? prev->name.c_str() : "", (unsigned long long)prev_end);
        if (t.n_bytes > 0) {
            prev_end = *end;
            prev = &t;
        }
    }
}

// The phases in file order; each validates what it reads before the next one relies on it.
void GgufFileImpl::parse() {
    Reader r(data_, size_, path_);
    const HeaderCounts counts = read_header(r);
    read_metadata(r, counts.n_kv);
    read_alignment();
    read_tensor_infos(r, counts.n_tensors);
    check_tensor_bounds(locate_data_section(r.pos()));
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::filesystem::path& path) {
    const std::string p = path.string();
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    PALU_CHECK(fd >= 0, IoError, "formats: %s: cannot open for reading: %s", p.c_str(),
               std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        PALU_THROW(IoError, "formats: %s: expected a regular file", p.c_str());
    }
    const size_t size = static_cast<size_t>(st.st_size);
    detail::MappedFile map;
    try {
        map = detail::MappedFile::map(fd, size, p);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    static const uint8_t kEmpty = 0;
    const uint8_t* data = map.data() ? map.data() : &kEmpty;
    return std::make_unique<GgufFileImpl>(p, data, size, std::move(map), std::vector<uint8_t>{});
}

std::unique_ptr<GgufFile> GgufFile::open_memory(const uint8_t* data, size_t size,
                                                const std::string& name) {
    std::vector<uint8_t> copy(data, data + size);
    // An empty vector leaves the data pointer to a static byte (size 0 is never read).
    static const uint8_t kEmpty = 0;
    return std::make_unique<GgufFileImpl>(name, copy.empty() ? &kEmpty : nullptr, size,
                                          detail::MappedFile{}, std::move(copy));
}

}  // namespace palu::formats
